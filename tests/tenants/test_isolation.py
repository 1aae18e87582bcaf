"""A request on tenant A's host never sees or changes tenant B's rows."""

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.test import Client
from django_tenants.utils import schema_context

from identity.models import User
from tests.conftest import SHARED_ADMIN_EMAIL
from tests.factories import TEST_PASSWORD, UserFactory

USERS_ADMIN = "/admin/identity/user/"


def admin_client(host: str, schema: str, user: User) -> Client:
    client = Client(HTTP_HOST=host)
    with schema_context(schema):
        client.force_login(user)
    return client


@pytest.fixture
def acme_console(tenant_a, tenant_a_admin) -> Client:
    with schema_context("acme"):
        tenant_a_admin.user_permissions.add(Permission.objects.get(codename="view_user"))
        UserFactory(email="alice@acme.example")
    with schema_context("globex"):
        UserFactory(email="bob@globex.example")
    return admin_client("acme.idp.test", "acme", tenant_a_admin)


def test_tenant_console_lists_only_its_own_users(acme_console):
    response = acme_console.get(USERS_ADMIN)

    assert response.status_code == 200
    assert b"alice@acme.example" in response.content
    assert b"bob@globex.example" not in response.content


def test_searching_for_another_tenants_user_finds_nothing(acme_console):
    response = acme_console.get(USERS_ADMIN, {"q": "bob@globex.example"})

    assert response.status_code == 200
    assert response.context["cl"].result_count == 0  # the page echoes the query, so count rows


def test_a_session_from_tenant_a_is_unknown_at_tenant_b(acme_console):
    acme_console.defaults["HTTP_HOST"] = "globex.idp.test"

    response = acme_console.get(USERS_ADMIN)

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_same_email_in_two_tenants_is_two_accounts_with_their_own_passwords(tenant_a_admin, tenant_b_admin):
    with schema_context("globex"):
        tenant_b_admin.set_password("Globex-Only-Passw0rd!")
        tenant_b_admin.save()

    at_acme = Client(HTTP_HOST="acme.idp.test")
    refused = at_acme.post("/admin/login/", {"username": SHARED_ADMIN_EMAIL, "password": "Globex-Only-Passw0rd!"})
    accepted = at_acme.post("/admin/login/", {"username": SHARED_ADMIN_EMAIL, "password": TEST_PASSWORD})

    assert tenant_a_admin.pk != tenant_b_admin.pk
    assert refused.status_code == 200  # the form again, with an error
    assert accepted.status_code == 302


def test_tenant_console_never_shows_the_platforms_tables(tenant_a, tenant_a_admin):
    with schema_context("acme"):
        tenant_a_admin.is_superuser = True  # even a superuser of the tenant's own schema
        tenant_a_admin.save()
    console = admin_client("acme.idp.test", "acme", tenant_a_admin)

    index = console.get("/admin/")
    tenants = console.get("/admin/tenants/tenant/")
    plans = console.get("/admin/tenants/plan/")

    assert index.status_code == 200
    assert b"/admin/tenants/" not in index.content
    # The tenant console is another admin site: the platform's pages do not exist there.
    assert tenants.status_code == 404
    assert plans.status_code == 404


def test_cache_entries_are_tenant_prefixed(tenant_a, tenant_b):
    with schema_context("acme"):
        cache.set("greeting", "hello from acme")
    with schema_context("globex"):
        assert cache.get("greeting") is None
        cache.set("greeting", "hello from globex")
    with schema_context("acme"):
        assert cache.get("greeting") == "hello from acme"
