"""A database that cannot be reached is a 503 the client may retry, wherever it is met."""

import pytest
from django.db import InterfaceError, OperationalError, connection, transaction
from django.test import RequestFactory

from core.problems import problem_from_exception
from core.views import server_error


def test_a_lost_database_connection_in_a_view_is_a_503_problem_with_retry_after():
    for exc in (OperationalError("connection refused"), InterfaceError("connection already closed")):
        response = problem_from_exception(exc)

        assert response is not None
        assert response.status_code == 503
        assert response["Content-Type"] == "application/problem+json"
        assert response["Retry-After"] == "5"
        assert b"service_unavailable" in response.content
        assert b"connection refused" not in response.content  # nothing of the driver's message


def test_a_lost_database_connection_outside_a_view_is_a_503_and_any_other_error_a_500():
    request = RequestFactory().get("/api/v1/ping/")
    try:
        raise OperationalError("the tenant lookup failed")
    except OperationalError:
        unavailable = server_error(request)
    try:
        raise ValueError("a bug")
    except ValueError:
        failed = server_error(request)

    assert unavailable.status_code == 503
    assert failed.status_code == 500


@pytest.mark.django_db
def test_a_statement_cancelled_by_its_timeout_outside_a_view_is_a_503_query_timeout():
    request = RequestFactory().get("/api/v1/ping/")
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL statement_timeout = 50")
            cursor.execute("SELECT pg_sleep(2)")
    except OperationalError:
        response = server_error(request)

    assert response.status_code == 503
    assert b"query_timeout" in response.content
    assert "Retry-After" not in response  # not an outage: the query needs to change, not the time
