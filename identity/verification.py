"""Email-verification links: a signed, expiring token and the user id it belongs to.

Nothing is stored per link. The token is an HMAC (SECRET_KEY, with its own salt) over the
state that verifying changes, so it is single use without a table of used tokens:
following a link sets `is_active` and `email_verified_at`, after which the same token no
longer matches. It also stops matching when the email or the password changes (a newer
registration of a pending address supersedes the older links, see
identity.services.registration), when the account is deactivated, and in another tenant's
schema.
"""

import base64
import binascii
import uuid
from datetime import datetime, timedelta

from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.utils.crypto import constant_time_compare
from django.utils.http import base36_to_int, urlsafe_base64_encode

from core.tenancy import current_schema
from identity.models import User

EMAIL_VERIFICATION_TIMEOUT = timedelta(days=3)


def _stamp(value: datetime | None) -> str:
    # Microseconds dropped so the value survives a database round trip unchanged.
    return value.replace(microsecond=0, tzinfo=None).isoformat() if value is not None else ""


class EmailVerificationTokenGenerator(PasswordResetTokenGenerator):
    """Django's password-reset token machinery with its own salt, state and expiry.

    Django 5.2's `check_token` expires tokens after settings.PASSWORD_RESET_TIMEOUT, a
    setting that belongs to password resets; `check_token` is overridden here so that the
    verification links expire after `timeout` whatever that setting says.
    """

    key_salt = "identity.verification.EmailVerificationTokenGenerator"
    timeout = int(EMAIL_VERIFICATION_TIMEOUT.total_seconds())

    def _make_hash_value(self, user: User, timestamp: int) -> str:
        # The schema binds the token to its tenant even though user ids never collide.
        parts = [
            current_schema(),
            str(user.pk),
            user.email,
            str(user.is_active),
            _stamp(user.email_verified_at),
            _stamp(user.deactivated_at),
            user.password or "",
            str(timestamp),
        ]
        return "\x1f".join(parts)

    def check_token(self, user: User | None, token: str | None) -> bool:
        if not (user and token):
            return False
        try:
            ts_b36, _ = token.split("-")
            timestamp = base36_to_int(ts_b36)
        except ValueError:
            return False
        for secret in [self.secret, *self.secret_fallbacks]:
            if constant_time_compare(self._make_token_with_timestamp(user, timestamp, secret), token):
                break
        else:
            return False
        return self._num_seconds(self._now()) - timestamp <= self.timeout


email_verification_token = EmailVerificationTokenGenerator()


def uid_encode(user_id: uuid.UUID) -> str:
    return urlsafe_base64_encode(str(user_id).encode())


def uid_decode(uidb64: str) -> uuid.UUID | None:
    """The user id in a link, or None for anything that is not one (never raises)."""
    if len(uidb64) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(uidb64.encode("ascii") + b"=" * (-len(uidb64) % 4))
        user_id = uuid.UUID(raw.decode("ascii"))
    except (ValueError, UnicodeError, binascii.Error):
        return None
    # One spelling per id: the decoder skips stray characters and UUID() takes several forms.
    return user_id if uid_encode(user_id) == uidb64 else None


def verified_link_user(*, uidb64: str, token: str, for_update: bool = False) -> User | None:
    """The user a verification link names, when its token is valid for them now; else None.

    Checks the signature, the state it covers and the expiry, not what the state allows
    (the caller decides whether that user may still be verified).
    """
    user_id = uid_decode(uidb64)
    if user_id is None or len(token) > 64:
        return None
    users = User.objects.select_for_update() if for_update else User.objects.all()
    user = users.filter(pk=user_id).first()
    if user is None or not email_verification_token.check_token(user, token):
        return None
    return user
