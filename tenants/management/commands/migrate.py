# `migrate` is migrate_schemas here too (as in django-tenants), so that the test runner's
# database set-up also creates the system schemas.
from tenants.management.commands.migrate_schemas import Command

__all__ = ["Command"]
