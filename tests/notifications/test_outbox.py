"""The outbox in one process: tasks run eagerly (the test settings), mail goes to Django's
locmem outbox or to a real SMTP server on loopback. The claim, the backoff, the resend and
what is (never) logged."""

import logging
import uuid
from datetime import timedelta
from typing import Any

import dj_database_url
import pytest
from django.core import mail
from django.db import transaction
from django.test import Client, RequestFactory
from django.utils import timezone
from django_tenants.utils import schema_context

from config.celery import TaskSchemaMismatch
from console.sites import tenant_console
from identity.models import User
from notifications.admin import OutboxEmailAdmin
from notifications.models import OutboxEmail, OutboxStatus
from notifications.selectors import outbox_failed_list, outbox_status_counts
from notifications.services import (
    WORKER_LOST,
    WORKER_LOST_GAVE_UP,
    email_send_after_commit,
    outbox_backoff,
    outbox_email_send,
    outbox_sweep_current_schema,
)
from notifications.tasks import outbox_resend
from rbac.catalog import AUDITOR
from rbac.models import Role
from rbac.services import role_assign
from tests.concurrency import in_parallel, on_own_connection
from tests.factories import TEST_PASSWORD
from tests.notifications.harness import broker_url, database_url, dead_broker_url, free_port, tasks_sent_to, text_of
from tests.notifications.tasks_for_tests import schema_seen

SECRET = "Tmp-Secret-9f2c41"
BODY = f"Hello Ada,\nyour temporary password is {SECRET}\n"


def queue_email(schema: str = "acme", **fields: str) -> OutboxEmail:
    """Write an email as a service would, in a transaction of this test (not committed)."""
    fields = {"to": "ada@example.com", "subject": "Your Acme account", "body": BODY, **fields}
    with schema_context(schema):
        email_send_after_commit(**fields)
        return OutboxEmail.objects.latest("id")


def reload(email: OutboxEmail, schema: str = "acme") -> OutboxEmail:
    with schema_context(schema):
        return OutboxEmail.objects.get(pk=email.pk)


def send(email: OutboxEmail, schema: str = "acme") -> str:
    with schema_context(schema):
        return outbox_email_send(outbox_id=email.pk, schema=schema)


