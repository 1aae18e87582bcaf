"""Service clients (/api/v1/service-clients/) and the client-credentials grant
(/api/v1/oauth/token/): the secret is shown once and stored only hashed, client
authentication by HTTP Basic or the body, scopes, revocation that refuses a client's tokens
at once (API.md "RBAC", "OAuth endpoints for services", "Conventions").

Every refusal asserts its status, its code and that nothing changed."""

import base64
import json
import logging
from datetime import timedelta
from typing import Any, cast
from urllib.parse import quote_plus

import jwt
import pytest
from django.contrib.auth.hashers import check_password, identify_hasher, make_password
from django.db import connection
from django_tenants.utils import schema_context, tenant_context
from rest_framework.test import APIClient

from identity.hashers import CLIENT_SECRET_HASHER
from identity.models import AuditEvent, User
from identity.tokens import IdpServiceToken
from rbac.catalog import AUDITOR, EMPLOYEE
from rbac.models import Branch, Role, ServiceClient
from rbac.service_clients import service_client_access, service_client_create, service_client_revoke
from rbac.services import role_assign
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, client_for_host, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import UserFactory

HOST = "acme.idp.test"
OTHER_HOST = "globex.idp.test"
CLIENTS = "/api/v1/service-clients/"
TOKEN = "/api/v1/oauth/token/"
CHECK = "/api/v1/authz/check/"


# --- helpers shared with test_authz_check ---------------------------------------------------------


def make_client(
    *, scopes: list[str] | None = None, branches: list[str] | None = None, schema: str = "acme", name: str = "POS"
) -> tuple[str, str]:
    """A service client made through the service (as the system); returns (client_id, secret)."""
    with schema_context(schema):
        created = service_client_create(name=name, scopes=scopes or ["authz:check"], branches=branches, actor=None)
        return created.client.client_id, created.client_secret


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()).decode()


def token_response(client_id: str, secret: str, host: str = HOST, **body: Any) -> Any:
    return APIClient(HTTP_HOST=host).post(
        TOKEN, {"grant_type": "client_credentials", **body}, HTTP_AUTHORIZATION=basic(client_id, secret)
    )


def service_token(client_id: str, secret: str, host: str = HOST, **body: Any) -> str:
    response = token_response(client_id, secret, host, **body)
    assert response.status_code == 200, response.content
    return str(response.json()["access_token"])


def acme_clients() -> list[tuple[str, bool]]:
    with schema_context("acme"):
        return list(ServiceClient.objects.order_by("pk").values_list("client_id", "is_active"))


def acme_event_count() -> int:
    with schema_context("acme"):
        return AuditEvent.objects.count()


