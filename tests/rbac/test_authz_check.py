"""The permission-check API (POST /api/v1/authz/check/ and /api/v1/authz/check/batch/):
answers for tenant-wide and branch grants and patterns, changes seen on the very next
check, false (never an error) for whatever should not be told apart, the batch's order and
limits, who may ask about whom, and the cost once warm (API.md "RBAC")."""

import uuid
from typing import Any, cast

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from identity.models import AuditEvent, User
from identity.services.users import user_deactivate
from rbac.authz import Check, authz_check, effective_permissions_compute_many
from rbac.catalog import AUDITOR, EMPLOYEE, MANAGER, Perm
from rbac.models import Branch, Role, RoleAssignment
from rbac.selectors import effective_permissions, effective_permissions_compute
from rbac.service_clients import service_client_access
from rbac.services import permission_create, role_assign, role_create, role_unassign, role_update
from sessions.models import DeviceSession
from sessions.services import session_end
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, client_for_host, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import UserFactory
from tests.rbac.test_service_clients import make_client, service_token

HOST = "acme.idp.test"
OTHER_HOST = "globex.idp.test"
CHECK = "/api/v1/authz/check/"
BATCH = "/api/v1/authz/check/batch/"


# --- the cast ------------------------------------------------------------------------------------


def acme_user(email: str, *grants: tuple[str, str | None]) -> User:
    """A user of acme holding (role name, branch external id or None) grants."""
    with schema_context("acme"):
        user = cast(User, UserFactory(email=email))
        for role_name, branch in grants:
            branch_obj = Branch.objects.get(external_id=branch) if branch else None
            role_assign(user=user, role=Role.objects.get(name=role_name), branch=branch_obj, actor=None)
        return user


@pytest.fixture
def branches(tenant_a: Any) -> None:
    with schema_context("acme"):
        for external_id in ("nbo-1", "msa-1"):
            Branch.objects.create(external_id=external_id, name=external_id)


@pytest.fixture
def cashier(branches: None) -> User:
    """Employee tenant-wide: orders.view, orders.create, menu.view."""
    return acme_user("cashier@acme.example", (EMPLOYEE, None))


@pytest.fixture
def manager(branches: None) -> User:
    """Manager at nbo-1 only (orders.refund, users.view, ... there)."""
    return acme_user("manager@acme.example", (MANAGER, "nbo-1"))


@pytest.fixture
def auditor(branches: None) -> User:
    return acme_user("auditor@acme.example", (AUDITOR, None))


@pytest.fixture
def pos(tenant_a: Any) -> APIClient:
    """A service client with the authz:check scope, every branch."""
    return bearer_client(HOST, service_token(*make_client(scopes=["authz:check"])))


@pytest.fixture
def nbo_pos(branches: None) -> APIClient:
    """A service client restricted to branch nbo-1."""
    return bearer_client(HOST, service_token(*make_client(scopes=["authz:check"], branches=["nbo-1"])))


