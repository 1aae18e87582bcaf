"""django-tenants' PostgreSQL backend, whose connection health check sets the search_path.

Django checks a reused connection at its first use in each request (CONN_HEALTH_CHECKS: a
`SELECT 1`), and django-tenants then sets the request's tenant (`SET search_path`): two round
trips before the first query of every request that uses the database. Here the health check
is that `SET`: it proves the connection works as well as `SELECT 1` does, and since the
search path is then set, django-tenants does not send it again (TENANT_LIMIT_SET_CALLS; it
forgets it on set_tenant, close, rollback and savepoint rollback, as before).
"""

from django_tenants.postgresql_backend import base
from django_tenants.utils import get_limit_set_calls, quote_schema_name


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        if self.connection is None or not self.schema_name or not get_limit_set_calls():
            return bool(super().is_usable())
        search_paths = self._get_cursor_search_paths()
        try:
            # The driver's cursor, as Django's own check uses: no wrappers, no search_path.
            with self.connection.cursor() as cursor:
                cursor.execute(f"SET search_path = {','.join(quote_schema_name(s) for s in search_paths)}")
        except self.Database.Error:
            self.search_path_set_schemas = None
            return False
        self.search_path_set_schemas = search_paths
        return True
