"""Answers of the permission-check API (POST /api/v1/authz/check/ and .../batch/): may a
user (named by id, or by an access token they hold) do `permission`, optionally at a branch?

Every doubt answers `allowed: false`, never an error that would tell the caller why: an
unknown or deactivated user, a user or token of another tenant, a malformed or expired
token, an ended session, a branch a restricted service client may not ask about. A code
missing from the tenant's catalog is named back (`unknown_permission`) so that a typo in a
caller's configuration is found, and still answers false.

The hot path, once warm: no query and one Redis round trip per request. Everything is
cached under the tenant's RBAC version (rbac.selectors), which every change replaces
(rbac_changed), so a change is seen on the very next check:
- the version is read on every request (for a service token, in the same MGET as the
  client's state: rbac.service_clients.service_client_access);
- the tenant's catalog entry (its concrete codes, its branches' external ids) and each
  user's permission set are kept by this process per version, filled from Redis with one
  MGET for everything missing (the permission sets are rbac.selectors'
  effective_permissions entries: one cache, read many at a time here), and what Redis lacks
  is computed in three queries whatever the number of users;
- a token to evaluate costs its verification and one session lookup, once per distinct token.
"""

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from rest_framework_simplejwt.exceptions import TokenError

from core.errors import ErrorCode, ProblemError
from core.tenancy import current_schema
from identity.models import User
from identity.tokens import IdpAccessToken, TenantToken, TenantTokenBackend, current_tenant, read_token
from rbac.catalog import CODE_RE, Perm
from rbac.models import Branch, BranchUserObjectPermission, PermissionCode, RoleAssignment
from rbac.selectors import ENTRY_TTL_SECONDS as PERMISSIONS_TTL_SECONDS
from rbac.selectors import EffectivePermissions, effective_permissions, rbac_version
from rbac.service_clients import ServiceClientAccess
from sessions.state import session_is_active

logger = logging.getLogger("idp.rbac")

MAX_BATCH = 100
LOCAL_MAX_USERS = 50_000  # per tenant and process; a fuller generation starts over


@dataclass(frozen=True)
class Check:
    """One question. `user` and `token` are exclusive; with neither the subject is the
    caller (a user calling with their own token)."""

    permission: str
    branch: str | None = None
    user: uuid.UUID | None = None
    token: str | None = None


@dataclass(frozen=True)
class CheckResult:
    allowed: bool
    unknown_permission: str | None = None


@dataclass(frozen=True)
class Catalog:
    codes: frozenset[str]  # concrete codes (`resource.action`), not patterns
    branch_pks: dict[str, int]  # external id -> primary key


# --- cache entries ---------------------------------------------------------------------------------


def _permissions_key(version: str, user_id: uuid.UUID) -> str:
    return f"rbac:{version}:user:{user_id}"  # rbac.selectors.effective_permissions' entry


def _catalog_key(version: str) -> str:
    return f"rbac:{version}:authz-catalog"


def _permissions_entry(permissions: EffectivePermissions) -> tuple[bool, list[str], dict[str, list[str]]]:
    return (
        permissions.active,
        sorted(permissions.tenant_wide),
        {b: sorted(c) for b, c in permissions.branches.items()},
    )


def _permissions_from_entry(entry: Any) -> EffectivePermissions:
    active, tenant_wide, branches = entry
    return EffectivePermissions(active, frozenset(tenant_wide), {b: frozenset(c) for b, c in branches.items()})


def catalog_compute() -> Catalog:
    codes = frozenset(code for code in PermissionCode.objects.values_list("code", flat=True) if CODE_RE.fullmatch(code))
    return Catalog(codes=codes, branch_pks=dict(Branch.objects.values_list("external_id", "pk")))


