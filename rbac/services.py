"""Writes for RBAC. Every change is audited and invalidates cached permission sets at once.

The rules that keep delegation safe:
- to assign or remove a role you need `roles.assign` where the assignment applies (tenant-wide
  for a tenant-wide one; tenant-wide or at that branch for a branch one): else 403
  permission_denied;
- and you must hold every code of the role there (rbac.catalog.covers): else 403
  privilege_escalation. Nobody gives themselves `*`;
- creating or editing a role needs you to hold every code you put in it;
- the last active tenant-wide Admin cannot lose the role (403 last_admin).
Branch-scoped assignments are stored as django-guardian object permissions on the branch.
"""

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Permission as AuthPermission
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import IntegrityError, transaction

from core.errors import ErrorCode, ProblemError, invalid_request
from identity.models import User
from identity.services.audit import audit_record
from identity.user_rows import user_row_changed
from rbac.catalog import ADMIN, ALL_PERMISSIONS, CODE_RE, Perm, covers
from rbac.models import Branch, BranchUserObjectPermission, PermissionCode, Role, RoleAssignment
from rbac.selectors import VERSION_KEY, effective_permissions_compute
from tenants.models import Tenant

logger = logging.getLogger("idp.rbac")


def rbac_changed() -> None:
    """Make every cached permission set of this tenant unused: now (so the change is seen at
    once) and again after commit (so no set computed from the old rows survives)."""

    def bump() -> None:
        try:
            cache.set(VERSION_KEY, uuid.uuid4().hex, None)
        except Exception:  # entries expire within ENTRY_TTL_SECONDS anyway
            logger.error("Permission cache unavailable: version not bumped")

    bump()
    transaction.on_commit(bump)


# --- guardian grants ---------------------------------------------------------------------------


def _auth_permission(code: str) -> AuthPermission:
    content_type = ContentType.objects.get_for_model(Branch)
    permission, _ = AuthPermission.objects.get_or_create(
        content_type=content_type, codename=code, defaults={"name": f"{code} at a branch"[:255]}
    )
    return permission


def branch_grants_sync(*, user_id: Any, branch: Branch) -> None:
    """Make the user's guardian permissions on `branch` equal the codes of the roles the user
    holds at that branch."""
    desired = set(
        PermissionCode.objects.filter(
            roles__assignments__user_id=user_id, roles__assignments__branch=branch
        ).values_list("code", flat=True)
    )
    existing = dict(
        BranchUserObjectPermission.objects.filter(user_id=user_id, content_object=branch).values_list(
            "permission__codename", "pk"
        )
    )
    stale = [pk for code, pk in existing.items() if code not in desired]
    BranchUserObjectPermission.objects.filter(pk__in=stale).delete()
    BranchUserObjectPermission.objects.bulk_create(
        [
            BranchUserObjectPermission(user_id=user_id, content_object=branch, permission=_auth_permission(code))
            for code in sorted(desired - set(existing))
        ]
    )


def _grants_sync_for_role(role: Role) -> None:
    for user_id, branch_id in role.assignments.filter(branch__isnull=False).values_list("user_id", "branch_id"):
        branch_grants_sync(user_id=user_id, branch=Branch.objects.get(pk=branch_id))


# --- checks ------------------------------------------------------------------------------------


def _codes_of(role: Role) -> set[str]:
    return set(role.permissions.values_list("code", flat=True))


def _may_grant(*, actor: User, codes: Iterable[str], branch: Branch | None, action: str = Perm.ROLES_ASSIGN) -> None:
    held = effective_permissions_compute(actor.pk)
    branch_id = branch.external_id if branch else None
    if not held.allows(action, branch_id):
        raise ProblemError(ErrorCode.PERMISSION_DENIED, f"You may not do {action} here.")
    holdings = held.held_at(branch_id)
    missing = sorted(code for code in codes if not any(covers(h, code) for h in holdings))
    if missing:
        raise ProblemError(
            ErrorCode.PRIVILEGE_ESCALATION,
            "You cannot grant permissions you do not hold.",
            extra={"not_held": missing},
        )


