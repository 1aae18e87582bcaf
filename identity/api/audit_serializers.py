"""Query parameters and shapes of the audit API (/api/v1/audit/...)."""

import re
from typing import Any

from django.http import QueryDict
from rest_framework import serializers

from core.errors import invalid_request
from core.problems import flatten_errors
from identity.audit_selectors import OUTCOMES, event_outcome
from identity.models import AuditEvent, LoginAttempt, normalize_email

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?$")
MAX_TYPES = 20
# Query parameters every list takes besides its filters (pagination and the CSV switch).
LIST_PARAMETERS = frozenset({"cursor", "page_size", "format"})


class InstantField(serializers.DateTimeField):
    """An ISO 8601 date-time (`2026-11-01T08:00:00Z`; without an offset it is UTC), or a date
    (`2026-11-01`: its midnight, UTC)."""

    def to_internal_value(self, value: Any) -> Any:
        if isinstance(value, str) and _DATE_ONLY.fullmatch(value):
            value = f"{value}T00:00:00Z"
        return super().to_internal_value(value)


class TimeRangeQuerySerializer(serializers.Serializer):
    since = InstantField(required=False, help_text="From this instant on (inclusive). ISO 8601, or a date.")
    until = InstantField(required=False, help_text="Before this instant (exclusive). ISO 8601, or a date.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and until is not None and since >= until:
            raise serializers.ValidationError({"until": ["Must be later than since."]})
        return attrs


class EventTypeField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not _EVENT_TYPE.fullmatch(value):
            raise serializers.ValidationError("Use an event type such as login.failed, or a prefix such as login.*.")
        return value


class AuditEventQuerySerializer(TimeRangeQuerySerializer):
    type = serializers.ListField(
        child=EventTypeField(max_length=64),
        required=False,
        max_length=MAX_TYPES,
        help_text="One or several types (repeat the parameter or separate with commas); `login.*` matches a prefix.",
    )
    actor = serializers.UUIDField(required=False, help_text="The acting user's id.")
    target_type = serializers.CharField(required=False, max_length=64)
    target_id = serializers.CharField(required=False, max_length=64, help_text="The id of the user or object.")
    ip = serializers.IPAddressField(required=False)
    outcome = serializers.ChoiceField(choices=OUTCOMES, required=False)


class LoginAttemptQuerySerializer(TimeRangeQuerySerializer):
    email = serializers.CharField(required=False, max_length=254, help_text="The email tried (any case).")
    user = serializers.UUIDField(required=False, help_text="The user's id.")
    success = serializers.BooleanField(required=False, allow_null=False)
    ip = serializers.IPAddressField(required=False)

    def validate_email(self, value: str) -> str:
        return normalize_email(value)


def query_validated(serializer_class: type[serializers.Serializer], params: QueryDict) -> dict[str, Any]:
    """The list's filters from the query string. Unknown parameters are refused (a misspelt
    filter silently ignored would return more than the caller asked for); `type` may repeat
    or hold a comma-separated list. 400 invalid_request names each bad parameter."""
    fields = serializer_class().fields
    unknown = sorted(set(params) - set(fields) - LIST_PARAMETERS)
    errors: dict[str, list[str]] = {name: ["Unknown parameter."] for name in unknown}
    data: dict[str, Any] = {name: params[name] for name in params if name in fields and name != "type"}
    if "type" in fields and "type" in params:
        data["type"] = [part.strip() for value in params.getlist("type") for part in value.split(",") if part.strip()]
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        errors.update(flatten_errors(serializer.errors))
    if errors:
        raise invalid_request(errors, "The query has invalid parameters.")
    return dict(serializer.validated_data)


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.UUIDField(source="actor_id", allow_null=True, help_text="The acting user's id, or null.")
    outcome = serializers.SerializerMethodField(help_text="failure for refusals and threats, else success.")

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "type",
            "timestamp",
            "actor",
            "target_type",
            "target_id",
            "ip",
            "user_agent",
            "request_id",
            "data",
            "outcome",
        ]

    def get_outcome(self, event: AuditEvent) -> str:
        return event_outcome(event.type)


class LoginAttemptSerializer(serializers.ModelSerializer):
    user = serializers.UUIDField(source="user_id", allow_null=True, help_text="The user's id; null for unknown emails.")

    class Meta:
        model = LoginAttempt
        fields = [
            "id",
            "timestamp",
            "email",
            "user",
            "success",
            "reason",
            "ip",
            "user_agent",
            "device_id",
            "device_name",
            "device_type",
        ]
