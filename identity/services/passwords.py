"""Password change (signed in) and password reset (by an emailed link).

Reset tokens follow DESIGN.md ("Security policy defaults"): 32 random bytes, URL-safe, only
their sha256 kept, in the cache (Redis; tenant-prefixed keys, so a token of one tenant means
nothing at another), for 10 minutes, single use. Two entries per pending reset:

- `password-reset:token:<sha256>` -> the user's id (what a presented token is looked up by);
- `password-reset:user:<user id>` -> the sha256 of the user's *current* token.

A newer request repoints the user's entry and deletes the older token's entry, and a token is
honoured only while the user's entry still points at it, so of any two links only the newest
works, even when two requests race. Claiming a token is `cache.delete`, which reports whether
this caller removed the key: of many concurrent confirmations exactly one gets True (Redis
DEL is atomic; the local-memory cache of `make run` deletes under a lock).

Nothing here ever logs, audits, returns or stores a password or a raw token.
"""

import hashlib
import logging
import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from core.context import request_context
from core.errors import ErrorCode, ProblemError
from identity.models import User, normalize_email
from identity.passwords import password_validate
from identity.services.audit import audit_record
from identity.services.login import user_unlock
from notifications.kinds import Kind
from notifications.services import email_kind_send, email_time
from sessions.models import DeviceSession, EndReason
from sessions.services import user_sessions_end
from tenants.models import Tenant
from tenants.services import tenant_origin

logger = logging.getLogger("idp.passwords")

RESET_TOKEN_BYTES = 32
RESET_TOKEN_TTL_SECONDS = 10 * 60
RESET_PAGE_PATH = "/reset-password/"
# secrets.token_urlsafe(32): 43 characters of the URL-safe base64 alphabet, no padding.
_RESET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")

INVALID_RESET_TOKEN = "This password reset link is invalid, used or expired."
PASSWORD_REUSED_MESSAGE = "Choose a password that differs from your current one."


# --- Cache entries of pending resets ----------------------------------------------------------


