"""The RBAC management API (/api/v1/permissions/, roles/, branches/, users/<id>/roles/):
a permission matrix per endpoint and method, delegated administration by branch managers,
the no-escalation and last-admin rules, system roles, the branch cap, bad input, and
permission changes seen on the very next request (API.md "RBAC", "Users and employees").

Every refusal asserts its status, its code and that no RBAC row changed."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django_tenants.utils import schema_context
from guardian.shortcuts import get_perms
from rest_framework.test import APIClient

from identity.models import AuditEvent, User
from rbac.catalog import ADMIN, AUDITOR, EMPLOYEE, MANAGER, SYSTEM_ROLES, Perm
from rbac.models import Branch, BranchUserObjectPermission, PermissionCode, Role, RoleAssignment
from rbac.services import branch_create, permission_create, role_assign, role_create
from tenants.models import Tenant
from tenants.policy import policy_validate
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, client_for_host, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import UserFactory

HOST = "acme.idp.test"
OTHER_HOST = "globex.idp.test"
API = "/api/v1"
RBAC_EVENTS = (
    "role.created",
    "role.updated",
    "role.deleted",
    "role.assigned",
    "role.unassigned",
    "permission.created",
    "permission.deleted",
    "branch.created",
    "branch.updated",
    "branch.deleted",
)


# --- the cast ------------------------------------------------------------------------------------


@dataclass
class Cast:
    """acme's people and things. Managers hold the Manager role at their branch only; the
    employee and the auditor hold theirs tenant-wide; the cook works at branch A and holds
    Employee there (the assignment the matrix removes)."""

    tenant: Tenant
    admin: User
    manager_a: User
    manager_b: User
    employee: User
    auditor: User
    cook: User
    branch_a: Branch
    branch_b: Branch
    branch_c: Branch  # no assignments: the one the matrix deletes
    waiter: Role  # a tenant role within a Manager's codes
    refunder: Role  # a tenant role with a code Managers lack
    cook_assignment: RoleAssignment
    loyalty: PermissionCode  # a tenant code

    def ref(self, name: str) -> Any:
        """What a {name} in a path stands for: an object's id, or a code."""
        value = getattr(self, name)
        return value.code if isinstance(value, PermissionCode) else value.pk


def system_role(name: str) -> Role:
    with schema_context("acme"):
        return Role.objects.get(name=name)


@pytest.fixture
def cast(tenant_a: Tenant, tenant_a_admin: User) -> Cast:
    with schema_context("acme"):
        admin = tenant_a_admin
        branches = [
            branch_create(tenant=tenant_a, external_id=f"br-{x}", name=f"Branch {x.upper()}", actor=admin)
            for x in "abc"
        ]
        branch_a, branch_b, branch_c = branches
        roles = {role.name: role for role in Role.objects.filter(is_system=True)}

        def person(email: str, branch_id: str, role: str, at: Branch | None) -> User:
            user = UserFactory.create(email=email, branch_id=branch_id)
            role_assign(user=user, role=roles[role], branch=at, actor=None)
            return user

        cook = UserFactory.create(email="cook@acme.example", branch_id="br-a")
        return Cast(
            tenant=tenant_a,
            admin=admin,
            manager_a=person("manager.a@acme.example", "br-a", MANAGER, branch_a),
            manager_b=person("manager.b@acme.example", "br-b", MANAGER, branch_b),
            employee=person("employee@acme.example", "br-a", EMPLOYEE, None),
            auditor=person("auditor@acme.example", "", AUDITOR, None),
            cook=cook,
            branch_a=branch_a,
            branch_b=branch_b,
            branch_c=branch_c,
            waiter=role_create(name="Waiter", permissions=[Perm.ORDERS_VIEW, Perm.MENU_VIEW], actor=admin),
            refunder=role_create(name="Refunder", permissions=[Perm.ORDERS_REFUND, Perm.USERS_DELETE], actor=admin),
            cook_assignment=role_assign(user=cook, role=roles[EMPLOYEE], branch=branch_a, actor=None),
            loyalty=permission_create(code="loyalty.grant", description="Give loyalty points", actor=admin),
        )


_tokens: dict[str, str] = {}


def client_as(cast: Cast, caller: str) -> APIClient:
    """A client for one of the cast, logged in through the real token endpoint (or none)."""
    if caller == "anonymous":
        return client_for_host(HOST)
    if caller == "other_tenant_admin":  # globex's admin, same email, token used at acme
        return bearer_client(HOST, login_tokens(OTHER_HOST, SHARED_ADMIN_EMAIL)["access"])
    user: User = getattr(cast, caller)
    return bearer_client(HOST, login_tokens(HOST, user.email, device_id=f"till-{caller}")["access"])


def client_for(user: User, device_id: str = "till-x") -> APIClient:
    return bearer_client(HOST, login_tokens(HOST, user.email, device_id=device_id)["access"])


@pytest.fixture
def admin(cast: Cast) -> APIClient:
    return client_as(cast, "admin")


@pytest.fixture
def manager_a(cast: Cast) -> APIClient:
    return client_as(cast, "manager_a")


