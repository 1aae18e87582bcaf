"""The permission-check API: POST /api/v1/authz/check/ and /api/v1/authz/check/batch/.

Callers: a service client's token with the `authz:check` scope, or a user's own access
token (then `user` defaults to the caller; asking about anyone else needs `users.view`).
The answers are in rbac.authz; these views only read the body and shape the answer.
They answer with a plain JsonResponse, as the ping does: DRF's content negotiation and
renderer would add a fifth to the cost of a warm check and offer nothing here (JSON only).
"""

import uuid
from typing import Any

from django.http import JsonResponse
from drf_spectacular.utils import OpenApiExample, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from core.serializers import StrictInputSerializer
from identity.authentication import TenantJWTAuthentication
from identity.models import User
from rbac.authentication import HasServiceScope, ServicePrincipal, ServiceTokenAuthentication
from rbac.authz import MAX_BATCH, Check, CheckResult, authz_check
from rbac.models import SCOPE_AUTHZ_CHECK
from rbac.permissions import IsAnyOf, IsAuthenticatedUser

MAX_PERMISSION_LENGTH = 100
MAX_BRANCH_LENGTH = 64


class CheckSerializer(serializers.Serializer):
    """The shape of one check, for the OpenAPI schema. Requests are read by CheckField."""

    user = serializers.UUIDField(required=False, help_text="The user asked about (default: the calling user).")
    token = serializers.CharField(
        required=False, help_text="Or a user's access token: asks about its user, while its session is active."
    )
    permission = serializers.CharField(
        max_length=MAX_PERMISSION_LENGTH, help_text="A code of the catalog, e.g. orders.refund."
    )
    branch = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=MAX_BRANCH_LENGTH,
        help_text="The branch's external_id (omit: tenant-wide).",
    )


def _text(value: Any, *, max_length: int | None) -> tuple[str | None, str | None]:
    """(the stripped text, None) or (None, the error), as DRF's CharField judges it."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None, "Not a valid string."
    text = str(value).strip()
    if not text:
        return None, "This field may not be blank."
    if max_length is not None and len(text) > max_length:
        return None, f"Ensure this field has no more than {max_length} characters."
    return text, None


@extend_schema_field(CheckSerializer)
class CheckField(serializers.Field):
    """Reads one check: `permission`, optional `branch`, and `user` or `token` (with neither,
    the subject is the calling user; a service has none, so `subject_required`). Unknown keys
    are refused, like StrictInputSerializer does. Written by hand, with CharField's and
    UUIDField's messages: a batch reads up to 100 of these, and a nested DRF serializer per
    item would cost more than answering them. A token has no length limit: one too long to
    be a token answers false like any malformed token (read_token refuses it unread)."""

    FIELDS = frozenset({"user", "token", "permission", "branch"})

    def __init__(self, *, subject_required: bool | None = None, **kwargs: Any) -> None:
        self.subject_required = subject_required
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected an object with the check's fields."]})
        errors: dict[str, list[str]] = {
            key: ["This field is unknown or cannot be set here."] for key in data.keys() - self.FIELDS
        }
        check: dict[str, Any] = {}
        if "permission" not in data:
            errors["permission"] = ["This field is required."]
        else:
            check["permission"], error = _text(data["permission"], max_length=MAX_PERMISSION_LENGTH)
            if error:
                errors["permission"] = [error]
        if data.get("branch") is not None:
            check["branch"], error = _text(data["branch"], max_length=MAX_BRANCH_LENGTH)
            if error:
                errors["branch"] = [error]
        if "user" in data:
            try:
                check["user"] = uuid.UUID(str(data["user"]))
            except ValueError:
                errors["user"] = ["Must be a valid UUID."]
        if "token" in data:
            check["token"], error = _text(data["token"], max_length=None)
            if error:
                errors["token"] = [error]
        if "user" in data and "token" in data:
            errors.setdefault("token", []).append("Give user or token, not both.")
        required = self.subject_required
        if required is None:
            required = bool(self.context.get("subject_required"))
        if "user" not in data and "token" not in data and required:
            errors["user"] = ["Give the user (or a token) to check."]
        if errors:
            raise serializers.ValidationError(errors)
        return check

    def to_representation(self, value: Any) -> Any:
        return value


class BatchChecksField(serializers.ListField):
    """1 to MAX_BATCH checks. The length is judged before any item is, so an oversized list
    costs nothing to refuse."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, list) and len(data) > MAX_BATCH:
            self.fail("max_length", max_length=MAX_BATCH)
        return super().to_internal_value(data)


