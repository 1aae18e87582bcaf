"""Audit retention (docs/audit.md "Retention"): the periodic task deletes, in every tenant's
schema, the events and login attempts older than that tenant's plan keeps (and IP blocks that
ended before then), in batches; the platform's own log follows AUDIT_PLATFORM_RETENTION_DAYS."""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from identity.models import AuditEvent, IpBlock, LoginAttempt
from identity.tasks import audit_retention, audit_retention_current_schema
from tenants.models import Tenant
from tests.factories import PlanFactory


def aged(model: type[Any], days: float, **fields: Any) -> Any:
    """A row of the current schema, `days` old."""
    row = model.objects.create(**fields)
    model.objects.filter(pk=row.pk).update(timestamp=timezone.now() - timedelta(days=days))
    return row


def rows_of(schema: str) -> dict[str, set[str]]:
    with schema_context(schema):
        return {
            "events": set(AuditEvent.objects.values_list("target_id", flat=True)),
            "attempts": set(LoginAttempt.objects.values_list("email", flat=True)),
            "blocks": set(IpBlock.objects.values_list("reason", flat=True)),
        }


def seed(schema: str) -> None:
    """An old and a recent event, attempt and ended block, and a block still in force."""
    with schema_context(schema):
        AuditEvent.objects.all().delete()
        LoginAttempt.objects.all().delete()
        aged(AuditEvent, 31, type="login.failed", target_id="old")
        aged(AuditEvent, 29, type="login.failed", target_id="recent")
        aged(LoginAttempt, 31, email="old@example.com", success=False)
        aged(LoginAttempt, 29, email="recent@example.com", success=False)
        now = timezone.now()
        IpBlock.objects.create(ip="192.0.2.1", reason="ended-old", expires_at=now - timedelta(days=31))
        IpBlock.objects.create(ip="192.0.2.2", reason="lifted-old", expires_at=now, lifted_at=now - timedelta(days=40))
        IpBlock.objects.create(ip="192.0.2.3", reason="ended-recent", expires_at=now - timedelta(days=29))
        IpBlock.objects.create(ip="192.0.2.4", reason="in-force", expires_at=now + timedelta(hours=1))


def test_the_task_deletes_what_each_tenants_plan_no_longer_keeps(tenant_a, tenant_b, settings):
    tenant_a.plan = PlanFactory(code="short", audit_retention_days=30)
    tenant_a.save()
    tenant_b.plan = PlanFactory(code="long", audit_retention_days=60)
    tenant_b.save()
    settings.AUDIT_PLATFORM_RETENTION_DAYS = 30
    for schema in ("acme", "globex", "public"):
        seed(schema)

    results = audit_retention.delay().get()

    kept = {
        "events": {"recent"},
        "attempts": {"recent@example.com"},
        "blocks": {"ended-recent", "in-force"},
    }
    assert rows_of("acme") == kept
    assert rows_of("public") == kept
    assert rows_of("globex") == {  # a 60-day plan keeps all of it
        "events": {"old", "recent"},
        "attempts": {"old@example.com", "recent@example.com"},
        "blocks": {"ended-old", "lifted-old", "ended-recent", "in-force"},
    }
    assert results["acme"] == {"retention_days": 30, "events": 1, "login_attempts": 1, "ip_blocks": 2}
    assert results["globex"]["events"] == 0
    assert settings.TENANT_BASE_SCHEMA not in results


def test_old_rows_are_deleted_in_batches_until_none_is_left(tenant_a):
    tenant_a.plan = PlanFactory(code="short", audit_retention_days=30)
    tenant_a.save()
    with tenant_context(Tenant.objects.get(pk=tenant_a.pk)):
        AuditEvent.objects.all().delete()
        for number in range(7):
            aged(AuditEvent, 40, type="user.updated", target_id=f"old-{number}")

        result = audit_retention_current_schema(batch_size=2)

        assert result["events"] == 7
        assert AuditEvent.objects.count() == 0


def test_the_retention_runs_on_the_beat_schedule():
    entry: dict[str, Any] = settings.CELERY_BEAT_SCHEDULE["audit-retention"]
    assert entry["task"] == "audit.retention"
    assert entry["schedule"] <= 24 * 3600


def test_a_row_exactly_at_the_cutoff_is_kept(tenant_a):
    tenant_a.plan = PlanFactory(code="short", audit_retention_days=30)
    tenant_a.save()
    now = datetime.fromisoformat("2026-06-01T00:00:00+00:00")
    with tenant_context(Tenant.objects.get(pk=tenant_a.pk)):
        AuditEvent.objects.all().delete()
        edge = AuditEvent.objects.create(type="user.updated", target_id="edge")
        AuditEvent.objects.filter(pk=edge.pk).update(timestamp=now - timedelta(days=30))

        audit_retention_current_schema(now=now)

        assert AuditEvent.objects.filter(pk=edge.pk).exists()