def rbac_state() -> dict[str, Any]:
    """Every RBAC row of acme, the admin flags and the RBAC audit trail's size: what "nothing
    changed" compares."""
    with schema_context("acme"):
        return {
            "permissions": sorted(PermissionCode.objects.values_list("code", "description", "is_builtin")),
            "roles": sorted(
                (role.pk, role.name, role.description, role.is_system, tuple(p.code for p in role.permissions.all()))
                for role in Role.objects.prefetch_related("permissions")
            ),
            "branches": sorted(Branch.objects.values_list("pk", "external_id", "restaurant_id", "name")),
            "assignments": sorted(RoleAssignment.objects.values_list("pk", "user_id", "role_id", "branch_id")),
            "guardian": sorted(
                BranchUserObjectPermission.objects.values_list("user_id", "content_object_id", "permission__codename")
            ),
            "flags": sorted(User.objects.values_list("pk", "is_tenant_admin", "is_staff")),
            "audit": AuditEvent.objects.filter(type__in=RBAC_EVENTS).count(),
        }


def assignments_of(user: User) -> list[tuple[str, str | None]]:
    with schema_context("acme"):
        rows = RoleAssignment.objects.filter(user=user).values_list("role__name", "branch__external_id")
        return sorted(rows, key=lambda row: (row[0], row[1] or ""))


def events(type_: str) -> list[AuditEvent]:
    with schema_context("acme"):
        return list(AuditEvent.objects.filter(type=type_).order_by("id"))


def set_policy(tenant: Tenant, changes: dict[str, Any]) -> None:
    tenant.policy = policy_validate(changes, current=tenant.policy, max_devices_per_user=3)
    tenant.save()


