"""A tenant's schema is a copy of the template (tenants.cloning), names and all."""

import pytest
from django.conf import settings
from django.db import connection
from django_tenants.utils import schema_context

from rbac.models import PermissionCode, Role
from tenants.cloning import schema_clone

TEMPLATE = settings.TENANT_BASE_SCHEMA


def described(schema: str) -> dict[str, list[tuple]]:
    """What migrations and queries depend on, with the schema's own name taken out. Columns
    in their order (not by number: the template's dropped columns leave gaps); CHECK
    constraints and partial indexes' predicates only by name: PostgreSQL deparses a re-parsed
    expression with its casts moved (the same condition, other text)."""

    def rows(sql: str) -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(sql, {"schema": schema})
            return [tuple(str(v).replace(f"{schema}.", "") for v in row) for row in cursor.fetchall()]

    return {
        "columns": rows(
            """SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                      a.attidentity, pg_get_expr(d.adbin, d.adrelid)
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
               WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind = 'r'
                 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY c.relname, a.attnum"""
        ),
        "constraints": rows(
            """SELECT conrelid::regclass::text, conname, contype, condeferrable, condeferred,
                      CASE WHEN contype <> 'c' THEN pg_get_constraintdef(oid) END
               FROM pg_constraint WHERE connamespace = %(schema)s::regnamespace ORDER BY 1, 2"""
        ),
        "indexes": rows(
            """SELECT c.relname, split_part(pg_get_indexdef(c.oid), ' WHERE ', 1) FROM pg_class c
               WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind = 'i' ORDER BY 1"""
        ),
        "sequences": rows(
            """SELECT c.relname FROM pg_class c
               WHERE c.relnamespace = %(schema)s::regnamespace AND c.relkind = 'S' ORDER BY 1"""
        ),
    }


def count(schema: str, table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT count(*) FROM "{schema}"."{table}"')  # noqa: S608  # fixed names
        return int(cursor.fetchone()[0])


@pytest.fixture
def clone(db):
    schema_clone(source=TEMPLATE, target="clonetest")
    return "clonetest"


def test_a_clone_has_the_templates_tables_columns_constraints_and_indexes_under_the_same_names(clone):
    template, copy = described(TEMPLATE), described(clone)

    assert copy == template
    assert len(template["constraints"]) > 50 and len(template["indexes"]) > 50  # a real template


def test_a_clone_has_the_templates_rows(clone):
    for table in ("django_migrations", "rbac_role", "rbac_permissioncode", "rbac_role_permissions"):
        assert count(clone, table) == count(TEMPLATE, table) > 0


def test_a_clones_identity_columns_go_on_after_the_copied_rows(clone):
    with schema_context(clone):
        highest = PermissionCode.objects.order_by("-id").values_list("id", flat=True)[0]
        created = PermissionCode.objects.create(code="bench.clone", description="after the copy")

    assert created.id > highest


def test_a_clones_foreign_keys_point_into_the_clone(clone):
    with schema_context(clone):
        role = Role.objects.create(name="Clone role")
        role.permissions.add(PermissionCode.objects.all()[0])
        assert role.permissions.count() == 1
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT count(*) FROM pg_constraint
               WHERE connamespace = %s::regnamespace AND contype = 'f' AND confrelid::regclass::text NOT LIKE %s""",
            [clone, f"{clone}.%"],
        )
        assert cursor.fetchone()[0] == 0


def test_tenant_create_makes_the_schema_with_the_templates_indexes_and_system_roles(tenant_a):
    with schema_context(tenant_a.schema_name):
        assert Role.objects.filter(is_system=True).exists()
    assert described(tenant_a.schema_name)["indexes"] == described(TEMPLATE)["indexes"]