def ask(client: APIClient, user: Any, permission: str, branch: str | None = None) -> Any:
    body: dict[str, Any] = {"user": str(user.pk if hasattr(user, "pk") else user), "permission": permission}
    if branch is not None:
        body["branch"] = branch
    response = client.post(CHECK, body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def allowed(client: APIClient, user: Any, permission: str, branch: str | None = None) -> bool:
    return bool(ask(client, user, permission, branch)["allowed"])


def snapshot() -> tuple[int, int, int]:
    with schema_context("acme"):
        return AuditEvent.objects.count(), RoleAssignment.objects.count(), DeviceSession.objects.count()


# --- answers ---------------------------------------------------------------------------------------


def test_a_tenant_wide_grant_allows_everywhere_and_only_its_codes(pos, cashier):
    assert allowed(pos, cashier, "orders.create") is True
    assert allowed(pos, cashier, "orders.create", "nbo-1") is True
    assert allowed(pos, cashier, "orders.refund") is False
    assert allowed(pos, cashier, "orders.refund", "nbo-1") is False


def test_a_branch_grant_allows_only_at_its_branch(pos, manager):
    assert allowed(pos, manager, "orders.refund", "nbo-1") is True
    assert allowed(pos, manager, "orders.refund", "msa-1") is False
    assert allowed(pos, manager, "orders.refund") is False


def test_the_auditors_star_view_allows_every_view_code_and_nothing_else(pos, auditor):
    assert allowed(pos, auditor, "orders.view") is True
    assert allowed(pos, auditor, "reports.view", "msa-1") is True
    assert allowed(pos, auditor, "audit.view") is True
    assert allowed(pos, auditor, "orders.refund") is False


def test_the_admins_star_allows_every_code_of_the_catalog(pos, tenant_a_admin):
    assert allowed(pos, tenant_a_admin, "orders.refund", "msa-1") is True
    assert allowed(pos, tenant_a_admin, "service_clients.delete") is True


def test_an_unknown_code_answers_false_and_is_named_back(pos, tenant_a_admin):
    assert ask(pos, tenant_a_admin, "orders.teleport") == {"allowed": False, "unknown_permission": "orders.teleport"}
    assert ask(pos, tenant_a_admin, "*") == {"allowed": False, "unknown_permission": "*"}
    assert ask(pos, tenant_a_admin, "orders.refund") == {"allowed": True}


def test_a_code_the_tenant_adds_is_known_once_a_role_holds_it(pos, tenant_a_admin, cashier):
    with schema_context("acme"):
        permission_create(code="loyalty.redeem", actor=tenant_a_admin)
        role = role_create(name="Loyalty", permissions=["loyalty.redeem"], actor=tenant_a_admin)
        role_assign(user=cashier, role=role, branch=None, actor=None)

    assert ask(pos, cashier, "loyalty.redeem") == {"allowed": True}


# --- changes are seen on the very next check -------------------------------------------------------


def test_a_removed_assignment_is_denied_on_the_very_next_check(pos, manager):
    assert allowed(pos, manager, "orders.refund", "nbo-1") is True  # now cached
    with schema_context("acme"):
        role_unassign(assignment=RoleAssignment.objects.get(user=manager), actor=None)

    assert allowed(pos, manager, "orders.refund", "nbo-1") is False


def test_a_code_removed_from_a_role_is_denied_on_the_very_next_check(pos, cashier, tenant_a_admin, tenant_a):
    with schema_context("acme"):
        role = role_create(name="Refunder", permissions=["orders.refund"], actor=tenant_a_admin)
        role_assign(user=cashier, role=role, branch=None, actor=None)
    assert allowed(pos, cashier, "orders.refund") is True
    with schema_context("acme"):
        role_update(role=role, permissions=[], actor=tenant_a_admin, tenant=tenant_a)

    assert allowed(pos, cashier, "orders.refund") is False


def test_a_new_assignment_is_allowed_on_the_very_next_check(pos, cashier):
    assert allowed(pos, cashier, "orders.refund", "msa-1") is False
    with schema_context("acme"):
        role_assign(
            user=cashier,
            role=Role.objects.get(name=MANAGER),
            branch=Branch.objects.get(external_id="msa-1"),
            actor=None,
        )

    assert allowed(pos, cashier, "orders.refund", "msa-1") is True


# --- false, never an error -------------------------------------------------------------------------


def test_a_deactivated_user_is_denied_on_the_very_next_check(pos, cashier, tenant_a_admin):
    assert allowed(pos, cashier, "orders.view") is True  # now cached
    with schema_context("acme"):
        user_deactivate(user=cashier, actor=tenant_a_admin)

    assert ask(pos, cashier, "orders.view") == {"allowed": False}


def test_an_unknown_user_and_a_deactivated_one_get_the_same_answer(pos, cashier):
    with schema_context("acme"):
        User.objects.filter(pk=cashier.pk).update(is_active=False)
    unknown = pos.post(CHECK, {"user": str(uuid.uuid4()), "permission": "orders.view"}, format="json")
    deactivated = pos.post(CHECK, {"user": str(cashier.pk), "permission": "orders.view"}, format="json")

    assert (unknown.status_code, unknown.content) == (deactivated.status_code, deactivated.content)
    assert unknown.json() == {"allowed": False}


def test_another_tenants_user_is_denied(pos, tenant_b_admin):
    assert ask(pos, tenant_b_admin, "orders.view") == {"allowed": False}


def test_a_token_of_an_active_session_answers_for_its_user(pos, cashier):
    access = login_tokens(HOST, "cashier@acme.example")["access"]

    response = pos.post(CHECK, {"token": access, "permission": "orders.create", "branch": "nbo-1"}, format="json")

    assert response.json() == {"allowed": True}


def test_a_token_of_an_ended_session_is_denied(pos, cashier):
    tokens = login_tokens(HOST, "cashier@acme.example")
    with schema_context("acme"):
        session_end(session=DeviceSession.objects.get(pk=tokens["session_id"]), reason="logout")

    response = pos.post(CHECK, {"token": tokens["access"], "permission": "orders.create"}, format="json")

    assert response.json() == {"allowed": False}


@pytest.mark.parametrize("raw", ["not-a-jwt", "a.b.c", "x" * 9000, "eyJhbGciOiJub25lIn0.e30."])
def test_a_malformed_token_is_denied(pos, tenant_a, raw):
    response = pos.post(CHECK, {"token": raw, "permission": "orders.view"}, format="json")

    assert response.status_code == 200 and response.json() == {"allowed": False}


def test_another_tenants_token_is_denied(pos, tenant_b_admin):
    access = login_tokens(OTHER_HOST, SHARED_ADMIN_EMAIL)["access"]

    response = pos.post(CHECK, {"token": access, "permission": "orders.view"}, format="json")

    assert response.json() == {"allowed": False}


def test_a_refresh_token_is_not_an_access_token_to_check(pos, tenant_a_admin):
    refresh = login_tokens(HOST, SHARED_ADMIN_EMAIL)["refresh"]

    assert pos.post(CHECK, {"token": refresh, "permission": "orders.view"}, format="json").json() == {"allowed": False}


# --- service clients: scope and branch restriction -------------------------------------------------


def test_a_service_token_without_the_check_scope_is_403_and_changes_nothing(tenant_a, cashier):
    introspector = bearer_client(HOST, service_token(*make_client(scopes=["oauth:introspect", "oauth:revoke"])))
    narrowed = bearer_client(
        HOST, service_token(*make_client(scopes=["authz:check", "oauth:introspect"]), scope="oauth:introspect")
    )
    before = snapshot()

    for client in (introspector, narrowed):
        body = {"user": str(cashier.pk), "permission": "orders.view"}
        assert_problem(client.post(CHECK, body, format="json"), 403, "permission_denied")
        assert_problem(client.post(BATCH, {"checks": [body]}, format="json"), 403, "permission_denied")
    assert snapshot() == before


def test_a_client_restricted_to_a_branch_gets_false_anywhere_else(nbo_pos, manager, tenant_a_admin):
    assert allowed(nbo_pos, manager, "orders.refund", "nbo-1") is True
    assert allowed(nbo_pos, tenant_a_admin, "orders.refund", "msa-1") is False
    assert allowed(nbo_pos, tenant_a_admin, "orders.refund") is False  # tenant-wide question
    assert allowed(nbo_pos, tenant_a_admin, "orders.refund", "nowhere") is False


def test_a_service_must_name_the_user_or_give_a_token(pos, cashier):
    before = snapshot()

    missing = pos.post(CHECK, {"permission": "orders.view"}, format="json")
    both = pos.post(CHECK, {"user": str(cashier.pk), "token": "x", "permission": "orders.view"}, format="json")

    assert "user" in assert_problem(missing, 400, "invalid_request")["errors"]
    assert "token" in assert_problem(both, 400, "invalid_request")["errors"]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"user": "not-a-uuid", "permission": "orders.view"}, "user"),
        ({"user": "{cashier}"}, "permission"),
        ({"user": "{cashier}", "permission": "x" * 101}, "permission"),
        ({"user": "{cashier}", "permission": "orders.view", "brnch": "nbo-1"}, "brnch"),
    ],
)
def test_a_malformed_check_is_400_with_field_errors(pos, cashier, body, field):
    body = {k: v.format(cashier=cashier.pk) for k, v in body.items()}

    assert field in assert_problem(pos.post(CHECK, body, format="json"), 400, "invalid_request")["errors"]