def _admin_flag_sync(user: User) -> None:
    is_admin = RoleAssignment.objects.filter(user=user, role__name=ADMIN, branch__isnull=True).exists()
    fields = {"is_tenant_admin": is_admin}
    if is_admin:
        fields["is_staff"] = True
    User.objects.filter(pk=user.pk).update(**fields)
    user_row_changed([user.pk])
    for name, value in fields.items():
        setattr(user, name, value)


def _is_last_admin_assignment(assignment: RoleAssignment) -> bool:
    if assignment.role.name != ADMIN or assignment.branch_id is not None or not assignment.user.is_active:
        return False
    # Every active admin's assignment (and user row) is locked, this one included and always
    # in one order: two admins removing each other at once queue up instead of deadlocking,
    # and the second then sees the first's removal.
    admins = (
        RoleAssignment.objects.select_for_update()
        .filter(role=assignment.role, branch__isnull=True, user__is_active=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    return not any(pk != assignment.pk for pk in admins)


# --- assignments -------------------------------------------------------------------------------


@transaction.atomic
def role_assign(*, user: User, role: Role, branch: Branch | None, actor: User | None) -> RoleAssignment:
    """Give `user` the `role`, tenant-wide or at `branch`. `actor` None is the system itself
    (a tenant's first admin, the default role of a new user): no delegation checks."""
    if actor is not None:
        codes = _codes_of(role)
        if actor.pk == user.pk and ALL_PERMISSIONS in codes:
            raise ProblemError(ErrorCode.PRIVILEGE_ESCALATION, "Nobody can give themselves every permission.")
        _may_grant(actor=actor, codes=codes, branch=branch)
    try:
        with transaction.atomic():
            assignment = RoleAssignment.objects.create(user=user, role=role, branch=branch)
    except IntegrityError as exc:
        raise invalid_request({"role": ["The user already holds this role there."]}) from exc
    _assignment_changed(event="role.assigned", user=user, role=role, branch=branch, actor=actor)
    return assignment


@transaction.atomic
def role_unassign(*, assignment: RoleAssignment, actor: User | None) -> None:
    assignment = RoleAssignment.objects.select_related("role", "branch", "user").get(pk=assignment.pk)
    if actor is not None:
        _may_grant(actor=actor, codes=_codes_of(assignment.role), branch=assignment.branch)
    if _is_last_admin_assignment(assignment):
        raise ProblemError(ErrorCode.LAST_ADMIN, "The tenant's last administrator keeps the Admin role.")
    user, branch, role = assignment.user, assignment.branch, assignment.role
    assignment.delete()
    _assignment_changed(event="role.unassigned", user=user, role=role, branch=branch, actor=actor)


def _assignment_changed(*, event: str, user: User, role: Role, branch: Branch | None, actor: User | None) -> None:
    """After an assignment is made or removed: the guardian grants at its branch, the admin
    flag, cached permission sets, and the audit row."""
    if branch is not None:
        branch_grants_sync(user_id=user.pk, branch=branch)
    _admin_flag_sync(user)
    rbac_changed()

    # The user's assignments before and after, as (role, branch) pairs, for the audit trail.
    def ordered(pairs: Iterable[list[str | None]]) -> list[list[str | None]]:
        return sorted(pairs, key=lambda pair: (pair[0] or "", pair[1] or ""))

    held = RoleAssignment.objects.filter(user=user).values_list("role__name", "branch__external_id")
    after = ordered([name, external_id] for name, external_id in held)
    changed: list[str | None] = [role.name, branch.external_id if branch else None]
    before = ordered([*after, changed]) if event == "role.unassigned" else [pair for pair in after if pair != changed]
    audit_record(
        type=event,
        actor=actor,
        target=user,
        data={
            "role": role.name,
            "role_id": role.pk,
            "branch": branch.external_id if branch else None,
            "before": before,
            "after": after,
        },
    )


def user_default_role_assign(*, user: User, tenant: Tenant, branch: Branch | None = None) -> RoleAssignment | None:
    """The tenant's default role (policy registration.default_role) for a new user,
    tenant-wide, or at `branch` when whoever created the user acts for that branch only."""
    name = tenant.effective_policy["registration"]["default_role"]
    role = Role.objects.filter(name__iexact=name).first()
    return role_assign(user=user, role=role, branch=branch, actor=None) if role else None


# --- roles -----------------------------------------------------------------------------------


def _permission_codes(codes: Iterable[str]) -> list[PermissionCode]:
    codes = list(dict.fromkeys(codes))
    found = {p.code: p for p in PermissionCode.objects.filter(code__in=codes)}
    unknown = [code for code in codes if code not in found]
    if unknown:
        raise invalid_request({"permissions": [f"Unknown permission code: {code}" for code in unknown]})
    return [found[code] for code in codes]


def _role_snapshot(role: Role) -> dict[str, Any]:
    return {"name": role.name, "description": role.description, "permissions": sorted(_codes_of(role))}


@transaction.atomic
def role_create(*, name: str, permissions: list[str], description: str = "", actor: User) -> Role:
    codes = _permission_codes(permissions)
    _may_grant(actor=actor, codes=[p.code for p in codes], branch=None, action=Perm.ROLES_CREATE)
    if Role.objects.filter(name__iexact=name).exists():
        raise invalid_request({"name": ["A role with this name exists."]})
    role = Role.objects.create(name=name, description=description)
    role.permissions.set(codes)
    rbac_changed()
    audit_record(type="role.created", actor=actor, target=role, data={"after": _role_snapshot(role)})
    return role


@transaction.atomic
def role_update(
    *,
    role: Role,
    actor: User,
    tenant: Tenant,
    name: str | None = None,
    description: str | None = None,
    permissions: list[str] | None = None,
) -> Role:
    """Rename or re-code a role. System roles keep their names; their codes change only where
    the tenant's policy allows (roles.system_roles_editable), and Admin always keeps `*`."""
    role = Role.objects.select_for_update().get(pk=role.pk)
    before = _role_snapshot(role)
    if role.is_system and name is not None and name != role.name:
        raise ProblemError(ErrorCode.PERMISSION_DENIED, "System roles keep their names.")
    if permissions is not None:
        if role.is_system and (role.name == ADMIN or not tenant.effective_policy["roles"]["system_roles_editable"]):
            raise ProblemError(ErrorCode.PERMISSION_DENIED, "This tenant does not allow editing system roles.")
        codes = _permission_codes(permissions)
        changed = {p.code for p in codes} ^ _codes_of(role)
        _may_grant(actor=actor, codes=changed, branch=None, action=Perm.ROLES_EDIT)
        role.permissions.set(codes)
    elif not effective_permissions_compute(actor.pk).allows(Perm.ROLES_EDIT):
        raise ProblemError(ErrorCode.PERMISSION_DENIED)
    if name is not None and name != role.name:
        if Role.objects.filter(name__iexact=name).exclude(pk=role.pk).exists():
            raise invalid_request({"name": ["A role with this name exists."]})
        role.name = name
    if description is not None:
        role.description = description
    role.save()
    _grants_sync_for_role(role)
    rbac_changed()
    after = _role_snapshot(role)
    if after != before:
        audit_record(type="role.updated", actor=actor, target=role, data={"before": before, "after": after})
    return role


@transaction.atomic
def role_delete(*, role: Role, actor: User) -> None:
    """Delete a tenant role and every assignment of it. System roles are never deleted."""
    role = Role.objects.select_for_update().get(pk=role.pk)
    if role.is_system:
        raise ProblemError(ErrorCode.PERMISSION_DENIED, "System roles cannot be deleted.")
    _may_grant(actor=actor, codes=_codes_of(role), branch=None, action=Perm.ROLES_DELETE)
    before = _role_snapshot(role)
    assignments = list(role.assignments.select_related("branch"))
    for assignment in assignments:
        assignment.delete()
        if assignment.branch is not None:
            branch_grants_sync(user_id=assignment.user_id, branch=assignment.branch)
    role_id = role.pk  # delete() sets the instance's pk to None
    role.delete()
    rbac_changed()
    audit_record(
        type="role.deleted",
        actor=actor,
        target_type="role",
        target_id=str(role_id),
        data={"before": before, "unassigned": len(assignments)},
    )


# --- permission codes --------------------------------------------------------------------------


@transaction.atomic
def permission_create(*, code: str, description: str = "", actor: User) -> PermissionCode:
    """A tenant's own code, `resource.action` (patterns are built-in only)."""
    if not CODE_RE.fullmatch(code):
        raise invalid_request({"code": ["Use resource.action in lower case, e.g. orders.refund."]})
    if PermissionCode.objects.filter(code=code).exists():
        raise invalid_request({"code": ["This code exists."]})
    permission = PermissionCode.objects.create(code=code, description=description)
    _auth_permission(code)
    rbac_changed()  # the check API's cached catalog knows the code at once
    audit_record(
        type="permission.created",
        actor=actor,
        target=permission,
        target_id=code,
        data={"after": {"code": code, "description": description}},
    )
    return permission


@transaction.atomic
def permission_delete(*, permission: PermissionCode, actor: User) -> None:
    if permission.is_builtin:
        raise ProblemError(ErrorCode.PERMISSION_DENIED, "Built-in permission codes cannot be deleted.")
    roles = [role.name for role in permission.roles.all()]
    BranchUserObjectPermission.objects.filter(permission__codename=permission.code).delete()
    permission.delete()
    rbac_changed()
    audit_record(
        type="permission.deleted",
        actor=actor,
        target_type="permissioncode",
        target_id=permission.code,
        data={"before": {"code": permission.code, "description": permission.description}, "removed_from_roles": roles},
    )


# --- branches ------------------------------------------------------------------------------------


def _branch_snapshot(branch: Branch) -> dict[str, Any]:
    return {"external_id": branch.external_id, "restaurant_id": branch.restaurant_id, "name": branch.name}


@transaction.atomic
def branch_create(*, tenant: Tenant, external_id: str, name: str, restaurant_id: str = "", actor: User) -> Branch:
    """A branch, within the plan's `max_branches` (the tenant row is locked while counting)."""
    locked = Tenant.objects.select_for_update(of=("self",)).select_related("plan").get(pk=tenant.pk)
    if locked.plan is not None and Branch.objects.count() >= locked.plan.max_branches:
        raise ProblemError(ErrorCode.BRANCH_CAP_REACHED, f"The plan allows {locked.plan.max_branches} branches.")
    if Branch.objects.filter(external_id=external_id).exists():
        raise invalid_request({"external_id": ["A branch with this external id exists."]})
    branch = Branch.objects.create(external_id=external_id, name=name, restaurant_id=restaurant_id)
    rbac_changed()  # cached branch lists (restricted service clients) know it at once
    audit_record(type="branch.created", actor=actor, target=branch, data={"after": _branch_snapshot(branch)})
    return branch


@transaction.atomic
def branch_update(*, branch: Branch, actor: User, **fields: Any) -> Branch:
    branch = Branch.objects.select_for_update().get(pk=branch.pk)
    before = _branch_snapshot(branch)
    taken = Branch.objects.filter(external_id=fields.get("external_id")).exclude(pk=branch.pk)
    if "external_id" in fields and taken.exists():
        raise invalid_request({"external_id": ["A branch with this external id exists."]})
    for key, value in fields.items():
        setattr(branch, key, value)
    branch.save()
    after = _branch_snapshot(branch)
    moved = 0
    if after["external_id"] != before["external_id"]:
        # Users name their branch by external id: they follow the rename.
        moving = list(
            User.objects.select_for_update().filter(branch_id=before["external_id"]).values_list("pk", flat=True)
        )
        moved = User.objects.filter(pk__in=moving).update(branch_id=after["external_id"])
        user_row_changed(moving)
    if after != before:
        rbac_changed()  # cached sets are keyed by external id
        audit_record(
            type="branch.updated",
            actor=actor,
            target=branch,
            data={"before": before, "after": after, "users_moved": moved},
        )
    return branch


@transaction.atomic
def branch_delete(*, branch: Branch, actor: User) -> None:
    # Locked first: an assignment being made at this branch either commits before (and is
    # seen below) or waits and then fails its foreign key.
    branch = Branch.objects.select_for_update().get(pk=branch.pk)
    if branch.assignments.exists():
        raise invalid_request({"branch": ["Remove the role assignments at this branch first."]})
    before = _branch_snapshot(branch)
    branch_id = branch.pk  # delete() sets the instance's pk to None
    branch.delete()
    rbac_changed()
    audit_record(
        type="branch.deleted", actor=actor, target_type="branch", target_id=str(branch_id), data={"before": before}
    )