def reset_token_digest(token: str) -> str:
    """What is stored instead of a token: its sha256 (hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


def reset_token_cache_key(digest: str) -> str:
    return f"password-reset:token:{digest}"


def reset_pointer_cache_key(user_id: Any) -> str:
    return f"password-reset:user:{user_id}"


def _change_failures_cache_key(user_id: Any) -> str:
    return f"password-change-failures:{user_id}"


@contextmanager
def _reset_store() -> Iterator[None]:
    """Resets cannot work without the cache that holds their tokens: a cache outage answers
    503 (for known and unknown emails alike, so it reveals nothing), never a 500."""
    try:
        yield
    except ProblemError:
        raise
    except Exception as exc:
        logger.error("Cache unavailable: password reset refused", exc_info=True)
        raise ProblemError(ErrorCode.SERVICE_UNAVAILABLE, "Password reset is unavailable right now.") from exc


def _invalid_token() -> ProblemError:
    return ProblemError(ErrorCode.INVALID_TOKEN, INVALID_RESET_TOKEN, status=400)


# --- Change (signed in) -------------------------------------------------------------------


def _change_failures_check(*, user: User, lockout_policy: dict[str, Any]) -> None:
    """Refuse (429) once `threshold` wrong current passwords were given within the lockout
    window. Change-password needs a valid session, but a stolen access token must not turn
    it into an unlimited oracle for the account's password. Only wrong guesses count, so a
    person trying weak new passwords is never held back. Fails open if the cache is down:
    the endpoint still needs a live session, and the login lockout (PostgreSQL) still holds."""
    key = _change_failures_cache_key(user.pk)
    try:
        failures = cache.get(key) or 0
        if failures < lockout_policy["threshold"]:
            return
        ttl = cache.ttl(key) if hasattr(cache, "ttl") else None
    except Exception:
        logger.error("Cache unavailable: wrong current passwords are not counted", exc_info=True)
        return
    retry_after = ttl if isinstance(ttl, int) and ttl > 0 else lockout_policy["window_minutes"] * 60
    raise ProblemError(
        ErrorCode.THROTTLED,
        "Too many wrong current passwords. Try again later.",
        headers={"Retry-After": str(retry_after)},
    )


def _change_failure_count(*, user: User, lockout_policy: dict[str, Any]) -> None:
    key = _change_failures_cache_key(user.pk)
    window = lockout_policy["window_minutes"] * 60
    try:
        # A fixed window opened by the first failure; incr keeps the entry's expiry.
        cache.add(key, 0, window)
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, window)
    except Exception:
        logger.error("Cache unavailable: a wrong current password was not counted", exc_info=True)


def password_change(
    *,
    tenant: Tenant,
    user: User,
    session_id: str | None,
    current_password: str,
    new_password: str,
    logout_other_sessions: bool = True,
) -> int:
    """Change the signed-in user's password; returns how many other sessions ended.

    Order: too many wrong guesses (429), the current password (400 wrong_password), the
    tenant's policy (400 password_policy), new differs from current (400 password_reused).
    A refusal changes nothing but the wrong-guess count and its audit row, which are kept
    outside the write's transaction so the refusal cannot roll them back.

    The caller's own session (`session_id`, the access token's `sid`) stays valid; with
    `logout_other_sessions` every other session of the user ends (their tokens are refused
    from commit). A forced password change is completed: `must_change_password` clears.
    """
    policy = tenant.effective_policy
    _change_failures_check(user=user, lockout_policy=policy["lockout"])
    if not user.check_password(current_password):
        _change_failure_count(user=user, lockout_policy=policy["lockout"])
        audit_record(type="password.change_failed", actor=user, target=user, data={"reason": "wrong_password"})
        raise ProblemError(
            ErrorCode.WRONG_PASSWORD,
            "The current password is not correct.",
            errors={"current_password": ["Your current password is not correct."]},
        )
    password_validate(new_password, rules=policy["password"], field="new_password")
    if new_password == current_password:
        raise ProblemError(
            ErrorCode.PASSWORD_REUSED,
            "The new password equals the current one.",
            errors={"new_password": [PASSWORD_REUSED_MESSAGE]},
        )
    return _password_change_write(
        tenant=tenant,
        user=user,
        checked_hash=user.password,
        session_id=session_id,
        new_password=new_password,
        logout_other_sessions=logout_other_sessions,
    )


@transaction.atomic
def _password_change_write(
    *,
    tenant: Tenant,
    user: User,
    checked_hash: str,
    session_id: str | None,
    new_password: str,
    logout_other_sessions: bool,
) -> int:
    locked = User.objects.select_for_update().get(pk=user.pk)
    if locked.password != checked_hash:
        # Changed by a concurrent request since the current password was checked: the
        # password just verified is no longer the current one.
        raise ProblemError(ErrorCode.WRONG_PASSWORD, "The password was changed meanwhile.")
    was_forced = locked.must_change_password
    locked.set_password(new_password)
    locked.must_change_password = False
    locked.save(update_fields=["password", "must_change_password", "updated_at"])
    ended = 0
    if logout_other_sessions:
        current = DeviceSession.objects.filter(pk=session_id, user=locked).first() if session_id else None
        ended = user_sessions_end(user=locked, reason=EndReason.PASSWORD_CHANGE, actor=locked, keep=current)
    audit_record(
        type="password.changed",
        actor=locked,
        target=locked,
        data={"other_sessions_ended": ended, "was_forced": was_forced},
    )
    _send_changed_notice(tenant=tenant, user=locked, ended=ended)
    user.password, user.must_change_password = locked.password, False
    transaction.on_commit(lambda: _change_failures_forget(user_id=locked.pk))
    return ended


def _change_failures_forget(*, user_id: Any) -> None:
    try:
        cache.delete(_change_failures_cache_key(user_id))
    except Exception:
        logger.error("Cache unavailable: wrong current passwords of a changed password not forgotten", exc_info=True)


def _send_changed_notice(*, tenant: Tenant, user: User, ended: int) -> None:
    email_kind_send(
        kind=Kind.PASSWORD_CHANGED,
        to=user.email,
        tenant=tenant,
        context={
            "changed_at": email_time(timezone.now()),
            "ip": request_context.get().ip or "an unknown address",
            "sessions_ended": str(ended),
        },
    )


# --- Reset (by email) --------------------------------------------------------------------


@transaction.atomic
def password_reset_request(*, tenant: Tenant, email: str) -> None:
    """Email a reset link if an active user has this email; otherwise do nothing visible.

    The caller answers the same either way. Both paths draw and hash a token and make three
    cache round trips and one audit row, so the time taken reveals little either (the email,
    sent after commit, is the one difference left; see notifications for how it is sent).
    A newer request supersedes the user's older link.
    """
    normalized = normalize_email(email)
    user = User.objects.filter(email=normalized, is_active=True).first()
    token = secrets.token_urlsafe(RESET_TOKEN_BYTES)
    digest = reset_token_digest(token)
    with _reset_store():
        if user is not None:
            pointer = reset_pointer_cache_key(user.pk)
            previous = cache.get(pointer)
            cache.set_many(
                {reset_token_cache_key(digest): str(user.pk), pointer: digest}, timeout=RESET_TOKEN_TTL_SECONDS
            )
            if previous and previous != digest:
                cache.delete(reset_token_cache_key(previous))
        else:
            # The same round trips against entries that cannot exist.
            nobody = reset_pointer_cache_key(uuid.uuid4())
            cache.get(nobody)
            cache.delete_many([reset_token_cache_key(digest), nobody])
    audit_record(
        type="password.reset_requested",
        target=user,
        target_type="user",
        data={"email": normalized, "user_found": user is not None},
    )
    if user is not None:
        email_kind_send(
            kind=Kind.PASSWORD_RESET,
            to=user.email,
            tenant=tenant,
            context={
                "reset_link": f"{tenant_origin(tenant)}{RESET_PAGE_PATH}?token={token}",
                "link_valid_minutes": str(RESET_TOKEN_TTL_SECONDS // 60),
            },
        )


def _reset_token_user(token: str) -> tuple[User, str]:
    """The active user a pending, current token belongs to (without using it up), and the
    token's digest; 400 invalid_token otherwise."""
    if not isinstance(token, str) or not _RESET_TOKEN_RE.fullmatch(token):
        raise _invalid_token()
    digest = reset_token_digest(token)
    with _reset_store():
        user_id = cache.get(reset_token_cache_key(digest))
        if user_id is None or cache.get(reset_pointer_cache_key(user_id)) != digest:
            raise _invalid_token()  # unknown, used, expired or superseded
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise _invalid_token()
    return user, digest


