"""The database backend (core.postgresql_backend): the connection's health check is the
request's `SET search_path`, so the first query of a request needs no second round trip."""

from django.test.utils import CaptureQueriesContext

from core.tenancy import tenant_connection
from identity.models import User

connection = tenant_connection()


def test_the_health_check_sets_the_tenants_search_path_and_the_first_query_needs_no_other(tenant_a):
    connection.set_tenant(tenant_a)
    try:
        connection.ensure_connection()

        assert connection.is_usable()

        assert connection.search_path_set_schemas == ["acme", "public"]
        with CaptureQueriesContext(connection) as queries:
            User.objects.filter(email="nobody@example.com").exists()
        assert [query["sql"] for query in queries.captured_queries if "search_path" in query["sql"]] == []
        with connection.connection.cursor() as cursor:  # the driver's: what the server has
            cursor.execute("SHOW search_path")
            assert cursor.fetchone() == ("acme, public",)
    finally:
        connection.set_schema_to_public()


def test_a_connection_that_fails_the_check_is_not_usable_and_its_search_path_is_forgotten(tenant_a):
    connection.set_tenant(tenant_a)
    try:
        connection.ensure_connection()
        connection.connection.close()  # as when the server went away

        assert connection.is_usable() is False
        assert connection.search_path_set_schemas is None
    finally:
        connection.close()  # Django reconnects at the next use
        connection.set_schema_to_public()