def test_an_anonymous_caller_is_401(tenant_a, cashier):
    body = {"user": str(cashier.pk), "permission": "orders.view"}

    assert_problem(client_for_host(HOST).post(CHECK, body, format="json"), 401, "not_authenticated")
    assert_problem(client_for_host(HOST).post(BATCH, {"checks": [body]}, format="json"), 401, "not_authenticated")


def test_a_revoked_clients_token_is_refused_at_once(tenant_a, cashier):
    client_id, secret = make_client()
    pos = bearer_client(HOST, service_token(client_id, secret))
    assert allowed(pos, cashier, "orders.view") is True
    from rbac.models import ServiceClient
    from rbac.service_clients import service_client_revoke

    with schema_context("acme"):
        service_client_revoke(client=ServiceClient.objects.get(client_id=client_id), actor=None)

    response = pos.post(CHECK, {"user": str(cashier.pk), "permission": "orders.view"}, format="json")
    assert_problem(response, 401, "invalid_token")


# --- a user asking with their own token ------------------------------------------------------------


def test_a_user_asks_about_themselves_by_default(cashier):
    me = bearer_client(HOST, login_tokens(HOST, "cashier@acme.example")["access"])

    assert me.post(CHECK, {"permission": "orders.create"}, format="json").json() == {"allowed": True}
    assert me.post(CHECK, {"user": str(cashier.pk), "permission": "orders.refund"}, format="json").json() == {
        "allowed": False
    }
    assert me.post(BATCH, {"checks": [{"permission": "menu.view"}]}, format="json").json() == {"results": [True]}


