"""Email through an outbox, rendered from templates per kind.

`email_kind_send` renders an email of a kind (notifications.kinds: the default templates, or
the tenant's override of the subject and text) and queues it with `email_send_after_commit`.
Tenant admins change overrides through `email_template_override_set` and `..._delete`.

`email_send_after_commit` writes an OutboxEmail row in the caller's transaction and, once that
commits, hands its id to Celery (`notifications.email_send`, in the row's schema). A rollback
drops the row, so no email goes out for a change that did not happen; a broker outage leaves
the row pending and the request succeeds; the periodic `notifications.outbox_resend` hands
over what is due, retries failures with exponential backoff and gives up after
NOTIFICATIONS_MAX_ATTEMPTS (status `failed`, visible to admins).

Delivery is at most once per claim: a worker sends a row only after moving it from `pending`
to `sending` in one UPDATE, which one worker alone can win. See `outbox_sweep_current_schema`
for the one case that trades this for at-least-once (a worker that died while sending).

Nothing here logs a body (it may hold a temporary password or a reset link) or puts it into
`last_error`; log lines name the row by id and schema.
"""

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django_tenants.utils import schema_context

from core.errors import invalid_request
from core.tenancy import current_schema, tenant_connection
from identity.services.audit import audit_record
from notifications.kinds import KINDS, Kind
from notifications.models import EmailTemplateOverride, OutboxEmail, OutboxStatus
from notifications.templating import RenderedEmail, default_render, override_errors, override_render

if TYPE_CHECKING:
    from tenants.models import Tenant

logger = logging.getLogger("idp.notifications")

# Defaults of the settings that tune the outbox (all optional).
MAX_ATTEMPTS = 5  # NOTIFICATIONS_MAX_ATTEMPTS: failed attempts before a row is marked failed
RETRY_BACKOFF_SECONDS = 60  # NOTIFICATIONS_RETRY_BACKOFF_SECONDS: wait after the 1st failure; doubles
RETRY_BACKOFF_MAX_SECONDS = 3600  # NOTIFICATIONS_RETRY_BACKOFF_MAX_SECONDS: the longest wait
# NOTIFICATIONS_SENDING_TIMEOUT_SECONDS: a row claimed longer ago than this has lost its worker.
# Far above what a live worker can take (EMAIL_TIMEOUT bounds each SMTP step), so that only a
# dead worker's row is taken back.
SENDING_TIMEOUT_SECONDS = 600
# NOTIFICATIONS_REQUEUE_AFTER_SECONDS: a pending row already handed to the broker is handed over
# again only after this (the broker may have lost the message); until then the resend leaves it
# to the task already queued instead of flooding the queue with copies.
REQUEUE_AFTER_SECONDS = 300
SENT_RETENTION_DAYS = 30  # NOTIFICATIONS_SENT_RETENTION_DAYS: sent rows are deleted after this
RESEND_BATCH = 500  # rows handed over per schema and sweep

LAST_ERROR_LENGTH = OutboxEmail._meta.get_field("last_error").max_length or 500
SUBJECT_LENGTH = OutboxEmail._meta.get_field("subject").max_length or 998
WORKER_LOST = "The worker sending it stopped before recording the outcome; sent again."
WORKER_LOST_GAVE_UP = "The worker sending it stopped before recording the outcome; not sent again."

# Handing a task to the broker waits at most one retry (a pooled connection that went stale
# when the broker restarted is replaced on the retry); a broker that is down costs the request
# about two connection timeouts (CELERY_BROKER_CONNECTION_TIMEOUT), then the row waits.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def email_kind_send(*, kind: Kind, to: str, context: Mapping[str, str], tenant: "Tenant | None" = None) -> None:
    """Render an email of `kind` for `tenant` (default: the current schema's) and queue it to
    `to` in the current transaction (email_send_after_commit). `context` holds exactly the
    kind's own placeholders (KindSpec.placeholders) as strings; the tenant's name and origin
    and the recipient's address are added here. A tenant's override of the subject or text
    is used when there is one (looked up in the current schema)."""
    from tenants.services import tenant_origin  # tenants.services imports the senders of emails

    spec = KINDS[kind]
    if set(context) != set(spec.placeholders):
        raise ValueError(f"{kind} takes {sorted(spec.placeholders)}, not {sorted(context)}")
    tenant = tenant if tenant is not None else _current_tenant()
    values = {"tenant_name": tenant.name, "tenant_url": tenant_origin(tenant), "user_email": to, **context}
    rendered = _render(kind, values)
    email_send_after_commit(to=to, subject=rendered.subject, body=rendered.text, kind=kind, html_body=rendered.html)


