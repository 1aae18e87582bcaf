"""The kinds of email the IdP sends, and the placeholders each one offers.

A kind's default subject, text and HTML are Django templates in
`notifications/templates/notifications/email/` (`<kind>.subject.txt`, `<kind>.txt`,
`<kind>.html`), rendered with exactly the kind's placeholders as string values. A tenant may
override the subject and the text of a kind (notifications.models.EmailTemplateOverride):
those are plain text with `{placeholder}` substitution over the same values, never templates
(notifications.templating).
"""

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    REGISTRATION_VERIFY = "registration_verify"
    REGISTRATION_EXISTING = "registration_existing"
    EMPLOYEE_WELCOME = "employee_welcome"
    TENANT_ADMIN_WELCOME = "tenant_admin_welcome"
    PASSWORD_RESET = "password_reset"
    PASSWORD_RESET_DONE = "password_reset_done"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_SET_BY_ADMIN = "password_set_by_admin"
    NEW_DEVICE_LOGIN = "new_device_login"
    ACCOUNT_LOCKED = "account_locked"
    SESSION_ENDED_BY_ADMIN = "session_ended_by_admin"


# Every kind has these; notifications.services.email_kind_send fills them in.
COMMON_PLACEHOLDERS = ("tenant_name", "tenant_url", "user_email")
COMMON_LINKS = frozenset({"tenant_url"})

# API.md: the welcome holds the password on a line of its own, and says it must be changed.
TEMPORARY_PASSWORD_LINE = "Temporary password: {temporary_password}"
MUST_CHANGE_LINE = "You must change this password at first login."


@dataclass(frozen=True)
class KindSpec:
    description: str
    # What the caller passes (besides COMMON_PLACEHOLDERS), all strings.
    placeholders: tuple[str, ...] = ()
    # Credentials: allowed in a body only. Subjects are kept after sending and shown in the
    # admin's outbox list; bodies are cleared once sent.
    secrets: frozenset[str] = frozenset()
    # URLs: an overridden body's HTML part makes them links.
    links: frozenset[str] = frozenset()
    # Placeholders an override's body must keep (the email is useless without them).
    required: tuple[str, ...] = ()
    # Lines an override's body must keep exactly, each on a line of its own.
    required_lines: tuple[str, ...] = ()
    # Whether tenants may override it. The first admin's welcome is written by the platform,
    # in the public schema, before the tenant has anyone who could have overridden it.
    overridable: bool = True

    @property
    def all_placeholders(self) -> tuple[str, ...]:
        return (*COMMON_PLACEHOLDERS, *self.placeholders)

    @property
    def all_links(self) -> frozenset[str]:
        return COMMON_LINKS | self.links


KINDS: dict[Kind, KindSpec] = {
    Kind.REGISTRATION_VERIFY: KindSpec(
        "Self-registration: the link that verifies the address and activates the account.",
        placeholders=("verification_link", "link_valid_days"),
        secrets=frozenset({"verification_link"}),
        links=frozenset({"verification_link"}),
        required=("verification_link",),
    ),
    Kind.REGISTRATION_EXISTING: KindSpec(
        "Self-registration with an address that already has an account: a notice, nothing changed.",
    ),
    Kind.EMPLOYEE_WELCOME: KindSpec(
        "An employee created by an admin: the temporary password, to be changed at first login.",
        placeholders=("user_name", "temporary_password"),
        secrets=frozenset({"temporary_password"}),
        required=("temporary_password",),
        required_lines=(TEMPORARY_PASSWORD_LINE, MUST_CHANGE_LINE),
    ),
    Kind.TENANT_ADMIN_WELCOME: KindSpec(
        "A new tenant's first administrator: the generated temporary password.",
        placeholders=("admin_url", "temporary_password"),
        secrets=frozenset({"temporary_password"}),
        links=frozenset({"admin_url"}),
        required=("temporary_password",),
        required_lines=(TEMPORARY_PASSWORD_LINE,),
        overridable=False,
    ),
    Kind.PASSWORD_RESET: KindSpec(
        "A password reset was asked for: the single-use reset link.",
        placeholders=("reset_link", "link_valid_minutes"),
        secrets=frozenset({"reset_link"}),
        links=frozenset({"reset_link"}),
        required=("reset_link",),
    ),
    Kind.PASSWORD_RESET_DONE: KindSpec(
        "The password was reset with an emailed link; every session ended.",
        placeholders=("reset_at",),
    ),
    Kind.PASSWORD_CHANGED: KindSpec(
        "The user changed their password.",
        placeholders=("changed_at", "ip", "sessions_ended"),
    ),
    Kind.PASSWORD_SET_BY_ADMIN: KindSpec(
        "An administrator set a new password for the user; every session ended.",
        placeholders=("changed_at",),
    ),
    Kind.NEW_DEVICE_LOGIN: KindSpec(
        "A sign-in on a device the user had never signed in on before.",
        placeholders=("device_name", "device_type", "ip", "signed_in_at"),
    ),
    Kind.ACCOUNT_LOCKED: KindSpec(
        "Too many failed sign-ins: the account is locked for a while.",
        placeholders=("locked_until", "lock_minutes"),
    ),
    Kind.SESSION_ENDED_BY_ADMIN: KindSpec(
        "An administrator ended one of the user's sessions.",
        placeholders=("device_name", "ended_at"),
    ),
}

OVERRIDABLE_KINDS: tuple[Kind, ...] = tuple(kind for kind, spec in KINDS.items() if spec.overridable)