def test_a_user_without_users_view_may_not_ask_about_anyone_else(cashier, tenant_a_admin):
    tokens = login_tokens(HOST, "cashier@acme.example")
    me = bearer_client(HOST, tokens["access"])
    admin_access = login_tokens(HOST, SHARED_ADMIN_EMAIL)["access"]
    before = snapshot()

    for body in (
        {"user": str(tenant_a_admin.pk), "permission": "orders.view"},
        {"user": str(uuid.uuid4()), "permission": "orders.view"},
        {"token": admin_access, "permission": "orders.view"},
        {"token": "garbage", "permission": "orders.view"},
    ):
        assert_problem(me.post(CHECK, body, format="json"), 403, "permission_denied")
    batch = {"checks": [{"permission": "orders.view"}, {"user": str(tenant_a_admin.pk), "permission": "orders.view"}]}
    assert_problem(me.post(BATCH, batch, format="json"), 403, "permission_denied")
    assert me.post(CHECK, {"token": tokens["access"], "permission": "orders.view"}, format="json").json() == {
        "allowed": True
    }
    assert snapshot() == before


def test_a_user_with_users_view_may_ask_about_others(cashier, tenant_a_admin):
    admin = bearer_client(HOST, login_tokens(HOST, SHARED_ADMIN_EMAIL)["access"])

    assert admin.post(CHECK, {"user": str(cashier.pk), "permission": "orders.create"}, format="json").json() == {
        "allowed": True
    }


def test_users_view_at_a_branch_only_is_not_enough_to_ask_about_others(manager, cashier):
    me = bearer_client(HOST, login_tokens(HOST, "manager@acme.example")["access"])

    response = me.post(CHECK, {"user": str(cashier.pk), "permission": "orders.view"}, format="json")

    assert_problem(response, 403, "permission_denied")


# --- the batch -------------------------------------------------------------------------------------


