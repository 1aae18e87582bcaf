"""A broker that stops and comes back (a Redis of the test's own, on the same port): the
emails written meanwhile wait in the outbox and are each sent once when it is back, and the
producer's pooled connection, stale after the restart, is replaced."""

import logging

from django.db import transaction
from django_tenants.utils import schema_context

from notifications.kinds import Kind
from notifications.models import OutboxEmail, OutboxStatus
from notifications.services import email_kind_send
from notifications.tasks import outbox_resend
from tests.concurrency import on_own_connection
from tests.notifications.harness import private_redis, tasks_sent_to, text_of, wait_for
from tests.notifications.samples import SECRETS, sample_context


def committed(kind: Kind, to: str) -> int:
    """An email of `kind` committed in acme, as a request would; returns its row id."""

    def queue() -> int:
        with schema_context("acme"), transaction.atomic():
            email_kind_send(kind=kind, to=to, context=sample_context(kind))
            return OutboxEmail.objects.latest("id").pk

    return on_own_connection(queue)


def row(pk: int) -> OutboxEmail:
    def load() -> OutboxEmail:
        with schema_context("acme"):
            return OutboxEmail.objects.get(pk=pk)

    return on_own_connection(load)


def test_emails_written_while_the_broker_is_stopped_are_sent_once_after_it_restarts(
    start_worker, smtp, tenant_a, caplog, tmp_path
):
    caplog.set_level(logging.WARNING, logger="idp.notifications")
    with private_redis(tmp_path) as broker, tasks_sent_to(broker.url):
        before = committed(Kind.PASSWORD_CHANGED, "before@example.com")  # the producer's pool connects
        assert row(before).enqueued_at is not None

        broker.stop()
        during = committed(Kind.PASSWORD_RESET, "during@example.com")
        assert (row(during).status, row(during).enqueued_at) == (OutboxStatus.PENDING, None)
        assert f"outbox email {during} in acme waits for the periodic resend" in caplog.text

        broker.start()  # the same port: the pooled connection from before is stale
        after = committed(Kind.ACCOUNT_LOCKED, "after@example.com")
        assert row(after).enqueued_at is not None

        worker = start_worker(CELERY_BROKER_URL=broker.url)
        outbox_resend.delay()  # what beat sends every minute: hands over the one that waited
        wait_for(
            lambda: {row(pk).status for pk in (before, during, after)} == {OutboxStatus.SENT}, what="all three sent"
        )

    assert sorted(str(message["To"]) for message in smtp.inbox.messages) == [
        "after@example.com",
        "before@example.com",
        "during@example.com",
    ]
    [reset] = [message for message in smtp.inbox.messages if message["To"] == "during@example.com"]
    assert "/reset-password/?token=" in text_of(reset)
    for secret in SECRETS:
        assert secret not in worker.log() and secret not in caplog.text
