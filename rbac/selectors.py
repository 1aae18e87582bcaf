"""Reads for RBAC: a user's effective permissions, cached per (tenant, user).

The cache entry's key carries the tenant's RBAC version, a random token replaced on every
change (rbac.services.rbac_changed): a change makes every cached set of the tenant unused at
once, and a version is never reused, so an entry computed from a state that is gone can
never be read again. If Redis is unavailable the sets are computed from PostgreSQL.
"""

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache
from django.db.models import QuerySet

from core.tenancy import current_schema
from identity.models import User
from rbac.catalog import grants
from rbac.models import Branch, BranchUserObjectPermission, PermissionCode, Role, RoleAssignment

logger = logging.getLogger("idp.rbac")

VERSION_KEY = "rbac:version"
ENTRY_TTL_SECONDS = 300


@dataclass(frozen=True)
class Scope:
    """Where a user holds a code: everywhere in the tenant, or at these branches."""

    everywhere: bool = False
    branches: frozenset[str] = frozenset()

    @property
    def anywhere(self) -> bool:
        return self.everywhere or bool(self.branches)


@dataclass(frozen=True)
class EffectivePermissions:
    active: bool = False
    tenant_wide: frozenset[str] = frozenset()
    branches: dict[str, frozenset[str]] = field(default_factory=dict)  # external_id -> codes

    def allows(self, code: str, branch: str | None = None) -> bool:
        """Tenant-wide holdings allow at every branch; branch holdings only at their branch."""
        if not self.active:
            return False
        if any(grants(held, code) for held in self.tenant_wide):
            return True
        return branch is not None and any(grants(held, code) for held in self.branches.get(branch, ()))

    def scope(self, code: str) -> Scope:
        if not self.active:
            return Scope()
        if any(grants(held, code) for held in self.tenant_wide):
            return Scope(everywhere=True)
        return Scope(branches=frozenset(b for b, codes in self.branches.items() if any(grants(h, code) for h in codes)))

    def held_at(self, branch: str | None) -> frozenset[str]:
        """What the user holds that applies at `branch` (tenant-wide only when None)."""
        return self.tenant_wide | (self.branches.get(branch, frozenset()) if branch else frozenset())


def rbac_version() -> str:
    version = cache.get(VERSION_KEY)
    if version is None:
        cache.add(VERSION_KEY, uuid.uuid4().hex, None)
        version = cache.get(VERSION_KEY)
    return str(version)


def effective_permissions_compute(user_id: Any) -> EffectivePermissions:
    """From PostgreSQL: roles held tenant-wide, and the guardian grants on branches."""
    active = User.objects.filter(pk=user_id, is_active=True).exists()
    if not active:
        return EffectivePermissions()
    tenant_wide = frozenset(
        PermissionCode.objects.filter(
            roles__assignments__user_id=user_id, roles__assignments__branch__isnull=True
        ).values_list("code", flat=True)
    )
    branches: dict[str, set[str]] = {}
    rows = BranchUserObjectPermission.objects.filter(user_id=user_id).values_list(
        "content_object__external_id", "permission__codename"
    )
    for external_id, code in rows:
        branches.setdefault(external_id, set()).add(code)
    return EffectivePermissions(True, tenant_wide, {b: frozenset(c) for b, c in branches.items()})


def effective_permissions(user_id: Any) -> EffectivePermissions:
    try:
        key = f"rbac:{rbac_version()}:user:{user_id}"
        cached = cache.get(key)
    except Exception:
        logger.warning("Permission cache unavailable; computing from the database")
        return effective_permissions_compute(user_id)
    if cached is not None:
        active, tenant_wide, branches = cached
        return EffectivePermissions(active, frozenset(tenant_wide), {b: frozenset(c) for b, c in branches.items()})
    computed = effective_permissions_compute(user_id)
    entry = (computed.active, sorted(computed.tenant_wide), {b: sorted(c) for b, c in computed.branches.items()})
    try:
        cache.set(key, entry, ENTRY_TTL_SECONDS)
    except Exception:
        logger.warning("Permission cache unavailable; could not remember permissions of %s", user_id)
    return computed


def user_has_permission(user: User, code: str, branch: str | None = None) -> bool:
    return effective_permissions(user.pk).allows(code, branch)


def user_role_names(user: User) -> list[str]:
    """Names of the roles the user holds, tenant-wide or at any branch (the `roles` claim).
    The public schema has no roles: platform operators are superusers, not role holders."""
    if current_schema() == "public":
        return []
    return sorted(set(RoleAssignment.objects.filter(user=user).values_list("role__name", flat=True)))


def permission_list() -> QuerySet[PermissionCode]:
    return PermissionCode.objects.all()


def role_list() -> QuerySet[Role]:
    return Role.objects.prefetch_related("permissions")


def branch_list() -> QuerySet[Branch]:
    return Branch.objects.all()


def user_assignments(user: User) -> QuerySet[RoleAssignment]:
    return RoleAssignment.objects.filter(user=user).select_related("role", "branch")
