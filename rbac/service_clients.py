"""Service clients: other back ends that get service tokens with the client-credentials grant
(RFC 6749 4.4) and call the permission-check API.

- The secret is 32 random bytes, shown once at creation and kept only as a salted hash
  (identity.hashers; make_password / check_password). It never reaches a log, an audit row
  or a later response.
- Revoking keeps the row and refuses the client's tokens at once: every use of a service
  token asks `service_client_access`, answered from Redis with PostgreSQL as the truth, in
  the way sessions.state answers for device sessions. A revocation writes "revoked" at once,
  with a short lifetime, and again after commit to last; readers fill a missing entry only
  with `add`, so a reader that saw the row just before the revocation never overwrites it.
  Redis down: the database answers, never "allowed" by default.
- Client authentication (client_secret_basic, client_secret_post) answers the same way, and
  costs the same, for an unknown client id, a wrong secret and a revoked client.
"""

import base64
import binascii
import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache as memoize
from urllib.parse import unquote_plus

from django.contrib.auth.hashers import check_password, make_password
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from core import read_ahead
from core.errors import ErrorCode, ProblemError, invalid_request
from core.tenancy import current_schema
from identity.hashers import CLIENT_SECRET_HASHER
from identity.models import User
from identity.services.audit import audit_record
from identity.tokens import IdpServiceToken
from rbac.models import SERVICE_CLIENT_SCOPES, Branch, ServiceClient
from rbac.selectors import VERSION_KEY
from rbac.services import rbac_changed

logger = logging.getLogger("idp.rbac")

CLIENT_ID_BYTES = 18  # 24 URL-safe characters
CLIENT_SECRET_BYTES = 32

REVOKED = "revoked"
ACTIVE_TTL_SECONDS = 60  # bounds how long an entry missed during a Redis outage could matter
REVOKED_TTL_SECONDS = 60 * 60 * 24  # far longer than a service token lives
PROVISIONAL_TTL_SECONDS = 60  # a revocation that rolls back heals within this time


@memoize
def _unknown_client_hash() -> str:
    """Checked against when the client id is unknown, so that a miss costs one hash like a hit."""
    return make_password(secrets.token_urlsafe(CLIENT_SECRET_BYTES), hasher=CLIENT_SECRET_HASHER)


@dataclass(frozen=True)
class CreatedServiceClient:
    client: ServiceClient
    client_secret: str  # shown once, in the creation response; stored nowhere


@dataclass(frozen=True)
class ServiceClientAccess:
    """What a live client may ask about: with `restricted`, only the branches whose primary
    keys are in `branch_pks` (keys, not external ids: those may be renamed)."""

    client_id: str
    restricted: bool = False
    branch_pks: frozenset[int] = frozenset()
    # The tenant's RBAC version (rbac.selectors), read in the same Redis round trip as the
    # client's state, so that a check needs no second one; None when not read.
    rbac_version: str | None = None


@dataclass(frozen=True)
class IssuedServiceToken:
    access_token: str
    expires_in: int
    scope: str


# --- writes --------------------------------------------------------------------------------------


def _scopes_checked(scopes: Iterable[str]) -> list[str]:
    scopes = list(dict.fromkeys(scopes))
    unknown = [scope for scope in scopes if scope not in SERVICE_CLIENT_SCOPES]
    if unknown:
        raise invalid_request({"scopes": [f"Unknown scope: {scope}" for scope in unknown]})
    if not scopes:
        raise invalid_request({"scopes": ["Give at least one scope."]})
    return scopes


def _branches_resolve(external_ids: Iterable[str]) -> list[Branch]:
    external_ids = list(dict.fromkeys(external_ids))
    found = Branch.objects.in_bulk(external_ids, field_name="external_id")
    unknown = [external_id for external_id in external_ids if external_id not in found]
    if unknown:
        raise invalid_request({"branches": [f"Unknown branch: {external_id}" for external_id in unknown]})
    return [found[external_id] for external_id in external_ids]


