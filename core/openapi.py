"""The OpenAPI documents list the problem responses each operation can give, not only its
successes: a client (and the fuzz tests, tests/fuzz/) reads every status it may receive,
with its `application/problem+json` body.

Some refusals can meet any request, whatever the view: a malformed or oversized request
(400, 413, before a view runs), an unknown host or object (404), a suspended tenant or a
blocked address (403), the database unavailable (503). The others depend on the operation:
401 where it takes credentials, 415 where it takes a body, 429 where it is rate limited.
What a view documents itself (with its own description) is kept; the problem body is
added where it gave none.
"""

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent

from core.errors import ERROR_CATALOG, ErrorCode
from core.problems import PROBLEM_CONTENT_TYPE

# RFC 9457 problem details, as every error of this service is answered. A plain schema, not
# a serializer: a serializer field named `errors` would shadow Serializer.errors.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details (docs/errors.md).",
    "properties": {
        "type": {"type": "string", "description": "urn:idp:error:<code>"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string", "description": "For developers; may change."},
        "code": {
            "type": "string",
            "enum": [code.value for code in ErrorCode],
            "description": "Stable; switch on this.",
        },
        "user_message": {"type": "string", "description": "Safe to show to end users."},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "Field path -> messages, where fields failed.",
        },
    },
    "required": ["type", "title", "status", "detail", "code", "user_message"],
}


ANY_REQUEST = ("400", "403", "404", "413", "503")
WITH_BODY = ("415",)
# What else an operation answers, where its view does not say so itself: those that judge
# credentials of their own (a password, a refresh token, a client secret) without declaring
# an authentication scheme, the login's lockout and session limit, and a rate limit kept
# inside a service rather than by a throttle class.
OPERATION_STATUSES: dict[tuple[str, str], tuple[str, ...]] = {
    ("/api/v1/auth/token/", "POST"): ("401", "409", "423"),
    ("/api/v1/auth/token/refresh/", "POST"): ("401",),
    ("/api/v1/oauth/token/", "POST"): ("401",),
    ("/api/v1/auth/change-password/", "POST"): ("429",),
}


def _codes_with_status(status: int) -> str:
    return ", ".join(f"`{code.value}`" for code, (default, _, _) in ERROR_CATALOG.items() if default == status)


class ProblemAutoSchema(AutoSchema):
    def _map_basic_serializer(self, serializer: Any, direction: Any) -> dict[str, Any]:
        """A serializer's `Meta.optional_fields` are left out of `required`: fields its
        representation gives only sometimes (drf-spectacular makes every read-only field
        required)."""
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        optional = set(getattr(getattr(serializer, "Meta", None), "optional_fields", ()))
        if optional and "required" in schema:
            schema["required"] = [name for name in schema["required"] if name not in optional]
        return schema

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        statuses = [*ANY_REQUEST, *OPERATION_STATUSES.get((self.path, self.method), ())]
        if "requestBody" in operation:
            statuses += WITH_BODY
        if any(requirement for requirement in operation.get("security", [])):
            statuses.append("401")
        if getattr(self.view, "throttle_classes", None):
            statuses.append("429")
        responses = operation.setdefault("responses", {})
        component = ResolvedComponent(
            name="Problem", type=ResolvedComponent.SCHEMA, object="Problem", schema=PROBLEM_SCHEMA
        )
        self.registry.register_on_missing(component)
        problem = {"content": {PROBLEM_CONTENT_TYPE: {"schema": component.ref}}}
        for status in statuses:
            documented = responses.setdefault(status, {"description": _codes_with_status(int(status))})
            documented.setdefault("content", problem["content"])
        for status, documented in responses.items():
            if status.startswith(("4", "5")):
                documented.setdefault("content", problem["content"])
        operation["responses"] = dict(sorted(responses.items()))
        return operation
