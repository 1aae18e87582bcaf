"""The RBAC rules as the services keep them, whoever calls them: nobody grants what they do not
hold, nobody gives themselves `*`, the last admin stays, branch grants are django-guardian
object permissions, every change is audited, and cached permission sets never outlive a
change (rbac.services, rbac.selectors)."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import cache
from django_tenants.utils import schema_context, tenant_context
from guardian.shortcuts import get_perms

from core.errors import ErrorCode, ProblemError
from identity.models import AuditEvent, User
from rbac.catalog import ADMIN, ALL_PERMISSIONS, EMPLOYEE, MANAGER, SYSTEM_ROLES, Perm
from rbac.models import Branch, BranchUserObjectPermission, PermissionCode, Role, RoleAssignment
from rbac.selectors import effective_permissions, user_role_names
from rbac.services import (
    branch_create,
    branch_delete,
    branch_update,
    permission_create,
    permission_delete,
    role_assign,
    role_create,
    role_delete,
    role_unassign,
    role_update,
)
from tenants.models import Tenant
from tests.concurrency import in_parallel, on_own_connection
from tests.conftest import SHARED_ADMIN_EMAIL
from tests.factories import UserFactory


@pytest.fixture
def acme(tenant_a: Tenant) -> Iterator[Tenant]:
    """The test runs in acme's schema."""
    with schema_context("acme"):
        yield tenant_a


@pytest.fixture
def admin(acme: Tenant, tenant_a_admin: User) -> User:
    return tenant_a_admin


@pytest.fixture
def branch_a(acme: Tenant, admin: User) -> Branch:
    return branch_create(tenant=acme, external_id="br-a", name="Branch A", actor=admin)


@pytest.fixture
def branch_b(acme: Tenant, admin: User) -> Branch:
    return branch_create(tenant=acme, external_id="br-b", name="Branch B", actor=admin)


def role(name: str) -> Role:
    return Role.objects.get(name=name)


@pytest.fixture
def manager_a(branch_a: Branch) -> User:
    user = UserFactory.create(email="manager.a@acme.example", branch_id="br-a")
    role_assign(user=user, role=role(MANAGER), branch=branch_a, actor=None)
    return user


@pytest.fixture
def cook(branch_a: Branch) -> User:
    return UserFactory.create(email="cook@acme.example", branch_id="br-a")


@pytest.fixture
def waiter(admin: User) -> Role:
    return role_create(name="Waiter", permissions=[Perm.ORDERS_VIEW, Perm.MENU_VIEW], actor=admin)


@pytest.fixture
def refunder(admin: User) -> Role:
    return role_create(name="Refunder", permissions=[Perm.ORDERS_REFUND, Perm.USERS_DELETE], actor=admin)


def state() -> dict[str, Any]:
    """Every RBAC row, the admin flags and the audit trail's size, in the current schema."""
    return {
        "permissions": sorted(PermissionCode.objects.values_list("code", "description")),
        "roles": sorted(
            (r.pk, r.name, r.description, tuple(p.code for p in r.permissions.all()))
            for r in Role.objects.prefetch_related("permissions")
        ),
        "branches": sorted(Branch.objects.values_list("pk", "external_id", "name")),
        "assignments": sorted(RoleAssignment.objects.values_list("pk", "user_id", "role_id", "branch_id")),
        "guardian": sorted(
            BranchUserObjectPermission.objects.values_list("user_id", "content_object_id", "permission__codename")
        ),
        "flags": sorted(User.objects.values_list("pk", "is_tenant_admin", "is_staff")),
        "audit": AuditEvent.objects.count(),
    }


def refused(code: ErrorCode, call: Any, **kwargs: Any) -> ProblemError:
    """Run a service call that must be refused with `code` and change nothing."""
    before = state()
    with pytest.raises(ProblemError) as caught:
        call(**kwargs)
    assert caught.value.code == code, caught.value.detail
    assert state() == before
    return caught.value


