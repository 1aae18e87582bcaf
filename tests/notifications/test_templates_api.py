"""/api/v1/notifications/templates/: tenant admins read and override the subject and text of
each kind of email."""

from typing import Any, cast

import pytest
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from identity.models import AuditEvent, User
from notifications.kinds import MUST_CHANGE_LINE, OVERRIDABLE_KINDS, TEMPORARY_PASSWORD_LINE
from notifications.models import EmailTemplateOverride, OutboxEmail
from rbac.catalog import AUDITOR, EMPLOYEE, MANAGER
from rbac.models import Role
from rbac.services import role_assign
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import UserFactory

HOST = "acme.idp.test"
TEMPLATES = "/api/v1/notifications/templates/"
WELCOME = f"{TEMPLATES}employee_welcome/"
WELCOME_BODY = f"Karibu {{user_name}}!\n\n{TEMPORARY_PASSWORD_LINE}\n{MUST_CHANGE_LINE}\n\nSign in at {{tenant_url}}."


def overrides(schema: str = "acme") -> list[tuple[str, str, str]]:
    with schema_context(schema):
        return list(EmailTemplateOverride.objects.values_list("kind", "subject", "body"))


def audit_types(schema: str = "acme") -> list[str]:
    with schema_context(schema):
        return list(
            AuditEvent.objects.filter(type__startswith="email_template.").order_by("id").values_list("type", flat=True)
        )


def holder_client(role_name: str) -> APIClient:
    email = f"{role_name.lower()}@acme.example"
    with schema_context("acme"):
        user = cast(User, UserFactory(email=email))
        role_assign(user=user, role=Role.objects.get(name=role_name), branch=None, actor=None)
    return bearer_client(HOST, login_tokens(HOST, email, device_id=f"till-{role_name}")["access"])


@pytest.fixture
def admin_client(tenant_a_admin_client: APIClient) -> APIClient:
    return tenant_a_admin_client


# --- reading ---------------------------------------------------------------------------------


def test_the_list_names_every_kind_tenants_may_override_with_placeholders_and_defaults(admin_client):
    response = admin_client.get(TEMPLATES)

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [item["kind"] for item in results] == [kind.value for kind in OVERRIDABLE_KINDS]
    assert "tenant_admin_welcome" not in [item["kind"] for item in results]
    welcome = next(item for item in results if item["kind"] == "employee_welcome")
    assert welcome["placeholders"] == ["tenant_name", "tenant_url", "user_email", "user_name", "temporary_password"]
    assert welcome["required_placeholders"] == ["temporary_password"]
    assert welcome["body_only_placeholders"] == ["temporary_password"]
    assert welcome["required_lines"] == [TEMPORARY_PASSWORD_LINE, MUST_CHANGE_LINE]
    assert welcome["default_subject"] == "Your {tenant_name} account"
    assert TEMPORARY_PASSWORD_LINE in welcome["default_body"]
    assert (welcome["subject"], welcome["body"], welcome["overridden"], welcome["updated_at"]) == ("", "", False, None)


def test_one_kind_reads_alone(admin_client):
    response = admin_client.get(f"{TEMPLATES}password_reset/")

    assert response.status_code == 200
    assert response.json()["kind"] == "password_reset"
    assert "{reset_link}" in response.json()["default_body"]


@pytest.mark.parametrize("kind", ["nope", "tenant_admin_welcome", "generic", "EMPLOYEE_WELCOME"])
def test_an_unknown_kind_or_one_tenants_cannot_override_is_not_found(admin_client, kind):
    assert_problem(admin_client.get(f"{TEMPLATES}{kind}/"), 404, "not_found")
    assert_problem(admin_client.put(f"{TEMPLATES}{kind}/", {"subject": "Hi"}, format="json"), 404, "not_found")
    assert_problem(admin_client.delete(f"{TEMPLATES}{kind}/"), 404, "not_found")
    assert overrides() == []


# --- writing ---------------------------------------------------------------------------------


def test_an_admin_overrides_subject_and_body_and_the_next_welcome_email_uses_them(
    admin_client, mailoutbox, django_capture_on_commit_callbacks
):
    response = admin_client.put(WELCOME, {"subject": "Karibu {tenant_name}", "body": WELCOME_BODY}, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["subject"], body["body"], body["overridden"]) == ("Karibu {tenant_name}", WELCOME_BODY, True)
    assert overrides() == [("employee_welcome", "Karibu {tenant_name}", WELCOME_BODY)]
    assert audit_types() == ["email_template.updated"]

    with django_capture_on_commit_callbacks(execute=True):
        created = admin_client.post(
            "/api/v1/users/", {"email": "cook@acme.example", "full_name": "Cook"}, format="json"
        )
    assert created.status_code == 201, created.content
    [message] = mailoutbox
    assert message.subject == "Karibu Acme"
    assert message.body.startswith("Karibu Cook!\n\nTemporary password: ")
    html, _ = message.alternatives[0]
    assert "Karibu Cook!" in html and "Temporary password: " in html


