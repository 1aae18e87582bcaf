"""Fixtures for the notification tests: a real SMTP server, real Celery workers on the test
run's Redis, and clean-up of the rows they had to see committed."""

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from notifications.models import OutboxEmail
from tests.concurrency import on_own_connection
from tests.notifications.harness import (
    SmtpServer,
    Worker,
    broker_url,
    smtp_server,
    tasks_sent_to,
    worker_environment,
    worker_start,
)

COMMITTED_SCHEMAS = ("acme", "globex")


@pytest.fixture(autouse=True)
def _tasks_run_eagerly_unless_sent_to_a_broker(settings: Any) -> None:
    # As the test settings say; set again so that a setting leaked by another module's test
    # cannot send these tests' tasks to a broker nobody consumes.
    settings.CELERY_TASK_ALWAYS_EAGER = True


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def committed_outbox() -> Iterator[None]:
    """Rows the test commits (for the workers to see) are deleted afterwards."""

    def delete_all() -> None:
        for schema in COMMITTED_SCHEMAS:
            with schema_context(schema):
                OutboxEmail.objects.all().delete()

    on_own_connection(delete_all)
    try:
        yield
    finally:
        on_own_connection(delete_all)


@pytest.fixture
def start_worker(tmp_path: Path, smtp: SmtpServer, committed_outbox: None) -> Iterator[Callable[..., Worker]]:
    """Start Celery workers (`start_worker("w1")`) that send to `smtp`; all of them are stopped
    when the test ends, whatever happened."""
    workers: list[Worker] = []

    def start(name: str = "w1", **environment: str) -> Worker:
        worker = worker_start(name, tmp_path, worker_environment(smtp, **environment))
        workers.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            worker.stop()


@pytest.fixture
def broker() -> Iterator[str]:
    """Tasks sent from the test process go to the test run's Redis, as in production."""
    url = broker_url(settings.REDIS_URL)
    with tasks_sent_to(url):
        yield url
