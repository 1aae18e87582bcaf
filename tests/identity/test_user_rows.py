"""The user's row cached beside the session state (identity.user_rows): an authenticated
request reads it from Redis, and every change of the row is seen on the very next request."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context

from identity.models import User
from identity.user_rows import CACHED_FIELDS, user_row_get, user_row_keys
from rbac.models import Branch, Role
from rbac.services import branch_update, role_assign
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import TEST_PASSWORD, UserFactory

HOST = "acme.idp.test"
WHOAMI = "/api/v1/auth/whoami/"


@pytest.fixture
def employee(tenant_a):
    with schema_context("acme"):
        return UserFactory(email="cook@example.com", full_name="Cook")


@pytest.fixture
def client(employee):
    return bearer_client(HOST, login_tokens(HOST, "cook@example.com")["access"])


def row_as_cached(user_id):
    """The user as authentication reads them now: through the cache entries that stand."""
    keys = user_row_keys(user_id)
    found = cache.get_many(keys)
    user = user_row_get(user_id, [found.get(key) for key in keys])
    assert user is not None
    return user


def user_queries(client):
    with CaptureQueriesContext(connection) as captured:
        response = client.get(WHOAMI)
    assert response.status_code == 200, response.content
    return [q["sql"] for q in captured.captured_queries if '"identity_user"' in q["sql"]]


def test_a_warm_request_reads_the_user_from_the_cache_not_the_database(client):
    assert len(user_queries(client)) == 1  # the first fills the cache
    assert user_queries(client) == []


def test_a_saved_change_is_seen_by_the_very_next_request(client, employee):
    client.get(WHOAMI)
    with schema_context("acme"):
        employee.email = "chef@example.com"
        employee.save()

    assert client.get(WHOAMI).json()["email"] == "chef@example.com"


def test_a_user_deactivated_by_a_plain_save_is_refused_at_once(client, employee):
    client.get(WHOAMI)
    with schema_context("acme"):
        employee.is_active = False
        employee.save(update_fields=["is_active"])

    assert_problem(client.get(WHOAMI), 403, "account_disabled")


def test_a_forced_password_change_set_after_the_row_was_cached_is_enforced(client, employee):
    client.get(WHOAMI)
    with schema_context("acme"):
        employee.must_change_password = True
        employee.save(update_fields=["must_change_password"])

    assert client.get(WHOAMI).json()["must_change_password"] is True
    assert_problem(client.get("/api/v1/users/"), 403, "password_change_required")


def test_the_admin_flag_written_by_a_queryset_update_retires_the_cached_row(client, employee):
    client.get(WHOAMI)
    with schema_context("acme"):
        role_assign(user=employee, role=Role.objects.get(name="Admin"), branch=None, actor=None)

        assert row_as_cached(employee.pk).is_tenant_admin


def test_a_branch_rename_retires_the_cached_rows_of_the_users_it_moves(client, employee):
    with schema_context("acme"):
        admin = User.objects.get(email=SHARED_ADMIN_EMAIL)
        branch = Branch.objects.create(external_id="nairobi-1", name="Nairobi")
        employee.branch_id = "nairobi-1"
        employee.save()
    client.get(WHOAMI)
    with schema_context("acme"):
        branch_update(branch=branch, actor=admin, external_id="nairobi-01")

        assert row_as_cached(employee.pk).branch_id == "nairobi-01"


def test_a_row_read_before_a_change_is_not_used_after_it(employee, django_capture_on_commit_callbacks):
    with schema_context("acme"):
        keys = user_row_keys(employee.pk)
        old_values = User.objects.filter(pk=employee.pk).values_list(*CACHED_FIELDS).get()
        user_row_get(employee.pk, [None, None])
        before = cache.get(keys[0])
        with django_capture_on_commit_callbacks(execute=True):
            employee.full_name = "Head Cook"
            employee.save()
            # Another process, before the commit: it takes the version standing now, reads
            # the row still committed (the old one) and remembers it under that version.
            taken = cache.get(keys[0])
            cache.set(keys[1], (taken, old_values))
        after = cache.get_many(keys)

        assert len({before, taken, after[keys[0]]}) == 3  # replaced at the change and at its commit
        assert row_as_cached(employee.pk).full_name == "Head Cook"


def test_the_password_hash_is_never_cached_and_is_read_when_asked_for(client, employee):
    client.get(WHOAMI)
    with schema_context("acme"):
        keys = user_row_keys(employee.pk)
        cached = cache.get_many(keys)
        version, values = cached[keys[1]]

        assert "password" not in CACHED_FIELDS
        assert len(values) == len(CACHED_FIELDS)
        assert not any(isinstance(v, str) and v.startswith("argon2") for v in values)
        user = user_row_get(employee.pk, [version, (version, values)])
        assert user is not None
        assert user.get_deferred_fields() == {"password"}
        assert user.check_password(TEST_PASSWORD)


def test_a_deleted_user_is_not_found_though_it_was_cached(client, employee):
    client.get(WHOAMI)
    with schema_context("acme"):
        employee.delete()

    # The session's state is still cached as active; the user row is what refuses.
    assert_problem(client.get(WHOAMI), 401, "invalid_token")
    with schema_context("acme"):
        keys = user_row_keys(employee.pk)
        cached = cache.get_many(keys)
        assert user_row_get(employee.pk, [cached.get(key) for key in keys]) is None