def test_a_put_replaces_the_previous_override_and_what_get_returned_may_be_sent_back(admin_client):
    admin_client.put(WELCOME, {"subject": "First", "body": WELCOME_BODY}, format="json")
    current = admin_client.get(WELCOME).json()

    response = admin_client.put(WELCOME, {**current, "subject": "Second", "body": ""}, format="json")

    assert response.status_code == 200, response.content
    assert overrides() == [("employee_welcome", "Second", "")]
    assert audit_types() == ["email_template.updated", "email_template.updated"]


def test_delete_goes_back_to_the_defaults(admin_client):
    admin_client.put(WELCOME, {"subject": "Karibu"}, format="json")

    assert admin_client.delete(WELCOME).status_code == 204
    assert overrides() == []
    assert admin_client.get(WELCOME).json()["overridden"] is False
    assert admin_client.delete(WELCOME).status_code == 204  # nothing left: nothing happens
    assert audit_types() == ["email_template.updated", "email_template.deleted"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"body": "Welcome, {user.password}"}, "body"),
        ({"body": f"Welcome {{{{ user.password }}}}\n{TEMPORARY_PASSWORD_LINE}\n{MUST_CHANGE_LINE}"}, "body"),
        ({"body": f"{TEMPORARY_PASSWORD_LINE}\nChange it some day."}, "body"),  # no must-change line
        ({"body": "Welcome, your password is {temporary_password}."}, "body"),  # not on its own line
        ({"body": "Welcome to {tenant_name}, no password here."}, "body"),
        ({"subject": "Your password: {temporary_password}"}, "subject"),
        ({"subject": "Hello {nobody}"}, "subject"),
        ({"subject": "Two\nlines"}, "subject"),
        ({"subject": "x" * 201}, "subject"),
        ({"body": "x" * 10_001}, "body"),
        ({"subject": ["Hi"]}, "subject"),
        ({"subject": None}, "subject"),
        ({"subjet": "Typo"}, "subjet"),
        ({}, "subject"),
        ({"subject": "", "body": ""}, "body"),
    ],
)
def test_a_bad_override_answers_400_naming_the_field_and_changes_nothing(admin_client, payload, field):
    admin_client.put(WELCOME, {"subject": "Kept"}, format="json")

    body = assert_problem(admin_client.put(WELCOME, payload, format="json"), 400, "invalid_request")

    assert field in body["errors"], body["errors"]
    assert overrides() == [("employee_welcome", "Kept", "")]
    assert audit_types() == ["email_template.updated"]


def test_a_reset_override_must_keep_the_reset_link(admin_client):
    response = admin_client.put(f"{TEMPLATES}password_reset/", {"body": "Go to {tenant_url}."}, format="json")

    body = assert_problem(response, 400, "invalid_request")
    assert body["errors"]["body"] == ["The body must contain {reset_link}."]
    assert overrides() == []


def test_a_request_body_that_is_not_an_object_answers_400(admin_client):
    assert_problem(admin_client.put(WELCOME, ["subject"], format="json"), 400, "invalid_request")
    assert overrides() == []


# --- who may ---------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [EMPLOYEE, MANAGER, AUDITOR])
def test_only_holders_of_every_permission_may_read_or_change_templates(tenant_a, role):
    client = holder_client(role)

    assert_problem(client.get(TEMPLATES), 403, "permission_denied")
    assert_problem(client.get(WELCOME), 403, "permission_denied")
    assert_problem(client.put(WELCOME, {"subject": "Mine"}, format="json"), 403, "permission_denied")
    assert_problem(client.delete(WELCOME), 403, "permission_denied")
    assert overrides() == []


def test_anonymous_callers_are_refused(tenant_a):
    client = APIClient(HTTP_HOST=HOST)

    assert_problem(client.get(TEMPLATES), 401, "not_authenticated")
    assert_problem(client.put(WELCOME, {"subject": "Mine"}, format="json"), 401, "not_authenticated")
    assert overrides() == []


def test_another_tenants_admin_token_is_refused_and_changes_nothing(tenant_a, tenant_b_admin):
    globex_access = login_tokens("globex.idp.test", SHARED_ADMIN_EMAIL)["access"]
    client = bearer_client(HOST, globex_access)

    assert_problem(client.put(WELCOME, {"subject": "Mine"}, format="json"), 401, "invalid_token")
    assert overrides("acme") == [] and overrides("globex") == []


def test_an_override_stays_in_its_own_tenant(admin_client, tenant_b_admin):
    admin_client.put(WELCOME, {"subject": "Acme's own"}, format="json")
    globex = bearer_client("globex.idp.test", login_tokens("globex.idp.test", SHARED_ADMIN_EMAIL)["access"])

    assert globex.get(WELCOME).json()["overridden"] is False
    assert overrides("globex") == []


def test_the_platform_host_serves_no_templates(operator_client: Any):
    assert_problem(operator_client.get(TEMPLATES), 404, "not_found")


def test_an_override_write_queues_no_email(admin_client):
    with schema_context("acme"):
        before = OutboxEmail.objects.count()
    admin_client.put(WELCOME, {"subject": "Karibu"}, format="json")

    with schema_context("acme"):
        assert OutboxEmail.objects.count() == before
