"""The rows of a refresh-token family (its session, simplejwt's outstanding and blacklisted
tokens), read and written in SQL of their own on the refresh path.

A refresh is a transaction of a handful of statements under a row lock, made hundreds of
times a second. Through the ORM each statement cost 0.4 to 1 ms of the worker's CPU to build
(docs/performance.md), more than PostgreSQL took to run it, and seven of them made a refresh
cost five pings. Here the statements are written once, from the models' own table and column
names, and a refresh makes three: the session locked and read with its user and their role
names; the presented token consumed (blacklisted) if, and only if, it had not been; the next
token recorded and the session pointed at it. The rows are simplejwt's and the models' own,
so everything else (introspection, logout, the admin's views) reads them through the ORM.
"""

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from core.tenancy import current_schema
from identity.models import User
from sessions.models import DeviceSession

# Every statement below is built from the models' table and column names (quoted), never from
# input; every value is a parameter.


@cache
def _columns(model: Any) -> list[str]:
    return [field.column for field in model._meta.concrete_fields]


@cache
def _attnames(model: Any) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def _table(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@cache
def _lock_sql(with_roles: bool) -> str:
    from rbac.models import Role, RoleAssignment

    session = ", ".join(f"s.{connection.ops.quote_name(c)}" for c in _columns(DeviceSession))
    user = ", ".join(f"u.{connection.ops.quote_name(c)}" for c in _columns(User))
    roles = (
        f"ARRAY(SELECT DISTINCT r.name FROM {_table(RoleAssignment)} a JOIN {_table(Role)} r ON r.id = a.role_id "  # noqa: S608
        "WHERE a.user_id = s.user_id)"  # names from the models; values are parameters
        if with_roles
        else "ARRAY[]::varchar[]"  # the public schema has no roles (rbac.selectors.user_role_names)
    )
    return (
        f"SELECT {session}, {user}, {roles} FROM {_table(DeviceSession)} s "  # noqa: S608
        f"JOIN {_table(User)} u ON u.id = s.user_id WHERE s.id = %s FOR UPDATE OF s"  # as above
    )


@dataclass(frozen=True)
class LockedSession:
    session: DeviceSession
    user: User
    role_names: list[str]  # sorted, for the access token's `roles`


def session_lock(session_id: Any) -> LockedSession | None:
    """The session `session_id`, locked FOR UPDATE until the transaction ends, with its user
    and the user's role names; None when there is no such session."""
    with connection.cursor() as cursor:
        cursor.execute(_lock_sql(current_schema() != "public"), [session_id])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(_columns(DeviceSession))
    session = DeviceSession.from_db(connection.alias, _attnames(DeviceSession), row[:split])
    user = User.from_db(connection.alias, _attnames(User), row[split:-1])
    session.user = user
    return LockedSession(session=session, user=user, role_names=sorted(row[-1]))


@cache
def _consume_sql() -> str:
    return (
        f"INSERT INTO {_table(BlacklistedToken)} (token_id, blacklisted_at) "  # noqa: S608
        f"SELECT id, %s FROM {_table(OutstandingToken)} WHERE jti = %s "
        "ON CONFLICT (token_id) DO NOTHING RETURNING token_id"  # as above
    )


def refresh_consume(*, jti_hash: str, now: datetime) -> bool | None:
    """Blacklist the refresh token `jti_hash` unless it is already: True when this call did
    (the token was fresh), False when it had been used, None when it is not known. Call
    with its session locked (session_lock), in a statement of its own after the lock: it
    then sees a rotation that committed while the lock was awaited."""
    with connection.cursor() as cursor:
        cursor.execute(_consume_sql(), [now, jti_hash])
        if cursor.fetchone() is not None:
            return True
        cursor.execute(f"SELECT 1 FROM {_table(OutstandingToken)} WHERE jti = %s", [jti_hash])  # noqa: S608
        return False if cursor.fetchone() is not None else None


@cache
def _record_sql() -> str:
    return (
        f"WITH issued AS (INSERT INTO {_table(OutstandingToken)} (user_id, jti, token, created_at, expires_at) "  # noqa: S608
        "VALUES (%s, %s, '', %s, %s) RETURNING id) "
        f"UPDATE {_table(DeviceSession)} SET refresh_jti_hash = %s, last_active_at = %s WHERE id = %s"
    )


def refresh_record(*, session: DeviceSession, jti_hash: str, expires_at: datetime, now: datetime) -> None:
    """The next refresh token of the family: recorded as outstanding (its hashed id only:
    the token is a secret), and made the one the session accepts next; the session's last
    activity is `now`. One statement."""
    with connection.cursor() as cursor:
        cursor.execute(_record_sql(), [session.user_id, jti_hash, now, expires_at, jti_hash, now, session.pk])
    session.refresh_jti_hash, session.last_active_at = jti_hash, now
