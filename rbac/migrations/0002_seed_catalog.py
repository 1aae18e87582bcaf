"""Built-in permission codes and the system roles, in every tenant schema (and so in the
template every new tenant is cloned from). Codes added to rbac.catalog later need a new
migration calling rbac.seeding.catalog_seed again; it never overwrites a tenant's edits."""

from django.db import migrations


def seed(apps, schema_editor):
    from rbac.seeding import catalog_seed

    catalog_seed(apps.get_model("rbac", "PermissionCode"), apps.get_model("rbac", "Role"))


class Migration(migrations.Migration):
    dependencies = [("rbac", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
