"""Serializer building blocks shared by the apps' APIs."""

from typing import Any

from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator


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


class TokenField(serializers.CharField):
    """A token as a client sends it (a JWT: about 700 ASCII characters). Whoever reads it
    verifies every character of it (identity.tokens.read_token refuses anything that is not
    a well-formed token of this tenant, surrogates included, with 401 invalid_token), so
    CharField's own surrogate check, a walk over each character in Python, is left out: on
    the refresh and introspection paths it cost as much as a database query."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators = [v for v in self.validators if not isinstance(v, ProhibitSurrogateCharactersValidator)]