def send(client: APIClient, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    if body is None:
        return getattr(client, method)(f"{API}{path}")
    return getattr(client, method)(f"{API}{path}", body, format="json")


# --- the permission matrix -----------------------------------------------------------------------

CALLERS = ("anonymous", "admin", "manager_a", "manager_b", "employee", "auditor", "other_tenant_admin")

Body = Callable[[Cast], dict[str, Any]] | None

# (method, path, body, statuses for CALLERS in order). A {name} in a path is the cast's object.
MATRIX: list[tuple[str, str, Body, tuple[int, ...]]] = [
    ("get", "/permissions/", None, (401, 200, 403, 403, 403, 200, 401)),
    ("post", "/permissions/", lambda c: {"code": "kitchen.close"}, (401, 201, 403, 403, 403, 403, 401)),
    ("get", "/permissions/{loyalty}/", None, (401, 200, 403, 403, 403, 200, 401)),
    ("delete", "/permissions/{loyalty}/", None, (401, 204, 403, 403, 403, 403, 401)),
    ("get", "/roles/", None, (401, 200, 200, 200, 403, 200, 401)),
    ("post", "/roles/", lambda c: {"name": "Host", "permissions": ["menu.view"]}, (401, 201, 403, 403, 403, 403, 401)),
    ("get", "/roles/{waiter}/", None, (401, 200, 200, 200, 403, 200, 401)),
    ("patch", "/roles/{waiter}/", lambda c: {"description": "Serves"}, (401, 200, 403, 403, 403, 403, 401)),
    ("delete", "/roles/{waiter}/", None, (401, 204, 403, 403, 403, 403, 401)),
    ("get", "/branches/", None, (401, 200, 200, 200, 403, 200, 401)),
    ("post", "/branches/", lambda c: {"external_id": "br-d", "name": "D"}, (401, 201, 403, 403, 403, 403, 401)),
    ("get", "/branches/{branch_a}/", None, (401, 200, 200, 404, 403, 200, 401)),
    ("patch", "/branches/{branch_a}/", lambda c: {"name": "Alpha"}, (401, 200, 403, 403, 403, 403, 401)),
    ("delete", "/branches/{branch_c}/", None, (401, 204, 403, 403, 403, 403, 401)),
    ("get", "/users/{cook}/roles/", None, (401, 200, 200, 404, 403, 200, 401)),
    (
        "post",
        "/users/{cook}/roles/",
        lambda c: {"role": c.waiter.pk, "branch": "br-a"},
        (401, 201, 201, 404, 403, 403, 401),
    ),
    ("get", "/users/{cook}/roles/{cook_assignment}/", None, (401, 200, 200, 404, 403, 200, 401)),
    ("delete", "/users/{cook}/roles/{cook_assignment}/", None, (401, 204, 204, 404, 403, 403, 401)),
]

REFUSAL_CODES = {403: "permission_denied", 404: "not_found"}


def matrix_cases() -> list[Any]:
    return [
        pytest.param(caller, method, path, body, statuses[index], id=f"{method.upper()} {path} as {caller}")
        for method, path, body, statuses in MATRIX
        for index, caller in enumerate(CALLERS)
    ]


def cast_view(callback: Any) -> Any:
    return callback.view_class


def test_the_matrix_covers_every_route_and_every_method_it_declares():
    from rbac.api import management_urls

    def shape(route: str) -> tuple[str, ...]:
        return tuple("{}" if part.startswith(("{", "<")) else part for part in route.strip("/").split("/"))

    covered = {(method.upper(), shape(path)) for method, path, _, _ in MATRIX}
    views = [(pattern, cast_view(pattern.callback)) for pattern in management_urls.urlpatterns]
    declared = {
        (method, shape(str(pattern.pattern))) for pattern, view in views for method in view.required_permissions
    }
    assert declared == covered


@pytest.mark.parametrize(("caller", "method", "path", "body", "expected"), matrix_cases())
def test_permission_matrix(cast, caller, method, path, body, expected):
    client = client_as(cast, caller)
    url = path.format(**{name: cast.ref(name) for name in Cast.__dataclass_fields__ if "{" + name + "}" in path})
    before = rbac_state()

    response = send(client, method, url, body(cast) if body else None)

    if expected >= 400:
        if expected == 401:
            code = "not_authenticated" if caller == "anonymous" else "invalid_token"
        else:
            code = REFUSAL_CODES[expected]
        assert_problem(response, expected, code)
        assert rbac_state() == before
    else:
        assert response.status_code == expected, response.content
        if method != "get":
            assert rbac_state() != before


# --- shapes and successful changes ---------------------------------------------------------------


def test_the_catalog_lists_built_in_codes_patterns_and_the_tenants_own(cast, admin):
    body = admin.get(f"{API}/permissions/?page_size=200").json()

    by_code = {item["code"]: item for item in body["results"]}
    assert body["count"] == len(by_code)
    assert {perm.value for perm in Perm} <= set(by_code)
    assert by_code["*"]["is_builtin"] and by_code["*.view"]["is_builtin"]
    assert by_code["loyalty.grant"] == {
        "code": "loyalty.grant",
        "description": "Give loyalty points",
        "is_builtin": False,
        "created_at": by_code["loyalty.grant"]["created_at"],
    }


def test_adding_a_code_answers_201_and_audits_it(cast, admin):
    response = admin.post(f"{API}/permissions/", {"code": "kitchen.close", "description": "Close"}, format="json")

    assert response.status_code == 201
    assert response.json()["code"] == "kitchen.close" and response.json()["is_builtin"] is False
    [event] = events("permission.created")[-1:]
    assert (event.actor_id, event.target_id) == (cast.admin.pk, "kitchen.close")
    assert event.data["after"] == {"code": "kitchen.close", "description": "Close"}


@pytest.mark.parametrize(
    "code",
    ["Orders.refund", "orders", "orders.refund.now", "*", "orders.*", " orders.refund", "orders.re fund", "", "1a.b"],
)
def test_a_malformed_code_answers_400_naming_the_code_and_adds_nothing(cast, admin, code):
    before = rbac_state()

    body = assert_problem(admin.post(f"{API}/permissions/", {"code": code}, format="json"), 400, "invalid_request")

    assert "code" in body["errors"]
    assert rbac_state() == before


def test_an_existing_code_answers_400_and_adds_nothing(cast, admin):
    before = rbac_state()

    body = assert_problem(
        admin.post(f"{API}/permissions/", {"code": "orders.refund"}, format="json"), 400, "invalid_request"
    )

    assert "code" in body["errors"]
    assert rbac_state() == before


@pytest.mark.parametrize("code", ["orders.refund", "*", "*.view"])
def test_a_built_in_code_cannot_be_deleted(cast, admin, code):
    before = rbac_state()

    assert_problem(admin.delete(f"{API}/permissions/{code}/"), 403, "permission_denied")

    assert rbac_state() == before


def test_deleting_a_tenant_code_takes_it_from_roles_and_branch_grants(cast, admin):
    with schema_context("acme"):
        cast.waiter.permissions.add(cast.loyalty)
    assert (
        admin.post(
            f"{API}/users/{cast.cook.pk}/roles/", {"role": cast.waiter.pk, "branch": "br-a"}, format="json"
        ).status_code
        == 201
    )
    with schema_context("acme"):
        assert "loyalty.grant" in get_perms(cast.cook, cast.branch_a)

    assert admin.delete(f"{API}/permissions/loyalty.grant/").status_code == 204

    with schema_context("acme"):
        assert not PermissionCode.objects.filter(code="loyalty.grant").exists()
        assert "loyalty.grant" not in get_perms(cast.cook, cast.branch_a)
    assert "loyalty.grant" not in admin.get(f"{API}/roles/{cast.waiter.pk}/").json()["permissions"]
    [event] = events("permission.deleted")
    assert event.actor_id == cast.admin.pk and event.data["removed_from_roles"] == ["Waiter"]


def test_roles_list_system_roles_with_their_codes_and_tenant_roles(cast, admin):
    body = admin.get(f"{API}/roles/").json()

    by_name = {role["name"]: role for role in body["results"]}
    assert set(by_name) == {ADMIN, MANAGER, EMPLOYEE, AUDITOR, "Waiter", "Refunder"}
    assert by_name[ADMIN]["permissions"] == ["*"]
    assert by_name[MANAGER]["permissions"] == sorted(SYSTEM_ROLES[MANAGER])
    assert all(by_name[name]["is_system"] for name in SYSTEM_ROLES)
    assert by_name["Waiter"] == {
        "id": cast.waiter.pk,
        "name": "Waiter",
        "description": "",
        "permissions": ["menu.view", "orders.view"],
        "is_system": False,
        "created_at": by_name["Waiter"]["created_at"],
        "updated_at": by_name["Waiter"]["updated_at"],
    }


def test_creating_a_role_answers_201_with_its_codes_and_audits_it(cast, admin):
    response = admin.post(
        f"{API}/roles/",
        {"name": "Cashier", "description": "Takes payments", "permissions": ["orders.create", "orders.view"]},
        format="json",
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["permissions"], body["is_system"]) == (
        "Cashier",
        ["orders.create", "orders.view"],
        False,
    )
    [event] = events("role.created")[-1:]
    assert (event.actor_id, event.target_id) == (cast.admin.pk, str(body["id"]))
    assert event.data["after"]["permissions"] == ["orders.create", "orders.view"]


def test_patching_permissions_replaces_them_and_audits_before_and_after(cast, admin):
    response = admin.patch(
        f"{API}/roles/{cast.waiter.pk}/", {"permissions": ["menu.view", "orders.create"]}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["permissions"] == ["menu.view", "orders.create"]
    [event] = events("role.updated")
    assert event.actor_id == cast.admin.pk and event.target_id == str(cast.waiter.pk)
    assert event.data["before"]["permissions"] == ["menu.view", "orders.view"]
    assert event.data["after"]["permissions"] == ["menu.view", "orders.create"]


def test_patching_a_role_name_and_description_keeps_its_codes(cast, admin):
    response = admin.patch(f"{API}/roles/{cast.waiter.pk}/", {"name": "Server", "description": "Tables"}, format="json")

    assert response.status_code == 200
    assert (response.json()["name"], response.json()["description"]) == ("Server", "Tables")
    assert response.json()["permissions"] == ["menu.view", "orders.view"]


def test_deleting_a_tenant_role_removes_its_assignments_and_grants_and_audits_it(cast, admin):
    assert (
        admin.post(
            f"{API}/users/{cast.cook.pk}/roles/", {"role": cast.waiter.pk, "branch": "br-a"}, format="json"
        ).status_code
        == 201
    )

    assert admin.delete(f"{API}/roles/{cast.waiter.pk}/").status_code == 204

    with schema_context("acme"):
        assert not Role.objects.filter(pk=cast.waiter.pk).exists()
        assert set(get_perms(cast.cook, cast.branch_a)) == {"menu.view", "orders.create", "orders.view"}  # Employee's
    assert assignments_of(cast.cook) == [(EMPLOYEE, "br-a")]
    [event] = events("role.deleted")
    assert (event.actor_id, event.target_type, event.target_id) == (cast.admin.pk, "role", str(cast.waiter.pk))
    assert event.data["before"]["name"] == "Waiter" and event.data["unassigned"] == 1


def test_branches_are_created_read_updated_and_deleted_with_audit(cast, admin):
    created = admin.post(
        f"{API}/branches/", {"external_id": "br-d", "name": "D", "restaurant_id": "r-9"}, format="json"
    )
    assert created.status_code == 201
    branch = created.json()
    assert (branch["external_id"], branch["name"], branch["restaurant_id"]) == ("br-d", "D", "r-9")

    assert admin.get(f"{API}/branches/{branch['id']}/").json() == branch
    updated = admin.patch(f"{API}/branches/{branch['id']}/", {"name": "Delta"}, format="json")
    assert updated.status_code == 200 and updated.json()["name"] == "Delta"
    assert admin.delete(f"{API}/branches/{branch['id']}/").status_code == 204
    assert_problem(admin.get(f"{API}/branches/{branch['id']}/"), 404, "not_found")

    created_event, updated_event, deleted_event = (
        events(t)[-1] for t in ("branch.created", "branch.updated", "branch.deleted")
    )
    assert {e.actor_id for e in (created_event, updated_event, deleted_event)} == {cast.admin.pk}
    assert {e.target_id for e in (created_event, updated_event, deleted_event)} == {str(branch["id"])}
    assert updated_event.data["before"]["name"] == "D" and updated_event.data["after"]["name"] == "Delta"
    assert deleted_event.data["before"]["external_id"] == "br-d"


def test_a_branch_manager_sees_only_their_own_branch(cast, manager_a):
    body = manager_a.get(f"{API}/branches/").json()

    assert [branch["external_id"] for branch in body["results"]] == ["br-a"]
    assert_problem(manager_a.get(f"{API}/branches/{cast.branch_b.pk}/"), 404, "not_found")


def test_a_tenant_wide_viewer_sees_every_branch(cast):
    body = client_as(cast, "auditor").get(f"{API}/branches/").json()

    assert [branch["external_id"] for branch in body["results"]] == ["br-a", "br-b", "br-c"]


def test_past_the_plans_branch_cap_creation_answers_403_and_creates_nothing(cast, admin):
    cast.tenant.plan.max_branches = 3
    cast.tenant.plan.save()
    before = rbac_state()

    response = admin.post(f"{API}/branches/", {"external_id": "br-d", "name": "D"}, format="json")

    assert_problem(response, 403, "branch_cap_reached")
    assert rbac_state() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"external_id": "br-a", "name": "Again"}, "external_id"),
        ({"name": "No id"}, "external_id"),
        ({"external_id": "br-x"}, "name"),
        ({"external_id": "x" * 65, "name": "Long"}, "external_id"),
        ({"external_id": "br-x", "name": "X", "plan": "gold"}, "plan"),
    ],
)
def test_bad_branch_input_answers_400_naming_the_field_and_creates_nothing(cast, admin, body, field):
    before = rbac_state()

    problem = assert_problem(admin.post(f"{API}/branches/", body, format="json"), 400, "invalid_request")

    assert field in problem["errors"]
    assert rbac_state() == before


