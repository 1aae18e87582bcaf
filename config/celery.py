"""The Celery app. Tasks carry their tenant (tenant-schemas-celery) and run in its schema.

`celery -A config worker` and `celery -A config beat` (schedule: CELERY_BEAT_SCHEDULE). A task
sent from a tenant's schema runs in that schema; one sent without a schema (from another
producer, or from public) runs in public: tenant-schemas-celery switches the connection before
each task and restores it afterwards, so nothing leaks into the next task on the worker.
"""

import os
from typing import Any

from tenant_schemas_celery.app import CeleryApp, get_schema_name_from_task
from tenant_schemas_celery.task import TenantTask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")


class TaskSchemaMismatch(RuntimeError):
    """A task was about to run in a schema other than the one it was sent for."""


class SchemaCheckedTask(TenantTask):
    """Refuses to run in any schema but the one the task was sent for.

    tenant-schemas-celery switches the schema in a `task_prerun` signal handler, and Celery only
    logs an exception raised there: for a schema whose tenant row is gone, the handler fails
    after moving the connection to public and the task would run there, against the platform's
    rows. Checked here instead, where raising stops the task.
    """

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.request.called_directly:  # a plain function call has no schema to check
            from django_tenants.utils import get_public_schema_name

            from core.tenancy import current_schema

            wanted = get_schema_name_from_task(self, kwargs) or get_public_schema_name()
            actual = current_schema()
            if actual != wanted:
                raise TaskSchemaMismatch(f"{self.name} was sent for schema {wanted!r}, not {actual!r}")
        return super().__call__(*args, **kwargs)


class IdpCeleryApp(CeleryApp):
    task_cls = "config.celery:SchemaCheckedTask"


app = IdpCeleryApp("idp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
