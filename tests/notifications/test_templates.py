"""Email kinds: the default templates, and tenants' overrides (plain text with placeholders,
validated on save, never rendered as a template)."""

import re
from html.parser import HTMLParser
from urllib.parse import urlparse

import pytest
from django.template import Context, Engine
from django_tenants.utils import schema_context

from notifications.kinds import KINDS, MUST_CHANGE_LINE, TEMPORARY_PASSWORD_LINE, Kind
from notifications.models import EmailTemplateOverride, OutboxEmail
from notifications.services import email_kind_send
from notifications.templating import TEMPLATE_DIR, override_errors, template_name
from tests.notifications.samples import SECRET_LINK, SECRET_PASSWORD, sample_context


def queued(kind: Kind, to: str = "ada@example.com", schema: str = "acme") -> OutboxEmail:
    """Queue an email of `kind` in `schema` (in the test's transaction); returns its row."""
    with schema_context(schema):
        email_kind_send(kind=kind, to=to, context=sample_context(kind))
        return OutboxEmail.objects.latest("id")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs += [value for name, value in attrs if name == "href" and value]


def html_links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


def set_override(kind: Kind, *, subject: str = "", body: str = "", schema: str = "acme") -> None:
    with schema_context(schema):
        EmailTemplateOverride.objects.update_or_create(kind=kind, defaults={"subject": subject, "body": body})


# --- defaults -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(Kind))
def test_every_kind_has_a_subject_a_text_and_an_html_part_with_the_tenants_name(tenant_a, kind):
    row = queued(kind)

    assert row.kind == kind.value
    assert "Acme" in row.subject and "\n" not in row.subject
    assert "Acme" in row.body and "Acme" in row.html_body
    assert row.html_body.lstrip().startswith("<!DOCTYPE html>")
    for name, value in sample_context(kind).items():
        if name != "user_name":  # escaped in the HTML; checked below
            assert value in row.body, name
    assert "{" not in row.body and "{{" not in row.html_body


@pytest.mark.parametrize("kind", list(Kind))
def test_every_link_in_every_kind_points_at_the_tenants_registered_domain(tenant_a, kind):
    row = queued(kind)

    hrefs = html_links(row.html_body).hrefs
    text_links = re.findall(r"https?://\S+", row.body)
    assert hrefs and text_links
    for link in [*hrefs, *text_links]:
        assert urlparse(link.rstrip(".,")).hostname == tenant_a.primary_domain_name(), link


@pytest.mark.parametrize("kind", list(Kind))
def test_the_default_templates_use_only_the_kinds_placeholders(kind):
    engine = Engine(dirs=[str(TEMPLATE_DIR)], string_if_invalid="MISSING[%s]")
    values = {name: "x" for name in KINDS[kind].all_placeholders}

    for part in ("subject.txt", "txt", "html"):
        rendered = engine.get_template(template_name(kind, part)).render(Context(values))
        assert "MISSING[" not in rendered, (part, rendered)


def test_the_text_part_is_not_escaped_and_the_html_part_is(tenant_a):
    with schema_context("acme"):
        tenant_a.name = "Fish & <Chips>"
        email_kind_send(
            kind=Kind.EMPLOYEE_WELCOME,
            to="ada@example.com",
            tenant=tenant_a,
            context=sample_context(Kind.EMPLOYEE_WELCOME),
        )
        row = OutboxEmail.objects.latest("id")

    assert row.subject == "Your Fish & <Chips> account"
    assert "Fish & <Chips>" in row.body and "Hello Ada <Lovelace>," in row.body
    assert "Fish &amp; &lt;Chips&gt;" in row.html_body and "Ada &lt;Lovelace&gt;" in row.html_body
    assert "<Chips>" not in row.html_body and "<Lovelace>" not in row.html_body


def test_the_welcome_email_holds_the_password_on_its_own_line_and_says_it_must_be_changed(tenant_a):
    row = queued(Kind.EMPLOYEE_WELCOME)

    assert f"\nTemporary password: {SECRET_PASSWORD}\n" in row.body
    assert f"\n{MUST_CHANGE_LINE}\n" in row.body
    assert MUST_CHANGE_LINE in row.html_body


