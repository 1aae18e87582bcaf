"""A diagnostic task the test workers import (`-I tests.notifications.tasks_for_tests`): it
records the schema it ran in, so the tests can see where each task ran."""

from django_redis import get_redis_connection

from config.celery import app
from core.tenancy import current_schema


@app.task(name="tests.notifications.schema_seen", ignore_result=True)
def schema_seen(key: str, fail: bool = False) -> str:
    """Append the current schema to the Redis list `key`; raise afterwards if `fail`."""
    schema = current_schema()
    get_redis_connection("default").rpush(key, schema)
    if fail:
        raise RuntimeError("failing on purpose, after recording the schema")
    return schema