def test_a_batch_answers_in_order_and_names_unknown_codes_by_index(pos, cashier, manager, tenant_b_admin):
    checks = [
        {"user": str(cashier.pk), "permission": "orders.create"},
        {"user": str(manager.pk), "permission": "orders.refund", "branch": "msa-1"},
        {"user": str(manager.pk), "permission": "orders.refund", "branch": "nbo-1"},
        {"user": str(cashier.pk), "permission": "orders.teleport"},
        {"user": str(tenant_b_admin.pk), "permission": "orders.view"},
        {"user": str(cashier.pk), "permission": "menu.view", "branch": "nbo-1"},
    ]

    response = pos.post(BATCH, {"checks": checks}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {
        "results": [True, False, True, False, False, True],
        "unknown_permissions": {"3": "orders.teleport"},
    }


def test_a_batch_of_100_is_answered(pos, cashier, manager):
    checks = [
        {"user": str((cashier, manager)[i % 2].pk), "permission": ("orders.create", "orders.refund")[i % 2]}
        for i in range(100)
    ]

    response = pos.post(BATCH, {"checks": checks}, format="json")

    assert response.status_code == 200
    assert response.json()["results"] == [i % 2 == 0 for i in range(100)]


@pytest.mark.parametrize("size", [0, 101, 1000])
def test_an_empty_or_oversized_batch_is_400_and_changes_nothing(pos, cashier, size):
    before = snapshot()
    checks = [{"user": str(cashier.pk), "permission": "orders.view"}] * size

    problem = assert_problem(pos.post(BATCH, {"checks": checks}, format="json"), 400, "invalid_request")

    assert "checks" in problem["errors"]
    assert snapshot() == before


@pytest.mark.parametrize("body", [{}, {"checks": "orders.view"}, {"checks": [{"user": "x"}]}, {"checks": ["x"]}])
def test_a_malformed_batch_is_400_with_field_errors(pos, tenant_a, body):
    problem = assert_problem(pos.post(BATCH, body, format="json"), 400, "invalid_request")

    assert any(field.startswith("checks") for field in problem["errors"])


def test_a_malformed_item_is_named_by_its_index(pos, cashier):
    checks = [{"user": str(cashier.pk), "permission": "orders.view"}, {"user": str(cashier.pk)}]

    problem = assert_problem(pos.post(BATCH, {"checks": checks}, format="json"), 400, "invalid_request")

    assert "checks.1.permission" in problem["errors"]


def test_a_restricted_client_gets_false_per_item_for_other_branches(nbo_pos, manager):
    checks = [
        {"user": str(manager.pk), "permission": "orders.refund", "branch": "nbo-1"},
        {"user": str(manager.pk), "permission": "orders.refund", "branch": "msa-1"},
        {"user": str(manager.pk), "permission": "orders.refund"},
    ]

    assert nbo_pos.post(BATCH, {"checks": checks}, format="json").json() == {"results": [True, False, False]}


def test_a_batch_mixes_users_and_tokens(pos, cashier, manager):
    tokens = login_tokens(HOST, "cashier@acme.example")
    checks = [
        {"token": tokens["access"], "permission": "orders.create"},
        {"token": tokens["access"], "permission": "orders.refund"},
        {"user": str(manager.pk), "permission": "orders.refund", "branch": "nbo-1"},
        {"token": "garbage", "permission": "orders.view"},
    ]

    assert pos.post(BATCH, {"checks": checks}, format="json").json() == {"results": [True, False, True, False]}


# --- cost --------------------------------------------------------------------------------------------


def test_once_warm_a_batch_makes_no_query_and_one_cache_read_for_all_users(cashier, manager, auditor):
    checks = [
        Check(user=user.pk, permission="orders.view", branch="nbo-1")
        for _ in range(25)
        for user in (cashier, manager, auditor, User(pk=uuid.uuid4()))
    ]
    with schema_context("acme"):
        cold = authz_check(checks=checks, client=service_client_access(make_client()[0]))
        with CaptureQueriesContext(connection) as queries:
            warm = authz_check(checks=checks, client=None)

    assert [r.allowed for r in warm] == [r.allowed for r in cold] == [True, True, True, False] * 25
    assert len(queries) == 0


def test_a_cold_batch_of_many_users_costs_a_fixed_number_of_queries(branches):
    users = [acme_user(f"u{n}@acme.example", (EMPLOYEE, None)) for n in range(30)]
    cache.clear()
    checks = [Check(user=user.pk, permission="orders.create") for user in users]
    with schema_context("acme"), CaptureQueriesContext(connection) as queries:
        results = authz_check(checks=checks, client=None)

    assert all(r.allowed for r in results)
    # The catalog (codes, branches), then active users, tenant-wide codes and branch grants:
    # however many users (django-tenants adds a SET search_path before each).
    assert len([q for q in queries if not q["sql"].startswith("SET ")]) == 5


def test_the_bulk_computation_agrees_with_the_selector_and_shares_its_cache(cashier, manager, auditor, tenant_a_admin):
    users = [cashier.pk, manager.pk, auditor.pk, tenant_a_admin.pk, uuid.uuid4()]
    with schema_context("acme"):
        User.objects.filter(pk=auditor.pk).update(is_active=False)
        many = effective_permissions_compute_many(users)
        assert many == {user_id: effective_permissions_compute(user_id) for user_id in users}
        authz_check(checks=[Check(user=u, permission="orders.view") for u in users], client=None)
        with CaptureQueriesContext(connection) as queries:
            assert [effective_permissions(u) for u in users] == [many[u] for u in users]
    assert len(queries) == 0  # the selector reads the entries the check API wrote


def test_checks_change_nothing(pos, cashier):
    before = snapshot()

    ask(pos, cashier, "orders.view")
    pos.post(BATCH, {"checks": [{"user": str(cashier.pk), "permission": "orders.view"}]}, format="json")

    assert snapshot() == before
    assert Perm.USERS_VIEW == "users.view"


def test_with_redis_down_checks_are_answered_from_the_database(pos, manager, monkeypatch):
    assert allowed(pos, manager, "orders.refund", "nbo-1") is True  # cached while Redis was up

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Redis is down")

    for method in ("get", "get_many", "set", "set_many", "add"):
        monkeypatch.setattr(cache, method, down)
    monkeypatch.setattr(cache.client, "get_client", down)  # type: ignore[attr-defined]  # the raw reads too (core.read_ahead)
    with schema_context("acme"):
        role_unassign(assignment=RoleAssignment.objects.get(user=manager), actor=None)

    assert allowed(pos, manager, "orders.refund", "nbo-1") is False
    assert allowed(pos, manager, "orders.refund", "nowhere") is False