def email_time(moment: datetime) -> str:
    """A time as emails show it: `2026-11-22 14:05 UTC`."""
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _current_tenant() -> "Tenant":
    from tenants.models import Tenant

    tenant = getattr(tenant_connection(), "tenant", None)
    if isinstance(tenant, Tenant):
        return tenant
    return Tenant.objects.get(schema_name=current_schema())  # a schema_context (a task) has no Tenant


def _render(kind: Kind, values: Mapping[str, str]) -> RenderedEmail:
    spec = KINDS[kind]
    override = EmailTemplateOverride.objects.filter(kind=kind).first() if spec.overridable else None
    if override is None:
        return default_render(kind, values)
    if override_errors(spec, subject=override.subject, body=override.body):
        # Saved under older rules (a placeholder since removed or made required): the
        # default goes out rather than an email missing what it exists for.
        logger.warning("The %s override in %s no longer validates: the default is sent", kind, current_schema())
        return default_render(kind, values)
    return override_render(kind, values, subject=override.subject, body=override.body)


@transaction.atomic
def email_template_override_set(*, kind: Kind, subject: str, body: str, actor: Any) -> EmailTemplateOverride:
    """Set the current tenant's subject and/or text of `kind` (an empty one keeps the default).
    400 invalid_request, naming the field, for an unknown or misplaced placeholder, a missing
    required one, a subject of more than one line, or neither part given."""
    spec = KINDS[kind]
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    if not subject and not body:
        raise invalid_request(
            {"subject": ["Give a subject, a body or both."], "body": ["Give a subject, a body or both."]},
            detail="An override needs a subject or a body; DELETE goes back to the defaults.",
        )
    if errors := override_errors(spec, subject=subject, body=body):
        raise invalid_request(errors)
    override, created = EmailTemplateOverride.objects.select_for_update().get_or_create(
        kind=kind, defaults={"subject": subject, "body": body}
    )
    if not created:
        override.subject, override.body = subject, body
        override.save(update_fields=["subject", "body", "updated_at"])
    audit_record(
        type="email_template.updated",
        actor=actor,
        target_type="email_template",
        target_id=kind,
        data={"kind": kind, "subject": subject, "body_overridden": bool(body), "created": created},
    )
    return override


@transaction.atomic
def email_template_override_delete(*, kind: Kind, actor: Any) -> bool:
    """Go back to the default subject and text of `kind`. Returns whether there was an override."""
    deleted, _ = EmailTemplateOverride.objects.filter(kind=kind).delete()
    if deleted:
        audit_record(
            type="email_template.deleted",
            actor=actor,
            target_type="email_template",
            target_id=kind,
            data={"kind": kind},
        )
    return bool(deleted)


def email_send_after_commit(*, to: str, subject: str, body: str, kind: str = "generic", html_body: str = "") -> None:
    """Queue an email to `to` as part of the current transaction (in the current schema) and
    send it after commit. Never raises for the email's sake: a broker or SMTP failure is
    retried by the outbox, and an invalid address (which the caller should have refused when
    it stored it) is recorded as a failed row instead of failing the caller."""
    subject = " ".join(subject.splitlines())[:SUBJECT_LENGTH]  # one header line: no header injection
    schema = current_schema()
    try:
        validate_email(to)
    except ValidationError:
        email = OutboxEmail.objects.create(
            kind=kind,
            to=to[:254],
            subject=subject,
            status=OutboxStatus.FAILED,
            last_error="Invalid recipient address; not sent.",
        )
        logger.warning("Outbox email %s (%s) in %s not sent: invalid recipient address", email.pk, kind, schema)
        return
    email = OutboxEmail.objects.create(kind=kind, to=to, subject=subject, body=body, html_body=html_body)
    # outbox_enqueue does not raise; robust=True keeps it so should that ever change.
    transaction.on_commit(partial(outbox_enqueue, outbox_id=email.pk, schema=schema), robust=True)


