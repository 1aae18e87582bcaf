"""The stable error codes every problem response carries, and the exception services raise.

Codes are part of the API contract (API.md, "Error codes"): clients switch on them, so they
are never renamed. Add new ones at the end of their group.
"""

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    INVALID_REQUEST = "invalid_request"
    PASSWORD_POLICY = "password_policy"
    PASSWORD_REUSED = "password_reused"
    WRONG_PASSWORD = "wrong_password"
    NOT_AUTHENTICATED = "not_authenticated"
    INVALID_TOKEN = "invalid_token"
    TOKEN_REUSED = "token_reused"
    SESSION_ENDED = "session_ended"
    INVALID_CREDENTIALS = "invalid_credentials"
    PERMISSION_DENIED = "permission_denied"
    EMAIL_NOT_VERIFIED = "email_not_verified"
    ACCOUNT_DISABLED = "account_disabled"
    TENANT_INACTIVE = "tenant_inactive"
    PASSWORD_CHANGE_REQUIRED = "password_change_required"
    USER_CAP_REACHED = "user_cap_reached"
    BRANCH_CAP_REACHED = "branch_cap_reached"
    LAST_ADMIN = "last_admin"
    PRIVILEGE_ESCALATION = "privilege_escalation"
    IP_BLOCKED = "ip_blocked"
    NOT_FOUND = "not_found"
    TENANT_NOT_FOUND = "tenant_not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    SESSION_LIMIT_REACHED = "session_limit_reached"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    ACCOUNT_LOCKED = "account_locked"
    THROTTLED = "throttled"
    SERVER_ERROR = "server_error"
    SERVICE_UNAVAILABLE = "service_unavailable"
    QUERY_TIMEOUT = "query_timeout"


# code -> (usual HTTP status, title, message safe to show an end user)
ERROR_CATALOG: dict[ErrorCode, tuple[int, str, str]] = {
    ErrorCode.INVALID_REQUEST: (400, "Invalid request", "Some of the information you entered is not valid."),
    ErrorCode.PASSWORD_POLICY: (400, "Password does not meet the policy", "Choose a stronger password."),
    ErrorCode.PASSWORD_REUSED: (400, "Password reused", "Choose a password you have not used here before."),
    ErrorCode.WRONG_PASSWORD: (400, "Wrong password", "Your current password is not correct."),
    ErrorCode.NOT_AUTHENTICATED: (401, "Not authenticated", "Please sign in."),
    ErrorCode.INVALID_TOKEN: (401, "Invalid token", "Your sign-in has expired. Please sign in again."),
    ErrorCode.TOKEN_REUSED: (401, "Token reused", "Your session has ended. Please sign in again."),
    ErrorCode.SESSION_ENDED: (401, "Session ended", "Your session has ended. Please sign in again."),
    ErrorCode.INVALID_CREDENTIALS: (401, "Invalid credentials", "The email or password is not correct."),
    ErrorCode.PERMISSION_DENIED: (403, "Permission denied", "You are not allowed to do this."),
    ErrorCode.EMAIL_NOT_VERIFIED: (403, "Email not verified", "Please confirm your email address first."),
    ErrorCode.ACCOUNT_DISABLED: (403, "Account disabled", "This account has been disabled."),
    ErrorCode.TENANT_INACTIVE: (403, "Tenant inactive", "This organisation's account is not active."),
    ErrorCode.PASSWORD_CHANGE_REQUIRED: (403, "Password change required", "Please change your password first."),
    ErrorCode.USER_CAP_REACHED: (403, "User limit reached", "Your plan's user limit has been reached."),
    ErrorCode.BRANCH_CAP_REACHED: (403, "Branch limit reached", "Your plan's branch limit has been reached."),
    ErrorCode.LAST_ADMIN: (403, "Last administrator", "The last administrator cannot be removed."),
    ErrorCode.PRIVILEGE_ESCALATION: (403, "Privilege escalation", "You cannot grant more than you hold."),
    ErrorCode.IP_BLOCKED: (403, "Address blocked", "Access from your network is blocked for now."),
    ErrorCode.NOT_FOUND: (404, "Not found", "We could not find what you asked for."),
    ErrorCode.TENANT_NOT_FOUND: (404, "Tenant not found", "We could not find this organisation."),
    ErrorCode.METHOD_NOT_ALLOWED: (405, "Method not allowed", "This action is not available here."),
    ErrorCode.NOT_ACCEPTABLE: (406, "Not acceptable", "This response format is not available."),
    ErrorCode.SESSION_LIMIT_REACHED: (409, "Session limit reached", "Sign out on another device first."),
    ErrorCode.PAYLOAD_TOO_LARGE: (413, "Payload too large", "What you sent is too large."),
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: (415, "Unsupported media type", "This file or format is not supported."),
    ErrorCode.ACCOUNT_LOCKED: (423, "Account locked", "Too many attempts. Try again later."),
    ErrorCode.THROTTLED: (429, "Too many requests", "Too many requests. Try again shortly."),
    ErrorCode.SERVER_ERROR: (500, "Server error", "Something went wrong on our side. Please try again."),
    ErrorCode.SERVICE_UNAVAILABLE: (503, "Service unavailable", "The service is unavailable. Please try again."),
    ErrorCode.QUERY_TIMEOUT: (503, "Query timed out", "The service is busy. Please try again shortly."),
}


class ProblemError(Exception):
    """A refusal that becomes an RFC 9457 problem response.

    Services raise it with a stable code; views never build error bodies by hand.
    `errors` maps field paths to messages; `headers` adds e.g. Retry-After.
    """

    def __init__(
        self,
        code: ErrorCode,
        detail: str | None = None,
        *,
        status: int | None = None,
        errors: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        default_status, title, _ = ERROR_CATALOG[code]
        self.code = code
        self.status = status or default_status
        self.detail = detail or title
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra or {}
        super().__init__(self.detail)


def invalid_request(errors: dict[str, list[str]], detail: str = "The request has invalid fields.") -> ProblemError:
    return ProblemError(ErrorCode.INVALID_REQUEST, detail, errors=errors)