def test_renaming_a_branch_to_a_taken_external_id_answers_400_and_changes_nothing(cast, admin):
    before = rbac_state()

    response = admin.patch(f"{API}/branches/{cast.branch_c.pk}/", {"external_id": "br-a"}, format="json")

    assert "external_id" in assert_problem(response, 400, "invalid_request")["errors"]
    assert rbac_state() == before


def test_a_branch_with_assignments_cannot_be_deleted(cast, admin):
    before = rbac_state()

    response = admin.delete(f"{API}/branches/{cast.branch_a.pk}/")

    assert "branch" in assert_problem(response, 400, "invalid_request")["errors"]
    assert rbac_state() == before


# --- role assignments ----------------------------------------------------------------------------


def test_assigning_a_role_at_a_branch_answers_201_and_stores_guardian_grants(cast, admin):
    response = admin.post(
        f"{API}/users/{cast.cook.pk}/roles/", {"role": cast.waiter.pk, "branch": "br-a"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert body["role"] == {"id": cast.waiter.pk, "name": "Waiter"} and body["branch"] == "br-a"
    assert set(body) == {"id", "role", "branch", "created_at"}
    with schema_context("acme"):
        rows = BranchUserObjectPermission.objects.filter(user=cast.cook, content_object=cast.branch_a)
        codes = set(rows.values_list("permission__codename", flat=True))
        assert {"menu.view", "orders.view"} <= codes
        # guardian's own API agrees (it reads "a.b" as app_label.codename, so compare codenames)
        assert {"menu.view", "orders.view"} <= set(get_perms(cast.cook, cast.branch_a))
        assert get_perms(cast.cook, cast.branch_b) == []
    [event] = events("role.assigned")[-1:]
    assert (event.actor_id, event.target_id) == (cast.admin.pk, str(cast.cook.pk))
    assert {key: event.data[key] for key in ("role", "role_id", "branch")} == {
        "role": "Waiter",
        "role_id": cast.waiter.pk,
        "branch": "br-a",
    }
    assert ["Waiter", "br-a"] in event.data["after"] and ["Waiter", "br-a"] not in event.data["before"]


def test_a_tenant_wide_assignment_has_a_null_branch_and_no_guardian_rows(cast, admin):
    response = admin.post(f"{API}/users/{cast.cook.pk}/roles/", {"role": cast.waiter.pk}, format="json")

    assert response.status_code == 201 and response.json()["branch"] is None
    with schema_context("acme"):
        assert BranchUserObjectPermission.objects.filter(user=cast.cook).count() == 3  # Employee at br-a only


def test_a_users_assignments_are_listed(cast, admin):
    body = admin.get(f"{API}/users/{cast.cook.pk}/roles/").json()

    assert body["count"] == 1
    [assignment] = body["results"]
    assert assignment["id"] == cast.cook_assignment.pk
    assert (assignment["role"]["name"], assignment["branch"]) == (EMPLOYEE, "br-a")


def test_removing_an_assignment_answers_204_removes_its_grants_and_audits_it(cast, admin):
    response = admin.delete(f"{API}/users/{cast.cook.pk}/roles/{cast.cook_assignment.pk}/")

    assert response.status_code == 204
    assert assignments_of(cast.cook) == []
    with schema_context("acme"):
        assert get_perms(cast.cook, cast.branch_a) == []
    [event] = events("role.unassigned")
    assert (event.actor_id, event.target_id, event.data["branch"]) == (cast.admin.pk, str(cast.cook.pk), "br-a")


def test_assigning_a_role_the_user_already_holds_there_answers_400_and_changes_nothing(cast, admin):
    before = rbac_state()

    response = admin.post(
        f"{API}/users/{cast.cook.pk}/roles/", {"role": cast.cook_assignment.role_id, "branch": "br-a"}, format="json"
    )

    assert "role" in assert_problem(response, 400, "invalid_request")["errors"]
    assert rbac_state() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "role"),
        ({"role": "Waiter"}, "role"),
        ({"role": 1, "branch": ["br-a"]}, "branch"),
        ({"role": 1, "x": 1}, "x"),
    ],
)
def test_a_malformed_assignment_answers_400_naming_the_field_and_changes_nothing(cast, admin, body, field):
    before = rbac_state()

    response = admin.post(f"{API}/users/{cast.cook.pk}/roles/", body, format="json")

    assert field in assert_problem(response, 400, "invalid_request")["errors"]
    assert rbac_state() == before


