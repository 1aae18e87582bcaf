"""Sliding-window rate limits in Redis, shared by every process, behind DRF's throttle API.

DRF's own SimpleRateThrottle reads and writes its history in two steps, so processes racing
on one key can all pass; here one Lua script trims, counts and records atomically, on the
Redis server's clock. Keys carry the tenant's schema. If Redis is down the limiter fails
open and logs loudly: brute-force protection does not depend on it (the lockout lives in
PostgreSQL), and an IdP that refuses every login when its cache blips is down too.
"""

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from core.tenancy import current_schema
from tenants.policy import parse_rate

logger = logging.getLogger("idp.ratelimit")

# KEYS[1] the window's sorted set; ARGV: window (ms), limit, a unique member.
# Returns {allowed (1/0), remaining, milliseconds until a slot frees}.
_SLIDING_WINDOW = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {1, limit - count - 1, tonumber(oldest[2]) + window - now}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, 0, tonumber(oldest[2]) + window - now}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int


def rate_limit_hit(*, scope: str, identity: str, rate: str) -> Decision | None:
    """Count one request against `rate` for (tenant, scope, identity). None when Redis is
    unavailable (the caller lets the request through)."""
    from django_redis import get_redis_connection

    limit, period = parse_rate(rate)
    key = f"ratelimit:{current_schema()}:{scope}:{identity}"
    try:
        client = get_redis_connection("default")
        allowed, remaining, reset_ms = client.eval(_SLIDING_WINDOW, 1, key, period * 1000, limit, uuid.uuid4().hex)
    except NotImplementedError:
        logger.warning("Rate limits need Redis (REDIS_URL); %s is not limited", scope)
        return None
    except Exception:
        logger.error("Redis unavailable: rate limit %s not applied (failing open)", scope, exc_info=True)
        return None
    return Decision(bool(allowed), limit, int(remaining), max(1, -(-int(reset_ms) // 1000)))


def ratelimit_headers(decision: Decision) -> dict[str, str]:
    """RateLimit-* fields (IETF draft) and, when refused, Retry-After."""
    headers = {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(decision.reset_seconds),
    }
    if not decision.allowed:
        headers["Retry-After"] = str(decision.reset_seconds)
    return headers


class PolicyRateThrottle(BaseThrottle):
    """A DRF throttle whose rate comes from the tenant's policy (`rate_limits.<scope>`)."""

    scope: str = ""

    def identity(self, request: Request) -> str | None:
        """What is counted (None: this request is not limited)."""
        raise NotImplementedError

    def allow_request(self, request: Request, view: Any) -> bool:
        identity = self.identity(request)
        if identity is None:
            return True
        rate = request.tenant.effective_policy["rate_limits"][self.scope]  # type: ignore[attr-defined]
        self.decision = rate_limit_hit(scope=self.scope, identity=identity, rate=rate)
        if self.decision is None:
            return True
        # Read by RateLimitHeadersMiddleware, for allowed and refused requests alike.
        request._request.ratelimit = self.decision  # type: ignore[attr-defined]
        return self.decision.allowed

    def wait(self) -> float | None:
        decision = getattr(self, "decision", None)
        return float(decision.reset_seconds) if decision else None
