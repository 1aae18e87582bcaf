"""Writes for device sessions: start one under the tenant's policy, end one or many, an
admin's termination, and revocation of a token by a service client (RFC 7009)."""

import uuid
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
from identity.tokens import IdpAccessToken, IdpRefreshToken
from notifications.kinds import Kind
from notifications.services import email_kind_send, email_time
from rbac.catalog import Perm
from sessions.events import session_events_publish
from sessions.models import DeviceSession, EndReason, SessionEvent
from sessions.selectors import token_read_any
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

    # Notify of a device never signed in on before; not of the first sign-in ever (nothing
    # to compare with, and the account is brand new) nor of a device used before.
    known = DeviceSession.objects.filter(user=user)
    new_device = not same_device and known.exists() and not known.filter(device_id=device.device_id).exists()
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
    if new_device:
        email_kind_send(
            kind=Kind.NEW_DEVICE_LOGIN,
            to=user.email,
            context={
                "device_name": device.device_name or device.device_id,
                "device_type": device.device_type or "unknown type",
                "ip": ip or "an unknown address",
                "signed_in_at": email_time(now),
            },
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


@transaction.atomic
def session_terminate(*, session: DeviceSession, actor: User) -> bool:
    """An admin, or a manager for the users of their branches, ends one of a user's sessions
    (EndReason.ADMIN); its refresh and access tokens are refused from the commit on, and the
    session.ended audit row names `actor`. Returns False when it had ended already.

    Who may: identity.services.users.user_manage_check with `sessions.delete`, as for every
    other action on a user: 403 permission_denied without `sessions.delete` where the user
    works, 403 privilege_escalation when the user holds a permission the actor does not
    (ending someone's session denies them their account for a moment, so nobody does it to
    someone above them). Nothing is written when refused."""
    from identity.services.users import user_manage_check  # that module imports this one

    user_manage_check(actor=actor, user=session.user, code=Perm.SESSIONS_DELETE)
    locked = DeviceSession.objects.select_for_update().get(pk=session.pk)
    ended = sessions_end([locked], reason=EndReason.ADMIN, actor=actor) == 1
    if ended:
        email_kind_send(
            kind=Kind.SESSION_ENDED_BY_ADMIN,
            to=session.user.email,
            context={"device_name": locked.device_name or locked.device_id, "ended_at": email_time(timezone.now())},
        )
    return ended


# The end reason of a revocation (RFC 7009) by a service client: the holder of a token (or a
# service acting for them) gives it up, as a logout does; "admin" stays for people who end
# someone else's session. The client is named in the token.revoked audit row.
REVOCATION_REASON = EndReason.LOGOUT


@transaction.atomic
def token_revoke(*, token: str, client_id: str) -> bool:
    """RFC 7009 for the service client `client_id` (already authenticated, holding the
    `oauth:revoke` scope). Returns whether a session ended; the API answers 200 either way.

    - a refresh token ends its session: the whole refresh family and every access token
      issued in it are refused from the commit on (RFC 7009 2.1: "SHOULD also invalidate
      all access tokens based on the same authorization grant");
    - an access token ends its session too (RFC 7009 2.1 lets a server revoke the grant
      of an access token); access tokens are self-contained JWTs, so the session is what
      can be revoked, and the IdP, introspection and the check API refuse it at once;
    - a service token changes nothing (its client stays active; revoking a client is
      DELETE service-clients/<id>/, by a tenant admin);
    - an expired, malformed, unknown or other tenant's token changes nothing.

    The session ends with REVOCATION_REASON ("logout"); a `token.revoked` audit row names
    the client and the session (the `session.ended` row has no actor: no user acted)."""
    parsed = token_read_any(token)
    if not isinstance(parsed, (IdpAccessToken, IdpRefreshToken)):
        return False
    session_id, user_id = parsed.get("sid"), parsed.get("sub")
    try:
        session_pk, user_pk = uuid.UUID(str(session_id)), uuid.UUID(str(user_id))
    except ValueError:
        return False
    session = DeviceSession.objects.select_for_update().filter(pk=session_pk, user_id=user_pk).first()
    if session is None or sessions_end([session], reason=REVOCATION_REASON) == 0:
        return False
    audit_record(
        type="token.revoked",
        target_type="user",
        target_id=str(user_pk),
        data={
            "client_id": client_id,
            "session_id": str(session_pk),
            "token_type": "refresh_token" if isinstance(parsed, IdpRefreshToken) else "access_token",
        },
    )
    return True
