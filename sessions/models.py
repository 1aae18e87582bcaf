import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class EndReason(models.TextChoices):
    LOGOUT = "logout"
    NEW_DEVICE = "new_device"
    ADMIN = "admin"
    PASSWORD_CHANGE = "password_change"
    PASSWORD_RESET = "password_reset"
    USER_DISABLED = "user_disabled"
    REFRESH_REUSE = "refresh_reuse"
    EXPIRED = "expired"


class DeviceSession(models.Model):
    """A user's login on one device. It owns one refresh-token family: each refresh rotates
    `refresh_jti_hash`; ending the session refuses all of its tokens at once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="device_sessions")
    device_id = models.CharField(max_length=128)
    device_name = models.CharField(max_length=128, blank=True)
    device_type = models.CharField(max_length=32, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_active_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(help_text="Absolute end of the refresh family.")
    refresh_jti_hash = models.CharField(max_length=64, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=32, choices=EndReason.choices, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "device_id"], condition=Q(ended_at__isnull=True), name="sessions_one_active_per_device"
            ),
        ]
        indexes = [models.Index(fields=["user", "ended_at"], name="sessions_user_active")]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.device_id}"

    @property
    def is_active(self) -> bool:
        return self.ended_at is None


class SessionEvent(models.Model):
    """An ended session, written in the transaction that ends it and published afterwards to
    the tenant's Redis stream (sessions.events): a broker or Redis outage delays the event,
    never loses it (a periodic task publishes what is left)."""

    id = models.BigAutoField(primary_key=True)
    session_id = models.UUIDField()
    user_id = models.UUIDField()
    device_id = models.CharField(max_length=128)
    reason = models.CharField(max_length=32)
    ended_at = models.DateTimeField()
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["id"], condition=Q(published_at__isnull=True), name="sessions_event_unpublished")
        ]

    def __str__(self) -> str:
        return f"{self.session_id} {self.reason}"
