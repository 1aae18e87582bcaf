"""Reads for device sessions, and what a token says (introspection, RFC 7662)."""

import uuid
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db.models import Q, QuerySet
from django.http import HttpRequest, QueryDict
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from core.jwt_unverified import claims_unverified
from identity.authentication import access_token_ids
from identity.models import User
from identity.tokens import (
    IdpAccessToken,
    IdpRefreshToken,
    IdpServiceToken,
    TenantToken,
    jti_hash,
    read_token,
    token_type_unverified,
)
from identity.user_rows import user_row_get, user_row_keys
from rbac.service_clients import service_client_access
from sessions.models import DeviceSession
from sessions.state import session_is_active, session_state_keys, session_state_read

INTROSPECTION_PATH = "/api/v1/oauth/introspect/"  # sessions.api.oauth_urls, on a tenant host


def active_sessions() -> Q:
    return Q(ended_at__isnull=True, expires_at__gt=timezone.now())


def user_session_list(*, user: User, include_ended: bool = False) -> QuerySet[DeviceSession]:
    sessions = DeviceSession.objects.filter(user=user).order_by("-created_at")
    return sessions if include_ended else sessions.filter(active_sessions())


def user_session_get(*, user: User, session_id: str) -> DeviceSession | None:
    """The user's own session, or None (also for another user's or a malformed id)."""
    try:
        parsed = uuid.UUID(session_id)
    except ValueError:
        return None
    return DeviceSession.objects.filter(user=user, pk=parsed).first()


# --- introspection (RFC 7662) ------------------------------------------------------------------

INACTIVE: dict[str, Any] = {"active": False}


TOKEN_CLASSES: dict[str, type[TenantToken]] = {
    IdpAccessToken.token_type: IdpAccessToken,
    IdpRefreshToken.token_type: IdpRefreshToken,
    IdpServiceToken.token_type: IdpServiceToken,
}


def token_read_any(raw: str) -> TenantToken | None:
    """An access, refresh or service token of this tenant, fully verified (signature by one
    of this tenant's published keys, its algorithm, `exp`, `iss`, `tid`, `aud`, `token_type`),
    or None: expired, malformed, another tenant's, unknown type. Never raises."""
    token_class = TOKEN_CLASSES.get(token_type_unverified(raw) or "")
    if token_class is None:
        return None
    try:
        return read_token(token_class, raw)
    except TokenError:
        return None


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _claims(token: TenantToken, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: token[name] for name in names if name in token.payload}


_ACCESS_CLAIMS = ("sub", "sid", "did", "tid", "iss", "aud", "exp", "iat", "nbf", "jti", "scope", "client_id")
_REFRESH_CLAIMS = ("sub", "sid", "did", "tid", "iss", "aud", "exp", "iat", "jti")
_SERVICE_CLAIMS = ("sub", "tid", "iss", "aud", "exp", "iat", "nbf", "jti", "scope")


def token_introspect(*, token: str) -> dict[str, Any]:
    """RFC 7662: what a token of this tenant says, while it is usable; else exactly
    `{"active": false}`, whatever the reason (expired, malformed, another tenant's, an ended
    session, a used refresh token, a deactivated user or revoked client, unknown): the
    answer tells a caller nothing about why.

    - access token: active while its session is (sessions.state, as every authenticated
      request asks) and its user is active; `username` is the user's email;
    - refresh token: active while it is the session's current one (known, not blacklisted:
      a rotated token is not) and its session and user are active;
    - service token: active while its client is (not revoked); `client_id` names it.

    `token_type` is "access_token", "refresh_token" or "service_token". The caller's
    `token_type_hint` is not needed: the token's own signed `token_type` says which it is.
    """
    parsed = token_read_any(token)
    if isinstance(parsed, IdpAccessToken):
        return _access_introspect(parsed)
    if isinstance(parsed, IdpRefreshToken):
        return _refresh_introspect(parsed)
    if isinstance(parsed, IdpServiceToken):
        return _service_introspect(parsed)
    return INACTIVE


def introspected_token_reads(request: HttpRequest) -> list[str] | None:
    """core.read_ahead's reader for introspection with a form body (RFC 7662): for an access
    token, the keys _access_introspect reads (its session's state and its user's row), named
    by its claims unverified; the token is verified before their values are used."""
    if request.path_info != INTROSPECTION_PATH or request.content_type != "application/x-www-form-urlencoded":
        return None
    try:
        token = QueryDict(request.body).get("token")
    except (RequestDataTooBig, TooManyFieldsSent):  # the view answers these
        return None
    claims = claims_unverified(token) if token else None
    if not claims or claims.get("token_type") != IdpAccessToken.token_type:
        return None
    ids = access_token_ids(claims)
    return session_state_keys(ids[0], user_row_keys(ids[1])) if ids else None


def _access_introspect(token: IdpAccessToken) -> dict[str, Any]:
    session_id, user_id = _uuid(token.get("sid")), _uuid(token.get("sub"))
    if session_id is None or user_id is None:
        return INACTIVE
    # The user's cached row is read with the session state, in one round trip (read ahead
    # with the tenant's row when the token came in a form body: introspected_token_reads).
    active, cached = session_state_read(str(session_id), also_read=user_row_keys(user_id))
    user = user_row_get(user_id, cached) if active else None
    if user is None or not user.is_active:
        return INACTIVE
    return {"active": True, "token_type": "access_token", **_claims(token, _ACCESS_CLAIMS), "username": user.email}


def _refresh_introspect(token: IdpRefreshToken) -> dict[str, Any]:
    session_id, user_id, jti = _uuid(token.get("sid")), _uuid(token.get("sub")), token.get("jti")
    if session_id is None or user_id is None or not isinstance(jti, str):
        return INACTIVE
    current = (
        OutstandingToken.objects.filter(jti=jti_hash(jti), blacklistedtoken__isnull=True).order_by().exists()
        and DeviceSession.objects.filter(active_sessions(), pk=session_id, user_id=user_id).exists()
        and session_is_active(str(session_id))  # an end not yet committed is already refused
    )
    email = User.objects.filter(pk=user_id, is_active=True).values_list("email", flat=True).first() if current else None
    if email is None:
        return INACTIVE
    return {"active": True, "token_type": "refresh_token", **_claims(token, _REFRESH_CLAIMS), "username": email}


def _service_introspect(token: IdpServiceToken) -> dict[str, Any]:
    client_id = token.get("sub")
    if not isinstance(client_id, str) or not client_id or service_client_access(client_id) is None:
        return INACTIVE
    return {"active": True, "token_type": "service_token", **_claims(token, _SERVICE_CLAIMS), "client_id": client_id}
