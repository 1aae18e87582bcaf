"""The admin console's login form goes through the same lockout and attempt records."""

import itertools

from django.test import Client
from django_tenants.utils import schema_context

from identity.models import LoginAttempt
from tests.conftest import SHARED_ADMIN_EMAIL
from tests.factories import TEST_PASSWORD

HOST = "acme.idp.test"
# A fresh address per attempt keeps the per-address login rate limit out of the lockout tests.
_addresses = (f"198.51.100.{n}" for n in itertools.count(1))


def console_login(password: str) -> int:
    client = Client(HTTP_HOST=HOST, REMOTE_ADDR=next(_addresses))
    response = client.post("/admin/login/", {"username": SHARED_ADMIN_EMAIL, "password": password})
    return response.status_code  # 302 into the console, 200 the form again with an error


def test_a_console_login_is_recorded_as_an_attempt(tenant_a_admin):
    assert console_login(TEST_PASSWORD) == 302

    with schema_context("acme"):
        attempt = LoginAttempt.objects.get(email=SHARED_ADMIN_EMAIL)
    assert attempt.success and attempt.device_id == "admin-console"


def test_the_console_refuses_a_locked_account_even_with_the_right_password(tenant_a_admin):
    for _ in range(5):
        assert console_login("Wrong-Passw0rd!") == 200

    assert console_login(TEST_PASSWORD) == 200  # locked: the form again

    with schema_context("acme"):
        assert LoginAttempt.objects.filter(email=SHARED_ADMIN_EMAIL).latest("id").reason == "locked"


def test_the_public_host_serves_the_reset_page_its_emails_link_to(operator):
    response = Client(HTTP_HOST="idp.test").get("/reset-password/", {"token": "x" * 43})

    assert response.status_code == 200