def guardian_codes(user: User, branch: Branch) -> set[str]:
    return set(
        BranchUserObjectPermission.objects.filter(user=user, content_object=branch).values_list(
            "permission__codename", flat=True
        )
    )


# --- no escalation -------------------------------------------------------------------------------


def test_a_branch_manager_may_assign_a_role_within_their_codes_at_their_branch(manager_a, cook, waiter, branch_a):
    assignment = role_assign(user=cook, role=waiter, branch=branch_a, actor=manager_a)

    assert (assignment.user_id, assignment.role_id, assignment.branch_id) == (cook.pk, waiter.pk, branch_a.pk)


def test_a_branch_manager_may_make_a_peer_at_their_branch_but_no_more(manager_a, cook, branch_a):
    role_assign(user=cook, role=role(MANAGER), branch=branch_a, actor=manager_a)

    refused(ErrorCode.PRIVILEGE_ESCALATION, role_assign, user=cook, role=role(ADMIN), branch=branch_a, actor=manager_a)


def test_a_role_with_a_code_the_actor_lacks_is_refused_naming_the_code(manager_a, cook, refunder, branch_a):
    error = refused(
        ErrorCode.PRIVILEGE_ESCALATION, role_assign, user=cook, role=refunder, branch=branch_a, actor=manager_a
    )

    assert error.extra == {"not_held": ["users.delete"]}


@pytest.mark.parametrize("where", ["tenant-wide", "other branch"])
def test_a_branch_manager_cannot_assign_outside_their_branch(manager_a, cook, waiter, branch_b, where):
    branch = None if where == "tenant-wide" else branch_b

    refused(ErrorCode.PERMISSION_DENIED, role_assign, user=cook, role=waiter, branch=branch, actor=manager_a)


def test_whoever_lacks_roles_assign_cannot_assign_at_all(acme, cook, waiter, branch_a):
    employee = UserFactory.create(email="employee@acme.example", branch_id="br-a")
    role_assign(user=employee, role=role(EMPLOYEE), branch=None, actor=None)

    refused(ErrorCode.PERMISSION_DENIED, role_assign, user=cook, role=waiter, branch=branch_a, actor=employee)


@pytest.mark.parametrize("at_branch", [False, True])
def test_nobody_gives_themselves_all_permissions_not_even_an_admin(admin, branch_a, at_branch):
    branch = branch_a if at_branch else None

    refused(ErrorCode.PRIVILEGE_ESCALATION, role_assign, user=admin, role=role(ADMIN), branch=branch, actor=admin)


def test_a_branch_admin_cannot_give_themselves_all_permissions_anywhere(admin, branch_a, branch_b):
    local_admin = UserFactory.create(email="local.admin@acme.example", branch_id="br-a")
    role_assign(user=local_admin, role=role(ADMIN), branch=branch_a, actor=admin)

    for branch in (None, branch_b):
        refused(
            ErrorCode.PRIVILEGE_ESCALATION,
            role_assign,
            user=local_admin,
            role=role(ADMIN),
            branch=branch,
            actor=local_admin,
        )


def test_an_admin_may_make_someone_else_admin(admin, cook):
    role_assign(user=cook, role=role(ADMIN), branch=None, actor=admin)

    cook.refresh_from_db()
    assert cook.is_tenant_admin and cook.is_staff
    assert effective_permissions(cook.pk).allows("anything.at_all")


def test_creating_a_role_needs_roles_create_and_every_code_in_it(admin, manager_a):
    maker = UserFactory.create(email="maker@acme.example")
    codes: list[str] = [Perm.ROLES_CREATE, Perm.ROLES_EDIT, Perm.ROLES_DELETE, Perm.ORDERS_VIEW]
    role_assign(user=maker, role=role_create(name="Maker", permissions=codes, actor=admin), branch=None, actor=None)

    refused(ErrorCode.PERMISSION_DENIED, role_create, name="Mine", permissions=[Perm.ORDERS_VIEW], actor=manager_a)
    for granted in ([Perm.USERS_DELETE], [ALL_PERMISSIONS], ["*.view"], [Perm.ORDERS_VIEW, Perm.ORDERS_REFUND]):
        refused(ErrorCode.PRIVILEGE_ESCALATION, role_create, name="Sneaky", permissions=granted, actor=maker)
    assert role_create(name="Viewer", permissions=[Perm.ORDERS_VIEW], actor=maker).name == "Viewer"