def password_reset_confirm(*, tenant: Tenant, token: str, new_password: str) -> User:
    """Set a new password with an emailed reset token; the token is used up.

    Bad input changes nothing and keeps the token usable: the policy is checked first, then
    the token is looked up without being claimed, then the new password must differ from
    the current one. Only then is the token claimed (atomically, single use) and the
    password set. Anyone who can read the mailbox may reset, so the reset also lifts a
    lockout, completes a forced password change and ends every session of the user.
    """
    policy = tenant.effective_policy
    password_validate(new_password, rules=policy["password"], field="new_password")
    user, digest = _reset_token_user(token)
    if user.check_password(new_password):
        raise ProblemError(
            ErrorCode.PASSWORD_REUSED,
            "The new password equals the current one.",
            errors={"new_password": [PASSWORD_REUSED_MESSAGE]},
        )
    with _reset_store():
        claimed = cache.delete(reset_token_cache_key(digest))
        if claimed:
            # Whatever link might still be pending for this user dies with this reset.
            cache.delete(reset_pointer_cache_key(user.pk))
    if not claimed:
        raise _invalid_token()  # a concurrent confirmation or a newer request got there first
    return _password_reset_write(tenant=tenant, user=user, new_password=new_password)


@transaction.atomic
def _password_reset_write(*, tenant: Tenant, user: User, new_password: str) -> User:
    locked = User.objects.select_for_update().get(pk=user.pk)
    if not locked.is_active:
        raise _invalid_token()  # deactivated since the token was looked up
    locked.set_password(new_password)
    locked.must_change_password = False
    locked.save(update_fields=["password", "must_change_password", "updated_at"])
    unlocked = user_unlock(user=locked, actor=locked)
    ended = user_sessions_end(user=locked, reason=EndReason.PASSWORD_RESET, actor=locked)
    audit_record(
        type="password.reset",
        actor=locked,
        target=locked,
        data={"sessions_ended": ended, "lockout_lifted": unlocked},
    )
    email_kind_send(
        kind=Kind.PASSWORD_RESET_DONE, to=locked.email, tenant=tenant, context={"reset_at": email_time(timezone.now())}
    )
    return locked
