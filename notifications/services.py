"""Email sending. Sends after the surrounding transaction commits, so no email goes out for a
change that rolled back."""

import logging

from django.core.mail import send_mail
from django.db import transaction

logger = logging.getLogger("idp.notifications")


def email_send_after_commit(*, to: str, subject: str, body: str) -> None:
    def send() -> None:
        try:
            send_mail(subject, body, None, [to])
        except Exception:
            # The body may hold a temporary password: log the failure, never the message.
            logger.exception("Sending email %r failed", subject)

    transaction.on_commit(send)
