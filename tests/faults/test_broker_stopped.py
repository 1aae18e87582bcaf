"""The broker stopped under a running web process and worker: the email a request writes
waits in the outbox, the request still succeeds, and the email goes out once the broker is
back, once. (tests/notifications/test_worker.py covers a broker that was never there; here a
broker in use dies and comes back on the same address, and the worker reconnects to it.)

The broker is a private Redis (tests/faults/services.py); the web process, the Celery worker
and this process (standing in for beat) all use it. Email goes to an SMTP server on loopback.
"""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django_tenants.utils import schema_context

from notifications.models import OutboxEmail, OutboxStatus
from notifications.tasks import outbox_resend
from tests.concurrency import on_own_connection
from tests.conftest import SHARED_ADMIN_EMAIL, host_of
from tests.faults.services import PrivateRedis
from tests.notifications.harness import (
    SmtpServer,
    Worker,
    database_url,
    smtp_server,
    tasks_sent_to,
    text_of,
    wait_for,
    worker_environment,
    worker_start,
)
from tests.scaleout.harness import WebProcess, tenant_committed, web_environment, web_start

SLUG = "brokerdown"
HOST = host_of(SLUG)
EMPLOYEE = "cook@example.com"
# The web process and the worker: the notification tests' worker settings (tasks to the
# broker in CELERY_BROKER_URL, email over SMTP).
SETTINGS = "tests.notifications.worker_settings"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def running(
    private_redis: PrivateRedis, smtp: SmtpServer, tmp_path: Path, django_db_blocker: Any
) -> Iterator[tuple[WebProcess, Worker]]:
    extra = worker_environment(smtp, CELERY_BROKER_URL=private_redis.url)
    environment = web_environment(
        database_url=database_url(settings.DATABASES["default"]),
        redis_url=settings.REDIS_URL,
        settings=SETTINGS,
        **{key: extra[key] for key in extra if key.startswith(("EMAIL_", "CELERY_"))},
    )
    with django_db_blocker.unblock(), tenant_committed(slug=SLUG, policy={}, employees=(EMPLOYEE,)):
        worker = worker_start("worker", tmp_path, extra)
        try:
            web = web_start("web", tmp_path, environment)
            try:
                yield web, worker
            finally:
                web.stop()
        finally:
            worker.stop()


def outbox_rows() -> list[tuple[str, str]]:
    def read() -> list[tuple[str, str]]:
        with schema_context(SLUG):
            return list(OutboxEmail.objects.order_by("id").values_list("to", "status"))

    return on_own_connection(read)


def ask_for_a_reset(web: WebProcess, email: str) -> float:
    started = time.monotonic()
    response = web.request("POST", "/api/v1/auth/password-reset/", host=HOST, json={"email": email})
    assert response.status_code == 202, response.text
    return time.monotonic() - started


def test_an_email_written_while_the_broker_is_down_waits_in_the_outbox_and_goes_out_once_it_is_back(
    running, private_redis, smtp
):
    web, worker = running
    ask_for_a_reset(web, SHARED_ADMIN_EMAIL)
    wait_for(lambda: len(smtp.inbox.messages) == 1, timeout=60, what="the first email, through the broker")

    private_redis.stop()
    elapsed = ask_for_a_reset(web, EMPLOYEE)

    assert elapsed < 10  # a dead broker costs a bounded wait, not a hung request
    assert outbox_rows() == [(SHARED_ADMIN_EMAIL, OutboxStatus.SENT), (EMPLOYEE, OutboxStatus.PENDING)]
    assert "waits for the periodic resend" in web.log()
    assert len(smtp.inbox.messages) == 1

    private_redis.start()  # the same address, empty: the queue had nothing in it
    worker.wait_for_log("Connected to", count=2, timeout=60)  # the same worker, reconnected
    with tasks_sent_to(private_redis.url):
        outbox_resend.delay()  # what beat sends every minute
        wait_for(lambda: len(smtp.inbox.messages) == 2, timeout=60, what="the waiting email, sent")

    assert outbox_rows() == [(SHARED_ADMIN_EMAIL, OutboxStatus.SENT), (EMPLOYEE, OutboxStatus.SENT)]
    assert [message["To"] for message in smtp.inbox.messages] == [SHARED_ADMIN_EMAIL, EMPLOYEE]
    assert "/reset-password/?token=" in text_of(smtp.inbox.messages[1])
    assert worker.process.poll() is None  # the same worker, reconnected