def test_a_password_changed_notice_names_the_signed_out_devices_only_when_there_were_some(tenant_a):
    with schema_context("acme"):
        context = {**sample_context(Kind.PASSWORD_CHANGED), "sessions_ended": "0"}
        email_kind_send(kind=Kind.PASSWORD_CHANGED, to="ada@example.com", context=context)
        none_ended = OutboxEmail.objects.latest("id")
    two_ended = queued(Kind.PASSWORD_CHANGED)

    assert "signed out" not in none_ended.body and "signed out" not in none_ended.html_body
    assert "2 other signed-in device(s) were signed out." in two_ended.body


def test_a_kind_sent_with_missing_or_extra_values_is_a_programming_error(tenant_a):
    with schema_context("acme"), pytest.raises(ValueError, match="employee_welcome takes"):
        email_kind_send(kind=Kind.EMPLOYEE_WELCOME, to="ada@example.com", context={"user_name": "Ada"})


# --- overrides: what is refused ---------------------------------------------------------------


WELCOME = KINDS[Kind.EMPLOYEE_WELCOME]
RESET = KINDS[Kind.PASSWORD_RESET]
GOOD_WELCOME_BODY = f"Welcome, {{user_name}}!\n\n{TEMPORARY_PASSWORD_LINE}\n{MUST_CHANGE_LINE}\n\n{{tenant_url}}"


@pytest.mark.parametrize(
    ("spec", "subject", "body", "field", "message"),
    [
        (WELCOME, "Hi {user.password}", "", "subject", "Unknown placeholder(s) {user.password}"),
        (WELCOME, "", GOOD_WELCOME_BODY + " {{ user.password }}", "body", "Unknown placeholder(s) { user.password }"),
        (WELCOME, "", GOOD_WELCOME_BODY + " {% debug %}", "body", "Unknown placeholder(s) {% debug %}"),
        (WELCOME, "", GOOD_WELCOME_BODY + " {{tenant_name}}", "body", "Braces in the body are only for placeholders"),
        (WELCOME, "", GOOD_WELCOME_BODY + " {0}", "body", "Unknown placeholder(s) {0}"),
        (WELCOME, "", GOOD_WELCOME_BODY + " {tenant.schema_name}", "body", "Unknown placeholder(s)"),
        (WELCOME, "", GOOD_WELCOME_BODY + " {reset_link}", "body", "Unknown placeholder(s) {reset_link}"),
        (WELCOME, "", GOOD_WELCOME_BODY + " }", "body", "Braces in the body"),
        (WELCOME, "Your password: {temporary_password}", "", "subject", "may appear in the body only"),
        (WELCOME, "", f"Your password is {{temporary_password}}.\n{MUST_CHANGE_LINE}", "body", "must keep the line"),
        (WELCOME, "", f"{TEMPORARY_PASSWORD_LINE}\nChange it later.", "body", f"keep the line: {MUST_CHANGE_LINE}"),
        (WELCOME, "", "Welcome to {tenant_name}.", "body", "The body must contain {temporary_password}."),
        (WELCOME, "Two\nlines", "", "subject", "The subject must be one line."),
        (WELCOME, "x" * 201, "", "subject", "at most 200 characters"),
        (WELCOME, "", GOOD_WELCOME_BODY + "x" * 10_000, "body", "at most 10000 characters"),
        (RESET, "", "Reset your password at {tenant_url}.", "body", "The body must contain {reset_link}."),
        (RESET, "Reset: {reset_link}", "", "subject", "may appear in the body only"),
    ],
)
def test_an_override_is_refused_when(spec, subject, body, field, message):
    errors = override_errors(spec, subject=subject, body=body)

    assert list(errors) == [field]
    assert any(message in problem for problem in errors[field]), errors


def test_an_override_with_known_placeholders_and_the_required_line_is_accepted():
    assert override_errors(WELCOME, subject="Welcome to {tenant_name}, {user_name}", body=GOOD_WELCOME_BODY) == {}
    assert override_errors(RESET, subject="", body="Open {reset_link} within {link_valid_minutes} minutes.") == {}


