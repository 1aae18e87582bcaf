"""The rows of a refresh-token family (its session, simplejwt's outstanding and blacklisted
tokens), read and written in SQL of their own on the refresh path.

A refresh is a write under a row lock, made hundreds of times a second. Through the ORM each
statement cost 0.4 to 1 ms of the worker's CPU to build (docs/performance.md), more than
PostgreSQL took to run it, and seven of them made a refresh cost five pings. Here the
statements are written once, from the models' own table and column names, and a refresh
that succeeds makes one (refresh_rotate, prepared once per connection): the session locked
and read with its user and their role names and, when everything allows it, the presented
token consumed (blacklisted), the next one recorded and the session pointed at it. A refresh
that is refused runs it again in a transaction and learns why from the row it returns, still
locked, and at most one more statement (refresh_known). The rows are simplejwt's and the
models' own, so everything else (introspection, logout, the admin's views) reads them
through the ORM. Login records its first token with refresh_record.
"""

import weakref
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from django.db import connection
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from core.tenancy import current_schema
from identity.models import User
from sessions.models import DeviceSession
from tenants.policy import CLAIMABLE_PROFILE_FIELDS

# Every statement below is built from the models' table and column names (quoted), never from
# input; every value is a parameter.


def _table(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


# What a refresh reads of the session and the user: what its tokens carry, what the refusals
# check, and what ending the session needs. Instances are made with only these fields (the
# others would load on access, which no path of a refresh does).
_SESSION_READ = {"id", "user_id", "device_id", "expires_at", "ended_at", "refresh_jti_hash"}
_USER_READ = {"id", "email", "full_name", "is_active", *CLAIMABLE_PROFILE_FIELDS}


@cache
def _read(model: Any) -> tuple[str, ...]:
    """The attribute names read of `model`, in the order of its fields (Model.from_db's)."""
    wanted = _SESSION_READ if model is DeviceSession else _USER_READ
    return tuple(field.attname for field in model._meta.concrete_fields if field.attname in wanted)


def _column(model: Any, attname: str) -> str:
    return connection.ops.quote_name(next(f.column for f in model._meta.concrete_fields if f.attname == attname))


@cache
def _rotate_sql(with_roles: bool) -> str:
    """The rotation, with parameters $1 to $6: the session's id, the token's user id, the
    presented token's id hash, the next token's id hash, the next token's end, now."""
    from rbac.models import Role, RoleAssignment

    session_columns = ", ".join(f"s.{_column(DeviceSession, f)}" for f in _read(DeviceSession))
    user_columns = ", ".join(f"u.{_column(User, f)}" for f in _read(User))
    roles = (
        f"ARRAY(SELECT DISTINCT r.name FROM {_table(RoleAssignment)} a JOIN {_table(Role)} r ON r.id = a.role_id "  # noqa: S608
        "WHERE a.user_id = s.user_id)"  # names from the models; values are parameters
        if with_roles
        else "ARRAY[]::varchar[]"  # the public schema has no roles (rbac.selectors.user_role_names)
    )
    session, outstanding = _table(DeviceSession), _table(OutstandingToken)
    # `locked` is read first by every other part (they all select from it), so the lock is
    # taken before anything is written; ON CONFLICT sees a blacklisting that committed while
    # the lock was awaited, whatever the statement's snapshot. The next token is recorded only
    # if this statement consumed the presented one, and the session points at it only then.
    return (
        f"WITH locked AS MATERIALIZED (SELECT {session_columns}, {user_columns}, {roles} "  # noqa: S608
        f"FROM {session} s JOIN {_table(User)} u ON u.id = s.user_id WHERE s.id = $1 FOR UPDATE OF s), "
        f"consumed AS (INSERT INTO {_table(BlacklistedToken)} (token_id, blacklisted_at) "
        f"SELECT o.id, $6 FROM {outstanding} o, locked "
        f"WHERE o.jti = $3 AND locked.{_column(DeviceSession, 'user_id')} = $2 "
        f"AND locked.{_column(User, 'is_active')} AND locked.{_column(DeviceSession, 'ended_at')} IS NULL "
        f"AND locked.{_column(DeviceSession, 'expires_at')} > $6 "
        "ON CONFLICT (token_id) DO NOTHING RETURNING token_id), "
        f"issued AS (INSERT INTO {outstanding} (user_id, jti, token, created_at, expires_at) "
        f"SELECT $2, $4, '', $6, LEAST($5, locked.{_column(DeviceSession, 'expires_at')}) "
        "FROM locked WHERE EXISTS (SELECT 1 FROM consumed) RETURNING expires_at), "
        f"pointed AS (UPDATE {session} SET refresh_jti_hash = $4, last_active_at = $6 "
        "FROM issued WHERE id = $1 RETURNING issued.expires_at) "
        "SELECT locked.*, (SELECT expires_at FROM pointed) FROM locked"
    )


# The rotation is prepared once per database connection (PREPARE outlives transactions and
# rollbacks; PostgreSQL parses it again by itself when the connection's search_path names
# another tenant's schema). Planning it was most of PostgreSQL's work for a refresh.
_ROTATE_PARAMETERS = "(uuid, uuid, varchar, varchar, timestamptz, timestamptz)"
_prepared_on: "weakref.WeakKeyDictionary[Any, set[str]]" = weakref.WeakKeyDictionary()


def _rotate_execute(cursor: Any, with_roles: bool, params: list[Any]) -> None:
    name = "idp_refresh_rotate" if with_roles else "idp_refresh_rotate_public"
    prepared = _prepared_on.setdefault(connection.connection, set())  # open: the cursor made sure
    if name not in prepared:
        cursor.execute(f"PREPARE {name} {_ROTATE_PARAMETERS} AS {_rotate_sql(with_roles)}")
        prepared.add(name)
    cursor.execute(f"EXECUTE {name} (%s, %s, %s, %s, %s, %s)", params)


@dataclass(frozen=True)
class Rotation:
    session: DeviceSession  # as locked, before this rotation pointed it at the next token
    user: User
    role_names: list[str]  # sorted, for the access token's `roles`
    next_expires_at: datetime | None  # the next token's end when this statement rotated, else None


def refresh_rotate(
    *, session_id: Any, user_id: str, jti_hash: str, next_jti_hash: str, next_expires_at: datetime, now: datetime
) -> Rotation | None:
    """Lock the session `session_id` FOR UPDATE until the transaction ends (the statement's
    own, outside one) and read it with its user and the user's role names (None when there
    is no such session). If the session is
    `user_id`'s, the user active, the session neither ended nor past its absolute end, and
    the refresh token `jti_hash` outstanding and never used: blacklist it, record the next
    token `next_jti_hash` (its end `next_expires_at`, capped by the session's) and make it
    the one the session accepts next, the session's last activity `now`. One statement."""
    params = [session_id, user_id, jti_hash, next_jti_hash, next_expires_at, now]
    with connection.cursor() as cursor:
        _rotate_execute(cursor, current_schema() != "public", params)
        row = cursor.fetchone()
    if row is None:
        return None
    users_from = len(_read(DeviceSession))
    roles_at = users_from + len(_read(User))
    session = DeviceSession.from_db(connection.alias, _read(DeviceSession), row[:users_from])
    user = User.from_db(connection.alias, _read(User), row[users_from:roles_at])
    session.user = user
    return Rotation(session=session, user=user, role_names=sorted(row[roles_at]), next_expires_at=row[-1])


def refresh_known(jti_hash: str) -> bool:
    """Whether the refresh token `jti_hash` was ever issued (used or not)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {_table(OutstandingToken)} WHERE jti = %s", [jti_hash])  # noqa: S608
        return cursor.fetchone() is not None


@cache
def _record_sql() -> str:
    return (
        f"WITH issued AS (INSERT INTO {_table(OutstandingToken)} (user_id, jti, token, created_at, expires_at) "  # noqa: S608
        "VALUES (%s, %s, '', %s, %s) RETURNING id) "
        f"UPDATE {_table(DeviceSession)} SET refresh_jti_hash = %s, last_active_at = %s WHERE id = %s"
    )


def refresh_record(*, session: DeviceSession, jti_hash: str, expires_at: datetime, now: datetime) -> None:
    """A new refresh token of `session` (at login): recorded as outstanding (its hashed id
    only: the token is a secret), and made the one the session accepts next; the session's
    last activity is `now`. One statement."""
    with connection.cursor() as cursor:
        cursor.execute(_record_sql(), [session.user_id, jti_hash, now, expires_at, jti_hash, now, session.pk])
    session.refresh_jti_hash, session.last_active_at = jti_hash, now
