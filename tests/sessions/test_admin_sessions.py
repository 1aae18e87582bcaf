"""A user's sessions as their managers see them (/api/v1/users/<id>/sessions/...): listing,
reading and ending them (API.md "Users and employees"), who may (the admin, a manager for
the users of their branches, nobody for someone above them), and that an ending refuses the
session's tokens at once and is audited with its actor.

Every refusal asserts its status, its code and that nothing changed."""

import uuid
from typing import cast

import pytest
from django.urls import Resolver404, resolve
from django_tenants.utils import schema_context, tenant_context
from rest_framework.test import APIClient

from identity.models import AuditEvent, User
from rbac.catalog import ADMIN, EMPLOYEE, MANAGER
from rbac.models import Branch, Role
from rbac.services import branch_create, role_assign
from sessions.models import DeviceSession
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import UserFactory

HOST = "acme.idp.test"
OTHER_HOST = "globex.idp.test"
PUBLIC_HOST = "idp.test"
WHOAMI = "/api/v1/auth/whoami/"
REFRESH = "/api/v1/auth/token/refresh/"
BRANCH_A, BRANCH_B = "nairobi-1", "mombasa-1"
COOK_EMAIL = "cook@acme.example"


def sessions_url(user, session_id=None):
    user_id = user if isinstance(user, str) else str(user.pk)
    return f"/api/v1/users/{user_id}/sessions/" + (f"{session_id}/" if session_id else "")


# --- the cast ------------------------------------------------------------------------------------


def acme_person(email, role_name=None, role_branch=None, **fields):
    with schema_context("acme"):
        user = cast(User, UserFactory(email=email, **fields))
        if role_name:
            at = Branch.objects.get(external_id=role_branch) if role_branch else None
            role_assign(user=user, role=Role.objects.get(name=role_name), branch=at, actor=None)
        return user


@pytest.fixture
def branches(tenant_a, tenant_a_admin):
    with tenant_context(tenant_a):
        for external_id in (BRANCH_A, BRANCH_B):
            branch_create(tenant=tenant_a, external_id=external_id, name=external_id, actor=tenant_a_admin)


@pytest.fixture
def cook(branches):
    """An employee of branch A (the Employee role tenant-wide)."""
    return acme_person(COOK_EMAIL, EMPLOYEE, branch_id=BRANCH_A)


@pytest.fixture
def cook_tokens(cook):
    return login_tokens(HOST, COOK_EMAIL, device_id="till-cook")


@pytest.fixture
def manager_a(branches):
    return acme_person("manager.a@acme.example", MANAGER, BRANCH_A, branch_id=BRANCH_A)


@pytest.fixture
def manager_b(branches):
    return acme_person("manager.b@acme.example", MANAGER, BRANCH_B, branch_id=BRANCH_B)


@pytest.fixture
def barista(branches):
    """An employee of branch B."""
    return acme_person("barista@acme.example", EMPLOYEE, branch_id=BRANCH_B)


def client_of(email, host=HOST, device_id="desk-1"):
    return bearer_client(host, login_tokens(host, email, device_id=device_id)["access"])


@pytest.fixture
def admin_client(tenant_a_admin):
    return client_of(SHARED_ADMIN_EMAIL)


# Who calls, for the matrix: a name -> a client (None: anonymous).
def caller(name, request):
    if name == "admin":
        return client_of(SHARED_ADMIN_EMAIL)
    if name == "manager at the user's branch":
        request.getfixturevalue("manager_a")
        return client_of("manager.a@acme.example")
    if name == "manager at another branch":
        request.getfixturevalue("manager_b")
        return client_of("manager.b@acme.example")
    if name == "employee":
        request.getfixturevalue("barista")
        return client_of("barista@acme.example")
    if name == "another tenant's admin":
        request.getfixturevalue("tenant_b_admin")
        return bearer_client(HOST, login_tokens(OTHER_HOST, SHARED_ADMIN_EMAIL)["access"])
    assert name == "anonymous"
    return APIClient(HTTP_HOST=HOST)


def state_of(user):
    """What ending a session could change: the user's sessions and the tenant's audit trail."""
    with schema_context("acme"):
        sessions = sorted(
            DeviceSession.objects.filter(user_id=user.pk).values_list("id", "ended_at", "end_reason"), key=str
        )
        return sessions, AuditEvent.objects.count()


def acme_session(session_id):
    with schema_context("acme"):
        return DeviceSession.objects.get(pk=session_id)


# --- listing and reading ---------------------------------------------------------------------------


