"""CORS per tenant: an origin is allowed only on its own tenant's host, only for the API and
well-known documents, without credentials, and with the methods and headers listed."""

import pytest
from django.test import Client

from tenants.models import Tenant

ACME = "acme.idp.test"
ACME_ORIGIN = "https://pos.acme.example"
GLOBEX_ORIGIN = "https://pos.globex.example"


@pytest.fixture(autouse=True)
def allowlists(tenant_a: Tenant, tenant_b: Tenant) -> None:
    tenant_a.policy = {**tenant_a.policy, "cors_origins": [ACME_ORIGIN]}
    tenant_a.save()
    tenant_b.policy = {**tenant_b.policy, "cors_origins": [GLOBEX_ORIGIN]}
    tenant_b.save()


def preflight(host: str, origin: str, path: str = "/api/v1/auth/token/", method: str = "POST"):
    return Client(HTTP_HOST=host).options(
        path,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD=method,
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization, content-type",
    )


def simple_get(host: str, origin: str, path: str = "/api/v1/ping/"):
    return Client(HTTP_HOST=host).get(path, HTTP_ORIGIN=origin)


def test_a_preflight_from_the_tenants_allowed_origin_is_answered_with_the_restricted_lists():
    response = preflight(ACME, ACME_ORIGIN)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ACME_ORIGIN
    assert response["Access-Control-Allow-Methods"] == "GET, POST, PUT, PATCH, DELETE, OPTIONS"
    assert response["Access-Control-Allow-Headers"] == "accept, authorization, content-type, x-request-id"
    assert "Access-Control-Allow-Credentials" not in response


def test_a_simple_request_from_the_tenants_allowed_origin_gets_the_origin_and_the_exposed_headers():
    response = simple_get(ACME, ACME_ORIGIN)

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ACME_ORIGIN
    assert "X-Request-ID" in response["Access-Control-Expose-Headers"]
    assert "Retry-After" in response["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Credentials" not in response
    assert "origin" in response["Vary"].lower()


def test_the_jwks_document_is_readable_from_the_tenants_allowed_origin():
    response = simple_get(ACME, ACME_ORIGIN, "/.well-known/jwks.json")

    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ACME_ORIGIN


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        GLOBEX_ORIGIN,  # another tenant's allowed origin
        "http://pos.acme.example",  # the allowed host over another scheme
        "https://pos.acme.example:8443",  # ... or on another port
        "https://pos.acme.example.evil.example",
        "null",
    ],
)
def test_a_preflight_from_an_origin_not_on_this_tenants_list_gets_no_cors_headers(origin):
    response = preflight(ACME, origin)

    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Methods" not in response


@pytest.mark.parametrize("origin", ["https://evil.example", GLOBEX_ORIGIN])
def test_a_simple_request_from_an_origin_not_on_this_tenants_list_gets_no_cors_headers(origin):
    response = simple_get(ACME, origin)

    assert response.status_code == 200  # the browser, not the server, withholds the body
    assert "Access-Control-Allow-Origin" not in response


def test_the_other_tenant_allows_its_own_origin_on_its_own_host():
    response = preflight("globex.idp.test", GLOBEX_ORIGIN)

    assert response["Access-Control-Allow-Origin"] == GLOBEX_ORIGIN


def test_the_platform_host_answers_no_origin_with_cors_headers():
    for origin in (ACME_ORIGIN, GLOBEX_ORIGIN):
        assert "Access-Control-Allow-Origin" not in preflight("idp.test", origin)
        assert "Access-Control-Allow-Origin" not in simple_get("idp.test", origin, "/api/v1/platform/tenants/")


def test_the_admin_console_is_never_opened_to_another_origin():
    response = preflight(ACME, ACME_ORIGIN, path="/admin/login/")

    assert "Access-Control-Allow-Origin" not in response


def test_an_unknown_host_answers_no_cors_headers():
    response = preflight("nobody.example.org", ACME_ORIGIN)

    assert response.status_code == 404
    assert "Access-Control-Allow-Origin" not in response
