"""Schemathesis against the service's own OpenAPI documents (drf-spectacular), through WSGI
in this process: every operation of a tenant host, anonymous and authenticated (acme's
admin; a service client for the service endpoints), and every operation of the public host.

Each response must be no 5xx, conform to the document (status, content type, headers,
body) and, where the document asks for authentication, refuse a request without it or with
an invalid one (schemathesis' `ignored_auth` check). Examples run inside the test's
transaction, so whatever the fuzzer creates is rolled back with it.

FUZZ_EXAMPLES bounds the examples per operation: a few, deterministic, in `make test`; many,
random, in `make fuzz`. docs/robustness.md says what is excluded and why.
"""

import base64
import os
from collections.abc import Iterable
from typing import Any

import jwt
import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django_tenants.utils import schema_context
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from config.wsgi import application
from rbac.service_clients import service_client_create
from sessions.state import session_is_active
from tenants.models import Tenant
from tenants.policy import policy_validate
from tests.conftest import SHARED_ADMIN_EMAIL, login_tokens

TENANT_HOST = "acme.idp.test"
PUBLIC_HOST = "idp.test"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
RANDOM = os.environ.get("FUZZ_RANDOM", "") == "1"

# Not run: positive_data_acceptance, because many schema-valid requests are refused for
# what a schema cannot say (an unknown token, a weak password, an email nobody has), and
# negative_data_rejection, because DRF reads JSON scalars leniently by design (0 as "0",
# 0 as false). Negative examples are still sent, and still held to every other check.
EXCLUDED_CHECKS = [positive_data_acceptance, negative_data_rejection]

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not RANDOM,  # CI: the same examples on every run, so a red run is a real find
    database=None,  # no .hypothesis/ directory in the checkout
    suppress_health_check=list(HealthCheck),
)


def openapi_document(urlconf: str) -> dict[str, Any]:
    """What /api/schema/ serves on that host (generated in-process from the URLconf), with
    request bodies sent as JSON wherever an operation takes JSON. Form and multipart
    encodings lose types (an empty list, an empty string and a missing field look alike on
    the wire), so schemathesis' negative checks would report what the encoding did, not
    what the API did; the JSON body of the same operation is fuzzed in their place."""
    document: dict[str, Any] = SchemaGenerator(urlconf=urlconf).get_schema(request=None, public=True)
    for operations in document["paths"].values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                operation["requestBody"]["content"] = {"application/json": content["application/json"]}
    return document


