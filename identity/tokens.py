"""simplejwt, extended so that every tenant signs and verifies with its own keys.

The stock TokenBackend holds one key and one issuer for the whole process; here a backend is
made per tenant: its active key signs (with `kid` in the header), its published keys verify,
its origin is the issuer. What a token must carry to be accepted:

- a `kid` this tenant publishes, and the algorithm of that key (never the header's choice:
  no `none`, no HS/RS confusion; `jku`, `x5u` and `jwk` headers are never read); refresh
  tokens, which only the IdP reads, are signed HS256 under the HMAC key derived from that
  key (identity.keys.refresh_secret);
- a valid signature, `exp`, `iat` (and `nbf` when present), this tenant's `iss` and `tid`,
  an accepted `aud`;
- the `token_type` of the class reading it (an access token is not a refresh token).
"""

import hashlib
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

import jwt
from django.db import connection
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenBackendExpiredToken, TokenError
from rest_framework_simplejwt.tokens import Token

from core.jwt_unverified import MAX_TOKEN_BYTES, claims_unverified, segment_unverified
from identity.keys import REFRESH_ALGORITHM, LoadedKey, active_signing_key, refresh_secret, verification_key

LEEWAY_SECONDS = 10
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "jti", "tid", "token_type"]


def token_type_unverified(raw: str | bytes) -> str | None:
    """The `token_type` claim read WITHOUT verifying anything, only to choose the class that
    then verifies the token fully (and checks that claim again, signed)."""
    kind = (claims_unverified(raw) or {}).get("token_type")
    return kind if isinstance(kind, str) else None


def jti_hash(jti: str) -> str:
    """Refresh-token ids are stored hashed (STYLE.md: never store what you hand out)."""
    return hashlib.sha256(jti.encode()).hexdigest()


def current_tenant() -> Any:
    tenant = getattr(connection, "tenant", None)
    if tenant is None:
        raise RuntimeError("Tokens are issued and read inside a tenant's (or the public) schema context")
    return tenant


def issuer_of(tenant: Any) -> str:
    from tenants.services import tenant_origin

    return tenant_origin(tenant)


def access_audience(tenant: Any, issuer: str) -> str | list[str]:
    """`aud` of access tokens: the issuer, or the audiences the tenant's policy lists."""
    audiences = tenant.effective_policy["tokens"]["audiences"]
    if not audiences:
        return issuer
    return audiences[0] if len(audiences) == 1 else list(audiences)


class TenantTokenBackend(TokenBackend):
    """Signs with the tenant's active key and verifies with the key the token's `kid` names:
    its private and public key, or with `hmac_signed` (refresh tokens) the HMAC key derived
    from it."""

    issuer: str  # always set: the tenant's origin

    def __init__(self, tenant: Any, hmac_signed: bool = False) -> None:
        # The algorithm given to simplejwt is only a placeholder: each token is signed and
        # checked with the algorithm of its own key.
        super().__init__(algorithm="RS256", leeway=LEEWAY_SECONDS)
        self.tenant = tenant
        self.hmac_signed = hmac_signed
        self.issuer = issuer_of(tenant)
        audiences = tenant.effective_policy["tokens"]["audiences"]
        self.accepted_audiences = [self.issuer, *audiences]

    def encode(self, payload: dict[str, Any], key: LoadedKey | None = None) -> str:
        """`payload` signed with `key`, the tenant's active key unless one is given."""
        key = key or active_signing_key()
        claims = payload | {"iss": self.issuer, "tid": self.tenant.schema_name}
        if self.hmac_signed:
            if key.refresh_secret is None:  # the active key is always loaded with its private part
                raise RuntimeError("The active signing key was loaded without its private key")
            return jwt.encode(claims, key.refresh_secret, algorithm=REFRESH_ALGORITHM, headers={"kid": key.kid})
        return jwt.encode(claims, key.private_key, algorithm=key.algorithm, headers={"kid": key.kid})

    def _verifying_key(self, header: dict[str, Any]) -> tuple[Any, str] | None:
        """The key that verifies a token with this header, and its one algorithm: the public
        key of the `kid`, with that key's algorithm whatever the header says; for a refresh
        token whose header says HS256, the HMAC key the `kid` derives instead (a refresh
        token signed with the key itself, as before decision 43, is accepted until it
        expires: only this tenant could have made either)."""
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            return None
        if self.hmac_signed and header.get("alg") == REFRESH_ALGORITHM:
            secret = refresh_secret(kid)
            return (secret, REFRESH_ALGORITHM) if secret is not None else None
        key = verification_key(kid)
        return (key.public_key, key.algorithm) if key is not None else None

    def decode(self, token: Any, verify: bool = True) -> dict[str, Any]:
        if not verify:
            raise TokenBackendError("Tokens are always verified")
        if isinstance(token, bytes):
            token = token.decode("ascii", errors="replace")
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenBackendError("Token is too large")
        header = segment_unverified(token, 0)  # only to find the key: jwt.decode reads it again
        if header is None:
            raise TokenBackendError("Token is malformed")
        verifying = self._verifying_key(header)
        if verifying is None or header.get("alg") != verifying[1]:
            raise TokenBackendError("Token is not signed by this tenant")
        key, algorithm = verifying
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.accepted_audiences,
                issuer=self.issuer,
                leeway=self.get_leeway(),
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenBackendExpiredToken("Token is expired") from exc
        except jwt.InvalidTokenError as exc:
            raise TokenBackendError("Token is invalid") from exc
        if claims.get("tid") != self.tenant.schema_name:
            raise TokenBackendError("Token belongs to another tenant")
        return claims