@transaction.atomic
def service_client_create(
    *, name: str, scopes: list[str], branches: list[str] | None = None, actor: User | None
) -> CreatedServiceClient:
    """Create a client with `scopes` (from SERVICE_CLIENT_SCOPES). With `branches` (external
    ids) it may only ask about those branches; without, about any. Returns the secret, once
    (400 invalid_request for an unknown scope or branch; nothing is written then)."""
    scopes = _scopes_checked(scopes)
    restriction = _branches_resolve(branches) if branches is not None else None
    secret = secrets.token_urlsafe(CLIENT_SECRET_BYTES)
    client = ServiceClient.objects.create(
        client_id=secrets.token_urlsafe(CLIENT_ID_BYTES),
        name=name,
        secret_hash=make_password(secret, hasher=CLIENT_SECRET_HASHER),
        scopes=scopes,
        restricted_to_branches=restriction is not None,
        created_by=actor,
    )
    if restriction:
        client.branches.set(restriction)
    # The check API resolves branch external ids through the catalog entry cached under the
    # RBAC version; a new version makes sure it knows every branch this client names.
    rbac_changed()
    audit_record(
        type="service_client.created",
        actor=actor,
        target=client,
        target_id=client.client_id,
        data={
            "name": name,
            "scopes": scopes,
            "branches": sorted(b.external_id for b in restriction) if restriction is not None else None,
        },
    )
    return CreatedServiceClient(client=client, client_secret=secret)


@transaction.atomic
def service_client_revoke(*, client: ServiceClient, actor: User | None) -> bool:
    """Revoke a client: no more tokens, and the ones it holds are refused from now on.
    Returns False (and changes nothing) when it was already revoked."""
    client = ServiceClient.objects.select_for_update().get(pk=client.pk)
    if not client.is_active:
        return False
    client.is_active = False
    client.revoked_at = timezone.now()
    client.save(update_fields=["is_active", "revoked_at"])
    client_id = client.client_id
    _state_mark_revoked(client_id, PROVISIONAL_TTL_SECONDS)
    transaction.on_commit(lambda: _state_mark_revoked(client_id, REVOKED_TTL_SECONDS))
    audit_record(
        type="service_client.revoked",
        actor=actor,
        target=client,
        target_id=client_id,
        data={"name": client.name},
    )
    return True


# --- client authentication and the grant -----------------------------------------------------------

BASIC_CHALLENGE = {"WWW-Authenticate": 'Basic realm="idp"'}


def service_client_authenticate(*, client_id: str, client_secret: str) -> ServiceClient:
    """The active client with this id and secret, else 401 invalid_credentials: one answer,
    and one hash computed, for an unknown id, a wrong secret and a revoked client."""
    # No id holds a NUL (PostgreSQL refuses one in a query): such an id is unknown, not a 500.
    known_shape = bool(client_id) and "\x00" not in client_id
    client = ServiceClient.objects.filter(client_id=client_id).first() if known_shape else None
    matches = check_password(client_secret, client.secret_hash if client else _unknown_client_hash())
    if client is None or not matches or not client.is_active:
        raise _credentials_refused()
    return client


def _credentials_refused() -> ProblemError:
    # The Basic challenge (RFC 6749 5.2): this is client authentication, not a bearer token.
    return ProblemError(
        ErrorCode.INVALID_CREDENTIALS, "The client id or secret is not correct.", headers=BASIC_CHALLENGE
    )


# Client authentications this process has verified: (schema, client id, SHA-256 of the secret)
# -> (until when, the client's scopes). A client's id, secret and scopes never change after
# creation (it can only be revoked), and its revocation state is read on every call
# (service_client_access), so a remembered authentication spares the client's row and the
# secret's hash for a minute and nothing else; only a digest of the secret is kept. A hit
# needs the right secret, so it tells an unknown id from a wrong secret no better than a miss.
AUTHENTICATED_TTL_SECONDS = 60
AUTHENTICATED_MAX = 10_000
_authenticated: dict[tuple[str, str, bytes], tuple[float, tuple[str, ...]]] = {}


@dataclass(frozen=True)
class VerifiedClient:
    client_id: str
    scopes: tuple[str, ...]
    access: ServiceClientAccess


def service_client_verify(*, client_id: str, client_secret: str) -> VerifiedClient:
    """service_client_authenticate for the endpoints a client calls all day (the token
    endpoint, introspection, revocation): a pair this process verified within the last
    AUTHENTICATED_TTL_SECONDS is not checked against the client's row again, and the client's
    state is read on every call, so a revoked client is refused at once. 401
    invalid_credentials, with the Basic challenge, as service_client_authenticate."""
    key = (current_schema(), client_id, hashlib.sha256(client_secret.encode()).digest())
    now = time.monotonic()
    remembered = _authenticated.get(key)
    if remembered is None or now >= remembered[0]:
        client = service_client_authenticate(client_id=client_id, client_secret=client_secret)
        if len(_authenticated) >= AUTHENTICATED_MAX:
            _authenticated.clear()
        remembered = _authenticated[key] = (now + AUTHENTICATED_TTL_SECONDS, tuple(client.scopes))
    access = service_client_access(client_id, ahead=True)
    if access is None:  # revoked since it was remembered, or between the two reads
        raise _credentials_refused()
    return VerifiedClient(client_id=client_id, scopes=remembered[1], access=access)


