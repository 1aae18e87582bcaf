"""The outbox against the real thing: Celery workers in their own processes, on the test
run's Redis as the broker, sending to an SMTP server on loopback."""

import logging
import time
import uuid
from datetime import timedelta

from celery import Celery
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_redis import get_redis_connection
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from identity.models import AuditEvent
from notifications.models import OutboxEmail, OutboxStatus
from notifications.selectors import outbox_failed_list
from notifications.services import email_send_after_commit, outbox_enqueue
from notifications.tasks import outbox_resend
from tests.concurrency import on_own_connection
from tests.conftest import SHARED_ADMIN_EMAIL
from tests.notifications.harness import broker_url, dead_broker_url, tasks_sent_to, text_of, wait_for
from tests.notifications.tasks_for_tests import schema_seen


def committed_email(schema: str, **fields: str) -> int:
    """Queue an email in `schema` in a transaction that really commits; returns its row id."""

    def queue() -> int:
        with schema_context(schema), transaction.atomic():
            email_send_after_commit(**fields)
            return OutboxEmail.objects.latest("id").pk

    return on_own_connection(queue)


def outbox_row(schema: str, pk: int) -> OutboxEmail:
    with schema_context(schema):
        return OutboxEmail.objects.get(pk=pk)


def make_due(schema: str, pk: int) -> None:
    """Skip the backoff: the row's next attempt is now (committed, for the worker to see)."""

    def update() -> None:
        with schema_context(schema):
            OutboxEmail.objects.filter(pk=pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))

    on_own_connection(update)


SECRET_BODY = "Your temporary password is Tmp-Secret-9f2c41\n"


def test_a_committed_email_is_delivered_to_the_smtp_server(start_worker, smtp, broker):
    worker = start_worker()

    pk = committed_email("acme", to="ada@example.com", subject="Welcome to Acme", body="Hello Ada,\nwelcome.\n")

    wait_for(lambda: smtp.inbox.messages, what="the email at the SMTP server")
    wait_for(lambda: outbox_row("acme", pk).status == OutboxStatus.SENT, what="the row marked sent")
    [message] = smtp.inbox.messages
    assert smtp.inbox.recipients == [["ada@example.com"]]
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Welcome to Acme"
    assert text_of(message) == "Hello Ada,\nwelcome.\n"
    row = outbox_row("acme", pk)
    assert row.sent_at is not None and row.attempts == 0
    assert row.body == ""  # a sent email's body is not kept
    assert "notifications.email_send" in worker.log()


def schemas_seen(key: str, count: int) -> list[str]:
    """The schemas the diagnostic tasks recorded under `key`, once there are `count` of them."""
    redis = get_redis_connection("default")
    wait_for(lambda: redis.llen(key) >= count, what=f"{count} diagnostic tasks")
    return [schema.decode() for schema in redis.lrange(key, 0, -1)]


def send_without_schema(url: str, key: str) -> None:
    """Send the diagnostic task as a producer without tenant-schemas-celery would: no schema
    header at all."""
    with Celery("plain-producer", broker=url, set_as_current=False) as plain:
        plain.send_task("tests.notifications.schema_seen", args=[key])


def test_a_task_without_a_schema_runs_in_public_after_a_tenants_task_on_the_same_worker(start_worker, broker):
    start_worker()
    key = f"schemas-{uuid.uuid4().hex}"

    with schema_context("acme"):
        schema_seen.delay(key)
    assert schemas_seen(key, 1) == ["acme"]
    send_without_schema(broker, key)

    assert schemas_seen(key, 2) == ["acme", "public"]


def test_each_task_runs_in_its_own_tenants_schema_even_after_one_failed(start_worker, broker):
    worker = start_worker()
    key = f"schemas-{uuid.uuid4().hex}"

    with schema_context("acme"):
        schema_seen.delay(key, fail=True)
    schemas_seen(key, 1)
    with schema_context("globex"):
        schema_seen.delay(key)
    schemas_seen(key, 2)
    schema_seen.delay(key)  # from public
    with schema_context("acme"):
        schema_seen.delay(key)
    send_without_schema(broker, key)

    assert schemas_seen(key, 5) == ["acme", "globex", "public", "acme", "public"]
    assert "failing on purpose" in worker.log()


def test_a_task_for_a_schema_without_a_tenant_does_not_run_in_public(start_worker, broker):
    worker = start_worker()
    key = f"schemas-{uuid.uuid4().hex}"

    with schema_context("ghost"):  # a tenant deleted after the task was sent
        schema_seen.delay(key)
    send_without_schema(broker, key)

    assert schemas_seen(key, 1) == ["public"]  # only the second task ran
    worker.wait_for_log("TaskSchemaMismatch")


