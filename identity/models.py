"""Users and audit events. Both live in every schema: the public schema's users are the
platform operators, a tenant schema's users are that tenant's admins and employees."""

import uuid
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone


def normalize_email(email: str) -> str:
    """One spelling per address: case and surrounding whitespace never make a second account."""
    return email.strip().lower()


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str, password: str | None, **fields: Any) -> "User":
        user = self.model(email=normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> "User":
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> "User":
        fields.update(is_staff=True, is_superuser=True, is_active=True)
        return self._create(email, password, **fields)

    def get_by_natural_key(self, username: str | None) -> "User":
        return self.get(email=normalize_email(username or ""))


kra_pin_validator = RegexValidator(
    r"^[A-Z][0-9]{9}[A-Z]$", "Enter a KRA PIN: a letter, nine digits and a letter (e.g. A123456789B)."
)


def picture_upload_to(instance: "User", filename: str) -> str:
    # Never trust the client's file name; the extension is set from the checked content type.
    return f"pictures/{instance.pk}/{uuid.uuid4().hex}"


class User(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(max_length=254)
    full_name = models.CharField(max_length=200, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    address = models.CharField(max_length=500, blank=True)
    picture = models.ImageField(upload_to=picture_upload_to, blank=True)

    employee_id = models.CharField(max_length=64, blank=True)
    kra_pin = models.CharField(max_length=11, blank=True, validators=[kra_pin_validator])
    branch_id = models.CharField(max_length=64, blank=True, help_text="External id of the user's branch.")
    restaurant_id = models.CharField(max_length=64, blank=True)

    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="May sign in to the admin console.")
    is_tenant_admin = models.BooleanField(default=False)
    must_change_password = models.BooleanField(default=False)
    email_verified_at = models.DateTimeField(null=True, blank=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="identity_user_email_ci"),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)


class AuditEvent(models.Model):
    """One append-only row per security-relevant event. Never holds a secret."""

    id = models.BigAutoField(primary_key=True)
    type = models.CharField(max_length=64, db_index=True)
    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_id = models.UUIDField(null=True, blank=True, db_index=True)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]

    def __str__(self) -> str:
        return f"{self.type} {self.target_type}:{self.target_id}"


class SigningKey(models.Model):
    """One of the tenant's token signing keys. The private key is encrypted at rest and never
    served; the public JWK is published until every token it signed has expired."""

    kid = models.CharField(max_length=64, unique=True)
    algorithm = models.CharField(max_length=16)
    private_key_encrypted = models.TextField()
    public_jwk = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    publish_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.algorithm} {self.kid}"


class LoginAttempt(models.Model):
    """Every login attempt, success or failure, with what was tried and from where."""

    id = models.BigAutoField(primary_key=True)
    timestamp = models.DateTimeField(auto_now_add=True, db_index=True)
    email = models.CharField(max_length=254, db_index=True, help_text="Normalised email as typed.")
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="login_attempts")
    success = models.BooleanField()
    reason = models.CharField(max_length=32, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    device_id = models.CharField(max_length=128, blank=True)
    device_name = models.CharField(max_length=128, blank=True)
    device_type = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["-timestamp", "-id"]
        indexes = [
            models.Index(fields=["email", "timestamp"], name="identity_attempt_email_time"),
            # The suspicious-activity rules count an address's recent failures on every failure.
            models.Index(fields=["ip", "timestamp"], name="identity_attempt_ip_time"),
        ]

    def __str__(self) -> str:
        return f"{self.email} {'ok' if self.success else self.reason}"


class IpBlockQuerySet(models.QuerySet["IpBlock"]):
    def active(self, now: Any = None) -> "IpBlockQuerySet":
        """Blocks in force: not lifted and not yet expired."""
        return self.filter(lifted_at__isnull=True, expires_at__gt=now or timezone.now())


class IpBlock(models.Model):
    """An address refused at the tenant's authentication entry points until `expires_at`
    (or until an admin lifts it). The row is the truth; Redis holds a copy for the fast check
    (identity.security)."""

    id = models.BigAutoField(primary_key=True)
    ip = models.GenericIPAddressField()
    reason = models.CharField(max_length=64, help_text="The rule that flagged the address.")
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    objects = IpBlockQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["ip", "expires_at"], name="identity_ipblock_ip_expiry")]

    def __str__(self) -> str:
        return f"{self.ip} ({self.reason})"

    def is_active(self, now: Any = None) -> bool:
        return self.lifted_at is None and self.expires_at > (now or timezone.now())


class LoginLockout(models.Model):
    """Lockout state per normalised email (known or not). Its row is locked FOR UPDATE while
    an attempt is evaluated, so parallel guesses for one email are judged one at a time."""

    email = models.CharField(max_length=254, unique=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    # Failures before this instant no longer count: set by a success and by an unlock.
    counted_since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.email