@pytest.fixture
def smtp_settings(settings, smtp):
    """Mail goes to the loopback SMTP server, retries after 60 s, 120 s..., three attempts."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp.host
    settings.EMAIL_PORT = smtp.port
    settings.EMAIL_TIMEOUT = 1
    settings.EMAIL_HOST_PASSWORD = ""
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 3
    settings.NOTIFICATIONS_RETRY_BACKOFF_SECONDS = 60
    return smtp


# --- writing ---------------------------------------------------------------------------------


def test_an_email_is_a_pending_row_of_the_callers_transaction_until_it_commits(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        email = queue_email()
        assert email.status == OutboxStatus.PENDING and email.kind == "generic"

    assert len(callbacks) == 1  # the hand-over to Celery waits for the commit
    assert mailoutbox == []


def test_an_email_of_a_rolled_back_change_is_neither_kept_nor_sent(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        queue_email()
        raise RuntimeError("the change fails")

    assert callbacks == []
    with schema_context("acme"):
        assert not OutboxEmail.objects.exists()
    assert mailoutbox == []


def test_a_committed_email_is_sent_and_its_row_marked_sent_without_its_body(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        email = queue_email(kind="account_created")

    [message] = mailoutbox
    assert (message.to, message.subject, message.body) == (["ada@example.com"], "Your Acme account", BODY)
    assert message.extra_headers["Auto-Submitted"] == "auto-generated"
    email = reload(email)
    assert (email.status, email.kind, email.attempts) == (OutboxStatus.SENT, "account_created", 0)
    assert email.sent_at is not None
    assert email.body == "" and SECRET not in str(email.__dict__)


def test_an_html_body_is_sent_as_an_alternative_to_the_text(tenant_a, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        queue_email(html_body="<p>Hello Ada</p>")

    [message] = mailoutbox
    assert message.body == BODY
    assert message.alternatives == [("<p>Hello Ada</p>", "text/html")]


def test_a_subject_with_line_breaks_is_sent_as_one_line(tenant_a, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        queue_email(subject="Welcome\r\nBcc: victim@example.com")

    [message] = mailoutbox
    assert message.subject == "Welcome Bcc: victim@example.com"
    assert message.recipients() == ["ada@example.com"]


def test_an_invalid_recipient_is_recorded_as_failed_and_never_handed_to_a_worker(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        email = queue_email(to="not an address")

    assert callbacks == [] and mailoutbox == []
    assert (email.status, email.body, email.last_error) == (
        OutboxStatus.FAILED,
        "",
        "Invalid recipient address; not sent.",
    )
    with schema_context("acme"):
        assert list(outbox_failed_list()) == [email]


def test_an_email_is_sent_from_the_schema_it_was_written_in_even_when_the_commit_happens_elsewhere(
    tenant_a, tenant_b, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        email = queue_email("acme")  # the callback runs after schema_context("acme") has ended
        with schema_context("globex"):
            OutboxEmail.objects.create(to="eve@example.com", subject="globex's own", body="x", pk=email.pk)

    assert [message.to for message in mailoutbox] == [["ada@example.com"]]
    assert reload(email).status == OutboxStatus.SENT
    assert reload(email, "globex").status == OutboxStatus.PENDING


def test_an_operators_email_from_the_public_schema_is_delivered(
    operator, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        email_send_after_commit(to="operator@example.com", subject="Platform", body="Hello operator.\n")

    assert [message.to for message in mailoutbox] == [["operator@example.com"]]
    assert OutboxEmail.objects.get().status == OutboxStatus.SENT


# --- a broker that is down -----------------------------------------------------------------


def test_with_the_broker_down_the_caller_succeeds_and_the_row_waits(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks, caplog
):
    caplog.set_level(logging.WARNING, logger="idp.notifications")
    with tasks_sent_to(dead_broker_url()), django_capture_on_commit_callbacks(execute=True):
        email = queue_email()

    email = reload(email)
    assert (email.status, email.attempts, email.enqueued_at) == (OutboxStatus.PENDING, 0, None)
    assert mailoutbox == []
    assert f"outbox email {email.pk} in acme waits for the periodic resend" in caplog.text
    assert SECRET not in caplog.text and "ada@example.com" not in caplog.text


def test_the_resend_stops_at_the_first_broker_error_and_leaves_the_rows_pending(tenant_a):
    with schema_context("acme"):
        for _ in range(3):
            OutboxEmail.objects.create(to="ada@example.com", subject="s", body="b")
        with tasks_sent_to(dead_broker_url()):
            result = outbox_sweep_current_schema()
        assert result["enqueued"] == 0
        assert set(OutboxEmail.objects.values_list("status", "enqueued_at")) == {(OutboxStatus.PENDING, None)}


# --- the claim: at most once -----------------------------------------------------------------


def test_a_row_is_sent_by_the_first_claim_only(tenant_a, mailoutbox):
    email = queue_email()

    assert [send(email), send(email)] == ["sent", "skipped"]
    assert len(mailoutbox) == 1


def test_a_row_is_not_sent_before_its_next_attempt_or_once_failed(tenant_a, mailoutbox):
    later = queue_email()
    failed = queue_email()
    with schema_context("acme"):
        OutboxEmail.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=1))
        OutboxEmail.objects.filter(pk=failed.pk).update(status=OutboxStatus.FAILED)

    assert [send(later), send(failed)] == ["skipped", "skipped"]
    assert reload(later).status == OutboxStatus.PENDING
    assert mailoutbox == []


def test_a_row_is_not_sent_by_a_task_running_in_another_schema(tenant_a, tenant_b, mailoutbox):
    email = queue_email("acme")

    with schema_context("globex"):
        assert outbox_email_send(outbox_id=email.pk, schema="acme") == "skipped"
    assert mailoutbox == []


def test_racing_sends_of_one_committed_row_deliver_it_once(tenant_a, mailoutbox, committed_outbox):
    def create() -> int:
        with schema_context("acme"):
            return OutboxEmail.objects.create(to="ada@example.com", subject="Race", body="Once.\n").pk

    pk = on_own_connection(create)

    def race() -> str:
        with schema_context("acme"):
            return outbox_email_send(outbox_id=pk, schema="acme")

    outcomes = in_parallel(race, 8)

    assert sorted(outcomes) == ["sent"] + ["skipped"] * 7
    assert len(mail.outbox) == 1


# --- failures: backoff, then failed ---------------------------------------------------------


def test_the_backoff_doubles_from_the_base_up_to_its_cap(settings):
    settings.NOTIFICATIONS_RETRY_BACKOFF_SECONDS = 60
    settings.NOTIFICATIONS_RETRY_BACKOFF_MAX_SECONDS = 3600

    waits = [outbox_backoff(attempts).total_seconds() for attempts in range(1, 8)]

    assert waits == [60, 120, 240, 480, 960, 1920, 3600]


def test_a_refused_email_is_retried_with_backoff_and_marked_failed_after_the_last_attempt(tenant_a, smtp_settings):
    smtp_settings.inbox.reply = "554 5.7.1 Message refused"
    email = queue_email()

    outcomes, waits = [], []
    for _ in range(3):
        outcomes.append(send(email))
        email = reload(email)
        if email.status == OutboxStatus.PENDING:
            assert email.next_attempt_at is not None and email.claimed_at is not None
            waits.append(round((email.next_attempt_at - email.claimed_at).total_seconds()))
            with schema_context("acme"):
                OutboxEmail.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())

    assert outcomes == ["retry", "retry", "failed"]
    assert waits == [60, 120]
    assert (email.status, email.attempts, email.next_attempt_at, email.body) == (OutboxStatus.FAILED, 3, None, "")
    assert email.last_error.startswith("SMTPDataError") and "554" in email.last_error
    assert smtp_settings.inbox.data_commands == 3 and smtp_settings.inbox.messages == []
    with schema_context("acme"):
        assert list(outbox_failed_list()) == [email]


def test_an_smtp_server_that_does_not_answer_in_time_is_retried(tenant_a, smtp_settings):
    smtp_settings.inbox.delay = 3  # EMAIL_TIMEOUT is 1 s

    email = queue_email()

    assert send(email) == "retry"
    email = reload(email)
    assert (email.status, email.attempts) == (OutboxStatus.PENDING, 1)
    assert "timed out" in email.last_error


def test_an_unreachable_smtp_server_is_retried(tenant_a, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 1
    email = queue_email()

    assert send(email) == "retry"
    assert reload(email).last_error.startswith("ConnectionRefusedError")


def test_an_error_never_records_the_body_even_when_the_server_echoes_it(tenant_a, smtp_settings, caplog):
    caplog.set_level(logging.INFO, logger="idp.notifications")
    smtp_settings.inbox.reply = (
        f"554 rejected: it contained {SECRET}, and the line: your temporary password is {SECRET}"
    )
    email = queue_email()

    assert send(email) == "retry"

    last_error = reload(email).last_error
    assert "554" in last_error and "[redacted]" in last_error
    assert SECRET not in last_error and SECRET not in caplog.text


def test_a_refused_recipient_is_recorded_for_the_admins_but_not_logged(tenant_a, smtp_settings, caplog):
    caplog.set_level(logging.INFO, logger="idp.notifications")
    smtp_settings.inbox.unknown_recipients = {"gone@example.com"}
    email = queue_email(to="gone@example.com")

    assert send(email) == "retry"

    last_error = reload(email).last_error
    assert last_error.startswith("SMTPRecipientsRefused") and "gone@example.com" in last_error
    assert "[recipient]" in caplog.text and "gone@example.com" not in caplog.text


def test_an_error_message_is_cut_to_the_field(tenant_a, smtp_settings):
    smtp_settings.inbox.reply = "554 " + "x" * 900
    email = queue_email()

    send(email)

    assert len(reload(email).last_error) == 500


# --- the periodic resend -----------------------------------------------------------------------


def test_the_resend_hands_over_due_rows_that_no_worker_has(tenant_a, mailoutbox):
    now = timezone.now()
    situations: dict[str, dict[str, Any]] = {
        "new": {},
        "handed_over_lately": {"enqueued_at": now - timedelta(minutes=1)},
        "handed_over_long_ago": {"enqueued_at": now - timedelta(minutes=10)},
        "due": {"attempts": 1, "next_attempt_at": now - timedelta(seconds=1)},
        "backing_off": {"attempts": 1, "next_attempt_at": now + timedelta(minutes=1)},
        "failed": {"status": OutboxStatus.FAILED},
    }
    with schema_context("acme"):
        rows = {
            name: OutboxEmail.objects.create(to=f"{name}@example.com", subject=name, body="b", **fields)
            for name, fields in situations.items()
        }

        result = outbox_sweep_current_schema()

    assert result["enqueued"] == 3
    assert sorted(message.subject for message in mailoutbox) == ["due", "handed_over_long_ago", "new"]
    statuses = {name: reload(row).status for name, row in rows.items()}
    assert statuses == {
        "new": "sent",
        "handed_over_lately": "pending",
        "handed_over_long_ago": "sent",
        "due": "sent",
        "backing_off": "pending",
        "failed": "failed",
    }


def test_a_row_whose_worker_died_while_sending_is_sent_again_after_the_timeout(tenant_a, mailoutbox):
    now = timezone.now()
    with schema_context("acme"):
        lost = OutboxEmail.objects.create(
            to="ada@example.com",
            subject="lost",
            body="b",
            status=OutboxStatus.SENDING,
            claimed_at=now - timedelta(minutes=11),
        )
        busy = OutboxEmail.objects.create(
            to="bob@example.com",
            subject="busy",
            body="b",
            status=OutboxStatus.SENDING,
            claimed_at=now - timedelta(minutes=1),
        )

        result = outbox_sweep_current_schema()

    assert (result["recovered"], result["given_up"], result["enqueued"]) == (1, 0, 1)
    assert [message.subject for message in mailoutbox] == ["lost"]
    lost = reload(lost)
    assert (lost.status, lost.attempts, lost.last_error) == (OutboxStatus.SENT, 1, "")
    assert reload(busy).status == OutboxStatus.SENDING  # its worker may still be at it


def test_a_row_whose_worker_died_on_its_last_attempt_is_marked_failed(tenant_a, settings, mailoutbox):
    settings.NOTIFICATIONS_MAX_ATTEMPTS = 3
    with schema_context("acme"):
        lost = OutboxEmail.objects.create(
            to="ada@example.com",
            subject="lost",
            body=BODY,
            attempts=2,
            status=OutboxStatus.SENDING,
            claimed_at=timezone.now() - timedelta(minutes=11),
        )

        result = outbox_sweep_current_schema()

    assert (result["recovered"], result["given_up"]) == (0, 1)
    lost = reload(lost)
    assert (lost.status, lost.attempts, lost.last_error, lost.body) == (
        OutboxStatus.FAILED,
        3,
        WORKER_LOST_GAVE_UP,
        "",
    )
    assert mailoutbox == []


def test_a_worker_that_outlived_its_claim_does_not_overwrite_the_row(tenant_a, mailoutbox, monkeypatch, caplog):
    import notifications.services as services

    email = queue_email()
    deliver = services._deliver

    def slow_deliver(row: OutboxEmail) -> None:
        deliver(row)
        # Meanwhile a sweep decided the worker was dead, and another worker claimed the row.
        OutboxEmail.objects.filter(pk=row.pk).update(
            status=OutboxStatus.SENDING, claimed_at=timezone.now(), attempts=1, last_error=WORKER_LOST
        )

    monkeypatch.setattr(services, "_deliver", slow_deliver)

    assert send(email) == "sent"

    email = reload(email)
    assert (email.status, email.last_error) == (OutboxStatus.SENDING, WORKER_LOST)  # the other claim's
    assert "may have been sent twice" in caplog.text


def test_sent_rows_are_deleted_after_the_retention_but_failed_rows_stay(tenant_a, settings):
    settings.NOTIFICATIONS_SENT_RETENTION_DAYS = 30
    long_ago = timezone.now() - timedelta(days=31)
    with schema_context("acme"):
        old = OutboxEmail.objects.create(to="a@example.com", subject="s", status=OutboxStatus.SENT, sent_at=long_ago)
        recent = OutboxEmail.objects.create(
            to="a@example.com", subject="s", status=OutboxStatus.SENT, sent_at=timezone.now()
        )
        failed = OutboxEmail.objects.create(to="a@example.com", subject="s", status=OutboxStatus.FAILED)
        OutboxEmail.objects.filter(pk=failed.pk).update(created_at=long_ago)

        assert outbox_sweep_current_schema()["purged"] == 1
        assert set(OutboxEmail.objects.values_list("pk", flat=True)) == {recent.pk, failed.pk}
        assert old.pk not in OutboxEmail.objects.values_list("pk", flat=True)


def test_the_resend_task_visits_every_tenant_but_never_the_template(tenant_a, tenant_b, mailoutbox):
    queue_email("acme", subject="for acme")
    queue_email("globex", subject="for globex")

    results = outbox_resend()

    assert sorted(message.subject for message in mailoutbox) == ["for acme", "for globex"]
    assert results["acme"]["enqueued"] == 1 and results["globex"]["enqueued"] == 1
    assert "tenant_template" not in results
    assert "public" in results


# --- what admins see -------------------------------------------------------------------------


def test_admins_see_only_their_own_schemas_failed_emails(tenant_a, tenant_b):
    queue_email("acme", to="not an address")
    queue_email("globex", to="also not an address")
    queue_email("acme")

    with schema_context("acme"):
        assert [email.to for email in outbox_failed_list()] == ["not an address"]
        assert outbox_status_counts() == {"pending": 1, "sending": 0, "sent": 0, "failed": 1}


def test_the_outbox_admin_is_read_only_and_never_shows_a_body(tenant_a, tenant_a_admin):
    model_admin = OutboxEmailAdmin(OutboxEmail, tenant_console)
    request = RequestFactory().get("/admin/")
    request.user = tenant_a_admin

    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert "body" not in model_admin.fields and "html_body" not in model_admin.fields


def test_a_console_user_allowed_to_view_the_outbox_sees_it_without_bodies(tenant_a):
    email = queue_email("acme", to="not an address")
    with schema_context("acme"):
        OutboxEmail.objects.filter(pk=email.pk).update(body=BODY)  # as if a body were still there
        viewer = User.objects.create_user(email="ops@acme.example", password=TEST_PASSWORD)
        role_assign(user=viewer, role=Role.objects.get(name=AUDITOR), branch=None, actor=None)
        client = Client(HTTP_HOST="acme.idp.test")
        client.force_login(viewer)

    listing = client.get("/admin/notifications/outboxemail/")
    detail = client.get(f"/admin/notifications/outboxemail/{email.pk}/change/")
    add = client.get("/admin/notifications/outboxemail/add/")

    assert (listing.status_code, detail.status_code, add.status_code) == (200, 200, 403)
    assert b"not an address" in listing.content and b"Invalid recipient address" in detail.content
    assert SECRET.encode() not in listing.content + detail.content


# --- tasks and their schema ------------------------------------------------------------------


def test_a_task_sent_for_a_schema_without_a_tenant_refuses_to_run(tenant_a):
    with pytest.raises(TaskSchemaMismatch):
        schema_seen.apply(args=[f"schemas-{uuid.uuid4().hex}"], headers={"_schema_name": "ghost"})


def test_a_task_runs_in_the_schema_it_was_sent_from(tenant_a):
    with schema_context("acme"):
        assert schema_seen.apply(args=[f"schemas-{uuid.uuid4().hex}"]).get() == "acme"
    assert schema_seen.apply(args=[f"schemas-{uuid.uuid4().hex}"]).get() == "public"


# --- the test harness itself ---------------------------------------------------------------


@pytest.mark.parametrize(
    "database",
    [
        {"NAME": "test_idp_1", "USER": "postgres", "PASSWORD": "", "HOST": "/work/main/.data/postgres", "PORT": ""},
        {"NAME": "test_idp_2", "USER": "idp", "PASSWORD": "p@ss/w:rd", "HOST": "db.internal", "PORT": "5432"},
    ],
)
def test_the_workers_database_url_names_the_same_database(database):
    parsed: dict[str, Any] = dict(dj_database_url.parse(database_url(database)))

    assert {key: str(parsed[key] or "") for key in database} == database


@pytest.mark.parametrize(
    ("redis_url", "expected"),
    [
        ("redis://127.0.0.1:6379/4", "redis://127.0.0.1:6379/4"),
        ("unix:///work/main/.data/redis.socket?db=4", "redis+socket:///work/main/.data/redis.socket?virtual_host=4"),
    ],
)
def test_the_broker_url_of_a_redis_socket_is_spelled_for_kombu(redis_url, expected):
    assert broker_url(redis_url) == expected


def test_the_smtp_harness_delivers_a_message(smtp_settings):
    mail.send_mail("Harness", "Hello.\n", None, ["ada@example.com"])

    [message] = smtp_settings.inbox.messages
    assert text_of(message) == "Hello.\n"
