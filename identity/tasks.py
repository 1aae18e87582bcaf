"""Audit retention: the periodic task that deletes what a tenant's plan no longer keeps."""

from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import connection
from django.db.models import Model, Q
from django.utils import timezone

from identity.models import AuditEvent, IpBlock, LoginAttempt
from tenants.schemas import in_every_schema

# Rows deleted per statement: each batch is its own short transaction, so a tenant with a
# year of events to drop never holds one long lock or builds one huge WAL record.
RETENTION_BATCH_SIZE = 5000


def retention_days() -> int:
    """The current schema's retention: its tenant's plan, or the platform's setting."""
    plan = getattr(getattr(connection, "tenant", None), "plan", None)
    if plan is not None:
        return int(plan.audit_retention_days)
    return int(settings.AUDIT_PLATFORM_RETENTION_DAYS)


def _delete_in_batches(model: type[Model], condition: Q, batch_size: int) -> int:
    deleted = 0
    while True:
        ids = list(model._default_manager.filter(condition).order_by().values_list("pk", flat=True)[:batch_size])
        if not ids:
            return deleted
        count, _ = model._default_manager.filter(pk__in=ids).delete()
        deleted += count


def audit_retention_current_schema(
    now: datetime | None = None, batch_size: int = RETENTION_BATCH_SIZE
) -> dict[str, Any]:
    """Delete audit events and login attempts older than the retention, and IP blocks that
    ended (expired or lifted) before it, in batches."""
    now = now or timezone.now()
    days = retention_days()
    cutoff = now - timedelta(days=days)
    ended_before_cutoff = Q(expires_at__lt=cutoff) | Q(lifted_at__lt=cutoff)
    return {
        "retention_days": days,
        "events": _delete_in_batches(AuditEvent, Q(timestamp__lt=cutoff), batch_size),
        "login_attempts": _delete_in_batches(LoginAttempt, Q(timestamp__lt=cutoff), batch_size),
        "ip_blocks": _delete_in_batches(IpBlock, ended_before_cutoff, batch_size),
    }


@shared_task(name="audit.retention")
def audit_retention() -> dict[str, dict[str, Any]]:
    """Apply the retention in the public schema and in every tenant's (never the template)."""
    return in_every_schema(audit_retention_current_schema, what="Audit retention")