def effective_permissions_compute_many(user_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, EffectivePermissions]:
    """rbac.selectors.effective_permissions_compute for many users in three queries (the
    same rows: roles held tenant-wide, guardian grants on branches; inactive or unknown
    users hold nothing)."""
    active = set(User.objects.filter(pk__in=user_ids, is_active=True).values_list("pk", flat=True))
    tenant_wide: dict[uuid.UUID, set[str]] = {user_id: set() for user_id in active}
    rows = RoleAssignment.objects.filter(
        user_id__in=active, branch__isnull=True, role__permissions__isnull=False
    ).values_list("user_id", "role__permissions__code")
    for user_id, code in rows:
        tenant_wide[user_id].add(code)
    branches: dict[uuid.UUID, dict[str, set[str]]] = {user_id: {} for user_id in active}
    grants = BranchUserObjectPermission.objects.filter(user_id__in=active).values_list(
        "user_id", "content_object__external_id", "permission__codename"
    )
    for user_id, external_id, code in grants:
        branches[user_id].setdefault(external_id, set()).add(code)
    return {
        user_id: EffectivePermissions(
            True, frozenset(tenant_wide[user_id]), {b: frozenset(c) for b, c in branches[user_id].items()}
        )
        if user_id in active
        else EffectivePermissions()
        for user_id in user_ids
    }


@dataclass
class _Generation:
    """This process's copies of one tenant's entries under one RBAC version. A version is
    never reused and every change replaces it, so a copy is exactly as fresh as the Redis
    entry it came from; like those entries it is dropped after PERMISSIONS_TTL_SECONDS
    (the bound that matters if a change could not bump the version)."""

    version: str
    born: float = field(default_factory=time.monotonic)
    catalog: Catalog | None = None
    permissions: dict[uuid.UUID, EffectivePermissions] = field(default_factory=dict)

    def fresh(self, version: str) -> bool:
        return (
            self.version == version
            and time.monotonic() - self.born < PERMISSIONS_TTL_SECONDS
            and len(self.permissions) < LOCAL_MAX_USERS
        )


_generations: dict[str, _Generation] = {}  # schema -> the latest version seen here


def _generation(version: str) -> _Generation:
    schema = current_schema()
    generation = _generations.get(schema)
    if generation is None or not generation.fresh(version):
        generation = _generations[schema] = _Generation(version)
    return generation


def _catalog_and_permissions(
    user_ids: list[uuid.UUID], version: str | None
) -> tuple[Catalog, dict[uuid.UUID, EffectivePermissions]]:
    """The catalog and each user's permission set under the tenant's current RBAC version
    (`version` when the caller read it already): from this process's copies, else one MGET,
    else computed (in bulk) and remembered in Redis. Redis down: all from PostgreSQL."""
    try:
        version = version or rbac_version()
    except Exception:
        logger.warning("Permission cache unavailable; answering checks from the database")
        return catalog_compute(), effective_permissions_compute_many(user_ids)
    generation = _generation(version)
    missing = [user_id for user_id in user_ids if user_id not in generation.permissions]
    if generation.catalog is None or missing:
        _fill(generation, missing)
    assert generation.catalog is not None  # noqa: S101  # _fill sets it
    return generation.catalog, {user_id: generation.permissions[user_id] for user_id in user_ids}


def _fill(generation: _Generation, user_ids: list[uuid.UUID]) -> None:
    version = generation.version
    keys = {_permissions_key(version, user_id): user_id for user_id in user_ids}
    wanted = [*keys] if generation.catalog is not None else [_catalog_key(version), *keys]
    try:
        cached = cache.get_many(wanted)
    except Exception:
        logger.warning("Permission cache unavailable; computing permission sets from the database")
        cached = {}
    to_remember: dict[str, Any] = {}
    if generation.catalog is None:
        catalog_entry = cached.get(_catalog_key(version))
        if catalog_entry is None:
            generation.catalog = catalog_compute()
            to_remember[_catalog_key(version)] = (sorted(generation.catalog.codes), generation.catalog.branch_pks)
        else:
            codes, branch_pks = catalog_entry
            generation.catalog = Catalog(frozenset(codes), dict(branch_pks))
    found = {keys[key]: _permissions_from_entry(entry) for key, entry in cached.items() if key in keys}
    computed = effective_permissions_compute_many([user_id for user_id in user_ids if user_id not in found])
    to_remember.update({_permissions_key(version, u): _permissions_entry(p) for u, p in computed.items()})
    generation.permissions.update(found | computed)
    if to_remember:
        try:
            cache.set_many(to_remember, PERMISSIONS_TTL_SECONDS)
        except Exception:
            logger.warning("Permission cache unavailable; could not remember %d entries", len(to_remember))


