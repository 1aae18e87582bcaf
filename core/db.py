"""PostgreSQL's statement timeout: set on every new connection, raised for long operations,
and recognised when it fires."""

from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.backends.signals import connection_created

# SQLSTATE 57014: query_canceled, what PostgreSQL raises when statement_timeout fires.
QUERY_CANCELED = "57014"
SET_STATEMENT_TIMEOUT = "SELECT set_config('statement_timeout', %s, false)"


def statement_timeout_set(milliseconds: int) -> None:
    """Set the connection's statement timeout for its session (0: no limit)."""
    with connection.cursor() as cursor:
        cursor.execute(SET_STATEMENT_TIMEOUT, [str(int(milliseconds))])


def statement_timeout_reset() -> None:
    """Back to DB_STATEMENT_TIMEOUT_MS. A connection that cannot take it (it broke while the
    long operation ran) is closed, so the next request opens a fresh one with the default."""
    try:
        statement_timeout_set(settings.DB_STATEMENT_TIMEOUT_MS)
    except DatabaseError:
        connection.close()


def is_query_timeout(exc: BaseException) -> bool:
    """True for the error Django raises when PostgreSQL cancelled a statement on timeout."""
    cause = exc.__cause__ if isinstance(exc, DatabaseError) else None
    return getattr(cause, "pgcode", None) == QUERY_CANCELED


def _set_default_statement_timeout(sender: Any, connection: Any, **kwargs: Any) -> None:
    # The driver's own cursor: this runs inside connect(), before django-tenants' search_path.
    with connection.connection.cursor() as cursor:
        cursor.execute(SET_STATEMENT_TIMEOUT, [str(settings.DB_STATEMENT_TIMEOUT_MS)])


def connect_signals() -> None:
    connection_created.connect(_set_default_statement_timeout, dispatch_uid="core.db.statement_timeout")
