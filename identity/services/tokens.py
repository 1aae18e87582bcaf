"""Issuing, rotating and revoking a device session's tokens.

A session owns one refresh-token family. Refresh rotates: the presented token is
blacklisted (simplejwt's token_blacklist, ids stored hashed) and a new pair is issued. The
row of the token's session is locked FOR UPDATE, so of many concurrent refreshes of one
token exactly one rotates it; a token presented again after its rotation is reuse, which
ends the whole session: someone else holds a copy. A refresh that succeeds is one statement
(identity.token_rows.refresh_rotate), its own transaction, and two signatures.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError

from core.errors import ErrorCode, ProblemError
from identity.models import User
from identity.selectors import user_role_names
from identity.services.audit import audit_record
from identity.services.security import refresh_reuse_observe
from identity.token_rows import Rotation, refresh_known, refresh_record, refresh_rotate
from identity.tokens import IdpAccessToken, IdpRefreshToken, UnsignedPair, current_tenant, jti_hash, read_token
from sessions.models import DeviceSession, EndReason
from sessions.services import sessions_end


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    expires_in: int
    session_id: str
    roles: list[str]  # the access token's `roles` claim: the user's role names


def access_claims_set(token: IdpAccessToken, *, user: User, session: DeviceSession, roles: list[str] | None) -> None:
    """Give `token` the claims of `user` on `session`; `roles`: the user's role names when
    the caller read them already (user_role_names otherwise)."""
    token["sub"] = str(user.pk)
    token["sid"] = str(session.pk)
    token["did"] = session.device_id
    token["roles"] = user_role_names(user) if roles is None else roles
    token["email"] = user.email
    token["name"] = user.full_name
    for field in current_tenant().effective_policy["extra_claims"]:
        value = getattr(user, field, "")
        if value:
            token[field] = value


def token_pair_issue(*, user: User, session: DeviceSession, roles: list[str] | None = None) -> TokenPair:
    """A new access and refresh token for `session`; the refresh token becomes the one the
    session accepts next. Call inside the transaction that created or locked the session."""
    pair = UnsignedPair.new()
    # The family's absolute limit caps every refresh token in it.
    expires_at = min(datetime.fromtimestamp(pair.refresh["exp"], tz=UTC), session.expires_at)
    # The refresh token the session accepts next (its hashed id only: the token is a secret),
    # and the session's activity (a login or a refresh is activity): one statement.
    refresh_record(session=session, jti_hash=jti_hash(pair.refresh["jti"]), expires_at=expires_at, now=timezone.now())
    return _token_pair(user=user, session=session, pair=pair, expires_at=expires_at, roles=roles)


def _token_pair(
    *, user: User, session: DeviceSession, pair: UnsignedPair, expires_at: datetime, roles: list[str] | None
) -> TokenPair:
    """`pair`, whose refresh token is recorded as the one `session` accepts next until
    `expires_at`, with the claims of `user` and `session`, signed."""
    pair.refresh["sub"] = str(user.pk)
    pair.refresh["sid"] = str(session.pk)
    pair.refresh["did"] = session.device_id
    pair.refresh["exp"] = int(expires_at.timestamp())
    access_claims_set(pair.access, user=user, session=session, roles=roles)
    access, refresh = pair.signed()
    return TokenPair(
        access=access,
        refresh=refresh,
        expires_in=int(pair.access["exp"]) - int(pair.access["iat"]),
        session_id=str(session.pk),
        roles=list(pair.access["roles"]),
    )


def refresh_token_read(raw: Any) -> IdpRefreshToken:
    """Signature, claims and type of a refresh token of this tenant, or 401 invalid_token."""
    try:
        token = read_token(IdpRefreshToken, raw)
    except TokenError as exc:
        raise ProblemError(ErrorCode.INVALID_TOKEN, "The refresh token is invalid or expired.") from exc
    return token  # type: ignore[return-value]


def token_refresh(*, refresh: IdpRefreshToken) -> TokenPair:
    """Rotate `refresh` (already read with refresh_token_read). Refusals, in API.md's order:
    403 account_disabled, 401 session_ended, 401 token_reused (the session ends too).

    A rotation is one statement, a transaction of its own: it locks the session's row, so of
    many concurrent refreshes of one token exactly one rotates it. The pair is made before
    it (the next refresh token's id is recorded by it) and signed after it commits, with
    nothing more read from the database (UnsignedPair). A refresh it did not rotate changed
    nothing; its reason is then found in a transaction, with the session locked again."""
    pair = UnsignedPair.new()
    presented = jti_hash(refresh["jti"])

    def rotate() -> Rotation | None:
        return refresh_rotate(
            session_id=refresh.get("sid"),
            user_id=refresh["sub"],
            jti_hash=presented,
            next_jti_hash=jti_hash(pair.refresh["jti"]),
            next_expires_at=datetime.fromtimestamp(pair.refresh["exp"], tz=UTC),
            now=timezone.now(),
        )

    def signed(rotation: Rotation, expires_at: datetime) -> TokenPair:
        return _token_pair(
            user=rotation.user, session=rotation.session, pair=pair, expires_at=expires_at, roles=rotation.role_names
        )

    rotation = rotate()
    if rotation is not None and rotation.next_expires_at is not None:
        return signed(rotation, rotation.next_expires_at)
    with transaction.atomic():
        rotation = rotate()  # locked until the end: rotates if what refused it has changed
        if rotation is None or str(rotation.session.user_id) != refresh["sub"]:
            raise ProblemError(ErrorCode.INVALID_TOKEN, "The refresh token is not known.")
        if rotation.next_expires_at is not None:
            return signed(rotation, rotation.next_expires_at)
        session, user = rotation.session, rotation.user
        if not user.is_active:
            raise ProblemError(ErrorCode.ACCOUNT_DISABLED)
        if session.ended_at is not None:
            raise ProblemError(ErrorCode.SESSION_ENDED)
        # The two refusals below end the session, so they are raised after this block commits.
        if session.expires_at <= timezone.now():
            sessions_end([session], reason=EndReason.EXPIRED)
            refusal = ProblemError(ErrorCode.SESSION_ENDED, "The session reached its absolute time limit.")
        elif not refresh_known(presented):
            raise ProblemError(ErrorCode.INVALID_TOKEN, "The refresh token is not known.")
        else:  # issued, and used already: someone else holds a copy
            sessions_end([session], reason=EndReason.REFRESH_REUSE)
            audit_record(
                type="token.reused", target=user, data={"session_id": str(session.pk), "device_id": session.device_id}
            )
            refresh_reuse_observe(user=user, session_id=str(session.pk), device_id=session.device_id)
            refusal = ProblemError(ErrorCode.TOKEN_REUSED, "This refresh token was already used; the session ended.")
    raise refusal


@transaction.atomic
def logout(*, user: User, session_id: str, refresh: IdpRefreshToken | None = None) -> None:
    """End the caller's session: its refresh tokens are blacklisted and its access tokens
    refused at once. A refresh token given with the call must belong to that session."""
    session = DeviceSession.objects.select_for_update().filter(pk=session_id, user=user).first()
    if session is None:
        raise ProblemError(ErrorCode.SESSION_ENDED)
    if refresh is not None and refresh.get("sid") != str(session.pk):
        raise ProblemError(ErrorCode.INVALID_TOKEN, "The refresh token belongs to another session.", status=400)
    sessions_end([session], reason=EndReason.LOGOUT, actor=user)
