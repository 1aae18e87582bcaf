"""Reads of the email outbox and of the tenant's email templates, in the current schema."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from notifications.kinds import KINDS, OVERRIDABLE_KINDS, Kind
from notifications.models import EmailTemplateOverride, OutboxEmail, OutboxStatus
from notifications.templating import default_texts


def outbox_failed_list() -> QuerySet[OutboxEmail]:
    """Emails given up on (NOTIFICATIONS_MAX_ATTEMPTS failures, or an invalid address), newest
    first, for the admins of this schema. Bodies are not loaded: they are cleared anyway."""
    return (
        OutboxEmail.objects.filter(status=OutboxStatus.FAILED).defer("body", "html_body").order_by("-created_at", "-id")
    )


def outbox_status_counts() -> dict[str, int]:
    """How many emails are in each status (every status present, zero if none)."""
    from django.db.models import Count

    counts = dict(
        OutboxEmail.objects.order_by().values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return {status: counts.get(status, 0) for status in OutboxStatus.values}


@dataclass(frozen=True)
class EmailTemplate:
    """A kind of email as a tenant admin sees it: its placeholders, the default subject and
    text (with `{placeholder}` in place of values) and the tenant's override, if any."""

    kind: str
    description: str
    placeholders: tuple[str, ...]
    required_placeholders: tuple[str, ...]
    body_only_placeholders: tuple[str, ...]
    required_lines: tuple[str, ...]
    default_subject: str
    default_body: str
    subject: str
    body: str
    overridden: bool
    updated_at: datetime | None


def email_template_get(kind: str) -> EmailTemplate | None:
    """The kind `kind` of the current tenant, or None if there is no such kind tenants may
    override."""
    if kind not in OVERRIDABLE_KINDS:
        return None
    return _email_template(Kind(kind), EmailTemplateOverride.objects.filter(kind=kind).first())


def email_template_list() -> list[EmailTemplate]:
    """Every kind tenants may override, in a fixed order, with the current tenant's overrides."""
    overrides = {override.kind: override for override in EmailTemplateOverride.objects.all()}
    return [_email_template(kind, overrides.get(kind)) for kind in OVERRIDABLE_KINDS]


def _email_template(kind: Kind, override: EmailTemplateOverride | None) -> EmailTemplate:
    spec = KINDS[kind]
    default_subject, default_body = default_texts(kind)
    return EmailTemplate(
        kind=kind.value,
        description=spec.description,
        placeholders=spec.all_placeholders,
        required_placeholders=spec.required,
        body_only_placeholders=tuple(name for name in spec.all_placeholders if name in spec.secrets),
        required_lines=spec.required_lines,
        default_subject=default_subject,
        default_body=default_body,
        subject=override.subject if override else "",
        body=override.body if override else "",
        overridden=override is not None,
        updated_at=override.updated_at if override else None,
    )