def test_an_admin_lists_a_users_active_sessions_and_include_ended_adds_the_ended_ones(tenant_a, cook, admin_client):
    tenant_a.policy = tenant_a.policy | {"sessions": {"max_sessions_per_user": 2, "on_limit": "terminate_oldest"}}
    tenant_a.save()
    first = login_tokens(HOST, COOK_EMAIL, device_id="till-1")
    second = login_tokens(HOST, COOK_EMAIL, device_id="till-2")
    third = login_tokens(HOST, COOK_EMAIL, device_id="till-3")  # ends till-1 (the oldest)

    active = admin_client.get(sessions_url(cook))
    everything = admin_client.get(sessions_url(cook), {"include_ended": "true"})

    assert active.status_code == 200, active.content
    assert [s["id"] for s in active.json()["results"]] == [third["session_id"], second["session_id"]]
    assert all("ended_at" not in s and s["current"] is False for s in active.json()["results"])
    listed = everything.json()["results"]
    assert [s["id"] for s in listed] == [third["session_id"], second["session_id"], first["session_id"]]
    assert listed[2]["end_reason"] == "new_device" and listed[2]["ended_at"]
    assert set(listed[0]) >= {"id", "device_id", "device_name", "device_type", "ip", "created_at", "last_active_at"}


def test_an_admin_reads_one_session_ended_or_not(cook, cook_tokens, admin_client):
    response = admin_client.get(sessions_url(cook, cook_tokens["session_id"]))

    assert response.status_code == 200, response.content
    assert response.json()["id"] == cook_tokens["session_id"]
    assert response.json()["device_id"] == "till-cook"


def test_the_callers_own_session_is_marked_current(tenant_a_admin):
    tokens = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="desk-9")

    response = bearer_client(HOST, tokens["access"]).get(sessions_url(tenant_a_admin))

    assert [(s["id"], s["current"]) for s in response.json()["results"]] == [(tokens["session_id"], True)]


# --- ending ----------------------------------------------------------------------------------------


def test_an_admins_termination_refuses_the_sessions_tokens_at_once_and_is_audited_with_its_actor(
    tenant_a_admin, cook, cook_tokens, admin_client
):
    assert bearer_client(HOST, cook_tokens["access"]).get(WHOAMI).status_code == 200

    response = admin_client.delete(sessions_url(cook, cook_tokens["session_id"]))

    assert response.status_code == 204, response.content
    assert response.content == b""
    assert_problem(bearer_client(HOST, cook_tokens["access"]).get(WHOAMI), 401, "session_ended")
    refresh = APIClient(HTTP_HOST=HOST).post(REFRESH, {"refresh": cook_tokens["refresh"]}, format="json")
    assert_problem(refresh, 401, "session_ended")
    assert acme_session(cook_tokens["session_id"]).end_reason == "admin"
    with schema_context("acme"):
        [event] = AuditEvent.objects.filter(type="session.ended", target_id=str(cook.pk))
    assert event.actor_id == tenant_a_admin.pk
    assert event.data == {"session_id": cook_tokens["session_id"], "reason": "admin", "device_id": "till-cook"}


def test_ending_one_session_leaves_the_users_other_sessions_alone(tenant_a, cook, admin_client):
    tenant_a.policy = tenant_a.policy | {"sessions": {"max_sessions_per_user": 2, "on_limit": "terminate_oldest"}}
    tenant_a.save()
    kept = login_tokens(HOST, COOK_EMAIL, device_id="till-1")
    ended = login_tokens(HOST, COOK_EMAIL, device_id="till-2")

    assert admin_client.delete(sessions_url(cook, ended["session_id"])).status_code == 204

    assert bearer_client(HOST, kept["access"]).get(WHOAMI).status_code == 200
    assert_problem(bearer_client(HOST, ended["access"]).get(WHOAMI), 401, "session_ended")


def test_ending_an_ended_session_again_is_404_and_changes_nothing(cook, cook_tokens, admin_client):
    assert admin_client.delete(sessions_url(cook, cook_tokens["session_id"])).status_code == 204
    before = state_of(cook)

    response = admin_client.delete(sessions_url(cook, cook_tokens["session_id"]))

    assert_problem(response, 404, "not_found")
    assert state_of(cook) == before


# --- who may: the matrix ---------------------------------------------------------------------------

CALLERS = [
    ("admin", 200, None),
    ("manager at the user's branch", 200, None),
    ("manager at another branch", 404, "not_found"),
    ("employee", 403, "permission_denied"),
    ("anonymous", 401, "not_authenticated"),
    ("another tenant's admin", 401, "invalid_token"),
]


@pytest.mark.parametrize(("who", "status", "code"), CALLERS, ids=[c[0] for c in CALLERS])
def test_who_may_list_a_users_sessions(who, status, code, request, cook, cook_tokens):
    client = caller(who, request)

    response = client.get(sessions_url(cook))

    if code is None:
        assert response.status_code == status, response.content
        assert [s["id"] for s in response.json()["results"]] == [cook_tokens["session_id"]]
    else:
        assert_problem(response, status, code)


@pytest.mark.parametrize(("who", "status", "code"), CALLERS, ids=[c[0] for c in CALLERS])
def test_who_may_read_one_of_a_users_sessions(who, status, code, request, cook, cook_tokens):
    response = caller(who, request).get(sessions_url(cook, cook_tokens["session_id"]))

    if code is None:
        assert response.status_code == status, response.content
    else:
        assert_problem(response, status, code)