@pytest.mark.parametrize(
    "body",
    [{"role": 999_999}, {"role": 2**62}, {"role": "{waiter}", "branch": "br-zzz"}],
    ids=["role", "huge", "branch"],
)
def test_an_unknown_role_or_branch_in_an_assignment_answers_404_and_changes_nothing(cast, admin, body):
    body = {key: cast.waiter.pk if value == "{waiter}" else value for key, value in body.items()}
    before = rbac_state()

    assert_problem(admin.post(f"{API}/users/{cast.cook.pk}/roles/", body, format="json"), 404, "not_found")

    assert rbac_state() == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/roles/999999/"),
        ("patch", "/roles/999999/"),
        ("delete", "/roles/999999/"),
        ("get", "/branches/999999/"),
        ("patch", "/branches/999999/"),
        ("delete", "/branches/999999/"),
        ("get", "/permissions/nothing.here/"),
        ("delete", "/permissions/nothing.here/"),
        ("get", "/users/{random}/roles/"),
        ("post", "/users/{random}/roles/"),
        ("get", "/users/not-a-uuid/roles/"),
        ("get", "/users/{cook}/roles/999999/"),
        ("delete", "/users/{cook}/roles/999999/"),
        ("get", "/users/{cook}/roles/{employees_assignment}/"),
        ("delete", "/users/{cook}/roles/{employees_assignment}/"),
    ],
)
def test_unknown_ids_answer_404_not_found_and_change_nothing(cast, admin, method, path):
    with schema_context("acme"):
        employees_assignment = RoleAssignment.objects.get(user=cast.employee).pk
    url = path.format(random=uuid.uuid4(), cook=cast.cook.pk, employees_assignment=employees_assignment)
    before = rbac_state()

    response = send(admin, method, url, {"role": cast.waiter.pk} if method in ("post", "patch") else None)

    assert_problem(response, 404, "not_found")
    assert rbac_state() == before