class BatchSerializer(StrictInputSerializer):
    """1 to 100 checks, answered in order."""

    checks = BatchChecksField(child=CheckField(), min_length=1, max_length=MAX_BATCH)


CheckResponse = inline_serializer(
    "AuthzCheckResult",
    fields={
        "allowed": serializers.BooleanField(),
        "unknown_permission": serializers.CharField(
            required=False, help_text="Present when the code is not in the tenant's catalog (allowed is false)."
        ),
    },
)
BatchResponse = inline_serializer(
    "AuthzBatchResult",
    fields={
        "results": serializers.ListField(child=serializers.BooleanField(), help_text="One answer per check, in order."),
        "unknown_permissions": serializers.DictField(
            child=serializers.CharField(),
            required=False,
            help_text="Index of the check (as a string) -> a code that is not in the tenant's catalog.",
        ),
    },
)


# Built once and used only through run_validation (as a ListField uses its child): a new
# serializer per request deep-copies its fields, a fair part of a warm check's cost. A
# service has no "self" to ask about, so it must name the user or give a token.
_CHECK = {for_service: CheckField(subject_required=for_service) for for_service in (True, False)}
_BATCH = {for_service: BatchSerializer(context={"subject_required": for_service}) for for_service in (True, False)}


class AuthzView(APIView):
    authentication_classes = [ServiceTokenAuthentication, TenantJWTAuthentication]
    required_permissions = {"POST": IsAnyOf(HasServiceScope(SCOPE_AUTHZ_CHECK), IsAuthenticatedUser())}

    @property
    def for_service(self) -> bool:
        return isinstance(self.request.user, ServicePrincipal)

    def answer(self, items: list[dict[str, Any]]) -> list[CheckResult]:
        principal = self.request.user
        checks = [Check(**item) for item in items]
        if isinstance(principal, ServicePrincipal):
            return authz_check(checks=checks, client=principal.access)
        assert isinstance(principal, User)  # noqa: S101  # MethodPermissions admits users and services only
        return authz_check(checks=checks, caller=principal)


class AuthzCheckView(AuthzView):
    """May the user do `permission` (at `branch`)? `{"allowed": bool}`.

    A deactivated or unknown user, another tenant's user or token, a malformed or expired
    token, an ended session: `allowed: false`, never an error. An unknown code: false, and
    named in `unknown_permission`. A service token needs the `authz:check` scope (403
    permission_denied); a client restricted to branches gets false for other branches and
    for tenant-wide questions. A user asking about someone else needs `users.view`
    tenant-wide (403 permission_denied). A malformed body: 400 invalid_request.
    """

    @extend_schema(
        request=CheckSerializer,
        responses={200: CheckResponse},
        tags=["authz"],
        examples=[
            OpenApiExample(
                "A service asks about a user at a branch",
                value={
                    "user": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
                    "permission": "orders.refund",
                    "branch": "nbo-1",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> JsonResponse:
        (result,) = self.answer([_CHECK[self.for_service].run_validation(request.data)])
        body: dict[str, Any] = {"allowed": result.allowed}
        if result.unknown_permission is not None:
            body["unknown_permission"] = result.unknown_permission
        return JsonResponse(body)


class AuthzCheckBatchView(AuthzView):
    """Up to 100 checks in one call: `{"results": [bool, ...]}` in order. Each check is as
    for authz/check/; codes not in the catalog are named per index in
    `unknown_permissions`. An empty or longer list, or a malformed item: 400 invalid_request
    with field errors (`checks.3.permission`)."""

    @extend_schema(request=BatchSerializer, responses={200: BatchResponse}, tags=["authz"])
    def post(self, request: Request) -> JsonResponse:
        results = self.answer(_BATCH[self.for_service].run_validation(request.data)["checks"])
        body: dict[str, Any] = {"results": [result.allowed for result in results]}
        unknown = {str(i): r.unknown_permission for i, r in enumerate(results) if r.unknown_permission is not None}
        if unknown:
            body["unknown_permissions"] = unknown
        return JsonResponse(body)
