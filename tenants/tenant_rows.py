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

from django.conf import settings
from django.core.cache import cache

from core.row_cache import VersionedRows
from tenants.models import Tenant

logger = logging.getLogger("idp.tenants")

TENANT_ROWS = VersionedRows(Tenant, "tenant-row", schema=settings.PUBLIC_SCHEMA_NAME)
ALL = "all"


def tenant_for_host(hostname: str) -> Tenant | None:
    """The tenant serving `hostname`, or None. Called in the public schema."""
    keys = TENANT_ROWS.keys(ALL, hostname)
    try:
        found = cache.get_many(keys)
    except Exception:  # Redis down: from the database, without waiting on Redis again
        logger.warning("Cache unavailable; the tenant of a host read from the database")
        return Tenant.objects.filter(domains__domain=hostname).first()
    return TENANT_ROWS.get(
        ALL, hostname, [found.get(key) for key in keys], lambda: Tenant.objects.filter(domains__domain=hostname)
    )


def tenant_rows_changed() -> None:
    """Retire every cached tenant row: now, and again once the change commits."""
    TENANT_ROWS.retire([ALL])