def test_another_tenants_admin_does_not_find_this_tenants_objects_on_its_own_host(cast, tenant_b_admin):
    globex = bearer_client(OTHER_HOST, login_tokens(OTHER_HOST, SHARED_ADMIN_EMAIL)["access"])
    before = rbac_state()

    for method, path in [
        ("get", f"/users/{cast.cook.pk}/roles/"),
        ("post", f"/users/{cast.cook.pk}/roles/"),
        ("delete", f"/users/{cast.cook.pk}/roles/{cast.cook_assignment.pk}/"),
        ("get", f"/roles/{cast.waiter.pk}/"),
        ("delete", f"/roles/{cast.refunder.pk}/"),
        ("get", f"/branches/{cast.branch_a.pk}/"),
        ("delete", f"/permissions/{cast.loyalty.code}/"),
    ]:
        body = {"role": 1} if method == "post" else None
        assert_problem(send(globex, method, path, body), 404, "not_found")
    assert globex.get(f"{API}/branches/").json()["count"] == 0
    assert rbac_state() == before


# --- delegated administration and no escalation --------------------------------------------------


def test_a_branch_manager_assigns_a_lesser_role_at_their_branch(cast, manager_a):
    response = manager_a.post(
        f"{API}/users/{cast.cook.pk}/roles/", {"role": cast.waiter.pk, "branch": "br-a"}, format="json"
    )

    assert response.status_code == 201
    assert assignments_of(cast.cook) == [(EMPLOYEE, "br-a"), ("Waiter", "br-a")]
    assert events("role.assigned")[-1].actor_id == cast.manager_a.pk


def test_a_branch_manager_does_not_find_users_of_another_branch(cast):
    manager_b = client_as(cast, "manager_b")
    before = rbac_state()

    assert_problem(manager_b.get(f"{API}/users/{cast.cook.pk}/roles/"), 404, "not_found")
    response = manager_b.post(
        f"{API}/users/{cast.cook.pk}/roles/", {"role": cast.waiter.pk, "branch": "br-b"}, format="json"
    )
    assert_problem(response, 404, "not_found")
    assert rbac_state() == before


def test_a_branch_manager_does_not_find_users_without_a_branch(cast, manager_a):
    assert_problem(manager_a.get(f"{API}/users/{cast.admin.pk}/roles/"), 404, "not_found")
    assert_problem(manager_a.get(f"{API}/users/{cast.auditor.pk}/roles/"), 404, "not_found")


@pytest.mark.parametrize(
    ("role", "branch", "code"),
    [
        (ADMIN, "br-a", "privilege_escalation"),  # `*` is more than a Manager holds
        (AUDITOR, "br-a", "privilege_escalation"),  # `*.view` too
        ("Refunder", "br-a", "privilege_escalation"),  # users.delete
        ("Waiter", "br-b", "permission_denied"),  # not their branch
        ("Waiter", None, "permission_denied"),  # tenant-wide
    ],
)
def test_a_branch_manager_cannot_grant_more_than_they_hold_or_outside_their_branch(cast, manager_a, role, branch, code):
    with schema_context("acme"):
        role_id = Role.objects.get(name=role).pk
    before = rbac_state()

    response = manager_a.post(f"{API}/users/{cast.cook.pk}/roles/", {"role": role_id, "branch": branch}, format="json")

    assert_problem(response, 403, code)
    assert rbac_state() == before


def test_a_branch_manager_cannot_give_themselves_admin(cast, manager_a):
    before = rbac_state()

    response = manager_a.post(
        f"{API}/users/{cast.manager_a.pk}/roles/", {"role": system_role(ADMIN).pk, "branch": "br-a"}, format="json"
    )

    assert_problem(response, 403, "privilege_escalation")
    assert rbac_state() == before


def test_a_branch_manager_cannot_remove_a_tenant_wide_assignment_of_their_branchs_user(cast, manager_a):
    with schema_context("acme"):
        assignment = RoleAssignment.objects.get(user=cast.employee)
    before = rbac_state()

    response = manager_a.delete(f"{API}/users/{cast.employee.pk}/roles/{assignment.pk}/")

    assert_problem(response, 403, "permission_denied")
    assert rbac_state() == before


def test_a_branch_manager_cannot_remove_an_assignment_above_their_own(cast, manager_a):
    with schema_context("acme"):
        assignment = role_assign(user=cast.cook, role=cast.refunder, branch=cast.branch_a, actor=None)
    before = rbac_state()

    response = manager_a.delete(f"{API}/users/{cast.cook.pk}/roles/{assignment.pk}/")

    assert_problem(response, 403, "privilege_escalation")
    assert rbac_state() == before


def test_nobody_gives_themselves_all_permissions_not_even_an_admin(cast, admin):
    before = rbac_state()

    response = admin.post(
        f"{API}/users/{cast.admin.pk}/roles/", {"role": system_role(ADMIN).pk, "branch": "br-a"}, format="json"
    )

    assert_problem(response, 403, "privilege_escalation")
    assert rbac_state() == before


def test_an_admin_makes_another_user_admin_who_may_then_manage_at_once(cast, admin):
    response = admin.post(f"{API}/users/{cast.employee.pk}/roles/", {"role": system_role(ADMIN).pk}, format="json")

    assert response.status_code == 201
    with schema_context("acme"):
        promoted = User.objects.get(pk=cast.employee.pk)
    assert promoted.is_tenant_admin and promoted.is_staff
    assert client_as(cast, "employee").get(f"{API}/permissions/").status_code == 200


