"""Writes for device sessions: start one under the tenant's policy, end one or many."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from core.errors import ErrorCode, ProblemError
from identity.models import User
from identity.services.audit import audit_record
from sessions.events import session_events_publish
from sessions.models import DeviceSession, EndReason, SessionEvent
from sessions.state import PROVISIONAL_TTL_SECONDS, session_state_mark_ended


@dataclass(frozen=True)
class Device:
    device_id: str
    device_name: str = ""
    device_type: str = ""


def session_limit(*, policy: dict[str, Any], max_devices_per_user: int | None) -> int:
    """The tenant's sessions-per-user limit, never above the plan's devices-per-user cap."""
    limit = policy["sessions"]["max_sessions_per_user"]
    return min(limit, max_devices_per_user) if max_devices_per_user else limit


@transaction.atomic
def session_start(
    *,
    user: User,
    device: Device,
    ip: str | None,
    user_agent: str,
    policy: dict[str, Any],
    max_devices_per_user: int | None,
) -> DeviceSession:
    """Start a session on `device` for `user`.

    The user's row is locked first, so concurrent logins of one user are decided one at a
    time and never leave more sessions than the limit. A login again from the same device
    replaces that device's session. At the limit, `terminate_oldest` ends the oldest other
    sessions; `deny_new` refuses with 409 and names no other device.
    """
    locked = User.objects.select_for_update().only("id", "is_active").get(pk=user.pk)
    if not locked.is_active:
        # Deactivated after the password was checked: the deactivation won the row lock.
        raise ProblemError(ErrorCode.ACCOUNT_DISABLED)
    now = timezone.now()
    active = list(DeviceSession.objects.filter(user=user, ended_at__isnull=True).order_by("created_at"))
    expired = [session for session in active if session.expires_at <= now]
    sessions_end(expired, reason=EndReason.EXPIRED)
    active = [session for session in active if session.expires_at > now]

    same_device = [session for session in active if session.device_id == device.device_id]
    others = [session for session in active if session.device_id != device.device_id]
    limit = session_limit(policy=policy, max_devices_per_user=max_devices_per_user)
    excess = len(others) - (limit - 1)
    if excess > 0 and policy["sessions"]["on_limit"] == "deny_new":
        raise ProblemError(ErrorCode.SESSION_LIMIT_REACHED, "The user has reached the number of active sessions.")
    sessions_end(same_device, reason=EndReason.NEW_DEVICE)
    sessions_end(others[: max(excess, 0)], reason=EndReason.NEW_DEVICE)

    session = DeviceSession.objects.create(
        user=user,
        device_id=device.device_id,
        device_name=device.device_name,
        device_type=device.device_type,
        ip=ip,
        user_agent=user_agent,
        expires_at=now + timedelta(days=policy["tokens"]["refresh_absolute_days"]),
    )
    audit_record(
        type="session.started",
        actor=user,
        target=user,
        data={"session_id": str(session.id), "device_id": device.device_id, "device_type": device.device_type},
    )
    return session


def sessions_end(sessions: Iterable[DeviceSession], *, reason: str, actor: User | None = None) -> int:
    """End these sessions: their refresh tokens are blacklisted and their access tokens are
    refused from the moment the transaction commits. Returns how many were still active."""
    ended = 0
    now = timezone.now()
    for session in sessions:
        updated = DeviceSession.objects.filter(pk=session.pk, ended_at__isnull=True).update(
            ended_at=now, end_reason=reason
        )
        if not updated:
            continue
        ended += 1
        session.ended_at, session.end_reason = now, reason
        _blacklist_refresh(session)
        audit_record(
            type="session.ended",
            actor=actor,
            target_type="user",
            target_id=str(session.user_id),
            data={"session_id": str(session.pk), "reason": reason, "device_id": session.device_id},
        )
        SessionEvent.objects.create(
            session_id=session.pk, user_id=session.user_id, device_id=session.device_id, reason=reason, ended_at=now
        )
        session_id = str(session.pk)
        session_state_mark_ended(session_id, ttl=PROVISIONAL_TTL_SECONDS)
        transaction.on_commit(lambda session_id=session_id: session_state_mark_ended(session_id))  # type: ignore[misc]
    if ended:
        transaction.on_commit(session_events_publish)
    return ended


@transaction.atomic
def session_end(*, session: DeviceSession, reason: str, actor: User | None = None) -> bool:
    return sessions_end([session], reason=reason, actor=actor) == 1


@transaction.atomic
def user_sessions_end(*, user: User, reason: str, actor: User | None = None, keep: DeviceSession | None = None) -> int:
    """End all of a user's active sessions (but `keep`)."""
    active = DeviceSession.objects.select_for_update().filter(user=user, ended_at__isnull=True)
    if keep is not None:
        active = active.exclude(pk=keep.pk)
    return sessions_end(list(active), reason=reason, actor=actor)


def _blacklist_refresh(session: DeviceSession) -> None:
    if not session.refresh_jti_hash:
        return
    outstanding = OutstandingToken.objects.filter(jti=session.refresh_jti_hash).first()
    if outstanding is not None:
        BlacklistedToken.objects.get_or_create(token=outstanding)