def test_with_the_broker_down_the_email_waits_and_is_sent_once_when_the_broker_is_back(start_worker, smtp, caplog):
    caplog.set_level(logging.WARNING, logger="idp.notifications")
    with tasks_sent_to(dead_broker_url()):
        pk = committed_email("acme", to="ada@example.com", subject="Your Acme account", body=SECRET_BODY)

    row = outbox_row("acme", pk)
    assert (row.status, row.attempts, row.enqueued_at) == (OutboxStatus.PENDING, 0, None)
    assert f"outbox email {pk} in acme waits for the periodic resend" in caplog.text
    assert "Tmp-Secret" not in caplog.text and "ada@example.com" not in caplog.text

    worker = start_worker()  # the real broker, back
    with tasks_sent_to(broker_url(settings.REDIS_URL)):
        outbox_resend.delay()  # what beat sends every minute
        wait_for(lambda: outbox_row("acme", pk).status == OutboxStatus.SENT, what="the row marked sent")
        outbox_resend.delay()
        worker.wait_for_log("Task notifications.outbox_resend", count=4)  # received, succeeded (x2)

    [message] = smtp.inbox.messages
    assert message["Subject"] == "Your Acme account"
    assert text_of(message) == SECRET_BODY
    assert "Tmp-Secret" not in worker.log()


def test_a_request_succeeds_with_the_broker_down_and_its_email_is_sent_when_the_broker_is_back(
    start_worker, smtp, tenant_a
):
    with schema_context("acme"):
        last_audit = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    def ask_for_a_reset() -> int:
        response = APIClient(HTTP_HOST="acme.idp.test").post(
            "/api/v1/auth/password-reset/", {"email": SHARED_ADMIN_EMAIL}, format="json"
        )
        return response.status_code

    try:
        with tasks_sent_to(dead_broker_url()):
            started = time.monotonic()
            status = on_own_connection(ask_for_a_reset)
            elapsed = time.monotonic() - started
        with schema_context("acme"):
            [row] = OutboxEmail.objects.all()
        assert status == 202
        assert elapsed < 10  # a dead broker costs a bounded wait, not a hung request
        assert row.status == OutboxStatus.PENDING and row.to == SHARED_ADMIN_EMAIL

        start_worker()
        with tasks_sent_to(broker_url(settings.REDIS_URL)):
            outbox_resend.delay()
            wait_for(lambda: smtp.inbox.messages, what="the reset email at the SMTP server")
    finally:

        def forget_audit_rows() -> None:
            with schema_context("acme"):
                AuditEvent.objects.filter(id__gt=last_audit).delete()

        on_own_connection(forget_audit_rows)

    [message] = smtp.inbox.messages
    assert message["To"] == SHARED_ADMIN_EMAIL
    assert "/reset-password/?token=" in text_of(message)


def test_two_workers_handed_the_same_email_send_it_once(start_worker, smtp, broker):
    smtp.inbox.delay = 1.0  # the first worker is still at the SMTP server when the second claims
    first, second = start_worker("w1"), start_worker("w2")

    def create() -> int:
        with schema_context("acme"):
            return OutboxEmail.objects.create(to="ada@example.com", subject="Once", body="Only once.\n").pk

    pk = on_own_connection(create)
    # Handed over twice, as a resend racing the first task would (outside the test's
    # transaction, which would otherwise hold the row's lock until the test ends).
    assert on_own_connection(lambda: outbox_enqueue(outbox_id=pk, schema="acme"))
    assert on_own_connection(lambda: outbox_enqueue(outbox_id=pk, schema="acme"))

    first.wait_for_log("Task notifications.email_send", count=2)  # received, succeeded
    second.wait_for_log("Task notifications.email_send", count=2)
    outcomes = first.log() + second.log()
    assert outcomes.count(": 'sent'") == 1
    assert outcomes.count(": 'skipped'") == 1
    assert len(smtp.inbox.messages) == 1
    assert smtp.inbox.data_commands == 1
    assert outbox_row("acme", pk).status == OutboxStatus.SENT


def test_an_email_the_smtp_server_refuses_is_retried_with_backoff_then_marked_failed(start_worker, smtp, broker):
    smtp.inbox.reply = "554 5.7.1 Message refused"
    worker = start_worker()  # NOTIFICATIONS_MAX_ATTEMPTS = 3 (worker_settings)

    pk = committed_email("acme", to="ada@example.com", subject="Refused", body=SECRET_BODY)
    waits = []
    for attempt in (1, 2):

        def attempted(attempt: int = attempt) -> bool:
            return outbox_row("acme", pk).attempts == attempt

        wait_for(attempted, what=f"attempt {attempt}")
        row = outbox_row("acme", pk)
        assert row.status == OutboxStatus.PENDING
        assert row.next_attempt_at is not None and row.claimed_at is not None
        waits.append(round((row.next_attempt_at - row.claimed_at).total_seconds()))
        make_due("acme", pk)
        outbox_resend.delay()
    wait_for(lambda: outbox_row("acme", pk).status == OutboxStatus.FAILED, what="the row marked failed")

    row = outbox_row("acme", pk)
    assert waits == [60, 120]  # exponential backoff (NOTIFICATIONS_RETRY_BACKOFF_SECONDS = 60)
    assert row.attempts == 3 and row.next_attempt_at is None
    assert "554" in row.last_error and "Message refused" in row.last_error
    assert "Tmp-Secret" not in row.last_error and row.body == ""
    assert smtp.inbox.data_commands == 3 and smtp.inbox.messages == []
    with schema_context("acme"):
        assert list(outbox_failed_list().values_list("pk", flat=True)) == [pk]
    log = worker.log()
    assert "Traceback" not in log and "raised unexpected" not in log  # no exception escaped
    assert "Tmp-Secret" not in log