def outbox_enqueue(*, outbox_id: int, schema: str) -> bool:
    """Hand row `outbox_id` of `schema` to a worker (the task carries the schema). Never raises:
    when the broker is unavailable it logs a warning, leaves the row pending for the periodic
    resend and returns False."""
    from kombu.exceptions import OperationalError

    from notifications.tasks import email_send

    task_kwargs = {"outbox_id": outbox_id, "schema": schema}
    # The schema is the row's, not whatever the connection is on by the time the transaction
    # commits: the callback may run after the caller has left its schema_context.
    with schema_context(schema):
        try:
            OutboxEmail.objects.filter(pk=outbox_id, status=OutboxStatus.PENDING).update(enqueued_at=timezone.now())
            if email_send.app.conf.task_always_eager:
                # In this process (make run without a broker; the test settings). apply_async
                # would build a broker connection even so, and fail on a broker URL kombu
                # cannot read (the embedded test Redis's unix:// socket).
                email_send.apply(kwargs=task_kwargs)
            else:
                email_send.apply_async(kwargs=task_kwargs, retry_policy=PUBLISH_RETRY_POLICY)
            return True
        except (OperationalError, OSError) as exc:  # an outage the outbox rides out
            logger.warning(
                "Broker unavailable (%s): outbox email %s in %s waits for the periodic resend",
                type(exc).__name__,
                outbox_id,
                schema,
            )
        except Exception:  # a bug (eagerly, the task ran right here), or the database gone
            logger.exception("Handing outbox email %s in %s to Celery failed", outbox_id, schema)
        try:
            OutboxEmail.objects.filter(pk=outbox_id, status=OutboxStatus.PENDING).update(enqueued_at=None)
        except Exception:  # the resend hands it over REQUEUE_AFTER_SECONDS later instead
            logger.exception("Outbox email %s in %s: could not mark it for the resend", outbox_id, schema)
    return False


def outbox_email_send(*, outbox_id: int, schema: str) -> str:
    """Send row `outbox_id` of the current schema if it is due and nobody else has it.

    Returns what happened: "sent", "retry" (failed, pending again with backoff), "failed"
    (failed for the last time), or "skipped" (not pending, not due, already claimed or gone).
    Never raises for an SMTP refusal, a timeout or a connection error.
    """
    if current_schema() != schema:  # defence in depth: config.celery.SchemaCheckedTask checks first
        logger.error("Outbox email %s of %s not sent: the task runs in %s", outbox_id, schema, current_schema())
        return "skipped"
    claimed_at = timezone.now()
    claimed = (
        OutboxEmail.objects.filter(pk=outbox_id, status=OutboxStatus.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=claimed_at))
        .update(status=OutboxStatus.SENDING, claimed_at=claimed_at)
    )
    if not claimed:
        return "skipped"
    email = OutboxEmail.objects.get(pk=outbox_id)
    try:
        _deliver(email)
    except Exception as exc:  # SMTP refusals, timeouts, refused connections, bad headers
        return _record_failure(email, exc, claimed_at=claimed_at)
    recorded = _claimed(outbox_id, claimed_at).update(
        status=OutboxStatus.SENT,
        sent_at=timezone.now(),
        body="",  # a sent email's body (a temporary password, a reset link) is not kept
        html_body="",
        last_error="",
        next_attempt_at=None,
    )
    if not recorded:
        logger.warning(
            "Outbox email %s in %s was sent after its claim had expired: it may have been sent twice",
            outbox_id,
            schema,
        )
    return "sent"


def outbox_sweep_current_schema(now: datetime | None = None) -> dict[str, int]:
    """The periodic part of the outbox, in the current schema.

    1. Rows left in `sending` longer than NOTIFICATIONS_SENDING_TIMEOUT_SECONDS lost their
       worker (it died or was killed between the claim and recording the outcome). They count
       as a failed attempt and are sent again; after the last attempt they are marked failed.
       This is the one case of at-least-once delivery: if the SMTP server accepted the message
       just before the worker died, the recipient gets it twice. Dropping such rows instead
       would lose the email (a reset link, a temporary password), which costs the user more
       than a duplicate; a claim cannot outlive the timeout otherwise, since each SMTP step is
       bounded by EMAIL_TIMEOUT.
    2. Pending rows that are due and not handed to the broker in the last
       NOTIFICATIONS_REQUEUE_AFTER_SECONDS are handed over (stopping at the first broker error).
    3. Sent rows older than NOTIFICATIONS_SENT_RETENTION_DAYS are deleted; failed rows stay for
       the admins.
    """
    now = now or timezone.now()
    schema = current_schema()
    max_attempts = _setting("NOTIFICATIONS_MAX_ATTEMPTS", MAX_ATTEMPTS)
    stuck = OutboxEmail.objects.filter(
        status=OutboxStatus.SENDING,
        claimed_at__lt=now
        - timedelta(seconds=_setting("NOTIFICATIONS_SENDING_TIMEOUT_SECONDS", SENDING_TIMEOUT_SECONDS)),
    )
    given_up = stuck.filter(attempts__gte=max_attempts - 1).update(
        status=OutboxStatus.FAILED,
        attempts=F("attempts") + 1,
        last_error=WORKER_LOST_GAVE_UP,
        next_attempt_at=None,
        body="",
        html_body="",
    )
    recovered = stuck.update(
        status=OutboxStatus.PENDING,
        attempts=F("attempts") + 1,
        last_error=WORKER_LOST,
        next_attempt_at=now,
        enqueued_at=None,
    )
    if given_up or recovered:
        logger.warning(
            "Outbox in %s: %d emails lost their worker; %d will be sent again", schema, given_up + recovered, recovered
        )

    requeue_before = now - timedelta(seconds=_setting("NOTIFICATIONS_REQUEUE_AFTER_SECONDS", REQUEUE_AFTER_SECONDS))
    due = list(
        OutboxEmail.objects.filter(status=OutboxStatus.PENDING)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=requeue_before))
        .order_by("id")
        .values_list("pk", flat=True)[:RESEND_BATCH]
    )
    enqueued = 0
    for outbox_id in due:
        if not outbox_enqueue(outbox_id=outbox_id, schema=schema):
            break  # the broker is down: the next sweep tries again
        enqueued += 1

    retention = timedelta(days=_setting("NOTIFICATIONS_SENT_RETENTION_DAYS", SENT_RETENTION_DAYS))
    purged, _ = OutboxEmail.objects.filter(status=OutboxStatus.SENT, sent_at__lt=now - retention).delete()
    return {"recovered": recovered, "given_up": given_up, "enqueued": enqueued, "purged": purged}


