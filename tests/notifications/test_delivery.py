"""Every kind of email through the real thing: committed in a tenant's schema, handed to a
Celery worker in its own process over the test run's Redis, delivered to an SMTP server on
loopback; and no secret in any log line of either process."""

import logging
import re
from email.message import EmailMessage
from urllib.parse import urlparse

from django.db import transaction
from django_tenants.utils import schema_context

from notifications.kinds import Kind
from notifications.models import OutboxEmail, OutboxStatus
from notifications.services import email_kind_send
from tests.concurrency import on_own_connection
from tests.notifications.harness import text_of, wait_for
from tests.notifications.samples import SECRETS, sample_context


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def commit_one_of_each_kind() -> None:
    def queue() -> None:
        with schema_context("acme"), transaction.atomic():
            for kind in Kind:
                email_kind_send(kind=kind, to=f"{kind.value}@example.com", context=sample_context(kind))

    on_own_connection(queue)


def test_every_kind_is_delivered_with_text_and_html_on_the_tenants_domain_and_no_secret_logged(
    start_worker, smtp, broker, tenant_a, caplog
):
    caplog.set_level(logging.DEBUG)
    worker = start_worker()

    commit_one_of_each_kind()

    wait_for(
        lambda: len(smtp.inbox.messages) >= len(Kind), timeout=60, what="one message of each kind at the SMTP server"
    )
    wait_for(lambda: on_own_connection(lambda: _statuses()) == {OutboxStatus.SENT.value}, what="every row marked sent")
    by_recipient = {str(message["To"]): message for message in smtp.inbox.messages}
    assert set(by_recipient) == {f"{kind.value}@example.com" for kind in Kind}
    assert len(smtp.inbox.messages) == len(Kind)  # each once
    domain = tenant_a.primary_domain_name()
    for kind in Kind:
        message = by_recipient[f"{kind.value}@example.com"]
        text, html = text_of(message), html_of(message)
        assert "Acme" in str(message["Subject"]), kind
        assert "Acme" in text and "Acme" in html, kind
        for name, value in sample_context(kind).items():
            assert value in text, (kind, name)
        links = [link.rstrip(".,") for link in re.findall(r"https?://[^\s\"<>]+", text)]
        links += re.findall(r'href="([^"]+)"', html)
        assert links, kind
        assert {urlparse(link).hostname for link in links} == {domain}, (kind, links)
        assert message["Auto-Submitted"] == "auto-generated"
    # Every record of this process but the test's own SMTP server's (aiosmtpd logs what it receives).
    log = worker.log() + "\n".join(
        f"{record.getMessage()} {record.exc_text or ''}" for record in caplog.records if record.name != "mail.log"
    )
    assert "notifications.email_send" in worker.log()
    for secret in SECRETS:
        assert secret not in log


def _statuses() -> set[str]:
    with schema_context("acme"):
        return set(OutboxEmail.objects.values_list("status", flat=True))
