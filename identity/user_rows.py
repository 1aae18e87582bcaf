"""The row of the user behind an access token, cached in Redis beside the session state.

Every request with a user's access token needs the user's row: the account checks (active,
forced password change) and whatever the view reads. Reading it from PostgreSQL is a query
(and the tenant's search path set first) on a path that otherwise needs none, so the row is
kept in Redis and read in the same round trip as the session state
(sessions.state.session_check_and_touch). Keys are tenant-prefixed like every cache key:

- `user-row-version:<id>`: a random token, replaced after every change of the row;
- `user-row:<format>:<id>`: (the version it was read under, the row's values).

How versions keep the entries right after every change is core.row_cache's to tell.

The password hash is never cached: it is left deferred, and read from the database only by
the code that asks for it (changing the password).

What changes a user's row calls user_row_changed: saving or deleting through the ORM does
(identity.apps connects it to post_save and post_delete), and so must every queryset
`update()` of users (rbac.services does, for the admin flag and branch renames).
"""

import uuid
from collections.abc import Iterable
from typing import Any

from core.row_cache import VersionedRows
from identity.models import User

USER_ROWS = VersionedRows(User, "user-row", left_out=["password"])
CACHED_FIELDS = USER_ROWS.fields


def user_row_keys(user_id: uuid.UUID) -> list[str]:
    """The cache keys to read (with the session state) for user_row_get: version, entry."""
    return USER_ROWS.keys(user_id, user_id)


def user_row_get(user_id: uuid.UUID, cached: list[Any]) -> User | None:
    """The user `user_id` from the values of user_row_keys read from the cache (`cached`),
    else from the database (and then remembered); None when there is no such user."""
    return USER_ROWS.get(user_id, user_id, cached, lambda: User.objects.filter(pk=user_id))


def user_row_changed(user_ids: Iterable[uuid.UUID]) -> None:
    """Retire the cached rows of these users: now, and again once the change commits."""
    USER_ROWS.retire(user_ids)