def claims_of(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


# --- the cast ------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(tenant_a_admin_client: APIClient) -> APIClient:
    return tenant_a_admin_client


def _holder_client(role_name: str, email: str) -> APIClient:
    with schema_context("acme"):
        user = cast(User, UserFactory(email=email))
        role_assign(user=user, role=Role.objects.get(name=role_name), branch=None, actor=None)
    return bearer_client(HOST, login_tokens(HOST, email, device_id=f"till-{role_name}")["access"])


@pytest.fixture
def employee_client(tenant_a: Any) -> APIClient:
    return _holder_client(EMPLOYEE, "cashier@acme.example")


@pytest.fixture
def auditor_client(tenant_a: Any) -> APIClient:
    return _holder_client(AUDITOR, "auditor@acme.example")


@pytest.fixture
def branches(tenant_a: Any) -> list[Branch]:
    with schema_context("acme"):
        return [Branch.objects.create(external_id=f"nbo-{n}", name=f"Nairobi {n}") for n in (1, 2)]


@pytest.fixture
def pos(tenant_a: Any) -> tuple[str, str]:
    return make_client(scopes=["authz:check", "oauth:introspect"])


# --- creating, listing, reading --------------------------------------------------------------------


def test_an_admin_creates_a_client_and_sees_its_secret_only_in_the_creation_response(admin_client, branches):
    response = admin_client.post(
        CLIENTS, {"name": "Nairobi POS", "scopes": ["authz:check"], "branches": ["nbo-1"]}, format="json"
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "Nairobi POS" and body["scopes"] == ["authz:check"] and body["branches"] == ["nbo-1"]
    assert body["is_active"] is True and len(body["client_secret"]) >= 43 and body["client_id"]
    listed = admin_client.get(CLIENTS).json()["results"]
    read = admin_client.get(f"{CLIENTS}{body['client_id']}/").json()
    assert [c["client_id"] for c in listed] == [body["client_id"]]
    assert "client_secret" not in listed[0] and "client_secret" not in read
    assert body["client_secret"] not in json.dumps(listed) + json.dumps(read)


def test_the_secret_is_stored_only_as_a_salted_fast_hash_and_is_nowhere_in_the_database(admin_client):
    body = admin_client.post(CLIENTS, {"name": "Reports", "scopes": ["authz:check"]}, format="json").json()
    secret = body["client_secret"]

    with schema_context("acme"):
        client = ServiceClient.objects.get(client_id=body["client_id"])
        assert identify_hasher(client.secret_hash).algorithm == CLIENT_SECRET_HASHER
        assert check_password(secret, client.secret_hash)
        with connection.cursor() as cursor:
            for table in ("rbac_serviceclient", "identity_auditevent"):
                cursor.execute(f"SELECT row_to_json(t)::text FROM {table} t")  # noqa: S608  # fixed names
                assert not any(secret in row for (row,) in cursor.fetchall())
    assert client.branches.count() == 0 and body["branches"] is None  # not restricted


def test_the_client_secret_hasher_salts_and_never_becomes_the_default_for_passwords(tenant_a):
    first, second = (make_password("s3cret", hasher=CLIENT_SECRET_HASHER) for _ in range(2))

    assert first != second and first.startswith("client_secret_sha256$")
    assert check_password("s3cret", first) and not check_password("s3cret!", first)
    assert identify_hasher(make_password("a person's password")).algorithm != CLIENT_SECRET_HASHER


def test_creation_and_revocation_are_audited_without_the_secret(admin_client, tenant_a_admin):
    body = admin_client.post(CLIENTS, {"name": "POS", "scopes": ["authz:check"]}, format="json").json()
    admin_client.delete(f"{CLIENTS}{body['client_id']}/")

    with schema_context("acme"):
        events = list(AuditEvent.objects.filter(type__startswith="service_client.").order_by("id"))
    assert [e.type for e in events] == ["service_client.created", "service_client.revoked"]
    assert all(e.target_id == body["client_id"] and e.actor_id == tenant_a_admin.pk for e in events)
    assert events[0].data["scopes"] == ["authz:check"]
    assert body["client_secret"] not in json.dumps([e.data for e in events])


def test_an_auditor_lists_clients_but_cannot_create_or_revoke_them(auditor_client, pos):
    assert auditor_client.get(CLIENTS).status_code == 200
    before = (acme_clients(), acme_event_count())

    created = auditor_client.post(CLIENTS, {"name": "X", "scopes": ["authz:check"]}, format="json")
    revoked = auditor_client.delete(f"{CLIENTS}{pos[0]}/")

    assert_problem(created, 403, "permission_denied")
    assert_problem(revoked, 403, "permission_denied")
    assert (acme_clients(), acme_event_count()) == before


def test_an_employee_or_anonymous_caller_cannot_touch_clients(employee_client, pos):
    before = (acme_clients(), acme_event_count())

    assert_problem(employee_client.get(CLIENTS), 403, "permission_denied")
    assert_problem(employee_client.post(CLIENTS, {"name": "X", "scopes": ["authz:check"]}), 403, "permission_denied")
    assert_problem(
        client_for_host(HOST).post(CLIENTS, {"name": "X", "scopes": ["authz:check"]}), 401, "not_authenticated"
    )
    assert_problem(client_for_host(HOST).delete(f"{CLIENTS}{pos[0]}/"), 401, "not_authenticated")
    assert (acme_clients(), acme_event_count()) == before


def test_another_tenants_admin_cannot_see_or_revoke_this_tenants_clients(tenant_b_admin, pos):
    globex_admin = bearer_client(OTHER_HOST, login_tokens(OTHER_HOST, SHARED_ADMIN_EMAIL)["access"])

    assert globex_admin.get(CLIENTS).json()["results"] == []
    assert_problem(globex_admin.delete(f"{CLIENTS}{pos[0]}/"), 404, "not_found")
    assert acme_clients() == [(pos[0], True)]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X", "scopes": []}, "scopes"),
        ({"name": "X", "scopes": ["authz:everything"]}, "scopes.0"),
        ({"name": "X"}, "scopes"),
        ({"scopes": ["authz:check"]}, "name"),
        ({"name": "X", "scopes": ["authz:check"], "branches": ["nowhere"]}, "branches"),
        ({"name": "X", "scopes": ["authz:check"], "client_secret": "mine"}, "client_secret"),
    ],
)
def test_bad_client_definitions_answer_400_and_create_nothing(admin_client, branches, body, field):
    before = (acme_clients(), acme_event_count())

    problem = assert_problem(admin_client.post(CLIENTS, body, format="json"), 400, "invalid_request")

    assert field in problem["errors"]
    assert (acme_clients(), acme_event_count()) == before


