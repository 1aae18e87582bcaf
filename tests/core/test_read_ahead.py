"""What a bearer token's authentication reads from Redis, read ahead in the tenant lookup's
round trip (core.read_ahead): used only in the schema the host resolves to, each value once,
nothing left for after the response."""

from typing import Any

import pytest
from django.core.cache import cache
from django.urls import reverse
from django_tenants.utils import schema_context
from redis.connection import AbstractConnection

from core import read_ahead
from sessions.selectors import INTROSPECTION_PATH
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, login_tokens
from tests.core.test_errors import assert_problem
from tests.rbac.test_service_clients import make_client, service_token
from tests.sessions.test_oauth import form_post

HOST = "acme.idp.test"
WHOAMI = "/api/v1/auth/whoami/"
CHECK = "/api/v1/authz/check/"


@pytest.fixture
def round_trips(monkeypatch) -> list[Any]:
    """Every command or pipeline sent to Redis, as it is sent."""
    sent: list[Any] = []
    real = AbstractConnection.send_packed_command

    def counted(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        real(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return sent


def test_a_key_read_ahead_is_the_key_the_cache_makes_in_that_schema(tenant_a):
    with schema_context("acme"):
        assert read_ahead.key_in_schema("acme", "device-session:1") == cache.make_key("device-session:1")


def test_a_warm_authenticated_request_makes_one_redis_round_trip(tenant_a, round_trips):
    client = bearer_client(HOST, login_tokens(HOST, SHARED_ADMIN_EMAIL)["access"])
    assert client.get(WHOAMI).status_code == 200  # fills the cache and claims the minute's marker
    round_trips.clear()

    assert client.get(WHOAMI).status_code == 200
    assert len(round_trips) == 1


def test_a_warm_check_by_a_service_makes_one_redis_round_trip(tenant_a_admin, round_trips):
    pos = bearer_client(HOST, service_token(*make_client(scopes=["authz:check"])))
    question = {"user": str(tenant_a_admin.pk), "permission": "orders.view"}
    assert pos.post(CHECK, question, format="json").json()["allowed"] is True
    round_trips.clear()

    assert pos.post(CHECK, question, format="json").json()["allowed"] is True
    assert len(round_trips) == 1


def test_a_warm_introspection_makes_one_redis_round_trip(tenant_a, tenant_a_admin, round_trips):
    client_id, secret = make_client(scopes=["oauth:introspect"])
    access = login_tokens(HOST, SHARED_ADMIN_EMAIL)["access"]

    def introspect() -> Any:
        return form_post(INTROSPECTION_PATH, {"token": access}, credentials=(client_id, secret))

    assert introspect().json()["active"] is True  # fills the caches; the process knows the host
    round_trips.clear()

    assert introspect().json()["active"] is True
    assert len(round_trips) == 1  # the tenant, the client's state, the session's state and user's row


def test_a_warm_client_credentials_grant_makes_one_redis_round_trip(tenant_a, round_trips):
    client_id, secret = make_client()
    service_token(client_id, secret)  # fills the caches; the process knows the host
    round_trips.clear()

    service_token(client_id, secret)
    assert len(round_trips) == 1  # the tenant, the address's block and the client's state


def test_the_introspection_reader_knows_the_introspection_path(tenant_a):
    with schema_context("acme"):
        assert reverse("oauth-introspect", urlconf="config.urls_tenant") == INTROSPECTION_PATH


def test_a_token_claiming_another_tenant_has_nothing_kept_for_this_one(tenant_a, tenant_b, monkeypatch):
    globex_token = login_tokens("globex.idp.test", SHARED_ADMIN_EMAIL)["access"]
    kept: list[Any] = []
    monkeypatch.setattr(read_ahead, "keep", kept.append)

    assert_problem(bearer_client(HOST, globex_token).get(WHOAMI), 401, "invalid_token")
    assert kept == []
    bearer_client("globex.idp.test", globex_token).get(WHOAMI)
    assert len(kept) == 1  # at its own tenant it is


def test_what_the_authentication_did_not_take_is_dropped_with_the_response(tenant_a):
    tokens = login_tokens(HOST, SHARED_ADMIN_EMAIL)
    keys = read_ahead.planned_for_token(tokens["access"])
    assert keys is not None

    # The ping authenticates no one: the values read ahead for the token are not taken.
    assert bearer_client(HOST, tokens["access"]).get("/api/v1/ping/").status_code == 200
    with schema_context("acme"):
        assert read_ahead.take(keys[1]) is None


def test_values_are_handed_out_once_only_when_every_key_was_read_and_only_in_their_schema(tenant_a):
    with schema_context("acme"):
        read_ahead.keep({read_ahead.key_in_schema("acme", key): value for key, value in (("a", 1), ("b", None))})
        assert read_ahead.take(["a", "c"]) is None  # "c" was not read ahead
        with schema_context("globex"):
            assert read_ahead.take(["a"]) is None  # another schema's keys
        assert read_ahead.take(["b", "a"]) == [None, 1]  # None: read, and missing
        assert read_ahead.take(["a"]) is None  # once
    read_ahead.drop()
