"""Two web processes (gunicorn) on loopback, both on the test run's database and Redis, and
a tenant committed for them to serve."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.conftest import host_of
from tests.notifications.harness import database_url
from tests.scaleout.harness import WebProcess, tenant_committed, web_environment, web_processes

SLUG = "scaleout"
# Limits small enough to reach in a few requests; the login limit above the lockout
# threshold, so each answers where the test expects it.
POLICY: dict[str, Any] = {
    "rate_limits": {"login": "8/min", "refresh": "1000/min"},
    "lockout": {"threshold": 3, "window_minutes": 15, "duration_minutes": 15},
    "sessions": {"max_sessions_per_user": 3},
}
EMPLOYEES = ("cook@example.com", "waiter@example.com")


@pytest.fixture(scope="module")
def scaleout_host(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """Tenant `scaleout` (its admin and EMPLOYEES, all with TEST_PASSWORD), committed."""
    with django_db_blocker.unblock(), tenant_committed(slug=SLUG, policy=POLICY, employees=EMPLOYEES):
        yield host_of(SLUG)


@pytest.fixture(scope="module")
def two_web_processes(
    scaleout_host: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[WebProcess, WebProcess]]:
    environment = web_environment(
        database_url=database_url(settings.DATABASES["default"]), redis_url=settings.REDIS_URL
    )
    log_dir: Path = tmp_path_factory.mktemp("web")
    with web_processes(2, log_dir, environment) as (first, second):
        yield first, second
