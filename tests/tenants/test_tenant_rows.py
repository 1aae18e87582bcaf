"""The tenant of a request's host cached in Redis (tenants.tenant_rows): a warm request finds
it without a query, and every change of a tenant or a domain is seen on the very next request."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from tenants import services
from tenants.models import Domain, Tenant
from tenants.tenant_rows import ALL, TENANT_ROWS, tenant_for_host
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, login_tokens
from tests.core.test_errors import assert_problem

HOST = "acme.idp.test"
WHOAMI = "/api/v1/auth/whoami/"
PING = "/api/v1/ping/"


def queries_of(client, path: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200, response.content
    return [query["sql"] for query in captured.captured_queries]


def test_a_warm_request_finds_its_tenant_without_a_query(tenant_a):
    client = Client(HTTP_HOST=HOST)
    assert any('"tenants_tenant"' in sql for sql in queries_of(client, PING))  # the first fills the cache

    assert queries_of(client, PING) == []


def test_a_warm_authenticated_request_makes_no_query_at_all(tenant_a):
    client = bearer_client(HOST, login_tokens(HOST, SHARED_ADMIN_EMAIL)["access"])
    queries_of(client, WHOAMI)

    assert queries_of(client, WHOAMI) == []


def test_a_suspension_is_seen_by_the_very_next_request(tenant_a):
    client = Client(HTTP_HOST=HOST)
    client.get(PING)
    services.tenant_suspend(tenant=Tenant.objects.get(pk=tenant_a.pk))

    assert_problem(client.get(PING), 403, "tenant_inactive")


def test_a_removed_domain_is_not_served_from_the_next_request_on(tenant_a):
    Domain.objects.create(domain="pos.acme.example", tenant=tenant_a, is_primary=False)
    client = Client(HTTP_HOST="pos.acme.example")
    assert client.get(PING).status_code == 200

    Domain.objects.get(domain="pos.acme.example").delete()

    assert_problem(client.get(PING), 404, "tenant_not_found")


def test_a_policy_change_is_seen_by_the_very_next_request(tenant_a):
    origin = "https://pos.acme.example"
    client = Client(HTTP_HOST=HOST)
    assert "Access-Control-Allow-Origin" not in client.get(PING, HTTP_ORIGIN=origin)

    tenant_a.policy = {**tenant_a.policy, "cors_origins": [origin]}
    tenant_a.save()

    assert client.get(PING, HTTP_ORIGIN=origin)["Access-Control-Allow-Origin"] == origin


def test_a_row_read_before_a_change_is_not_used_after_it(tenant_a, django_capture_on_commit_callbacks):
    keys = TENANT_ROWS.keys(ALL, HOST)
    old_values = Tenant.objects.filter(pk=tenant_a.pk).values_list(*TENANT_ROWS.fields).get()
    assert tenant_for_host(HOST)[0] is not None
    before = cache.get(keys[0])
    with django_capture_on_commit_callbacks(execute=True):
        tenant_a.name = "Acme Restaurants"
        tenant_a.save()
        # Another process, before the commit: it takes the version standing now, reads the
        # row still committed (the old one) and remembers it under that version.
        taken = cache.get(keys[0])
        cache.set(keys[1], (taken, old_values))
    after = cache.get(keys[0])

    assert len({before, taken, after}) == 3  # replaced at the change and at its commit
    tenant = tenant_for_host(HOST)[0]
    assert tenant is not None
    assert tenant.name == "Acme Restaurants"


@pytest.mark.parametrize("schema", ["public", "acme"])
def test_a_change_made_in_any_schema_retires_the_rows_kept_in_public(tenant_a, schema):
    assert tenant_for_host(HOST)[0] is not None
    with schema_context(schema):
        tenant_a.name = f"Renamed in {schema}"
        tenant_a.save()

    tenant = tenant_for_host(HOST)[0]
    assert tenant is not None
    assert tenant.name == f"Renamed in {schema}"


def test_an_unknown_host_is_refused_and_not_remembered(tenant_a):
    assert_problem(Client(HTTP_HOST="nobody.idp.test").get(PING), 404, "tenant_not_found")

    assert cache.get(TENANT_ROWS.keys(ALL, "nobody.idp.test")[1]) is None
