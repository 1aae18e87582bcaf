"""django-tenants' migrate_schemas, plus the system schemas' rows.

After the public schema is migrated, the public tenant (the platform host) and the template
tenant exist; the template is an ordinary row, so every later migrate_schemas keeps it
migrated with the others and new tenants can be cloned from it. Parallel runs:
`--executor=multiprocessing` (TENANT_MIGRATION_PROCESSES workers).
"""

from typing import Any

from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand

from core.tenancy import tenant_connection
from tenants.services import platform_bootstrap


class Command(MigrateSchemasCommand):
    def handle(self, *args: Any, **options: Any) -> None:
        super().handle(*args, **options)
        whole_run = not options.get("schema_name") and not options.get("migration_name")
        dry = options.get("plan") or options.get("fake") or options.get("check_unapplied")
        if whole_run and not dry and not options.get("tenant"):
            tenant_connection().set_schema_to_public()
            platform_bootstrap()
