"""Reads for the audit trail, login attempts and IP blocks (the audit and security APIs, and
the admin console). Everything reads the current schema only: never another tenant's rows.

`within_branches` (branch external ids) narrows what a holder of `audit.view` at some
branches only may read: events whose target is a user of one of those branches, and login
attempts of such users. None: the whole tenant.
"""

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from uuid import UUID

from django.db.models import CharField, Q, QuerySet
from django.db.models.functions import Cast

from identity.models import AuditEvent, IpBlock, LoginAttempt, User

# Event types that record a refusal or a threat: `outcome=failure`. Every other type records
# something that happened as asked: `outcome=success`.
FAILURE_EVENT_TYPES = frozenset(
    {
        "login.failed",
        "password.change_failed",
        "account.locked",
        "token.reused",
        "security.flagged",
        "ip.blocked",
    }
)
OUTCOMES = ("success", "failure")


def event_outcome(event_type: str) -> str:
    return "failure" if event_type in FAILURE_EVENT_TYPES else "success"


def _branch_users(branches: Collection[str]) -> QuerySet[User]:
    return User.objects.filter(branch_id__in=[branch for branch in branches if branch])


def audit_event_list(
    *,
    types: Sequence[str] = (),
    actor: UUID | None = None,
    target_type: str = "",
    target_id: str = "",
    ip: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: str | None = None,
    within_branches: Collection[str] | None = None,
) -> QuerySet[AuditEvent]:
    """The tenant's audit events, newest first, filtered. A type ending in `.*` matches
    every type with that prefix (`login.*`). `since` is inclusive, `until` exclusive."""
    events = AuditEvent.objects.all().order_by("-timestamp", "-id")
    if within_branches is not None:
        user_ids = _branch_users(within_branches).annotate(text_id=Cast("id", CharField())).values("text_id")
        events = events.filter(target_type="user", target_id__in=user_ids)
    if types:
        matches = Q()
        for event_type in types:
            if event_type.endswith(".*"):
                matches |= Q(type__startswith=event_type[:-1])
            else:
                matches |= Q(type=event_type)
        events = events.filter(matches)
    if actor is not None:
        events = events.filter(actor_id=actor)
    if target_type:
        events = events.filter(target_type=target_type)
    if target_id:
        events = events.filter(target_id=target_id)
    if ip:
        events = events.filter(ip=ip)
    if since is not None:
        events = events.filter(timestamp__gte=since)
    if until is not None:
        events = events.filter(timestamp__lt=until)
    if outcome == "failure":
        events = events.filter(type__in=FAILURE_EVENT_TYPES)
    elif outcome == "success":
        events = events.exclude(type__in=FAILURE_EVENT_TYPES)
    return events


def login_attempt_list(
    *,
    email: str = "",
    user: UUID | None = None,
    success: bool | None = None,
    ip: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    within_branches: Collection[str] | None = None,
) -> QuerySet[LoginAttempt]:
    """Every login attempt in the tenant (unknown emails included), newest first, filtered.
    `email` is matched after normalisation, exactly."""
    attempts = LoginAttempt.objects.all().order_by("-timestamp", "-id")
    if within_branches is not None:
        attempts = attempts.filter(user__in=_branch_users(within_branches))
    if email:
        attempts = attempts.filter(email=email)
    if user is not None:
        attempts = attempts.filter(user_id=user)
    if success is not None:
        attempts = attempts.filter(success=success)
    if ip:
        attempts = attempts.filter(ip=ip)
    if since is not None:
        attempts = attempts.filter(timestamp__gte=since)
    if until is not None:
        attempts = attempts.filter(timestamp__lt=until)
    return attempts


# The columns of the audit exports and how a row's values become cells: one format for the
# API's CSV (identity.api.audit_views) and the console's (identity.admin).
AUDIT_EVENT_EXPORT_COLUMNS = (
    "id",
    "timestamp",
    "type",
    "actor_id",
    "target_type",
    "target_id",
    "ip",
    "user_agent",
    "request_id",
    "data",
)
LOGIN_ATTEMPT_EXPORT_COLUMNS = (
    "id",
    "timestamp",
    "email",
    "user_id",
    "success",
    "reason",
    "ip",
    "user_agent",
    "device_id",
    "device_name",
    "device_type",
)


def audit_event_export_cells(values: Sequence[object]) -> list[object]:
    """A row of AUDIT_EVENT_EXPORT_COLUMNS as CSV cells: ISO timestamps, JSON data."""
    event_id, timestamp, *middle, data = values
    return [event_id, timestamp.isoformat(), *middle, json.dumps(data, sort_keys=True)]  # type: ignore[attr-defined]


def login_attempt_export_cells(values: Sequence[object]) -> list[object]:
    """A row of LOGIN_ATTEMPT_EXPORT_COLUMNS as CSV cells: ISO timestamps, true/false."""
    attempt_id, timestamp, email, user_id, success, *rest = values
    return [attempt_id, timestamp.isoformat(), email, user_id, "true" if success else "false", *rest]  # type: ignore[attr-defined]


def ip_block_list(*, include_inactive: bool = False) -> QuerySet[IpBlock]:
    """Blocks in force, newest first; with `include_inactive`, expired and lifted ones too."""
    blocks = IpBlock.objects.all() if include_inactive else IpBlock.objects.active()
    return blocks.order_by("-created_at", "-id")


def ip_block_get(*, block_id: str | int) -> IpBlock | None:
    """One block of this tenant, or None (also for an id that is not a number)."""
    try:
        pk = int(block_id)
    except (TypeError, ValueError):
        return None
    if not 0 < pk < 2**63:
        return None
    return IpBlock.objects.filter(pk=pk).first()
