"""migrate_schemas without the schemas that have nothing to apply (settings.GET_EXECUTOR_FUNCTION).

django-tenants runs Django's whole `migrate` in every schema, one after another: it loads the
migration graph, checks it, and sends post_migrate (content types and permissions, several
queries per app) even when nothing is to be applied: about 0.2 s a schema, a minute for 300
tenants (measured by bench/suite.py). Here one query over every schema's django_migrations
first finds the schemas that already record every migration on disk, and the executor is
given only the others. A schema missing any migration (or its django_migrations table) is
migrated as before.

Only a plain run is narrowed: with an app label or a migration name, --fake, --fake-initial,
--plan, --check, --prune or --run-syncdb every schema goes through, as django-tenants does.
Squashed migrations (`replaces`) make "recorded" ambiguous, so their presence also turns the
narrowing off.
"""

import sys
from collections import defaultdict
from collections.abc import Iterable
from functools import cache
from typing import Any

from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.migration_executors import get_executor as django_tenants_executor

_NOT_PLAIN = ("app_label", "migration_name", "fake", "fake_initial", "plan", "check_unapplied", "prune", "run_syncdb")


def migrations_on_disk() -> set[tuple[str, str]] | None:
    """(app, name) of every migration on disk, or None when a squash makes that ambiguous."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    if any(migration.replaces for migration in loader.disk_migrations.values()):
        return None
    return set(loader.disk_migrations)


def schemas_with_unapplied(schemas: Iterable[str]) -> list[str]:
    """The schemas, in their order, whose django_migrations lacks a migration on disk (or
    which have no django_migrations at all): the ones `migrate` has work in."""
    schemas = list(schemas)
    expected = migrations_on_disk()
    if expected is None or not schemas:
        return schemas
    with connection.cursor() as cursor:
        # A lookup by name per schema (to_regclass), whatever the catalog's statistics say.
        cursor.execute(
            """SELECT s.name FROM unnest(%s::text[]) AS s(name)
               JOIN pg_class c ON c.oid = to_regclass(quote_ident(s.name) || '.django_migrations')
               WHERE c.relkind = 'r'""",
            [schemas],
        )
        with_table = [row[0] for row in cursor.fetchall()]
        recorded: dict[str, set[tuple[str, str]]] = defaultdict(set)
        if with_table:
            quote = connection.ops.quote_name
            cursor.execute(
                " UNION ALL ".join(
                    f"SELECT %s, app, name FROM {quote(schema)}.django_migrations"  # noqa: S608  # quoted catalog names
                    for schema in with_table
                ),
                with_table,
            )
            for schema, app, name in cursor.fetchall():
                recorded[schema].add((app, name))
    return [schema for schema in schemas if not expected <= recorded[schema]]


class SkipUpToDateSchemas:
    """Mixed into a django-tenants executor: a plain run migrates only the schemas that
    have something to apply."""

    options: dict[str, Any]

    def _plain_run(self) -> bool:
        return not any(self.options.get(option) for option in _NOT_PLAIN)

    def run_migrations(self, tenants: Any = None) -> None:
        tenants = list(tenants or [])
        if self._plain_run():
            with_work = schemas_with_unapplied(tenants)
            if int(self.options.get("verbosity", 1)) >= 1 and len(with_work) < len(tenants):
                sys.stdout.write(f"{len(tenants) - len(with_work)} schema(s) record every migration: left out\n")
            tenants = with_work
        super().run_migrations(tenants=tenants)  # type: ignore[misc]


@cache
def get_executor(codename: str | None = None) -> type:
    """django-tenants' executor of that codename (standard, multiprocessing, ...) with
    SkipUpToDateSchemas mixed in."""
    base = django_tenants_executor(codename)
    return type(f"SkipUpToDate{base.__name__}", (SkipUpToDateSchemas, base), {})
