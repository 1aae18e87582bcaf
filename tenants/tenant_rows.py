"""The tenant behind a request's host, cached in Redis.

Every tenant request starts by finding the tenant of its Host header. From PostgreSQL that is
a query joining domains to tenants, and the connection's health check before it, on paths
that otherwise need no database at all (an authenticated request reads its session and user
from Redis). The tenant's row is kept in the cache instead, per host, and read in one round
trip (core.row_cache tells how versions keep the entries right). Keys are in the public
schema:

- `tenant-row-version:all`: one version for every tenant, since tenants and domains change
  rarely (an operator's edit, a policy change) and a domain's change moves a host to another
  row;
- `tenant-row:<format>:<host>`: the row of the tenant serving `<host>`.

Saving or deleting a tenant or a domain through the ORM retires every entry (tenants.apps
connects it to post_save and post_delete); a queryset `update()` of either must call
tenant_rows_changed. An unknown host is not remembered: it is refused after a query, as before.
"""

import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.cache import cache

from core.row_cache import VersionedRows
from tenants.models import Tenant

logger = logging.getLogger("idp.tenants")

TENANT_ROWS = VersionedRows(Tenant, "tenant-row", schema=settings.PUBLIC_SCHEMA_NAME)
ALL = "all"


def tenant_for_host(hostname: str, also_read: Sequence[str] = ()) -> tuple[Tenant | None, list[Any] | None]:
    """The tenant serving `hostname`, or None, and the values of the Redis keys `also_read`
    (core.read_ahead; None for a missing key), read in the same round trip; None instead of
    the values when they were not read. Called in the public schema."""
    keys = TENANT_ROWS.keys(ALL, hostname)
    try:
        cached, values = _read(keys, also_read)
    except Exception:  # Redis down: from the database, without waiting on Redis again
        logger.warning("Cache unavailable; the tenant of a host read from the database")
        return Tenant.objects.filter(domains__domain=hostname).first(), None
    tenant = TENANT_ROWS.get(ALL, hostname, cached, lambda: Tenant.objects.filter(domains__domain=hostname))
    return tenant, values


def _read(keys: list[str], also_read: Sequence[str]) -> tuple[list[Any], list[Any] | None]:
    client = getattr(cache, "client", None)  # django-redis: one MGET of every key
    if not also_read or client is None or not hasattr(client, "get_client"):
        found = cache.get_many(keys)
        return [found.get(key) for key in keys], None
    raw = client.get_client(write=True).mget([*(cache.make_key(key) for key in keys), *also_read])
    decoded = [None if value is None else client.decode(value) for value in raw]
    return decoded[: len(keys)], decoded[len(keys) :]


def tenant_rows_changed() -> None:
    """Retire every cached tenant row: now, and again once the change commits."""
    TENANT_ROWS.retire([ALL])