def test_the_last_admin_cannot_lose_the_admin_role(cast, admin):
    with schema_context("acme"):
        assignment = RoleAssignment.objects.get(user=cast.admin, role__name=ADMIN)
    before = rbac_state()

    response = admin.delete(f"{API}/users/{cast.admin.pk}/roles/{assignment.pk}/")

    assert_problem(response, 403, "last_admin")
    assert rbac_state() == before


def test_with_a_second_admin_the_first_may_step_down(cast, admin):
    with schema_context("acme"):
        role_assign(user=cast.auditor, role=Role.objects.get(name=ADMIN), branch=None, actor=None)
        assignment = RoleAssignment.objects.get(user=cast.admin, role__name=ADMIN)

    assert admin.delete(f"{API}/users/{cast.admin.pk}/roles/{assignment.pk}/").status_code == 204

    with schema_context("acme"):
        assert not User.objects.get(pk=cast.admin.pk).is_tenant_admin
    # and the change holds on the very next request
    assert_problem(admin.get(f"{API}/permissions/"), 403, "permission_denied")


@pytest.fixture
def role_maker(cast: Cast) -> User:
    """Holds roles.create, roles.edit, roles.delete and roles.view tenant-wide, and only orders.view
    besides."""
    with schema_context("acme"):
        codes: list[str] = [Perm.ROLES_CREATE, Perm.ROLES_EDIT, Perm.ROLES_DELETE, Perm.ROLES_VIEW, Perm.ORDERS_VIEW]
        role = role_create(name="Role maker", permissions=codes, actor=cast.admin)
        user = UserFactory.create(email="role.maker@acme.example")
        role_assign(user=user, role=role, branch=None, actor=None)
        return user


@pytest.mark.parametrize("codes", [["users.delete"], ["orders.view", "orders.refund"], ["*"], ["*.view"]])
def test_nobody_creates_a_role_with_codes_they_do_not_hold(cast, role_maker, codes):
    client = client_for(role_maker)
    before = rbac_state()

    response = client.post(f"{API}/roles/", {"name": "Sneaky", "permissions": codes}, format="json")

    body = assert_problem(response, 403, "privilege_escalation")
    assert body["not_held"]
    assert rbac_state() == before


def test_a_role_with_codes_one_holds_may_be_created(cast, role_maker):
    response = client_for(role_maker).post(
        f"{API}/roles/", {"name": "Viewer", "permissions": ["orders.view"]}, format="json"
    )

    assert response.status_code == 201


def test_nobody_edits_a_role_to_hold_or_lose_codes_they_do_not_hold(cast, role_maker):
    client = client_for(role_maker)
    before = rbac_state()

    added = client.patch(
        f"{API}/roles/{cast.waiter.pk}/", {"permissions": ["orders.view", "menu.view", "orders.refund"]}, format="json"
    )
    dropped = client.patch(f"{API}/roles/{cast.waiter.pk}/", {"permissions": ["orders.view"]}, format="json")

    assert_problem(added, 403, "privilege_escalation")
    assert_problem(dropped, 403, "privilege_escalation")  # menu.view is not theirs to take either
    assert rbac_state() == before


def test_nobody_deletes_a_role_holding_codes_they_do_not_hold(cast, role_maker):
    before = rbac_state()

    assert_problem(client_for(role_maker).delete(f"{API}/roles/{cast.refunder.pk}/"), 403, "privilege_escalation")

    assert rbac_state() == before


def test_a_manager_cannot_create_roles_at_all(cast, manager_a):
    before = rbac_state()

    response = manager_a.post(f"{API}/roles/", {"name": "Mine", "permissions": ["orders.view"]}, format="json")

    assert_problem(response, 403, "permission_denied")
    assert rbac_state() == before


# --- system roles --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(SYSTEM_ROLES))
def test_system_roles_cannot_be_deleted(cast, admin, name):
    before = rbac_state()

    assert_problem(admin.delete(f"{API}/roles/{system_role(name).pk}/"), 403, "permission_denied")

    assert rbac_state() == before


@pytest.mark.parametrize("name", list(SYSTEM_ROLES))
def test_system_roles_codes_are_not_editable_by_default(cast, admin, name):
    before = rbac_state()

    response = admin.patch(f"{API}/roles/{system_role(name).pk}/", {"permissions": ["orders.view"]}, format="json")

    assert_problem(response, 403, "permission_denied")
    assert rbac_state() == before


def test_where_the_policy_allows_a_system_roles_codes_change_and_branch_grants_follow(cast, admin):
    set_policy(cast.tenant, {"roles": {"system_roles_editable": True}})
    manager = system_role(MANAGER)
    codes = sorted(set(SYSTEM_ROLES[MANAGER]) - {Perm.ORDERS_REFUND})

    response = admin.patch(f"{API}/roles/{manager.pk}/", {"permissions": codes}, format="json")

    assert response.status_code == 200 and response.json()["permissions"] == codes
    with schema_context("acme"):
        assert "orders.refund" not in get_perms(cast.manager_a, cast.branch_a)
        assert "orders.view" in get_perms(cast.manager_a, cast.branch_a)


def test_admins_codes_are_never_editable(cast, admin):
    set_policy(cast.tenant, {"roles": {"system_roles_editable": True}})
    before = rbac_state()

    response = admin.patch(f"{API}/roles/{system_role(ADMIN).pk}/", {"permissions": ["orders.view"]}, format="json")

    assert_problem(response, 403, "permission_denied")
    assert rbac_state() == before