# --- overrides: what is sent ------------------------------------------------------------------


def test_an_override_replaces_subject_and_text_and_its_html_is_the_escaped_text(tenant_a):
    set_override(
        Kind.PASSWORD_RESET,
        subject="{tenant_name}: new password for {user_email}",
        body="<b>Hello</b> & welcome back.\n\nOpen {reset_link}\nwithin {link_valid_minutes} minutes.",
    )

    row = queued(Kind.PASSWORD_RESET)

    assert row.subject == "Acme: new password for ada@example.com"
    assert row.body == f"<b>Hello</b> & welcome back.\n\nOpen {SECRET_LINK}\nwithin 10 minutes.\n"
    assert "&lt;b&gt;Hello&lt;/b&gt; &amp; welcome back." in row.html_body
    assert "<b>" not in row.html_body
    assert html_links(row.html_body).hrefs.count(SECRET_LINK) == 1
    assert "Acme" in row.html_body  # the standard layout, with the tenant's name


def test_an_override_of_the_subject_only_keeps_the_default_text(tenant_a):
    set_override(Kind.EMPLOYEE_WELCOME, subject="Welcome to {tenant_name}")

    row = queued(Kind.EMPLOYEE_WELCOME)

    assert row.subject == "Welcome to Acme"
    assert f"Temporary password: {SECRET_PASSWORD}" in row.body and "must change" in row.body


def test_a_placeholder_value_cannot_inject_markup_into_an_overridden_html_part(tenant_a):
    set_override(Kind.NEW_DEVICE_LOGIN, body="New sign-in on {device_name}.")

    with schema_context("acme"):
        context = {**sample_context(Kind.NEW_DEVICE_LOGIN), "device_name": '<a href="http://evil.example">x</a>'}
        email_kind_send(kind=Kind.NEW_DEVICE_LOGIN, to="ada@example.com", context=context)
        row = OutboxEmail.objects.latest("id")

    assert "http://evil.example" not in html_links(row.html_body).hrefs
    assert "&lt;a href=&quot;http://evil.example&quot;&gt;" in row.html_body


def test_an_override_that_no_longer_validates_is_not_used(tenant_a, caplog):
    # Saved before the rules changed (here: written straight to the table).
    set_override(Kind.EMPLOYEE_WELCOME, body="Welcome, no password here.")

    row = queued(Kind.EMPLOYEE_WELCOME)

    assert f"Temporary password: {SECRET_PASSWORD}" in row.body
    assert "The employee_welcome override in acme no longer validates" in caplog.text


def test_one_tenants_override_does_not_change_another_tenants_email(tenant_a, tenant_b):
    set_override(Kind.PASSWORD_CHANGED, subject="Acme only", schema="acme")

    assert queued(Kind.PASSWORD_CHANGED, schema="globex").subject == "Your Globex password was changed"
    assert queued(Kind.PASSWORD_CHANGED, schema="acme").subject == "Acme only"


def test_the_first_admins_welcome_cannot_be_overridden(tenant_a):
    assert not KINDS[Kind.TENANT_ADMIN_WELCOME].overridable
    set_override(Kind.TENANT_ADMIN_WELCOME, subject="Ignored")

    assert queued(Kind.TENANT_ADMIN_WELCOME).subject == "Your Acme administrator account"


def test_a_value_that_looks_like_a_placeholder_is_not_substituted_again(tenant_a):
    set_override(Kind.NEW_DEVICE_LOGIN, body="New sign-in on {device_name} for {user_email}.")

    with schema_context("acme"):
        context = {**sample_context(Kind.NEW_DEVICE_LOGIN), "device_name": "{user_email} {tenant_url}"}
        email_kind_send(kind=Kind.NEW_DEVICE_LOGIN, to="ada@example.com", context=context)
        row = OutboxEmail.objects.latest("id")

    assert row.body == "New sign-in on {user_email} {tenant_url} for ada@example.com.\n"
