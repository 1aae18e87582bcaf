"""Serializer building blocks shared by the apps' APIs."""

from typing import Any

from rest_framework import serializers


class StrictInputSerializer(serializers.Serializer):
    """Refuse keys the serializer does not know, naming each one (400 invalid_request).

    On an admin's write a misspelt field (`fullname`) or one that cannot be set here
    (`is_tenant_admin`, `roles`) silently ignored would leave the record other than the
    admin believes. `ignored_fields` are read-only fields of the resource that may be sent
    back unchanged (a client PATCHing what it read) and are dropped without an error.
    """

    ignored_fields: frozenset[str] = frozenset()

    def to_internal_value(self, data: Any) -> Any:
        errors: dict[str, Any] = {}
        if hasattr(data, "keys"):
            unknown = sorted(set(data.keys()) - set(self.fields) - self.ignored_fields)
            errors.update({key: ["This field is unknown or cannot be set here."] for key in unknown})
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            errors.update(exc.detail)
        if errors:
            raise serializers.ValidationError(errors)
        return value
