"""Suspicious activity: the rules that flag it, and the IP blocks they lead to.

Rules (thresholds in the tenant's policy, section `security`):

- `failed_logins_across_accounts`: one address failed logins for `accounts_threshold`
  different emails within `accounts_window_minutes` (password spraying);
- `failed_login_burst`: one address failed `burst_threshold` logins within `burst_seconds`
  (faster than people type, whatever the accounts);
- `refresh_token_reuse`: a used refresh token was presented again (its session ends:
  identity.services.tokens);
- `new_device_after_lockout`: the first successful login after the account was locked came
  from a device the account never logged in from.

Every flag is a `security.flagged` event naming its rule. A rule listed in `block_on` also
blocks the address for the tenant for `block_minutes` (`ip.blocked`); an address in
`exempt_networks` is flagged but never blocked. While an address is blocked it is not
flagged again; a rule that flags without blocking flags an address (or an account) at most
once per `block_minutes`; an admin's lift forgets the address's failures before it.
"""

import ipaddress
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from core.context import request_context
from core.tenancy import current_schema
from identity.models import AuditEvent, IpBlock, LoginAttempt, User
from identity.security import ip_block_state_lift, ip_block_state_mark
from identity.services.audit import audit_record
from tenants.policy import (
    DEFAULT_POLICY,
    FAILED_LOGIN_BURST,
    FAILED_LOGINS_ACROSS_ACCOUNTS,
    NEW_DEVICE_AFTER_LOCKOUT,
    REFRESH_TOKEN_REUSE,
)

# Failed attempts that count towards the address rules: wrong passwords and unknown emails,
# and attempts at locked accounts (a sprayer keeps hitting them). Refusals that need the right
# password (email_not_verified, account_disabled) are not guesses.
COUNTED_FAILURES = ("invalid_credentials", "locked")


def security_policy() -> dict[str, Any]:
    """The current schema's `security` policy (the public schema has the defaults)."""
    tenant: Any = getattr(connection, "tenant", None)
    policy = tenant.effective_policy if hasattr(tenant, "effective_policy") else DEFAULT_POLICY
    return dict(policy["security"])


def _exempt(ip: str, policy: dict[str, Any]) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in ipaddress.ip_network(network) for network in policy["exempt_networks"])


def login_failure_observe(*, ip: str | None) -> IpBlock | None:
    """Judge the address rules after a failed login from `ip` was recorded, in the same
    transaction. Returns the block it led to, if any."""
    if not ip:
        return None
    policy = security_policy()
    now = timezone.now()
    failures = LoginAttempt.objects.filter(ip=ip, success=False, reason__in=COUNTED_FAILURES)
    # An admin's lift forgets the failures before it, as an unlock does for an account.
    lifted = IpBlock.objects.filter(ip=ip, lifted_at__isnull=False).order_by("-lifted_at").first()
    if lifted is not None:
        failures = failures.filter(timestamp__gt=lifted.lifted_at)
    window = timedelta(minutes=policy["accounts_window_minutes"])
    accounts = failures.filter(timestamp__gt=now - window).values("email").distinct().count()
    if accounts >= policy["accounts_threshold"]:
        return security_flag(
            rule=FAILED_LOGINS_ACROSS_ACCOUNTS,
            ip=ip,
            details={
                "accounts": accounts,
                "threshold": policy["accounts_threshold"],
                "window_minutes": policy["accounts_window_minutes"],
            },
        )
    burst = failures.filter(timestamp__gt=now - timedelta(seconds=policy["burst_seconds"])).count()
    if burst >= policy["burst_threshold"]:
        return security_flag(
            rule=FAILED_LOGIN_BURST,
            ip=ip,
            details={"failures": burst, "threshold": policy["burst_threshold"], "seconds": policy["burst_seconds"]},
        )
    return None