def in_the_tests_transaction(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """The project's WSGI application, minus Django's closing of the database connection at
    the start and end of each request: here that connection holds the test's transaction
    (Django's test client does the same, in django.test.client.ClientHandler)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        response = application(environ, start_response)
        try:
            return [b"".join(response)]
        finally:
            response.close()  # sends request_finished
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def loaded(urlconf: str) -> Any:
    schema = schemathesis.openapi.from_dict(openapi_document(urlconf))
    schema.app = in_the_tests_transaction
    return schema


anonymous_tenant = loaded("config.urls_tenant")
admin_tenant = loaded("config.urls_tenant")
SERVICE_PATHS = r"^/api/v1/(authz/check/|authz/check/batch/|oauth/introspect/|oauth/revoke/)$"
service_tenant = loaded("config.urls_tenant").include(path_regex=SERVICE_PATHS)
anonymous_public = loaded("config.urls_public")


class AdminBearer:
    """acme's admin, logged in through the token endpoint. The fuzzer may end that session
    (logout, revoke-all) or change the password: those operations stay in, and the admin
    logs in again whenever the session is no longer active."""

    token: str | None = None

    @classmethod
    def header(cls) -> dict[str, str]:
        with schema_context("acme"):
            alive = cls.token is not None and session_is_active(_claim(cls.token, "sid"))
        if not alive:
            cls.token = login_tokens(TENANT_HOST, SHARED_ADMIN_EMAIL)["access"]
        return {"Authorization": f"Bearer {cls.token}"}


def service_header(path: str) -> dict[str, str]:
    """A service client with every scope: its token (bearer) for the permission checks, its
    id and secret (client_secret_basic) for introspection and revocation."""
    with schema_context("acme"):
        created = service_client_create(
            name="Fuzz", scopes=["authz:check", "oauth:introspect", "oauth:revoke"], actor=None
        )
    basic = "Basic " + base64.b64encode(f"{created.client.client_id}:{created.client_secret}".encode()).decode()
    if path.startswith("/api/v1/oauth/"):
        return {"Authorization": basic}
    response = APIClient(HTTP_HOST=TENANT_HOST).post(
        "/api/v1/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic
    )
    assert response.status_code == 200, response.content
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def _claim(token: str, name: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})[name])


@pytest.fixture(autouse=True)
def _limits_out_of_the_way(db: None) -> None:
    """acme's rate limits raised inside the test's transaction: the fuzzer's (and the
    admin's re-login's) requests all come from one address, and a throttle answering in
    place of the endpoint would hide what the endpoint does."""
    AdminBearer.token = None
    tenant = Tenant.objects.get(schema_name="acme")
    policy = tenant.effective_policy
    policy["rate_limits"] = {scope: "100000/min" for scope in policy["rate_limits"]}
    tenant.policy = policy_validate(policy, max_devices_per_user=tenant.plan.max_devices_per_user)
    tenant.save(update_fields=["policy"])


@anonymous_tenant.parametrize()
@FUZZ_SETTINGS
def test_a_tenant_endpoint_called_anonymously_answers_within_its_schema(case):
    case.call_and_validate(base_url=f"http://{TENANT_HOST}", excluded_checks=EXCLUDED_CHECKS)


@admin_tenant.parametrize()
@FUZZ_SETTINGS
def test_a_tenant_endpoint_called_by_the_admin_answers_within_its_schema(case):
    # Passed to the call (not generated): schemathesis then knows the credentials are valid,
    # and its ignored_auth check repeats a successful call without them and with bad ones.
    case.call_and_validate(
        base_url=f"http://{TENANT_HOST}", headers=AdminBearer.header(), excluded_checks=EXCLUDED_CHECKS
    )


@service_tenant.parametrize()
@FUZZ_SETTINGS
def test_a_service_endpoint_called_by_a_service_client_answers_within_its_schema(case):
    case.call_and_validate(
        base_url=f"http://{TENANT_HOST}", headers=service_header(case.operation.path), excluded_checks=EXCLUDED_CHECKS
    )


@anonymous_public.parametrize()
@FUZZ_SETTINGS
def test_a_public_endpoint_answers_within_its_schema(case):
    case.call_and_validate(base_url=f"http://{PUBLIC_HOST}", excluded_checks=EXCLUDED_CHECKS)


# --- what the fuzzer found, kept as plain tests -----------------------------------------------


def test_a_client_id_with_a_nul_character_is_refused_as_invalid_credentials_not_a_server_error(tenant_a):
    body = {"token": "x", "client_id": "pos\x00", "client_secret": "secret"}
    for path in ("/api/v1/oauth/introspect/", "/api/v1/oauth/revoke/"):
        response = APIClient(HTTP_HOST=TENANT_HOST).post(path, body, format="json")

        assert response.status_code == 401, response.content
        assert response.json()["code"] == "invalid_credentials"
    basic = "Basic " + base64.b64encode(b"pos%00:secret").decode()
    token = APIClient(HTTP_HOST=TENANT_HOST).post(
        "/api/v1/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=basic
    )
    assert (token.status_code, token.json()["code"]) == (401, "invalid_credentials")


def test_an_unknown_api_path_answers_404_problem_json_to_any_method_without_a_csrf_page(tenant_a):
    client = APIClient(HTTP_HOST=TENANT_HOST, enforce_csrf_checks=True)  # as a real client meets it
    for method in ("post", "patch", "delete"):
        response = getattr(client, method)("/api/v1/branches/not,a,branch/", {}, format="json")

        assert response.status_code == 404
        assert response["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "not_found"


def test_a_page_size_that_is_not_a_positive_number_is_refused_and_a_large_one_capped(tenant_a_admin_client):
    for bad in ("null", "0", "-1", "1.5", "", "²"):
        response = tenant_a_admin_client.get("/api/v1/roles/", {"page_size": bad})

        assert response.status_code == 400, bad
        assert response.json()["code"] == "invalid_request"
        assert "page_size" in response.json()["errors"]
    assert tenant_a_admin_client.get("/api/v1/roles/", {"page_size": "100000"}).status_code == 200


def test_an_unsupported_method_at_a_client_authenticated_endpoint_is_405_before_its_credentials_are_read(tenant_a):
    response = APIClient(HTTP_HOST=TENANT_HOST).generic(
        "TRACE", "/api/v1/oauth/introspect/", "client_id=x&client_secret=y", "application/x-www-form-urlencoded"
    )

    assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")


def test_the_tenant_schema_documents_problem_responses_and_leaves_an_active_sessions_end_fields_optional():
    document = openapi_document("config.urls_tenant")
    login = document["paths"]["/api/v1/auth/token/"]["post"]["responses"]
    session = document["components"]["schemas"]["DeviceSession"]

    assert {"400", "401", "403", "404", "409", "413", "415", "423", "429", "503"} <= set(login)
    assert set(login["423"]["content"]) == {"application/problem+json"}
    assert "ended_at" not in session["required"] and "end_reason" not in session["required"]