@pytest.mark.parametrize(("who", "status", "code"), CALLERS, ids=[c[0] for c in CALLERS])
def test_who_may_end_a_users_session_and_a_refusal_changes_nothing(who, status, code, request, cook, cook_tokens):
    client = caller(who, request)
    before = state_of(cook)

    response = client.delete(sessions_url(cook, cook_tokens["session_id"]))

    if code is None:
        assert response.status_code == 204, response.content
        assert acme_session(cook_tokens["session_id"]).end_reason == "admin"
        assert_problem(bearer_client(HOST, cook_tokens["access"]).get(WHOAMI), 401, "session_ended")
    else:
        assert_problem(response, status, code)
        assert state_of(cook) == before
        assert bearer_client(HOST, cook_tokens["access"]).get(WHOAMI).status_code == 200


def test_a_managers_termination_is_audited_as_theirs(manager_a, cook, cook_tokens):
    client = client_of("manager.a@acme.example")

    assert client.delete(sessions_url(cook, cook_tokens["session_id"])).status_code == 204

    with schema_context("acme"):
        [event] = AuditEvent.objects.filter(type="session.ended", target_id=str(cook.pk))
    assert event.actor_id == manager_a.pk


def test_a_manager_does_not_find_users_without_a_branch(tenant_a_admin, manager_a):
    client = client_of("manager.a@acme.example")
    admin_session = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="desk-2")["session_id"]
    before = state_of(tenant_a_admin)

    assert_problem(client.get(sessions_url(tenant_a_admin)), 404, "not_found")
    assert_problem(client.delete(sessions_url(tenant_a_admin, admin_session)), 404, "not_found")
    assert state_of(tenant_a_admin) == before


def test_a_manager_cannot_end_a_session_of_an_admin_of_their_branch(manager_a):
    acme_person("branch.admin@acme.example", ADMIN, branch_id=BRANCH_A)
    target = login_tokens(HOST, "branch.admin@acme.example", device_id="desk-3")
    client = client_of("manager.a@acme.example")
    with schema_context("acme"):
        branch_admin = DeviceSession.objects.get(pk=target["session_id"]).user
    before = state_of(branch_admin)

    assert client.get(sessions_url(branch_admin)).status_code == 200  # seeing is allowed
    response = client.delete(sessions_url(branch_admin, target["session_id"]))

    body = assert_problem(response, 403, "privilege_escalation")
    assert "*" in body["not_held"]
    assert state_of(branch_admin) == before
    assert bearer_client(HOST, target["access"]).get(WHOAMI).status_code == 200


# --- ids that do not lead anywhere ------------------------------------------------------------------


BAD_PATHS = [
    ("get", "users/not-a-uuid/sessions/"),
    ("get", "users/{unknown}/sessions/"),
    *[
        (method, path)
        for method in ("get", "delete")
        for path in (
            "users/not-a-uuid/sessions/{cook_session}/",
            "users/{unknown}/sessions/{cook_session}/",
            "users/{cook}/sessions/not-a-uuid/",
            "users/{cook}/sessions/{unknown}/",
            "users/{cook}/sessions/{admins_session}/",  # another user's session under this user
            "users/{admin}/sessions/{cook_session}/",
        )
    ],
]


@pytest.mark.parametrize(("method", "path"), BAD_PATHS, ids=[f"{m} {p}" for m, p in BAD_PATHS])
def test_unknown_or_malformed_ids_are_404_and_change_nothing(
    method, path, cook, cook_tokens, tenant_a_admin, admin_client
):
    with schema_context("acme"):
        admins_session = DeviceSession.objects.filter(user_id=tenant_a_admin.pk, ended_at__isnull=True).get().pk
    url = "/api/v1/" + path.format(
        unknown=uuid.uuid4(),
        cook=cook.pk,
        admin=tenant_a_admin.pk,
        admins_session=admins_session,
        cook_session=cook_tokens["session_id"],
    )
    before = state_of(cook), state_of(tenant_a_admin)

    response = getattr(admin_client, method)(url)

    assert_problem(response, 404, "not_found")
    assert (state_of(cook), state_of(tenant_a_admin)) == before


# --- hosts -----------------------------------------------------------------------------------------


def test_the_endpoints_are_not_served_on_the_public_host(operator):
    client = client_of("operator@example.com", host=PUBLIC_HOST)

    assert_problem(client.get(sessions_url(operator)), 404, "not_found")
    assert_problem(client.delete(sessions_url(operator, uuid.uuid4())), 404, "not_found")


@pytest.mark.parametrize("urlconf", ["config.urls_tenant", "config.urls_public"])
def test_the_benchmarks_path_without_the_session_check_is_in_no_production_urlconf(urlconf):
    with pytest.raises(Resolver404):
        resolve("/bench/whoami-no-session-check/", urlconf=urlconf)