def outbox_backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt: the base, doubled each time, capped."""
    base = _setting("NOTIFICATIONS_RETRY_BACKOFF_SECONDS", RETRY_BACKOFF_SECONDS)
    cap = _setting("NOTIFICATIONS_RETRY_BACKOFF_MAX_SECONDS", RETRY_BACKOFF_MAX_SECONDS)
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def _claimed(outbox_id: int, claimed_at: datetime) -> Any:
    """The row, only while it is still this worker's claim (not taken back by a sweep)."""
    return OutboxEmail.objects.filter(pk=outbox_id, status=OutboxStatus.SENDING, claimed_at=claimed_at)


def _deliver(email: OutboxEmail) -> None:
    message = EmailMultiAlternatives(
        subject=email.subject, body=email.body, to=[email.to], headers={"Auto-Submitted": "auto-generated"}
    )
    if email.html_body:
        message.attach_alternative(email.html_body, "text/html")
    message.send()


def _record_failure(email: OutboxEmail, exc: Exception, *, claimed_at: datetime) -> str:
    attempts = email.attempts + 1
    error = _error_text(exc, email)
    logged_error = error.replace(email.to, "[recipient]")  # a refused recipient is named in the error
    now = timezone.now()
    if attempts >= _setting("NOTIFICATIONS_MAX_ATTEMPTS", MAX_ATTEMPTS):
        _claimed(email.pk, claimed_at).update(
            status=OutboxStatus.FAILED,
            attempts=attempts,
            last_error=error,
            next_attempt_at=None,
            body="",
            html_body="",
        )
        logger.error(
            "Outbox email %s (%s) in %s failed for good after %d attempts: %s",
            email.pk,
            email.kind,
            current_schema(),
            attempts,
            logged_error,
        )
        return "failed"
    next_attempt_at = now + outbox_backoff(attempts)
    _claimed(email.pk, claimed_at).update(
        status=OutboxStatus.PENDING,
        attempts=attempts,
        last_error=error,
        next_attempt_at=next_attempt_at,
        enqueued_at=None,
    )
    logger.warning(
        "Outbox email %s (%s) in %s: attempt %d failed (%s); next attempt after %s",
        email.pk,
        email.kind,
        current_schema(),
        attempts,
        logged_error,
        next_attempt_at.isoformat(),
    )
    return "retry"


def _error_text(exc: Exception, email: OutboxEmail) -> str:
    """What went wrong, short, and without the message's body or the SMTP password even if a
    server echoed them back."""
    text = f"{type(exc).__name__}: {exc}"
    secrets = [settings.EMAIL_HOST_PASSWORD] if settings.EMAIL_HOST_PASSWORD else []
    for part in (email.body, email.html_body):
        # Whole lines, and every longer word on its own: a password or a token is one word.
        secrets += [line.strip() for line in part.splitlines() if len(line.strip()) >= 8]
        secrets += [word for word in part.split() if len(word) >= 8]
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "[redacted]")
    return text[:LAST_ERROR_LENGTH]
