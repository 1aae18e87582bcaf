"""Password login: lockout, attempt records, then a device session and its tokens.

Order (API.md "Login order"): the throttle (in the view) answers 429 first, then a lockout
answers 423, then the credentials are judged. The lockout row of the normalised email is
locked FOR UPDATE while an attempt is judged, so 50 parallel guesses for one account are
judged one at a time and at most `threshold` of them reach the password check.
"""

import secrets
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any

from django.contrib.auth.hashers import check_password, make_password
from django.db import transaction
from django.utils import timezone

from core.context import request_context
from core.errors import ErrorCode, ProblemError
from identity.models import LoginAttempt, LoginLockout, User, normalize_email
from identity.services.audit import audit_record
from identity.services.security import login_failure_observe, login_success_observe
from identity.services.tokens import TokenPair, token_pair_issue
from notifications.kinds import Kind
from notifications.services import email_kind_send, email_time
from sessions.models import DeviceSession
from sessions.services import Device, session_start

INVALID_CREDENTIALS = "invalid_credentials"


@dataclass(frozen=True)
class LoginResult:
    user: User
    session: DeviceSession
    tokens: TokenPair


@lru_cache(maxsize=1)
def _dummy_password_hash() -> str:
    # Unknown emails are checked against this, so they cost the same hash time as real ones.
    return make_password(secrets.token_urlsafe(24))


def _record_attempt(*, email: str, user: User | None, success: bool, reason: str, device: Device) -> None:
    context = request_context.get()
    LoginAttempt.objects.create(
        email=email,
        user=user,
        success=success,
        reason=reason,
        ip=context.ip,
        user_agent=context.user_agent,
        device_id=device.device_id,
        device_name=device.device_name,
        device_type=device.device_type,
    )


def login_credentials_check(*, email: str, password: str, device: Device, lockout_policy: dict[str, Any]) -> User:
    """Judge one attempt and record it, whatever the outcome, in its own durable transaction:
    the record commits even when what follows (the session, the tokens) rolls back, and it
    cannot be nested in a transaction that might roll it back (durable=True refuses that).

    Raises ProblemError: 423 while locked (the lock is not extended), 401 for a wrong
    password or an unknown email (same body, same cost), 403 for an account that may not
    log in, which is only said to someone who knows its password.
    """
    email = normalize_email(email)
    now = timezone.now()
    refusal: ProblemError | None = None
    with transaction.atomic(durable=True):
        LoginLockout.objects.bulk_create([LoginLockout(email=email)], ignore_conflicts=True)
        lockout = LoginLockout.objects.select_for_update().get(email=email)
        user = User.objects.filter(email=email).first()
        if lockout.locked_until and lockout.locked_until > now:
            _record_attempt(email=email, user=user, success=False, reason="locked", device=device)
            audit_record(type="login.failed", target=user, data={"email": email, "reason": "account_locked"})
            login_failure_observe(ip=request_context.get().ip)
            retry_after = max(1, int((lockout.locked_until - now).total_seconds() + 0.999))
            refusal = ProblemError(
                ErrorCode.ACCOUNT_LOCKED, "Too many failed attempts.", headers={"Retry-After": str(retry_after)}
            )
        elif user is None or not user.check_password(password):
            if user is None:
                check_password(password, _dummy_password_hash())
            _record_attempt(email=email, user=user, success=False, reason=INVALID_CREDENTIALS, device=device)
            audit_record(type="login.failed", target=user, data={"email": email, "reason": INVALID_CREDENTIALS})
            _lock_if_threshold_reached(lockout=lockout, user=user, now=now, policy=lockout_policy)
            login_failure_observe(ip=request_context.get().ip)
            refusal = ProblemError(ErrorCode.INVALID_CREDENTIALS, "The email or password is not correct.")
        elif not user.is_active:
            pending = user.email_verified_at is None and user.deactivated_at is None
            code = ErrorCode.EMAIL_NOT_VERIFIED if pending else ErrorCode.ACCOUNT_DISABLED
            _record_attempt(email=email, user=user, success=False, reason=code.value, device=device)
            audit_record(type="login.failed", target=user, data={"email": email, "reason": code.value})
            refusal = ProblemError(code)
        else:
            # A lock set since the last success or unlock (expired or not) is still recorded here.
            login_success_observe(user=user, device_id=device.device_id, was_locked=lockout.locked_until is not None)
            lockout.counted_since, lockout.locked_until = now, None
            lockout.save(update_fields=["counted_since", "locked_until"])
            _record_attempt(email=email, user=user, success=True, reason="", device=device)
            audit_record(type="login.succeeded", actor=user, target=user, data={"device_id": device.device_id})
    if refusal is not None:
        raise refusal
    assert user is not None  # noqa: S101  # every branch without a user sets a refusal
    return user


def _lock_if_threshold_reached(*, lockout: LoginLockout, user: User | None, now: Any, policy: dict[str, Any]) -> None:
    since = now - timedelta(minutes=policy["window_minutes"])
    if lockout.counted_since and lockout.counted_since > since:
        since = lockout.counted_since
    failures = LoginAttempt.objects.filter(email=lockout.email, reason=INVALID_CREDENTIALS, timestamp__gt=since).count()
    if failures >= policy["threshold"]:
        lockout.locked_until = now + timedelta(minutes=policy["duration_minutes"])
        lockout.save(update_fields=["locked_until"])
        audit_record(
            type="account.locked",
            target=user,
            target_type="user",
            target_id=str(user.pk) if user else "",
            data={"email": lockout.email, "locked_until": lockout.locked_until.isoformat(), "failures": failures},
        )
        if user is not None and user.is_active:  # queued in the lockout's own (durable) transaction
            email_kind_send(
                kind=Kind.ACCOUNT_LOCKED,
                to=user.email,
                context={
                    "locked_until": email_time(lockout.locked_until),
                    "lock_minutes": str(policy["duration_minutes"]),
                },
            )


def login(*, tenant: Any, email: str, password: str, device: Device) -> LoginResult:
    """Log in with a password on a device: judge the credentials (recorded durably), then
    start the device session and issue its tokens in one transaction."""
    policy = tenant.effective_policy
    user = login_credentials_check(email=email, password=password, device=device, lockout_policy=policy["lockout"])
    context = request_context.get()
    plan = getattr(tenant, "plan", None)
    try:
        with transaction.atomic():
            session = session_start(
                user=user,
                device=device,
                ip=context.ip,
                user_agent=context.user_agent,
                policy=policy,
                max_devices_per_user=plan.max_devices_per_user if plan else None,
            )
            tokens = token_pair_issue(user=user, session=session)
    except ProblemError as refusal:
        audit_record(type="login.failed", actor=user, target=user, data={"reason": refusal.code.value})
        raise
    return LoginResult(user=user, session=session, tokens=tokens)


@transaction.atomic
def user_unlock(*, user: User, actor: User | None = None) -> bool:
    """Lift a lockout (and forget the failures that led to it). Returns whether it was locked."""
    now = timezone.now()
    lockout = LoginLockout.objects.select_for_update().filter(email=user.email).first()
    if lockout is None:
        return False
    was_locked = bool(lockout.locked_until and lockout.locked_until > now)
    lockout.locked_until, lockout.counted_since = None, now
    lockout.save(update_fields=["locked_until", "counted_since"])
    audit_record(type="account.unlocked", actor=actor, target=user, data={"was_locked": was_locked})
    return was_locked
