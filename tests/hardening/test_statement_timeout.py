"""PostgreSQL's statement timeout: on every connection, a clean 503 `query_timeout` when it
fires (API and admin), and raised for the views listed as long-running and for streaming
responses while they stream."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest
from django.core.signals import request_finished
from django.db import OperationalError, close_old_connections, connection, transaction
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.test import Client, RequestFactory
from django_tenants.utils import schema_context

from core.middleware import StatementTimeoutMiddleware
from identity.models import User
from tenants.models import Tenant
from tests.concurrency import on_own_connection
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, login_tokens

# The committed tenant: its admin logs in on another connection, so the test's own
# transaction holds no lock on its tables when another connection locks them.
HOST = "racing.idp.test"
USERS_TABLE = "racing.identity_user"
SHORT_MS = 300


def current_timeout() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


@contextmanager
def short_statement_timeout(settings) -> Iterator[None]:
    """The default lowered to SHORT_MS on this connection, inside a savepoint rolled back at
    the end: a cancelled statement leaves the test's transaction usable again."""
    settings.DB_STATEMENT_TIMEOUT_MS = SHORT_MS
    savepoint = transaction.savepoint()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = %s", [SHORT_MS])
        yield
    finally:
        transaction.savepoint_rollback(savepoint)


@contextmanager
def table_locked(table: str, release_after: float | None = None) -> Iterator[None]:
    """Another connection holds an exclusive lock on `table`, so that any query on it waits:
    a slow query made on purpose. With `release_after`, the lock goes after that many seconds."""
    other = psycopg2.connect(**connection.get_connection_params())
    timer = threading.Timer(release_after, other.rollback) if release_after else None
    try:
        with other.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")  # a mistake in a test fails, never hangs
            cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        if timer:
            timer.start()
        yield
    finally:
        if timer:
            timer.join()
        other.rollback()
        other.close()


@pytest.fixture
def admin_client(committed_tenant: Tenant) -> Client:
    tokens = on_own_connection(lambda: login_tokens(HOST, SHARED_ADMIN_EMAIL))
    return bearer_client(HOST, tokens["access"])


@pytest.fixture
def console_client(committed_tenant: Tenant) -> Client:
    client = Client(HTTP_HOST=HOST)

    def log_in() -> None:
        with schema_context(committed_tenant.schema_name):
            client.force_login(User.objects.get(email=SHARED_ADMIN_EMAIL))

    on_own_connection(log_in)
    return client


def test_every_new_connection_starts_with_the_configured_statement_timeout(settings):
    settings.DB_STATEMENT_TIMEOUT_MS = 4000

    assert on_own_connection(current_timeout) == "4s"


def test_an_api_query_over_the_timeout_answers_503_query_timeout_without_internals(settings, admin_client):
    with short_statement_timeout(settings), table_locked(USERS_TABLE):
        response = admin_client.get("/api/v1/users/")

    body = response.json()
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert body["code"] == "query_timeout"
    assert "statement" not in body["detail"].lower() and "select" not in response.content.decode().lower()


def test_an_admin_console_query_over_the_timeout_answers_503_query_timeout(settings, console_client):
    with short_statement_timeout(settings), table_locked(USERS_TABLE):
        response = console_client.get("/admin/")

    assert response.status_code == 503
    assert response.json()["code"] == "query_timeout"


def test_a_view_listed_as_long_running_may_wait_past_the_default_timeout(settings, admin_client):
    settings.DB_LONG_RUNNING_VIEWS = ["user-list"]
    with short_statement_timeout(settings):
        with table_locked(USERS_TABLE, release_after=SHORT_MS * 3 / 1000):
            response = admin_client.get("/api/v1/users/")
        after = current_timeout()

    assert response.status_code == 200
    assert response.json()["results"][0]["email"] == SHARED_ADMIN_EMAIL
    assert after == f"{SHORT_MS}ms"  # the default again once the response is closed


def close_keeping_the_connection(response: HttpResponseBase) -> None:
    # What the WSGI server does at the end, minus Django's request_finished handler that
    # would close the test's connection (Django's test client disconnects it the same way).
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def slow_query() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [SHORT_MS * 2 / 1000])


def test_a_streaming_response_runs_its_queries_under_the_long_timeout_then_restores_the_default(settings):
    def rows() -> Iterator[bytes]:
        slow_query()
        yield b"row\n"

    middleware = StatementTimeoutMiddleware(lambda request: StreamingHttpResponse(rows()))
    with short_statement_timeout(settings):
        response = middleware(RequestFactory().get("/export/"))
        assert isinstance(response, StreamingHttpResponse)
        body = b"".join(response)
        close_keeping_the_connection(response)
        after = current_timeout()

    assert body == b"row\n"
    assert after == f"{SHORT_MS}ms"


def test_a_plain_response_keeps_the_default_timeout(settings):
    def view(request) -> HttpResponse:
        slow_query()
        return HttpResponse("done")

    middleware = StatementTimeoutMiddleware(view)
    with short_statement_timeout(settings), pytest.raises(OperationalError) as raised:
        middleware(RequestFactory().get("/report/"))

    assert getattr(raised.value.__cause__, "pgcode", None) == "57014"
