"""The email outbox, in every schema (a tenant's users, and the platform's operators in public)."""

from django.db import models
from django.db.models import Q


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting to be sent (now, or at next_attempt_at)
    SENDING = "sending", "Sending"  # claimed by one worker (claimed_at); nobody else may send it
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"  # given up after NOTIFICATIONS_MAX_ATTEMPTS; admins see it


class OutboxEmail(models.Model):
    """One email, written in the transaction of the change that causes it and sent by a task
    after that commits (notifications.tasks). A broker outage delays it (outbox_resend picks
    it up), a rollback drops it, and a claim on `status` lets exactly one worker send it.

    The body may hold a temporary password or a reset link: it is kept only while the email
    may still be sent (cleared once sent or failed), is never logged and never copied into
    `last_error`, and the admin does not show it.
    """

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=64, default="generic")
    to = models.EmailField(max_length=254)
    subject = models.CharField(max_length=998)  # RFC 5322's limit for one header line
    body = models.TextField(blank=True)
    html_body = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Failed sending attempts so far.")
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Not sent before this (backoff).")
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="When a worker claimed it for sending.")
    enqueued_at = models.DateTimeField(null=True, blank=True, help_text="When a send task was last handed over.")
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        verbose_name = "outbox email"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=OutboxStatus.values), name="notifications_outbox_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status=OutboxStatus.SENT) | Q(sent_at__isnull=False),
                name="notifications_outbox_sent_has_sent_at",
            ),
            models.CheckConstraint(
                condition=~Q(status=OutboxStatus.SENDING) | Q(claimed_at__isnull=False),
                name="notifications_outbox_sending_has_claimed_at",
            ),
        ]
        indexes = [
            # What the periodic resend scans: the few rows not yet done.
            models.Index(
                fields=["status", "next_attempt_at"],
                condition=Q(status__in=[OutboxStatus.PENDING, OutboxStatus.SENDING]),
                name="notifications_outbox_open",
            ),
            models.Index(
                fields=["-created_at"], condition=Q(status=OutboxStatus.FAILED), name="notifications_outbox_failed"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.status}"


class EmailTemplateOverride(models.Model):
    """A tenant's own subject and/or text for one kind of email (notifications.kinds), in the
    tenant's schema. Plain text with `{placeholder}` substitution, validated on save by
    notifications.templating.override_errors; never rendered as a template. An empty part
    keeps the default."""

    kind = models.CharField(max_length=64, unique=True)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind"]
        verbose_name = "email template override"
        constraints = [
            models.CheckConstraint(condition=~Q(subject="") | ~Q(body=""), name="notifications_override_not_empty"),
        ]

    def __str__(self) -> str:
        return self.kind
