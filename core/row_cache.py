"""Rows of a model kept in Redis for the hot paths, valid only under the version they were read under.

Two kinds of row are read on nearly every request and change rarely: the tenant behind the
request's host (tenants.tenant_rows) and the user behind an access token
(identity.user_rows). Each is kept in the cache under two keys:

- `<name>-version:<version id>`: a random token, replaced after every change of the rows
  it covers;
- `<name>:<format>:<entry id>`: (the version it was read under, the row's values).

An entry counts only under the version it was read under, so a change is seen on the very
next request: the version is replaced at once and again after the change commits (the first
makes it visible in the changing transaction, the second retires whatever a reader filled
from the old row in between). A reader takes the version before it reads the row, so an
entry filled from a row read just before a commit carries a version the commit replaces.
`<format>` names the columns, so a release that adds one reads fresh entries.

An entry lives ENTRY_TTL_SECONDS at most, which bounds a version that could not be replaced
while Redis was unreachable. Redis down: the row comes from the database.
"""

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from django.core.cache import cache
from django.db import connection, models, transaction
from django_tenants.utils import schema_context

from core.tenancy import current_schema

logger = logging.getLogger("idp.cache")

ENTRY_TTL_SECONDS = 300
VERSION_TTL_SECONDS = 60 * 60 * 24  # longer than any entry

M = TypeVar("M", bound=models.Model)


class VersionedRows(Generic[M]):
    """The cached rows of `model` (every concrete column but those in `left_out`), under keys
    named `name`. Keys are prefixed with a schema like every cache key: `schema`, or the one
    current at each call when it is None."""

    def __init__(self, model: type[M], name: str, *, left_out: Iterable[str] = (), schema: str | None = None) -> None:
        self.model, self.name, self.schema = model, name, schema
        # In the model's order, as Model.from_db expects them.
        self.fields = tuple(field.attname for field in model._meta.concrete_fields if field.attname not in left_out)
        self._format = hashlib.sha256(" ".join(self.fields).encode()).hexdigest()[:12]

    def keys(self, version_id: Any, entry_id: Any) -> list[str]:
        """The two keys to read for `get`, in this order: the version, the entry."""
        return [f"{self.name}-version:{version_id}", f"{self.name}:{self._format}:{entry_id}"]

    def get(
        self, version_id: Any, entry_id: Any, cached: list[Any], rows: Callable[[], "models.QuerySet[M]"]
    ) -> M | None:
        """The row from `cached` (the values of `keys` as read), else the first of `rows()` from
        the database, then remembered; None when there is no such row."""
        version, entry = cached
        if (
            version is not None
            and isinstance(entry, tuple)
            and len(entry) == 2
            and entry[0] == version
            and len(entry[1]) == len(self.fields)
        ):
            return self.model.from_db(connection.alias, self.fields, entry[1])
        version_key, entry_key = self.keys(version_id, entry_id)
        if version is None:  # never changed, or its version expired; None again: Redis is unreachable
            version = self._version_make(version_key)
        values = rows().values_list(*self.fields).first()
        if values is None:
            return None
        if version is not None:
            try:
                with self._keys_schema():
                    cache.set(entry_key, (version, values), ENTRY_TTL_SECONDS)
            except Exception:
                logger.warning("Cache unavailable; could not remember a %s", self.name)
        return self.model.from_db(connection.alias, self.fields, values)

    def _version_make(self, version_key: str) -> str | None:
        """A version where there is none, made set-if-absent (a change that set one meanwhile
        wins) before the row is read, like every version a reader goes by."""
        try:
            with self._keys_schema():
                cache.add(version_key, uuid.uuid4().hex, VERSION_TTL_SECONDS)
                return cache.get(version_key)
        except Exception:
            logger.warning("Cache unavailable; a %s read from the database", self.name)
            return None

    def retire(self, version_ids: Iterable[Any]) -> None:
        """Retire every entry under these versions: now, and again once the change commits."""
        version_keys = [self.keys(version_id, "")[0] for version_id in version_ids]
        if not version_keys:
            return
        schema = self.schema or current_schema()

        def retire() -> None:
            try:
                with _in_schema(schema):
                    cache.set_many({key: uuid.uuid4().hex for key in version_keys}, VERSION_TTL_SECONDS)
            except Exception:  # an entry lives ENTRY_TTL_SECONDS at most
                logger.error("Cache unavailable: %d versions of %s not replaced", len(version_keys), self.name)

        retire()
        transaction.on_commit(retire)

    def _keys_schema(self) -> contextlib.AbstractContextManager[None]:
        return _in_schema(self.schema) if self.schema else contextlib.nullcontext()


@contextlib.contextmanager
def _in_schema(schema: str) -> Iterator[None]:
    """In `schema`, switching only when another is current (a switch costs a `SET search_path`)."""
    if schema == current_schema():
        yield
    else:
        with schema_context(schema):
            yield
