"""migrate_schemas leaves out the schemas with nothing to apply, and only those."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.signals import schema_migrated
from django_tenants.utils import schema_context

from rbac.models import Role
from tenants.migration_executor import get_executor, migrations_on_disk, schemas_with_unapplied
from tenants.models import Tenant
from tenants.services import tenant_create


def forget_migration(schema: str, app: str, name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'DELETE FROM "{schema}".django_migrations WHERE app = %s AND name = %s', [app, name])  # noqa: S608


def recorded(schema: str, app: str, name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{schema}".django_migrations WHERE app = %s AND name = %s', [app, name])  # noqa: S608
        return bool(cursor.fetchone()[0])


@contextmanager
def schemas_migrated() -> Iterator[list[str]]:
    """The schemas migrate_schemas migrates in the block (django-tenants' schema_migrated)."""
    migrated: list[str] = []

    def remember(sender, schema_name, **kwargs):
        migrated.append(schema_name)

    schema_migrated.connect(remember)
    try:
        yield migrated
    finally:
        schema_migrated.disconnect(remember)


def every_schema() -> list[str]:
    return list(Tenant.objects.values_list("schema_name", flat=True))


def test_the_project_has_migrations_on_disk_and_no_squash():
    on_disk = migrations_on_disk()

    assert on_disk is not None
    assert ("rbac", "0002_seed_catalog") in on_disk


def test_migrated_schemas_have_nothing_to_apply(tenant_a, tenant_b):
    assert schemas_with_unapplied(every_schema()) == []


def test_a_schema_missing_one_migration_still_has_it_to_apply(tenant_a, tenant_b):
    forget_migration("acme", "rbac", "0002_seed_catalog")

    assert schemas_with_unapplied(every_schema()) == ["acme"]


def test_a_schema_without_a_migrations_table_has_everything_to_apply(db):
    with connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "bare"')

    assert schemas_with_unapplied(["public", "bare"]) == ["bare"]


def test_migrate_schemas_migrates_a_schema_with_work_and_only_that_one(plan, tenant_a, tenant_b):
    bare = Tenant(schema_name="bare", name="Bare", plan=plan)
    bare.auto_create_schema = False  # a tenant whose schema is there but was never migrated
    bare.save()
    with connection.cursor() as cursor:
        cursor.execute('CREATE SCHEMA "bare"')
    with schemas_migrated() as migrated:
        call_command("migrate_schemas", interactive=False, verbosity=0)

    assert migrated == ["bare"]
    assert schemas_with_unapplied(every_schema()) == []
    with schema_context("bare"):
        assert Role.objects.filter(is_system=True).exists()  # the seeding migration ran there


def test_a_run_with_a_target_or_fake_is_not_narrowed():
    executor = get_executor("standard")(args=(), options={"fake": True})

    assert not executor._plain_run()
    assert get_executor("standard")(args=(), options={"interactive": False})._plain_run()


def created_schema_migrations(plan) -> tuple[Tenant, list[str]]:
    """A tenant created through tenants.services, and the schemas migrate_schemas ran in meanwhile."""
    with schemas_migrated() as migrated:
        created = tenant_create(slug="fresh", name="Fresh", plan=plan, admin_email="admin@fresh.test")
    return created.tenant, migrated


def test_a_tenant_cloned_from_an_up_to_date_template_is_not_migrated_again(plan):
    tenant, migrated = created_schema_migrations(plan)

    assert migrated == []
    assert schemas_with_unapplied([tenant.schema_name]) == []


def test_a_tenant_cloned_from_a_template_that_lags_records_the_missing_migration(plan):
    # rbac's latest migration: nothing depends on it, so the history without it is consistent.
    latest = next(node for node in MigrationLoader(None).graph.leaf_nodes() if node[0] == "rbac")
    forget_migration(settings.TENANT_BASE_SCHEMA, *latest)

    tenant, migrated = created_schema_migrations(plan)

    assert migrated == [tenant.schema_name]  # as django-tenants does after a clone: --fake
    assert recorded(tenant.schema_name, *latest)