# --- subjects ------------------------------------------------------------------------------------


def _access_token_reader() -> Callable[[str], TenantToken]:
    """read_token(IdpAccessToken, ...) with one token backend (one issuer lookup) for the
    whole request, however many tokens it carries."""
    backend = TenantTokenBackend(current_tenant())

    class RequestAccessToken(IdpAccessToken):
        def get_token_backend(self) -> TenantTokenBackend:
            return backend

    return lambda raw: read_token(RequestAccessToken, raw)


def _token_subject(read: Callable[[str], TenantToken], raw: str) -> uuid.UUID | None:
    """The user of a valid access token of this tenant whose session is active, else None."""
    try:
        token = read(raw)
        session_id = uuid.UUID(str(token.get("sid")))
        user_id = uuid.UUID(str(token.get("sub")))
    except (TokenError, ValueError):
        return None
    return user_id if session_is_active(str(session_id)) else None


def _subjects(checks: Sequence[Check], caller: User | None) -> list[uuid.UUID | None]:
    tokens: dict[str, uuid.UUID | None] = {}
    read: Callable[[str], TenantToken] | None = None
    subjects: list[uuid.UUID | None] = []
    for check in checks:
        if check.token is not None:
            if check.token not in tokens:
                read = read or _access_token_reader()
                tokens[check.token] = _token_subject(read, check.token)
            subjects.append(tokens[check.token])
        elif check.user is not None:
            subjects.append(check.user)
        else:
            assert caller is not None, "the serializer asks services for user or token"  # noqa: S101
            subjects.append(caller.pk)
    return subjects


# --- the answer ------------------------------------------------------------------------------------


def authz_check(
    *, checks: Sequence[Check], caller: User | None = None, client: ServiceClientAccess | None = None
) -> list[CheckResult]:
    """Answer `checks` in order, for a service client (`client`, whose token holds the
    authz:check scope) or for a user calling with their own token (`caller`).

    A user may ask about anyone other than themselves (another id, or a token that is not
    theirs or not valid) only with `users.view` tenant-wide: else 403 permission_denied for
    the whole request, before anything is looked at. A client restricted to branches gets
    false for any other branch and for tenant-wide questions.
    """
    subjects = _subjects(checks, caller)
    asks_about_others = caller is not None and any(subject != caller.pk for subject in subjects)
    if caller is not None and asks_about_others and not effective_permissions(caller.pk).allows(Perm.USERS_VIEW):
        raise ProblemError(ErrorCode.PERMISSION_DENIED, "Asking about other users needs users.view.")
    distinct = list(dict.fromkeys(subject for subject in subjects if subject is not None))
    catalog, permissions = _catalog_and_permissions(distinct, client.rbac_version if client else None)
    results = []
    for check, subject in zip(checks, subjects, strict=True):
        if check.permission not in catalog.codes:
            results.append(CheckResult(allowed=False, unknown_permission=check.permission))
            continue
        if client is not None and client.restricted:
            branch_pk = catalog.branch_pks.get(check.branch) if check.branch is not None else None
            if branch_pk is None or branch_pk not in client.branch_pks:
                results.append(CheckResult(allowed=False))
                continue
        allowed = subject is not None and permissions[subject].allows(check.permission, check.branch)
        results.append(CheckResult(allowed=allowed))
    return results