def test_the_list_hides_revoked_clients_unless_asked(admin_client, pos):
    revoked, _ = make_client(name="Old")
    with schema_context("acme"):
        service_client_revoke(client=ServiceClient.objects.get(client_id=revoked), actor=None)

    active = admin_client.get(CLIENTS).json()["results"]
    every = admin_client.get(CLIENTS, {"include_revoked": "true"}).json()["results"]

    assert [c["client_id"] for c in active] == [pos[0]]
    assert {c["client_id"]: c["is_active"] for c in every} == {pos[0]: True, revoked: False}
    assert admin_client.get(f"{CLIENTS}{revoked}/").json()["revoked_at"] is not None


# --- the client-credentials grant -------------------------------------------------------------------


def test_client_secret_basic_gets_a_short_lived_service_token_with_the_clients_scopes(pos):
    response = token_response(*pos)

    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["scope"] == "authz:check oauth:introspect"
    claims = claims_of(body["access_token"])
    assert claims["sub"] == pos[0] and claims["token_type"] == "service" and claims["tid"] == "acme"
    assert claims["scope"] == body["scope"] and claims["aud"] == claims["iss"] == "http://acme.idp.test"
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]
    assert jwt.get_unverified_header(body["access_token"])["kid"]


@pytest.mark.parametrize("content", ["form", "json"])
def test_client_secret_post_works_form_encoded_and_as_json(pos, content):
    body = {"grant_type": "client_credentials", "client_id": pos[0], "client_secret": pos[1]}
    client = APIClient(HTTP_HOST=HOST)

    response = client.post(TOKEN, body) if content == "form" else client.post(TOKEN, body, format="json")

    assert response.status_code == 200, response.content
    assert claims_of(response.json()["access_token"])["sub"] == pos[0]


def test_a_scope_parameter_narrows_the_token(pos):
    body = token_response(*pos, scope="authz:check").json()

    assert body["scope"] == "authz:check" and claims_of(body["access_token"])["scope"] == "authz:check"


def test_a_scope_the_client_does_not_hold_is_400_invalid_request(pos):
    before = (acme_clients(), acme_event_count())

    problem = assert_problem(token_response(*pos, scope="authz:check oauth:revoke"), 400, "invalid_request")

    assert "scope" in problem["errors"]
    assert (acme_clients(), acme_event_count()) == before


def test_a_wrong_secret_an_unknown_client_and_a_revoked_client_answer_the_same_401(pos):
    revoked = make_client(name="Old")
    with schema_context("acme"):
        service_client_revoke(client=ServiceClient.objects.get(client_id=revoked[0]), actor=None)
    before = acme_event_count()

    answers = [
        assert_problem(token_response(pos[0], pos[1] + "x"), 401, "invalid_credentials"),
        assert_problem(token_response("no-such-client", pos[1]), 401, "invalid_credentials"),
        assert_problem(token_response(*revoked), 401, "invalid_credentials"),
    ]

    assert len({json.dumps(a, sort_keys=True) for a in answers}) == 1
    assert acme_event_count() == before


def test_a_client_revoked_after_a_grant_gets_no_further_token(pos):
    assert token_response(*pos).status_code == 200  # the pair is remembered now
    with schema_context("acme"):
        service_client_revoke(client=ServiceClient.objects.get(client_id=pos[0]), actor=None)
    before = acme_event_count()

    response = token_response(*pos)

    assert_problem(response, 401, "invalid_credentials")
    assert response["WWW-Authenticate"] == 'Basic realm="idp"'
    assert acme_event_count() == before


def test_a_wrong_secret_is_refused_after_the_right_one_was_granted_a_token(pos):
    assert token_response(*pos).status_code == 200
    before = acme_event_count()

    assert_problem(token_response(pos[0], pos[1] + "x"), 401, "invalid_credentials")
    assert acme_event_count() == before


def test_a_clients_credentials_do_not_work_at_another_tenant(pos, tenant_b):
    assert_problem(token_response(pos[0], pos[1], host=OTHER_HOST), 401, "invalid_credentials")


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer {user_access}", "Basic !!!not-base64", "Basic " + base64.b64encode(b"no-colon").decode()],
)
def test_missing_or_malformed_client_authentication_is_401(pos, tenant_a_admin, authorization):
    if authorization and "{user_access}" in authorization:
        authorization = authorization.format(user_access=login_tokens(HOST, SHARED_ADMIN_EMAIL)["access"])
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    response = APIClient(HTTP_HOST=HOST).post(TOKEN, {"grant_type": "client_credentials"}, **headers)

    expected = "invalid_credentials" if authorization and authorization.startswith("Basic") else "not_authenticated"
    assert_problem(response, 401, expected)
    assert response["WWW-Authenticate"] == 'Basic realm="idp"'
    assert acme_clients() == [(pos[0], True)]


