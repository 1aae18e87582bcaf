"""Shapes of /api/v1/notifications/templates/."""

from rest_framework import serializers

from core.serializers import StrictInputSerializer
from notifications.templating import BODY_MAX_LENGTH, SUBJECT_MAX_LENGTH


class EmailTemplateSerializer(serializers.Serializer):
    kind = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    placeholders = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="What `{name}` may stand for in the subject and body."
    )
    required_placeholders = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="An overridden body must contain these."
    )
    body_only_placeholders = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="Credentials: allowed in the body, never in the subject (subjects are kept after sending).",
    )
    required_lines = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="An overridden body must keep each as a line of its own.",
    )
    default_subject = serializers.CharField(read_only=True)
    default_body = serializers.CharField(read_only=True, help_text="The default text, with `{name}` for each value.")
    subject = serializers.CharField(read_only=True, help_text="The tenant's subject; empty: the default.")
    body = serializers.CharField(read_only=True, help_text="The tenant's text; empty: the default.")
    overridden = serializers.BooleanField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)


class EmailTemplateListSerializer(serializers.Serializer):
    results = EmailTemplateSerializer(many=True, read_only=True)


class EmailTemplateOverrideSerializer(StrictInputSerializer):
    """A tenant's subject and/or text of a kind: plain text with `{placeholder}`s. An empty
    one keeps the default; at least one must be given."""

    # What GET answers may be sent back as it is.
    ignored_fields = frozenset(set(EmailTemplateSerializer().fields) - {"subject", "body"})

    subject = serializers.CharField(required=False, allow_blank=True, default="", max_length=SUBJECT_MAX_LENGTH)
    body = serializers.CharField(required=False, allow_blank=True, default="", max_length=BODY_MAX_LENGTH)
