"""Rotate token signing keys: `manage.py rotate_signing_key [--tenant SLUG]`.

Every tenant (and the platform host) when no tenant is named. The new key signs from now on;
the retired key stays published in the JWKS until every token it signed has expired.
"""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from identity.keys import signing_key_rotate
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Rotate the token signing key of one tenant (--tenant SLUG) or of all of them."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--tenant", dest="slug", help="The tenant's slug; all tenants when omitted.")

    def handle(self, *args: Any, slug: str | None = None, **options: Any) -> None:
        tenants = Tenant.objects.exclude(schema_name=settings.TENANT_BASE_SCHEMA)
        if slug:
            tenants = tenants.filter(schema_name=slug)
            if not tenants.exists():
                raise CommandError(f"No tenant {slug!r}.")
        for tenant in tenants:
            with tenant_context(tenant):
                key = signing_key_rotate()  # records signing_key.rotated
            self.stdout.write(f"{tenant.schema_name}: new {key.algorithm} key {key.kid}")