def test_editing_or_deleting_a_role_needs_every_code_changed_or_held_by_it(acme, admin, waiter, refunder):
    editor = UserFactory.create(email="editor@acme.example")
    codes: list[str] = [Perm.ROLES_EDIT, Perm.ROLES_DELETE, Perm.ORDERS_VIEW]
    role_assign(user=editor, role=role_create(name="Editor", permissions=codes, actor=admin), branch=None, actor=None)

    refused(
        ErrorCode.PRIVILEGE_ESCALATION,
        role_update,
        role=waiter,
        actor=editor,
        tenant=acme,
        permissions=[Perm.ORDERS_VIEW, Perm.MENU_VIEW, Perm.ORDERS_REFUND],
    )
    refused(ErrorCode.PRIVILEGE_ESCALATION, role_delete, role=refunder, actor=editor)
    refused(ErrorCode.PERMISSION_DENIED, role_delete, role=role(EMPLOYEE), actor=admin)


# --- the last admin --------------------------------------------------------------------------------


def admin_assignment(user: User) -> RoleAssignment:
    return RoleAssignment.objects.get(user=user, role__name=ADMIN, branch__isnull=True)


def test_the_last_admin_keeps_the_role_whoever_asks(admin):
    refused(ErrorCode.LAST_ADMIN, role_unassign, assignment=admin_assignment(admin), actor=admin)
    refused(ErrorCode.LAST_ADMIN, role_unassign, assignment=admin_assignment(admin), actor=None)


def test_a_deactivated_admin_or_a_branch_admin_does_not_count_as_another_admin(admin, branch_a):
    deactivated = UserFactory.create(email="gone@acme.example")
    role_assign(user=deactivated, role=role(ADMIN), branch=None, actor=admin)
    User.objects.filter(pk=deactivated.pk).update(is_active=False)
    local_admin = UserFactory.create(email="local@acme.example")
    role_assign(user=local_admin, role=role(ADMIN), branch=branch_a, actor=admin)

    refused(ErrorCode.LAST_ADMIN, role_unassign, assignment=admin_assignment(admin), actor=admin)
    role_unassign(assignment=admin_assignment(deactivated), actor=admin)  # theirs may go


def test_with_another_active_admin_an_admin_may_step_down(admin):
    second = UserFactory.create(email="second@acme.example")
    role_assign(user=second, role=role(ADMIN), branch=None, actor=admin)

    role_unassign(assignment=admin_assignment(admin), actor=admin)

    admin.refresh_from_db()
    assert not admin.is_tenant_admin
    refused(ErrorCode.LAST_ADMIN, role_unassign, assignment=admin_assignment(second), actor=second)


def test_two_admins_removed_at_once_leave_one_admin(committed_tenant):
    """Each removal locks every admin's assignment in one order: the second waits for the
    first, then sees it and is refused (403 last_admin); neither deadlocks."""

    def setup() -> tuple[str, str]:
        with tenant_context(committed_tenant):
            first = User.objects.get(email=SHARED_ADMIN_EMAIL)
            second = UserFactory.create(email="second@racing.example")
            role_assign(user=second, role=role(ADMIN), branch=None, actor=None)
            return str(first.pk), str(second.pk)

    first_id, second_id = on_own_connection(setup)
    pending = [first_id, second_id]

    def remove_one() -> str:
        # actor None (the system): no delegation check first, so both reach the lock together
        target_id = pending.pop()
        with tenant_context(Tenant.objects.get(pk=committed_tenant.pk)):
            try:
                assignment = RoleAssignment.objects.get(user_id=target_id, role__name=ADMIN)
                role_unassign(assignment=assignment, actor=None)
            except ProblemError as exc:
                return exc.code.value
            return "removed"

    outcomes = in_parallel(remove_one, 2)

    assert sorted(outcomes) == ["last_admin", "removed"]

    def admins_left() -> int:
        with tenant_context(committed_tenant):
            return RoleAssignment.objects.filter(role__name=ADMIN, branch__isnull=True).count()

    assert on_own_connection(admins_left) == 1


