"""Reads of the email outbox, in the current schema."""

from django.db.models import QuerySet

from notifications.models import OutboxEmail, OutboxStatus


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
