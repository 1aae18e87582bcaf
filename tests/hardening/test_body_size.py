"""The body-size limit holds for the admin console as for the API, and a chunked body (which
Django would read as empty) is refused rather than silently dropped."""

from django.test import Client
from django_tenants.utils import schema_context

from identity.models import LoginAttempt
from tests.conftest import SHARED_ADMIN_EMAIL
from tests.factories import TEST_PASSWORD

HOST = "acme.idp.test"
OVER_THE_LIMIT = str(3 * 1024 * 1024 + 1)


def attempts() -> int:
    with schema_context("acme"):
        return LoginAttempt.objects.count()


def test_an_admin_login_post_over_the_limit_answers_413_and_records_no_attempt(tenant_a_admin):
    before = attempts()

    response = Client(HTTP_HOST=HOST).post(
        "/admin/login/", {"username": SHARED_ADMIN_EMAIL, "password": TEST_PASSWORD}, CONTENT_LENGTH=OVER_THE_LIMIT
    )

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert attempts() == before


def test_a_chunked_login_body_answers_411_and_records_no_attempt(tenant_a_admin):
    before = attempts()

    response = Client(HTTP_HOST=HOST).post(
        "/api/v1/auth/token/",
        {"email": SHARED_ADMIN_EMAIL, "password": TEST_PASSWORD, "device_id": "pos-1"},
        content_type="application/json",
        HTTP_TRANSFER_ENCODING="chunked",
    )

    assert response.status_code == 411
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_request"
    assert attempts() == before


def test_a_chunked_admin_form_post_answers_411_and_records_no_attempt(tenant_a_admin):
    before = attempts()

    response = Client(HTTP_HOST=HOST).post(
        "/admin/login/", {"username": SHARED_ADMIN_EMAIL, "password": TEST_PASSWORD}, HTTP_TRANSFER_ENCODING="chunked"
    )

    assert response.status_code == 411
    assert attempts() == before