# --- django-guardian: branch grants ------------------------------------------------------------------


def test_a_branch_assignment_becomes_guardian_object_permissions_on_that_branch(cook, waiter, branch_a, branch_b):
    role_assign(user=cook, role=waiter, branch=branch_a, actor=None)

    assert guardian_codes(cook, branch_a) == {"orders.view", "menu.view"}
    # guardian's own API agrees; it reads "a.b" as app_label.codename, so compare codenames
    assert set(get_perms(cook, branch_a)) == {"orders.view", "menu.view"}
    assert get_perms(cook, branch_b) == []
    assert effective_permissions(cook.pk).branches == {"br-a": frozenset({"orders.view", "menu.view"})}


def test_a_tenant_wide_assignment_has_no_guardian_rows(cook, waiter):
    role_assign(user=cook, role=waiter, branch=None, actor=None)

    assert not BranchUserObjectPermission.objects.filter(user=cook).exists()
    assert effective_permissions(cook.pk).tenant_wide == frozenset({"orders.view", "menu.view"})


def test_removing_one_of_two_roles_at_a_branch_keeps_the_codes_the_other_grants(cook, waiter, branch_a):
    employee = role_assign(user=cook, role=role(EMPLOYEE), branch=branch_a, actor=None)
    role_assign(user=cook, role=waiter, branch=branch_a, actor=None)

    role_unassign(assignment=employee, actor=None)

    assert guardian_codes(cook, branch_a) == {"orders.view", "menu.view"}


def test_changing_a_roles_codes_changes_every_branch_holders_grants(acme, admin, cook, manager_a, waiter, branch_a):
    role_assign(user=cook, role=waiter, branch=branch_a, actor=None)

    role_update(role=waiter, actor=admin, tenant=acme, permissions=[Perm.ORDERS_VIEW, Perm.ORDERS_CREATE])

    assert set(get_perms(cook, branch_a)) == {"orders.view", "orders.create"}


def test_removing_the_assignment_removes_the_guardian_rows(cook, waiter, branch_a):
    assignment = role_assign(user=cook, role=waiter, branch=branch_a, actor=None)

    role_unassign(assignment=assignment, actor=None)

    assert get_perms(cook, branch_a) == []


# --- cached permission sets never outlive a change -----------------------------------------------


def test_permission_sets_are_cached(cook, waiter):
    role_assign(user=cook, role=waiter, branch=None, actor=None)
    assert effective_permissions(cook.pk).allows(Perm.MENU_VIEW)

    RoleAssignment.objects.filter(user=cook).delete()  # behind the services' back: no invalidation

    assert effective_permissions(cook.pk).allows(Perm.MENU_VIEW)  # so the cached set is what answers


def test_a_removed_assignment_shows_on_the_very_next_call(cook, waiter, branch_a):
    assignment = role_assign(user=cook, role=waiter, branch=branch_a, actor=None)
    assert effective_permissions(cook.pk).allows(Perm.MENU_VIEW, "br-a")

    role_unassign(assignment=assignment, actor=None)

    assert not effective_permissions(cook.pk).allows(Perm.MENU_VIEW, "br-a")
    assert user_role_names(cook) == []