class TenantToken(Token):
    """A simplejwt token read and written with the current tenant's backend and lifetimes.

    Building a backend reads the tenant's primary domain (the issuer) from the database, and
    simplejwt asks for the backend twice per token (decode, then check_exp), on every
    authenticated request. So each process keeps one backend per tenant for
    BACKEND_TTL_SECONDS, as identity.keys keeps the active key: the issuer and accepted
    audiences follow a change of primary domain or policy within that time.
    """

    BACKEND_TTL_SECONDS = 30
    remembered = False  # read_token: verified once a minute per process (access and service tokens)
    hmac_signed = False  # signed with the HMAC key derived from the signing key (refresh tokens)
    _backends: ClassVar[dict[tuple[str, Any, bool], tuple[float, TenantTokenBackend]]] = {}

    def get_token_backend(self) -> TenantTokenBackend:
        tenant = current_tenant()
        key = (tenant.schema_name, tenant.pk, self.hmac_signed)
        cached = TenantToken._backends.get(key)
        if cached is None or time.monotonic() - cached[0] > self.BACKEND_TTL_SECONDS:
            cached = (time.monotonic(), TenantTokenBackend(tenant, hmac_signed=self.hmac_signed))
            TenantToken._backends[key] = cached
        return cached[1]

    @property
    def token_backend(self) -> TenantTokenBackend:
        return self.get_token_backend()


class IdpAccessToken(TenantToken):
    token_type = "access"
    remembered = True
    lifetime = timedelta(minutes=30)  # replaced by the tenant's policy for new tokens

    def __init__(self, token: Any = None, verify: bool = True) -> None:
        if token is None:
            minutes = current_tenant().effective_policy["tokens"]["access_minutes"]
            self.lifetime = timedelta(minutes=minutes)
        super().__init__(token, verify)
        if token is None:
            self.payload["nbf"] = self.payload["iat"]
            # The issuer of the process's cached backend: no primary-domain query per token.
            self.payload["aud"] = access_audience(current_tenant(), self.get_token_backend().issuer)


class IdpRefreshToken(TenantToken):
    """Only the IdP reads refresh tokens: their audience is the issuer itself, and they are
    signed with HMAC (identity.keys.refresh_secret). Rotation, reuse detection and the
    blacklist are in identity.services.tokens (under row locks)."""

    token_type = "refresh"
    lifetime = timedelta(days=7)
    hmac_signed = True

    def __init__(self, token: Any = None, verify: bool = True) -> None:
        if token is None:
            days = current_tenant().effective_policy["tokens"]["refresh_days"]
            self.lifetime = timedelta(days=days)
        super().__init__(token, verify)
        if token is None:
            self.payload["aud"] = self.get_token_backend().issuer


