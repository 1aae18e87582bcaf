"""The IP-block check at the tenant's authentication entry points, at one cache round trip.

`IpBlock` rows are the truth (identity.models); the cache (Redis, tenant-prefixed keys) holds
a copy so that a request costs one `MGET` of two keys, read ahead with the tenant's row when
this process served the host before (core.read_ahead): `ip-block:synced`, a marker saying
the copy was loaded from the database less than SYNC_TTL_SECONDS ago, and `ip-block:<ip>`,
the block's end as a Unix time. No key: not blocked, with no query. A key: the database
confirms (one indexed query, paid by blocked addresses only), so a lift whose cache write was
lost, or a reload that raced a lift, can never keep a lifted block alive; a stale key is then
deleted. Without the marker (a Redis restart or flush, or every SYNC_TTL_SECONDS) the copy is
reloaded and the database answers. With Redis down the database answers: blocks hold during
an outage, they never fail open.
"""

import logging
import time
from collections.abc import Callable
from datetime import datetime

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from core import read_ahead
from core.errors import ErrorCode
from core.problems import problem_response
from identity.models import IpBlock

logger = logging.getLogger("idp.security")

SYNCED_KEY = "ip-block:synced"
SYNC_TTL_SECONDS = 300

# Where a blocked address is refused: every endpoint that takes a password, a refresh token,
# a client secret or an emailed token, so a flagged address can neither keep guessing nor
# use what it may have obtained. Authenticated API calls with an access token already issued
# are not blocked (the sessions end by their own rules); introspection and revocation serve
# back ends with client credentials and are not blocked either.
GUARDED_PATHS = frozenset(
    {
        "/api/v1/auth/token/",
        "/api/v1/auth/token/refresh/",
        "/api/v1/auth/register/",
        "/api/v1/auth/password-reset/",
        "/api/v1/auth/password-reset/confirm/",
        "/api/v1/oauth/token/",
        "/admin/login/",
        "/reset-password/",
    }
)
GUARDED_PREFIXES = ("/api/v1/auth/verify-email/", "/verify-email/")


def _block_key(ip: str) -> str:
    return f"ip-block:{ip}"


def is_guarded(path: str) -> bool:
    return path in GUARDED_PATHS or path.startswith(GUARDED_PREFIXES)


def ip_block_state_mark(*, ip: str, expires_at: datetime) -> None:
    """Copy a committed block into the cache (a failure is logged: the next reload heals it)."""
    remaining = int(expires_at.timestamp() - time.time()) + 1
    if remaining <= 0:
        return
    try:
        cache.set(_block_key(ip), expires_at.timestamp(), remaining)
    except Exception:
        logger.error("Cache unavailable: block of %s not copied (the database still holds it)", ip, exc_info=True)


def ip_block_state_lift(*, ip: str) -> None:
    """Drop a lifted block from the cache (a failure is logged: the database check that every
    cached block goes through refuses to honour it anyway)."""
    try:
        cache.delete(_block_key(ip))
    except Exception:
        logger.error("Cache unavailable: lift of %s not copied", ip, exc_info=True)


def ip_block_state_reload() -> None:
    """Load every block in force into the cache (one pipelined write), then set the marker."""
    now = time.time()
    ends: dict[str, float] = {}
    for ip, expires_at in IpBlock.objects.active().values_list("ip", "expires_at"):
        ends[_block_key(ip)] = max(ends.get(_block_key(ip), 0.0), expires_at.timestamp())
    if ends:
        # One lifetime for the batch: the longest. A key outliving its block is harmless, its
        # value (the block's end) says it is over.
        cache.set_many(ends, int(max(ends.values()) - now) + 1)
    cache.set(SYNCED_KEY, 1, SYNC_TTL_SECONDS)


def _blocked_until_from_database(ip: str) -> datetime | None:
    block = IpBlock.objects.active().filter(ip=ip).order_by("-expires_at").first()
    return block.expires_at if block else None


def ip_block_reads(request: HttpRequest) -> list[str] | None:
    """The keys ip_blocked_until reads for `request`, read ahead with its tenant (core.read_ahead)."""
    ip = getattr(request, "client_ip", None)
    return [SYNCED_KEY, _block_key(ip)] if ip and is_guarded(request.path_info) else None


def ip_blocked_until(ip: str) -> datetime | None:
    """When the block of `ip` in the current schema ends, or None when it is not blocked."""
    key = _block_key(ip)
    ahead = read_ahead.take([SYNCED_KEY, key])
    try:
        if ahead is not None:
            values = {name: value for name, value in zip([SYNCED_KEY, key], ahead, strict=True) if value is not None}
        else:
            values = cache.get_many([SYNCED_KEY, key])
    except Exception:
        logger.warning("Cache unavailable: IP blocks read from the database", exc_info=True)
        return _blocked_until_from_database(ip)
    if SYNCED_KEY not in values:
        try:
            ip_block_state_reload()
        except Exception:
            logger.warning("Cache unavailable: IP blocks not reloaded", exc_info=True)
        return _blocked_until_from_database(ip)
    cached_end = values.get(key)
    if cached_end is None or float(cached_end) <= time.time():
        return None
    until = _blocked_until_from_database(ip)
    if until is None:
        ip_block_state_lift(ip=ip)  # lifted meanwhile: forget the stale copy
    return until


class IpBlockMiddleware:
    """403 ip_blocked, with Retry-After, for a blocked address at the guarded paths. Runs
    after the tenant is resolved (blocks are per tenant); other paths cost nothing."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        ip = getattr(request, "client_ip", None)
        if ip and getattr(request, "tenant", None) is not None and is_guarded(request.path_info):
            until = ip_blocked_until(ip)
            if until is not None:
                retry_after = max(1, int(until.timestamp() - time.time() + 0.999))
                return problem_response(
                    ErrorCode.IP_BLOCKED,
                    "Requests from this address are blocked for now after suspicious activity.",
                    headers={"Retry-After": str(retry_after)},
                )
        return self.get_response(request)