def test_a_code_removed_from_a_role_shows_on_the_very_next_call(acme, admin, cook, waiter):
    role_assign(user=cook, role=waiter, branch=None, actor=None)
    assert effective_permissions(cook.pk).allows(Perm.MENU_VIEW)

    role_update(role=waiter, actor=admin, tenant=acme, permissions=[Perm.ORDERS_VIEW])

    assert not effective_permissions(cook.pk).allows(Perm.MENU_VIEW)
    assert effective_permissions(cook.pk).allows(Perm.ORDERS_VIEW)


def test_a_deleted_tenant_code_shows_on_the_very_next_call(acme, admin, cook, waiter, branch_a):
    permission_create(code="loyalty.grant", actor=admin)
    role_update(role=waiter, actor=admin, tenant=acme, permissions=["loyalty.grant", Perm.MENU_VIEW])
    role_assign(user=cook, role=waiter, branch=branch_a, actor=None)
    assert effective_permissions(cook.pk).allows("loyalty.grant", "br-a")

    permission_delete(permission=PermissionCode.objects.get(code="loyalty.grant"), actor=admin)

    assert not effective_permissions(cook.pk).allows("loyalty.grant", "br-a")
    assert "loyalty.grant" not in get_perms(cook, branch_a)


def test_a_deleted_role_shows_on_the_very_next_call(admin, cook, waiter):
    role_assign(user=cook, role=waiter, branch=None, actor=None)
    assert effective_permissions(cook.pk).allows(Perm.MENU_VIEW)

    role_delete(role=waiter, actor=admin)

    assert not effective_permissions(cook.pk).allows(Perm.MENU_VIEW)


def test_a_renamed_branch_shows_under_its_new_external_id_on_the_very_next_call(admin, cook, waiter, branch_a):
    role_assign(user=cook, role=waiter, branch=branch_a, actor=None)
    assert effective_permissions(cook.pk).allows(Perm.MENU_VIEW, "br-a")

    branch_update(branch=branch_a, actor=admin, external_id="br-alpha")

    assert effective_permissions(cook.pk).allows(Perm.MENU_VIEW, "br-alpha")
    assert not effective_permissions(cook.pk).allows(Perm.MENU_VIEW, "br-a")


def test_a_new_assignment_shows_on_the_very_next_call(cook, waiter):
    assert not effective_permissions(cook.pk).allows(Perm.MENU_VIEW)

    role_assign(user=cook, role=waiter, branch=None, actor=None)

    assert effective_permissions(cook.pk).allows(Perm.MENU_VIEW)


def test_a_cache_outage_falls_back_to_the_database(cook, waiter, monkeypatch):
    role_assign(user=cook, role=waiter, branch=None, actor=None)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "get", down)
    monkeypatch.setattr(cache, "set", down)

    assert effective_permissions(cook.pk).allows(Perm.MENU_VIEW)


def test_all_permissions_hold_only_in_their_own_tenant(admin, tenant_b):
    assert effective_permissions(admin.pk).allows(Perm.USERS_DELETE)  # cached in acme

    with schema_context("globex"):
        assert not effective_permissions(admin.pk).allows(Perm.USERS_DELETE)


# --- audit ---------------------------------------------------------------------------------------


def last_event(type_: str) -> AuditEvent:
    event = AuditEvent.objects.filter(type=type_).order_by("-id").first()
    assert event is not None, type_
    return event


