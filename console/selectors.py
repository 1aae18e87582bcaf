"""Reads for the security dashboard. Every query is bounded: a fixed window of days grouped
by day, a top-N, or the latest N rows, on indexed columns (timestamps, audit event types)."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncDate
from django.utils import timezone

from identity.models import AuditEvent, LoginAttempt
from sessions.models import DeviceSession

DASHBOARD_DAYS = 14
TOP_COUNT = 10
RECENT_COUNT = 20
# ip.blocked and security.flagged are written by the suspicious-activity rules, token.reused
# by a refresh-token reuse.
SUSPICIOUS_EVENT_TYPES = ("ip.blocked", "security.flagged", "token.reused")
LOCKOUT_EVENT_TYPE = "account.locked"


@dataclass(frozen=True)
class DayCounts:
    day: date
    failed_logins: int
    lockouts: int


def _window_start(*, days: int, now: datetime) -> datetime:
    """Midnight (UTC) `days - 1` days before today: the window covers `days` whole days."""
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days - 1)


def security_daily_counts(*, days: int = DASHBOARD_DAYS, now: datetime | None = None) -> list[DayCounts]:
    """Failed logins and lockouts per day over the last `days` days, oldest first, a row for
    every day (zeros included)."""
    now = now or timezone.now()
    since = _window_start(days=days, now=now)
    failed = dict(
        LoginAttempt.objects.filter(timestamp__gte=since, success=False)
        .annotate(day=TruncDate("timestamp"))
        .values_list("day")
        .annotate(count=Count("id"))
        .values_list("day", "count")
    )
    locked = dict(
        AuditEvent.objects.filter(timestamp__gte=since, type=LOCKOUT_EVENT_TYPE)
        .annotate(day=TruncDate("timestamp"))
        .values_list("day")
        .annotate(count=Count("id"))
        .values_list("day", "count")
    )
    first = since.date()
    return [
        DayCounts(day=day, failed_logins=failed.get(day, 0), lockouts=locked.get(day, 0))
        for day in (first + timedelta(days=offset) for offset in range(days))
    ]


def active_sessions_by_device_type(*, now: datetime | None = None, limit: int = TOP_COUNT) -> list[tuple[str, int]]:
    """Active device sessions per device type, most first (at most `limit` types)."""
    now = now or timezone.now()
    rows = (
        DeviceSession.objects.filter(ended_at__isnull=True, expires_at__gt=now)
        .values_list("device_type")
        .annotate(count=Count("id"))
        .order_by("-count", "device_type")
        .values_list("device_type", "count")[:limit]
    )
    return [(device_type or "unknown", count) for device_type, count in rows]


def top_failing_ips(
    *, days: int = DASHBOARD_DAYS, now: datetime | None = None, limit: int = TOP_COUNT
) -> list[tuple[str, int]]:
    """The addresses with the most failed logins in the window, most first."""
    since = _window_start(days=days, now=now or timezone.now())
    rows = (
        LoginAttempt.objects.filter(~Q(ip=None), timestamp__gte=since, success=False)
        .values_list("ip")
        .annotate(count=Count("id"))
        .order_by("-count", "ip")
        .values_list("ip", "count")[:limit]
    )
    return [(str(ip), count) for ip, count in rows]


def suspicious_events_recent(*, limit: int = RECENT_COUNT) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(type__in=SUSPICIOUS_EVENT_TYPES).order_by("-timestamp", "-id")[:limit]