class IdpServiceToken(TenantToken):
    """A service client's token from the client-credentials grant (rbac.service_clients):
    `sub` is the client id, `scope` the granted scopes (space-separated, RFC 6749 3.3).
    Only the IdP reads it, so its audience is the issuer itself; it is short-lived, and the
    client's state is checked on every use, so a revoked client's tokens stop at once."""

    token_type = "service"
    lifetime = timedelta(minutes=15)
    remembered = True

    def __init__(self, token: Any = None, verify: bool = True) -> None:
        super().__init__(token, verify)
        if token is None:
            self.payload["nbf"] = self.payload["iat"]
            self.payload["aud"] = self.get_token_backend().issuer

    @classmethod
    def for_client(cls, *, client_id: str, scopes: list[str]) -> "IdpServiceToken":
        token = cls()
        token["sub"] = client_id
        token["scope"] = " ".join(scopes)
        return token


@dataclass(frozen=True)
class UnsignedPair:
    """A new access and refresh token, with what signing them needs read when they are made:
    the tenant's active key and each token's backend (both re-read from the database every
    30 seconds). Signing then reads nothing, so a pair made before a write can be signed
    after the write commits without a database read, which could fail, in between."""

    access: IdpAccessToken
    refresh: IdpRefreshToken
    key: LoadedKey
    backends: tuple[TenantTokenBackend, TenantTokenBackend]

    @classmethod
    def new(cls) -> "UnsignedPair":
        access, refresh = IdpAccessToken(), IdpRefreshToken()
        return cls(access, refresh, active_signing_key(), (access.get_token_backend(), refresh.get_token_backend()))

    def signed(self) -> tuple[str, str]:
        """(the access token, the refresh token), signed."""
        return (
            self.backends[0].encode(self.access.payload, self.key),
            self.backends[1].encode(self.refresh.payload, self.key),
        )


# Tokens verified by this process: (schema, tenant, class, raw token) -> (good until, token).
# Access and service tokens are presented on every request for as long as they live, and
# verifying one (parsing, the signature, the claims) is most of what an authenticated request
# costs beyond the ping. A token's bytes cannot change what they say, so a hit is as good as
# verifying again until its `exp` (without the leeway) or VERIFIED_TTL_SECONDS, whichever is
# sooner: a rotated key stays published until its tokens expire, and what can end a token
# early (its session, its client) is read on every request all the same. A change of the
# tenant's issuer or audiences is seen within that minute, as the cached backend's 30 s.
VERIFIED_TTL_SECONDS = 60
VERIFIED_MAX = 10_000  # per process; a full memory starts over
_verified: dict[tuple[str, Any, type, str | bytes], tuple[float, "TenantToken"]] = {}


def read_token(token_class: type[TenantToken], raw: Any) -> TenantToken:
    """Parse and verify, turning every failure into TokenError (never a 500). A class with
    `remembered` set is verified once per VERIFIED_TTL_SECONDS per process (see _verified)."""
    if not isinstance(raw, (str, bytes)) or not raw:
        raise TokenError("Token is missing")
    if not token_class.remembered:
        return _verify(token_class, raw)
    key = _verified_key(token_class, raw)
    now = time.time()
    hit = _verified.get(key)
    if hit is not None and now < hit[0]:
        return hit[1]
    token = _verify(token_class, raw)
    good_until = min(float(token["exp"]), now + VERIFIED_TTL_SECONDS)
    if len(_verified) >= VERIFIED_MAX:
        _verified.clear()
    _verified[key] = (good_until, token)
    return token


def remembered_token(token_class: type[TenantToken], raw: str | bytes) -> TenantToken | None:
    """The token `raw` of `token_class` if this process verified it within its time (see
    _verified), else None: a lookup, nothing verified."""
    hit = _verified.get(_verified_key(token_class, raw))
    return hit[1] if hit is not None and time.time() < hit[0] else None


def _verified_key(token_class: type[TenantToken], raw: str | bytes) -> tuple[str, Any, type, str | bytes]:
    tenant = current_tenant()
    return (tenant.schema_name, tenant.pk, token_class, raw)


def _verify(token_class: type[TenantToken], raw: str | bytes) -> TenantToken:
    try:
        return token_class(raw)  # type: ignore[arg-type]  # simplejwt types the raw token as Token
    except TokenError:
        raise
    except (ValueError, TypeError, UnicodeError) as exc:
        raise TokenError("Token is malformed") from exc