def test_every_change_leaves_its_audit_event_with_actor_target_and_before_after(acme, admin, cook):
    permission = permission_create(code="loyalty.grant", description="Points", actor=admin)
    event = last_event("permission.created")
    assert (event.actor_id, event.target_id, event.data["after"]["code"]) == (
        admin.pk,
        "loyalty.grant",
        "loyalty.grant",
    )

    branch = branch_create(tenant=acme, external_id="br-z", name="Zed", actor=admin)
    event = last_event("branch.created")
    assert (event.actor_id, event.target_type, event.target_id) == (admin.pk, "branch", str(branch.pk))
    assert event.data["after"] == {"external_id": "br-z", "restaurant_id": "", "name": "Zed"}

    branch_update(branch=branch, actor=admin, name="Zulu")
    event = last_event("branch.updated")
    assert (event.data["before"]["name"], event.data["after"]["name"]) == ("Zed", "Zulu")

    created = role_create(name="Points", permissions=["loyalty.grant"], actor=admin)
    event = last_event("role.created")
    assert (event.actor_id, event.target_type, event.target_id) == (admin.pk, "role", str(created.pk))
    assert event.data["after"] == {"name": "Points", "description": "", "permissions": ["loyalty.grant"]}

    role_update(role=created, actor=admin, tenant=acme, permissions=[Perm.MENU_VIEW], description="Menu")
    event = last_event("role.updated")
    assert event.data["before"]["permissions"] == ["loyalty.grant"]
    assert event.data["after"] == {"name": "Points", "description": "Menu", "permissions": ["menu.view"]}

    assignment = role_assign(user=cook, role=created, branch=branch, actor=admin)
    event = last_event("role.assigned")
    assert (event.actor_id, event.target_type, event.target_id) == (admin.pk, "user", str(cook.pk))
    assert event.data == {
        "role": "Points",
        "role_id": created.pk,
        "branch": "br-z",
        "before": [],
        "after": [["Points", "br-z"]],
    }

    role_unassign(assignment=assignment, actor=admin)
    event = last_event("role.unassigned")
    assert (event.actor_id, event.target_id, event.data["branch"]) == (admin.pk, str(cook.pk), "br-z")
    assert (event.data["before"], event.data["after"]) == ([["Points", "br-z"]], [])

    role_pk = created.pk
    role_delete(role=created, actor=admin)
    event = last_event("role.deleted")
    assert (event.actor_id, event.target_type, event.target_id) == (admin.pk, "role", str(role_pk))
    assert event.data["before"]["name"] == "Points"

    branch_pk = branch.pk
    branch_delete(branch=branch, actor=admin)
    event = last_event("branch.deleted")
    assert (event.actor_id, event.target_type, event.target_id) == (admin.pk, "branch", str(branch_pk))
    assert event.data["before"]["external_id"] == "br-z"

    permission_delete(permission=permission, actor=admin)
    event = last_event("permission.deleted")
    assert (event.actor_id, event.target_id, event.data["before"]["code"]) == (
        admin.pk,
        "loyalty.grant",
        "loyalty.grant",
    )


def test_a_change_that_changes_nothing_leaves_no_role_updated_event(acme, admin, waiter):
    role_update(role=waiter, actor=admin, tenant=acme, permissions=[Perm.MENU_VIEW, Perm.ORDERS_VIEW])

    assert not AuditEvent.objects.filter(type="role.updated").exists()


# --- the seeded catalog --------------------------------------------------------------------------


def test_every_tenant_is_seeded_with_the_system_roles_and_built_in_codes(tenant_a, tenant_b):
    for schema in ("acme", "globex"):
        with schema_context(schema):
            roles = {r.name: r for r in Role.objects.filter(is_system=True).prefetch_related("permissions")}
            assert set(roles) == set(SYSTEM_ROLES)
            for name, codes in SYSTEM_ROLES.items():
                assert {p.code for p in roles[name].permissions.all()} == set(codes)
            assert PermissionCode.objects.filter(is_builtin=True).count() == len({*map(str, Perm), "*", "*.view"})


def test_renaming_a_branchs_external_id_moves_its_users_with_it(tenant_a, tenant_a_admin):
    from django_tenants.utils import tenant_context

    from identity.models import User
    from rbac.services import branch_create, branch_update

    with tenant_context(tenant_a):
        branch = branch_create(tenant=tenant_a, external_id="12", name="Westlands", actor=tenant_a_admin)
        cook = User.objects.create_user(email="moving-cook@acme.example", password="x", branch_id="12")

        branch_update(branch=branch, actor=tenant_a_admin, external_id="12-west")

        assert User.objects.get(pk=cook.pk).branch_id == "12-west"