def login_success_observe(*, user: User, device_id: str, was_locked: bool) -> IpBlock | None:
    """Before a successful login is recorded: flag the first success after a lockout when it
    comes from a device this account never logged in from."""
    if not was_locked:
        return None
    known = LoginAttempt.objects.filter(user=user, success=True, device_id=device_id).exists()
    if known:
        return None
    return security_flag(
        rule=NEW_DEVICE_AFTER_LOCKOUT,
        ip=request_context.get().ip,
        user=user,
        details={"device_id": device_id},
    )


def refresh_reuse_observe(*, user: User, session_id: str, device_id: str) -> IpBlock | None:
    """A used refresh token was presented again (from the request's address)."""
    return security_flag(
        rule=REFRESH_TOKEN_REUSE,
        ip=request_context.get().ip,
        user=user,
        details={"session_id": session_id, "device_id": device_id},
    )


def _lock_address(ip: str) -> None:
    # One decision per address at a time: parallel failures from one address cannot both
    # find "not blocked yet" and block it twice. Taken last and held to the commit.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"{current_schema()}:ip-block:{ip}"])


@transaction.atomic
def security_flag(*, rule: str, ip: str | None, details: dict[str, Any], user: User | None = None) -> IpBlock | None:
    """Record that `rule` flagged `ip` (and `user`, when the rule is about an account) and,
    if the policy says so, block the address. Nothing happens while the address is already
    blocked, or when the rule flagged it within the last `block_minutes`."""
    policy = security_policy()
    now = timezone.now()
    if ip:
        _lock_address(ip)
        if IpBlock.objects.active(now).filter(ip=ip).exists():
            return None
    # A flag that blocked needs no repeat guard: the block stops the address (and a lift
    # starts the count afresh); a flag that did not block is not repeated for a while.
    recent = AuditEvent.objects.filter(
        type="security.flagged",
        data__rule=rule,
        data__blocked=False,
        timestamp__gt=now - timedelta(minutes=policy["block_minutes"]),
    )
    if ip:
        recent = recent.filter(data__ip=ip)
    if user is not None:
        recent = recent.filter(target_type="user", target_id=str(user.pk))
    if recent.exists():
        return None
    block = bool(ip) and rule in policy["block_on"] and not _exempt(str(ip), policy)
    audit_record(
        type="security.flagged",
        target=user,
        target_type="user" if user else "ip",
        target_id="" if user else (ip or ""),
        data={"rule": rule, "ip": ip, "blocked": block, **details},
    )
    if not block:
        return None
    assert ip is not None  # noqa: S101  # `block` needs an address
    return ip_block_create(ip=ip, reason=rule, minutes=policy["block_minutes"], data=details)


@transaction.atomic
def ip_block_create(*, ip: str, reason: str, minutes: int, data: dict[str, Any] | None = None) -> IpBlock:
    """Block `ip` at the tenant's authentication entry points for `minutes` (identity.security
    refuses it from the commit on)."""
    block = IpBlock.objects.create(
        ip=ip, reason=reason, data=data or {}, expires_at=timezone.now() + timedelta(minutes=minutes)
    )
    audit_record(
        type="ip.blocked",
        target=block,
        data={"ip": ip, "rule": reason, "expires_at": block.expires_at.isoformat(), "block_minutes": minutes},
    )
    expires_at = block.expires_at
    transaction.on_commit(lambda: ip_block_state_mark(ip=ip, expires_at=expires_at))
    return block


@transaction.atomic
def ip_block_lift(*, block: IpBlock, actor: User | None) -> bool:
    """Lift a block before it expires (an admin's decision: `ip.unblocked` names them).
    Returns False, and changes nothing, when it was no longer in force."""
    block = IpBlock.objects.select_for_update().get(pk=block.pk)
    if not block.is_active():
        return False
    block.lifted_at = timezone.now()
    block.lifted_by = actor
    block.save(update_fields=["lifted_at", "lifted_by"])
    audit_record(
        type="ip.unblocked",
        actor=actor,
        target=block,
        data={"ip": block.ip, "rule": block.reason, "expires_at": block.expires_at.isoformat()},
    )
    ip = block.ip
    transaction.on_commit(lambda: ip_block_state_lift(ip=ip))
    return True