def basic_credentials_decode(value: str) -> tuple[str, str] | None:
    """(client_id, client_secret) of HTTP Basic credentials (`value` follows "Basic "), each
    part form-urlencoded (client_secret_basic, RFC 6749 2.3.1); None when malformed."""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    raw_id, colon, raw_secret = decoded.partition(":")
    return (unquote_plus(raw_id), unquote_plus(raw_secret)) if colon else None


def basic_client_reads(request: HttpRequest) -> list[str] | None:
    """core.read_ahead's reader for requests with HTTP Basic client credentials (the token
    endpoint, introspection, revocation): the keys service_client_verify reads for the client
    the header names (unverified: its secret is checked before the values are used)."""
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    credentials = basic_credentials_decode(value) if scheme.lower() == "basic" else None
    return service_client_keys(credentials[0]) if credentials and credentials[0] else None


def service_token_issue(*, client: VerifiedClient, scope: str | None = None) -> IssuedServiceToken:
    """A service token for `client` (RFC 6749 4.4.3): the client's scopes, or the part of them
    `scope` asks for (400 invalid_request when it asks for a scope the client lacks)."""
    requested = list(dict.fromkeys(scope.split())) if scope and scope.strip() else list(client.scopes)
    not_held = [item for item in requested if item not in client.scopes]
    if not_held:
        raise invalid_request({"scope": [f"The client does not hold the scope {item}." for item in not_held]})
    token = IdpServiceToken.for_client(client_id=client.client_id, scopes=requested)
    lifetime = IdpServiceToken.lifetime
    return IssuedServiceToken(
        access_token=str(token), expires_in=int(lifetime.total_seconds()), scope=" ".join(requested)
    )


# --- reads ---------------------------------------------------------------------------------------


def service_client_list(*, include_revoked: bool = False) -> QuerySet[ServiceClient]:
    clients = ServiceClient.objects.prefetch_related("branches").select_related("created_by")
    return clients if include_revoked else clients.filter(is_active=True)


def service_client_get(*, client_id: str, active_only: bool = False) -> ServiceClient | None:
    clients = service_client_list(include_revoked=not active_only)
    return clients.filter(client_id=client_id).first()


def _key(client_id: str) -> str:
    return f"service-client:{client_id}"


def _access_in_database(client_id: str) -> ServiceClientAccess | None:
    client = ServiceClient.objects.filter(client_id=client_id, is_active=True).first()
    if client is None:
        return None
    pks = frozenset(client.branches.values_list("pk", flat=True)) if client.restricted_to_branches else frozenset()
    return ServiceClientAccess(client_id, client.restricted_to_branches, pks)


def service_client_keys(client_id: str) -> list[str]:
    """The cache keys service_client_access reads (core.read_ahead may read them ahead)."""
    return [_key(client_id), VERSION_KEY]


def service_client_access(client_id: str, *, ahead: bool = False) -> ServiceClientAccess | None:
    """The client's standing, asked on every use of its tokens: None when it is revoked or
    unknown. One Redis round trip when warm (which also reads the RBAC version), none with
    `ahead` when the service token's authentication had them read ahead (core.read_ahead)."""
    keys = service_client_keys(client_id)
    try:
        read = read_ahead.take(keys) if ahead else None
        if read is None:
            found = cache.get_many(keys)
            read = [found.get(key) for key in keys]
    except Exception:
        logger.warning("Service client cache unavailable; checking client %s in the database", client_id)
        return _access_in_database(client_id)
    entry, version = read
    if entry is not None:
        if entry == REVOKED:
            return None
        restricted, pks = entry
        return ServiceClientAccess(client_id, restricted, frozenset(pks), str(version) if version else None)
    access = _access_in_database(client_id)
    try:
        if access is None:
            cache.add(_key(client_id), REVOKED, REVOKED_TTL_SECONDS)
        else:
            cache.add(_key(client_id), (access.restricted, sorted(access.branch_pks)), ACTIVE_TTL_SECONDS)
    except Exception:
        logger.warning("Service client cache unavailable; could not remember client %s", client_id)
    return access


def _state_mark_revoked(client_id: str, ttl: int) -> None:
    try:
        cache.set(_key(client_id), REVOKED, ttl)
    except Exception:
        # Revoked in the database; a stale "active" entry expires within ACTIVE_TTL_SECONDS.
        logger.error("Service client cache unavailable; client %s revoked in the database only", client_id)