def test_system_roles_keep_their_names(cast, admin):
    before = rbac_state()

    response = admin.patch(f"{API}/roles/{system_role(MANAGER).pk}/", {"name": "Boss"}, format="json")

    assert_problem(response, 403, "permission_denied")
    assert rbac_state() == before


def test_a_system_roles_description_may_change(cast, admin):
    response = admin.patch(f"{API}/roles/{system_role(MANAGER).pk}/", {"description": "Runs a branch"}, format="json")

    assert response.status_code == 200 and response.json()["description"] == "Runs a branch"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X", "permissions": ["Orders.View"]}, "permissions.0"),
        ({"name": "X", "permissions": ["orders.view", "orders"]}, "permissions.1"),
        ({"name": "X", "permissions": ["orders.*"]}, "permissions.0"),
        ({"name": "X", "permissions": ["kitchen.close"]}, "permissions"),  # well formed, unknown
        ({"name": "X", "permissions": "orders.view"}, "permissions"),
        ({"permissions": ["orders.view"]}, "name"),
        ({"name": "", "permissions": []}, "name"),
        ({"name": "manager", "permissions": []}, "name"),  # taken, in any case
        ({"name": "X", "is_system": True}, "is_system"),
    ],
)
def test_bad_role_input_answers_400_naming_the_field_and_changes_nothing(cast, admin, body, field):
    before = rbac_state()

    problem = assert_problem(admin.post(f"{API}/roles/", body, format="json"), 400, "invalid_request")

    assert field in problem["errors"], problem["errors"]
    assert rbac_state() == before


def test_renaming_a_role_to_a_taken_name_answers_400_and_changes_nothing(cast, admin):
    before = rbac_state()

    response = admin.patch(f"{API}/roles/{cast.waiter.pk}/", {"name": "REFUNDER"}, format="json")

    assert "name" in assert_problem(response, 400, "invalid_request")["errors"]
    assert rbac_state() == before


# --- changes take effect on the very next request ------------------------------------------------


def test_a_removed_assignment_is_refused_on_the_very_next_request(cast, admin, manager_a):
    assert manager_a.get(f"{API}/roles/").status_code == 200  # and now cached
    with schema_context("acme"):
        assignment = RoleAssignment.objects.get(user=cast.manager_a)

    assert admin.delete(f"{API}/users/{cast.manager_a.pk}/roles/{assignment.pk}/").status_code == 204

    assert_problem(manager_a.get(f"{API}/roles/"), 403, "permission_denied")


def test_a_code_removed_from_a_role_is_refused_on_the_very_next_request(cast, admin):
    with schema_context("acme"):
        viewer = role_create(name="Viewer", permissions=[Perm.ROLES_VIEW], actor=cast.admin)
        role_assign(user=cast.cook, role=viewer, branch=None, actor=None)
    cook = client_for(cast.cook)
    assert cook.get(f"{API}/roles/").status_code == 200
    assert_problem(cook.get(f"{API}/branches/"), 403, "permission_denied")

    response = admin.patch(f"{API}/roles/{viewer.pk}/", {"permissions": ["branches.view"]}, format="json")
    assert response.status_code == 200

    assert_problem(cook.get(f"{API}/roles/"), 403, "permission_denied")
    assert cook.get(f"{API}/branches/").status_code == 200


def test_a_deleted_role_is_refused_on_the_very_next_request(cast, admin):
    with schema_context("acme"):
        role_assign(user=cast.cook, role=cast.waiter, branch=None, actor=None)
    cook = client_for(cast.cook)
    assert cook.get(f"{API}/roles/").status_code == 403
    assert (
        admin.patch(f"{API}/roles/{cast.waiter.pk}/", {"permissions": ["roles.view"]}, format="json").status_code == 200
    )
    assert cook.get(f"{API}/roles/").status_code == 200

    assert admin.delete(f"{API}/roles/{cast.waiter.pk}/").status_code == 204

    assert_problem(cook.get(f"{API}/roles/"), 403, "permission_denied")


def test_a_branch_grant_is_honoured_on_the_very_next_request(cast, admin):
    cook = client_for(cast.cook)
    assert_problem(cook.get(f"{API}/branches/"), 403, "permission_denied")

    body = {"role": system_role(MANAGER).pk, "branch": "br-a"}
    assert admin.post(f"{API}/users/{cast.cook.pk}/roles/", body, format="json").status_code == 201

    assert [b["external_id"] for b in cook.get(f"{API}/branches/").json()["results"]] == ["br-a"]


# --- methods an endpoint does not have -------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/roles/{waiter}/"),
        ("put", "/permissions/"),
        ("patch", "/permissions/{loyalty}/"),
        ("post", "/branches/{branch_a}/"),
        ("patch", "/users/{cook}/roles/"),
        ("patch", "/users/{cook}/roles/{cook_assignment}/"),
    ],
)
def test_a_method_an_endpoint_does_not_have_answers_405_and_changes_nothing(cast, admin, method, path):
    url = path.format(**{name: cast.ref(name) for name in Cast.__dataclass_fields__ if "{" + name + "}" in path})
    before = rbac_state()

    assert_problem(send(admin, method, url, {}), 405, "method_not_allowed")

    assert rbac_state() == before


@pytest.mark.parametrize("caller", ["admin", "employee"])
def test_options_follows_what_get_requires(cast, caller):
    response = client_as(cast, caller).options(f"{API}/users/{cast.cook.pk}/roles/{cast.cook_assignment.pk}/")

    assert response.status_code == (200 if caller == "admin" else 403)
