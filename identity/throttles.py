"""The authentication endpoints' rate limits (rates from the tenant's policy)."""

import hashlib

from rest_framework.request import Request

from core.ratelimit import PolicyRateThrottle
from identity.models import normalize_email


def _email_digest(request: Request) -> str:
    email = request.data.get("email") if hasattr(request.data, "get") else None
    normalized = normalize_email(email) if isinstance(email, str) else ""
    # Hashed: addresses people typed do not sit in Redis in clear.
    return hashlib.sha256(normalized.encode()).hexdigest()[:32]


def _ip(request: Request) -> str:
    return getattr(request._request, "client_ip", None) or "unknown"


class LoginThrottle(PolicyRateThrottle):
    scope = "login"

    def identity(self, request: Request) -> str | None:
        return f"{_ip(request)}:{_email_digest(request)}"


class PasswordResetThrottle(PolicyRateThrottle):
    scope = "password_reset"

    def identity(self, request: Request) -> str | None:
        return f"{_ip(request)}:{_email_digest(request)}"


class PasswordResetConfirmThrottle(PolicyRateThrottle):
    scope = "password_reset_confirm"

    def identity(self, request: Request) -> str | None:
        return _ip(request)


class RegistrationThrottle(PolicyRateThrottle):
    scope = "registration"

    def identity(self, request: Request) -> str | None:
        return _ip(request)


class SessionRefreshThrottle(PolicyRateThrottle):
    """Per device session; checked by the refresh view after the token is read, so an ended
    session answers 401, never 429."""

    scope = "refresh"

    def identity(self, request: Request) -> str | None:
        return f"session:{request._request.refresh_session_id}"  # type: ignore[attr-defined]
