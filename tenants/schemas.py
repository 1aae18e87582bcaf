"""Running work in every schema (periodic tasks, commands)."""

import logging
from collections.abc import Callable
from typing import TypeVar

from django.conf import settings
from django_tenants.utils import tenant_context

from tenants.models import Tenant

logger = logging.getLogger("idp.tenants")

T = TypeVar("T")


def in_every_schema(work: Callable[[], T], *, what: str) -> dict[str, T]:
    """Run `work` in the public schema and in every tenant's, never in the template (it is
    cloned into new tenants). One schema's failure is logged and does not stop the others."""
    results: dict[str, T] = {}
    for tenant in Tenant.objects.exclude(schema_name=settings.TENANT_BASE_SCHEMA):
        with tenant_context(tenant):
            try:
                results[tenant.schema_name] = work()
            except Exception:
                logger.exception("%s failed in %s", what, tenant.schema_name)
    return results
