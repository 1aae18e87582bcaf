"""Bearer access tokens on every authenticated request, checked against the session state."""

import uuid
from collections.abc import Sequence
from typing import Any

from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import TokenError

from core.errors import ErrorCode, ProblemError
from identity.models import User
from identity.tokens import IdpAccessToken, read_token
from identity.user_rows import user_row_get, user_row_keys
from sessions.state import session_check_and_touch, session_check_keys

# Until a forced password change is done, only these answer (API.md "Forced password change").
PASSWORD_CHANGE_EXEMPT = {
    ("auth-change-password", "POST"),
    ("auth-logout", "POST"),
    ("auth-whoami", "GET"),
    ("auth-profile", "GET"),
}


def access_token_ids(claims: dict[str, Any]) -> tuple[str, uuid.UUID] | None:
    """The session id and the user id an access token's (unverified) claims name, or None."""
    try:
        return str(uuid.UUID(str(claims.get("sid")))), uuid.UUID(str(claims.get("sub")))
    except ValueError:
        return None


def access_token_reads(claims: dict[str, Any]) -> list[str] | None:
    """core.read_ahead's reader for access tokens: the keys TenantJWTAuthentication will read
    for a token with these (unverified) claims: the session check's and the user's row."""
    ids = access_token_ids(claims)
    return session_check_keys(ids[0], user_row_keys(ids[1])) if ids else None


class TenantJWTAuthentication(JWTAuthentication):
    """simplejwt's JWTAuthentication with the tenant's keys, the session check and the
    account checks. A token of another tenant, an ended session or a disabled account is
    refused at once, whatever the token's expiry says."""

    www_authenticate_realm = "idp"

    def authenticate(self, request: Request) -> tuple[User, IdpAccessToken] | None:  # type: ignore[override]
        header = self.get_header(request)
        if header is None:
            return None
        raw = self.get_raw_token(header)
        if raw is None:
            return None  # not a Bearer header: anonymous, so 401 not_authenticated where it matters
        try:
            token: Any = read_token(IdpAccessToken, raw)
        except TokenError as exc:
            raise ProblemError(ErrorCode.INVALID_TOKEN, "The access token is invalid or expired.") from exc
        try:
            user_id = uuid.UUID(str(token["sub"]))
        except ValueError as exc:
            raise ProblemError(ErrorCode.INVALID_TOKEN, "The token's user does not exist.") from exc
        # The user's cached row rides along with the session check: one Redis round trip.
        user = user_row_get(user_id, self.session_check(token.get("sid"), also_read=user_row_keys(user_id)))
        if user is None:
            raise ProblemError(ErrorCode.INVALID_TOKEN, "The token's user does not exist.")
        if not user.is_active:
            raise ProblemError(ErrorCode.ACCOUNT_DISABLED)
        if user.must_change_password and not self._exempt(request):
            raise ProblemError(ErrorCode.PASSWORD_CHANGE_REQUIRED, "Change your password before anything else.")
        return user, token

    def session_check(self, session_id: object, *, also_read: Sequence[str]) -> list[Any]:
        """The token's device session must still be active; a request keeps it current.
        Returns the cache values of `also_read`, read in the same round trip."""
        if not isinstance(session_id, str):
            raise ProblemError(ErrorCode.SESSION_ENDED)
        active, values = session_check_and_touch(session_id, also_read=also_read)
        if not active:
            raise ProblemError(ErrorCode.SESSION_ENDED)
        return values

    @staticmethod
    def _exempt(request: Request) -> bool:
        match = request._request.resolver_match
        return match is not None and (match.url_name, request.method) in PASSWORD_CHANGE_EXEMPT
