"""A new tenant's schema, cloned from the template schema in time that does not grow with the
number of tenants.

django-tenants' clone_schema() (a PL/pgSQL function) asks information_schema about every
column of every table; those views scan the catalog of the whole database, so each clone
cost more than the last (0.2 s for the 1st tenant, several seconds by the 60th, measured by
bench/suite.py). Here the template is read from pg_catalog by its namespace, and the new
schema is written with DDL that keeps every name a migration may refer to:

1. each table `CREATE TABLE ... (LIKE template.table ...)`: columns in order, types, NOT NULL,
   defaults, identity columns (with new sequences), storage and comments;
2. the rows copied (the template holds seeded data: system roles, the permission catalog,
   django_migrations) and each identity sequence set where the template's stands;
3. every constraint added under its own name from pg_get_constraintdef (primary keys,
   unique and check constraints, then foreign keys, pointed at the new schema);
4. every other index created under its own name from pg_get_indexdef.

It runs in the caller's transaction (tenant creation is atomic: a failure leaves no schema).
"""

from django.db import connection

# The template's tables are found through pg_depend (every table depends on its schema), and
# everything else by their oids: each read goes through a catalog index, so it does not grow
# with the number of schemas in the database (pg_class has no index on the namespace alone:
# a scan of it took 15 ms with 300 tenants).
_TABLES = """
SELECT c.oid, quote_ident(c.relname)
FROM pg_depend d JOIN pg_class c ON c.oid = d.objid
WHERE d.refclassid = 'pg_namespace'::regclass AND d.refobjid = %(schema)s::regnamespace
  AND d.classid = 'pg_class'::regclass AND c.relkind = 'r'
ORDER BY c.relname
"""
_COLUMNS = """
SELECT a.attrelid, quote_ident(a.attname), a.attname, a.attidentity <> '', a.attgenerated <> '',
       CASE WHEN a.attidentity <> '' THEN pg_get_serial_sequence(a.attrelid::regclass::text, a.attname) END
FROM pg_attribute a
WHERE a.attrelid = ANY(%(tables)s::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""
# NOT NULL constraints (contype 'n', PostgreSQL 18) come with LIKE; foreign keys last, once
# every key they point at exists.
_CONSTRAINTS = """
SELECT k.conrelid, quote_ident(k.conname), pg_get_constraintdef(k.oid)
FROM pg_constraint k
WHERE k.conrelid = ANY(%(tables)s::oid[]) AND k.contype <> 'n'
ORDER BY k.contype = 'f', k.conname
"""
_INDEXES = """
SELECT pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = ANY(%(tables)s::oid[])
  AND NOT EXISTS (
    SELECT 1 FROM pg_constraint k
    WHERE k.conrelid = i.indrelid AND k.conindid = i.indexrelid AND k.contype IN ('p', 'u', 'x')
  )
ORDER BY c.relname
"""
_LIKE = (
    "INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING GENERATED INCLUDING STORAGE "
    "INCLUDING COMMENTS INCLUDING COMPRESSION"
)


def schema_clone(*, source: str, target: str) -> None:
    """Create schema `target` as a copy of schema `source`: tables, rows, sequences'
    positions, constraints and indexes, with the same names."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT quote_ident(%s), quote_ident(%s)", [source, target])
        src, dst = cursor.fetchone()
        cursor.execute(_TABLES, {"schema": src})
        tables = dict(cursor.fetchall())
        params = {"tables": list(tables)}
        cursor.execute(_COLUMNS, params)
        columns = cursor.fetchall()
        cursor.execute(_CONSTRAINTS, params)
        constraints = cursor.fetchall()
        cursor.execute(_INDEXES, params)
        indexes = [row[0] for row in cursor.fetchall()]

        statements = [f"CREATE SCHEMA {dst}"]
        statements += [f"CREATE TABLE {dst}.{name} (LIKE {src}.{name} {_LIKE})" for name in tables.values()]
        copied: dict[int, list[str]] = {}
        for table, column, _raw, _identity, generated, _sequence in columns:
            if not generated:
                copied.setdefault(table, []).append(column)
        for table, names in copied.items():
            listed = ", ".join(names)
            statements.append(
                f"INSERT INTO {dst}.{tables[table]} ({listed}) OVERRIDING SYSTEM VALUE "  # noqa: S608  # quote_ident
                f"SELECT {listed} FROM {src}.{tables[table]}"
            )
        for table, _column, raw, identity, _generated, sequence in columns:
            if identity:  # pg_get_serial_sequence takes the column's name as it is, unquoted
                statements.append(
                    f"SELECT setval(pg_get_serial_sequence('{dst}.{tables[table]}', '{raw}'), "  # noqa: S608  # catalog names
                    f"s.last_value, s.is_called) FROM {sequence} s"
                )
        # Definitions name the source schema where they refer to a table (foreign keys, the
        # index's table): the same references, in the new schema.
        for table, name, definition in constraints:
            definition = definition.replace(f"REFERENCES {src}.", f"REFERENCES {dst}.")
            statements.append(f"ALTER TABLE {dst}.{tables[table]} ADD CONSTRAINT {name} {definition}")
        statements += [index.replace(f" ON {src}.", f" ON {dst}.", 1) for index in indexes]
        cursor.execute(";\n".join(statements))