@pytest.mark.parametrize("grant_type", [None, "password", "authorization_code", "refresh_token"])
def test_a_grant_type_other_than_client_credentials_is_400(pos, grant_type):
    body = {"grant_type": grant_type} if grant_type else {}

    before = (acme_clients(), acme_event_count())

    response = APIClient(HTTP_HOST=HOST).post(TOKEN, body, HTTP_AUTHORIZATION=basic(*pos))

    assert "grant_type" in assert_problem(response, 400, "invalid_request")["errors"]
    assert (acme_clients(), acme_event_count()) == before


def test_two_client_authentication_methods_at_once_are_400(pos):
    response = APIClient(HTTP_HOST=HOST).post(
        TOKEN,
        {"grant_type": "client_credentials", "client_id": pos[0], "client_secret": pos[1]},
        HTTP_AUTHORIZATION=basic(*pos),
    )

    assert "client_secret" in assert_problem(response, 400, "invalid_request")["errors"]


def test_a_service_token_is_not_a_users_bearer_token(pos):
    token = service_token(*pos)

    assert_problem(bearer_client(HOST, token).get("/api/v1/auth/whoami/"), 401, "invalid_token")


def test_a_service_token_of_another_tenant_is_refused_even_after_it_was_used_at_home(pos, tenant_b):
    other = make_client(schema="globex")
    token = service_token(*other, host=OTHER_HOST)
    body = {"user": str(User().pk), "permission": "orders.view"}
    assert bearer_client(OTHER_HOST, token).post(CHECK, body).json() == {"allowed": False}  # verified there

    response = bearer_client(HOST, token).post(CHECK, body)

    assert_problem(response, 401, "invalid_token")


def test_an_expired_or_tampered_service_token_is_refused(pos, tenant_a, tenant_a_admin):
    with tenant_context(tenant_a):
        expired = IdpServiceToken.for_client(client_id=pos[0], scopes=["authz:check"])
        expired.set_exp(lifetime=timedelta(minutes=-5))
    good = service_token(*pos)
    header, _, signature = good.split(".")
    claims = claims_of(good) | {"scope": "authz:check oauth:introspect oauth:revoke"}
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    body = {"user": str(tenant_a_admin.pk), "permission": "orders.view"}

    for token in (str(expired), f"{header}.{forged_payload}.{signature}"):
        assert_problem(bearer_client(HOST, token).post(CHECK, body), 401, "invalid_token")


# --- revocation ------------------------------------------------------------------------------------


def test_revoking_refuses_the_clients_existing_tokens_at_once_and_its_credentials(admin_client, pos, tenant_a_admin):
    token = service_token(*pos)
    check = {"user": str(tenant_a_admin.pk), "permission": "orders.refund"}
    assert bearer_client(HOST, token).post(CHECK, check).json() == {"allowed": True}  # the client state is cached

    response = admin_client.delete(f"{CLIENTS}{pos[0]}/")

    assert response.status_code == 204
    assert_problem(bearer_client(HOST, token).post(CHECK, check), 401, "invalid_token")
    assert_problem(token_response(*pos), 401, "invalid_credentials")
    with schema_context("acme"):
        client = ServiceClient.objects.get(client_id=pos[0])
        assert client.is_active is False and client.revoked_at is not None
        assert service_client_access(pos[0]) is None


def test_revoking_an_unknown_or_revoked_client_is_404_and_changes_nothing(admin_client, pos):
    assert admin_client.delete(f"{CLIENTS}{pos[0]}/").status_code == 204
    before = (acme_clients(), acme_event_count())

    assert_problem(admin_client.delete(f"{CLIENTS}{pos[0]}/"), 404, "not_found")
    assert_problem(admin_client.delete(f"{CLIENTS}no-such-client/"), 404, "not_found")
    assert (acme_clients(), acme_event_count()) == before


def test_the_client_state_falls_back_to_the_database_when_the_cache_is_empty(pos):
    with schema_context("acme"):
        assert service_client_access(pos[0]) is not None
        ServiceClient.objects.filter(client_id=pos[0]).update(is_active=False, revoked_at="2026-01-01T00:00:00Z")
        from django.core.cache import cache

        cache.clear()
        assert service_client_access(pos[0]) is None


def test_the_secret_reaches_no_log(admin_client, caplog):
    caplog.set_level(logging.DEBUG)

    body = admin_client.post(CLIENTS, {"name": "POS", "scopes": ["authz:check"]}, format="json").json()
    token_response(body["client_id"], body["client_secret"])
    token_response(body["client_id"], body["client_secret"] + "x")
    APIClient(HTTP_HOST=HOST).post(
        TOKEN, {"grant_type": "password", "client_id": body["client_id"], "client_secret": body["client_secret"]}
    )

    assert body["client_secret"] not in caplog.text
