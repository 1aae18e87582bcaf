"""The authentication endpoints' rate limits (rates from the tenant's policy)."""

import hashlib

from rest_framework.request import Request

from core.ratelimit import PolicyRateThrottle
from identity.models import normalize_email


def address_and_email(client_ip: str | None, email: object) -> str:
    """The identity an address-and-email limit counts under. The email is hashed: addresses
    people typed do not sit in Redis in clear. Shared by the API's throttles and the admin
    console's login form, so both count against one budget."""
    normalized = normalize_email(email) if isinstance(email, str) else ""
    return f"{client_ip or 'unknown'}:{hashlib.sha256(normalized.encode()).hexdigest()[:32]}"


def _address_and_email(request: Request) -> str:
    email = request.data.get("email") if hasattr(request.data, "get") else None
    return address_and_email(getattr(request._request, "client_ip", None), email)


def _ip(request: Request) -> str:
    return getattr(request._request, "client_ip", None) or "unknown"


class LoginThrottle(PolicyRateThrottle):
    scope = "login"

    def identity(self, request: Request) -> str | None:
        return _address_and_email(request)


class PasswordResetThrottle(PolicyRateThrottle):
    scope = "password_reset"

    def identity(self, request: Request) -> str | None:
        return _address_and_email(request)


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
