"""The row of the user behind an access token, cached in Redis beside the session state.

Every request with a user's access token needs the user's row: the account checks (active,
forced password change) and whatever the view reads. Reading it from PostgreSQL is a query
(and the tenant's search path set first) on a path that otherwise needs none, so the row is
kept in Redis and read in the same round trip as the session state
(sessions.state.session_check_and_touch). Keys are tenant-prefixed like every cache key:

- `user-row-version:<id>`: a random token, replaced after every change of the row;
- `user-row:<format>:<id>`: (the version it was read under, the row's values).

An entry counts only under the version it was read under, so a change is seen on the very
next request: the version is replaced at once and again after the change commits (the
first makes it visible in the changing transaction, the second retires whatever a reader
filled from the old row in between). A reader takes the version before it reads the row,
so an entry filled from a row read just before a commit carries a version the commit
replaces. `<format>` names the columns, so a release that adds one reads fresh entries.

The password hash is never cached: it is left deferred, and read from the database only by
the code that asks for it (changing the password). An entry lives ENTRY_TTL_SECONDS at most,
which bounds a version that could not be replaced while Redis was unreachable. Redis down:
the row comes from the database.

What changes a user's row calls user_row_changed: saving or deleting through the ORM does
(identity.apps connects it to post_save and post_delete), and so must every queryset
`update()` of users (rbac.services does, for the admin flag and branch renames).
"""

import hashlib
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from django.core.cache import cache
from django.db import connection, transaction
from django_tenants.utils import schema_context

from core.tenancy import current_schema
from identity.models import User

logger = logging.getLogger("idp.identity")

ENTRY_TTL_SECONDS = 300
VERSION_TTL_SECONDS = 60 * 60 * 24  # longer than any entry
# Every column but the password hash, in the model's order (User.from_db expects it).
CACHED_FIELDS = tuple(field.attname for field in User._meta.concrete_fields if field.attname != "password")
_FORMAT = hashlib.sha256(" ".join(CACHED_FIELDS).encode()).hexdigest()[:12]


def user_row_keys(user_id: uuid.UUID) -> list[str]:
    """The cache keys to read (with the session state) for user_row_get: version, entry."""
    return [f"user-row-version:{user_id}", f"user-row:{_FORMAT}:{user_id}"]


def user_row_get(user_id: uuid.UUID, cached: list[Any]) -> User | None:
    """The user `user_id` from the values of user_row_keys read from the cache (`cached`),
    else from the database (and then remembered); None when there is no such user."""
    version, entry = cached
    if (
        version is not None
        and isinstance(entry, tuple)
        and len(entry) == 2
        and entry[0] == version
        and len(entry[1]) == len(CACHED_FIELDS)
    ):
        return User.from_db(connection.alias, CACHED_FIELDS, entry[1])
    if version is None:  # never changed, or its version expired; None again: Redis is unreachable
        version = _version_make(user_id)
    values = User.objects.filter(pk=user_id).values_list(*CACHED_FIELDS).first()
    if values is None:
        return None
    if version is not None:
        try:
            cache.set(user_row_keys(user_id)[1], (version, values), ENTRY_TTL_SECONDS)
        except Exception:
            logger.warning("User cache unavailable; could not remember user %s", user_id)
    return User.from_db(connection.alias, CACHED_FIELDS, values)


def _version_make(user_id: uuid.UUID) -> str | None:
    """A version for a user who has none, made set-if-absent (a change that set one meanwhile
    wins) before the row is read, like every version a reader goes by."""
    version_key = user_row_keys(user_id)[0]
    try:
        cache.add(version_key, uuid.uuid4().hex, VERSION_TTL_SECONDS)
        return cache.get(version_key)
    except Exception:
        logger.warning("User cache unavailable; reading user %s from the database", user_id)
        return None


def user_row_changed(user_ids: Iterable[uuid.UUID]) -> None:
    """Retire the cached rows of these users: now, and again once the change commits."""
    keys = [key for user_id in user_ids for key in user_row_keys(user_id)]
    if not keys:
        return
    schema = current_schema()

    def retire() -> None:
        versions = {key: uuid.uuid4().hex for key in keys[0::2]}
        try:
            cache.set_many(versions, VERSION_TTL_SECONDS)
            cache.delete_many(keys[1::2])
        except Exception:  # an entry lives ENTRY_TTL_SECONDS at most
            logger.error("User cache unavailable: %d cached user rows not retired", len(versions))

    retire()

    def retire_in_schema() -> None:
        with schema_context(schema):  # the keys are tenant-prefixed
            retire()

    transaction.on_commit(retire_in_schema)
