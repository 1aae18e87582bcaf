"""Platform operators log in on the public host and call the platform API with that token."""

import jwt
from rest_framework.test import APIClient

from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import TEST_PASSWORD

PUBLIC = "idp.test"


def test_an_operator_logs_in_on_the_public_host_and_uses_the_platform_api(operator):
    tokens = login_tokens(PUBLIC, operator.email, TEST_PASSWORD)

    response = bearer_client(PUBLIC, tokens["access"]).get("/api/v1/platform/tenants/")

    assert response.status_code == 200
    assert [tenant["slug"] for tenant in response.json()["results"]] == ["acme", "globex"]


def test_an_operators_token_is_worthless_on_a_tenant_host(operator, tenant_a):
    tokens = login_tokens(PUBLIC, operator.email, TEST_PASSWORD)

    assert_problem(bearer_client("acme.idp.test", tokens["access"]).get("/api/v1/auth/whoami/"), 401, "invalid_token")


def test_a_tenant_admins_token_is_worthless_on_the_public_host(tenant_a_admin):
    tokens = login_tokens("acme.idp.test", SHARED_ADMIN_EMAIL)

    response = bearer_client(PUBLIC, tokens["access"]).get("/api/v1/platform/tenants/")

    assert_problem(response, 401, "invalid_token")


def test_an_operator_refreshes_on_the_public_host_and_the_new_token_carries_no_roles(operator):
    tokens = login_tokens(PUBLIC, operator.email, TEST_PASSWORD)

    response = APIClient(HTTP_HOST=PUBLIC).post(
        "/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )

    assert response.status_code == 200, response.content
    assert jwt.decode(response.json()["access"], options={"verify_signature": False})["roles"] == []
    assert bearer_client(PUBLIC, response.json()["access"]).get("/api/v1/platform/tenants/").status_code == 200
