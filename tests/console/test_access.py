"""Who enters which console, and what keeps them out: RBAC (never Django's staff flag or
model permissions), a deactivation, a password change, a forced password change, the host."""

import pytest
from django.conf import settings
from django.test import Client
from django_tenants.utils import schema_context

from identity.models import AuditEvent, LoginAttempt, User
from identity.services.users import user_deactivate
from tests.console.conftest import ACME_HOST, console_client
from tests.factories import TEST_PASSWORD

NEW_PASSWORD = "Brand-New-Passw0rd!"


def enters(client: Client) -> bool:
    response = client.get("/admin/")
    assert response.status_code in (200, 302)
    return response.status_code == 200


def login(email: str, password: str = TEST_PASSWORD, host: str = ACME_HOST) -> tuple[Client, int]:
    client = Client(HTTP_HOST=host)
    response = client.post("/admin/login/", {"username": email, "password": password})
    return client, response.status_code


# --- who enters the tenant console ----------------------------------------------------------


def test_an_admin_an_auditor_and_a_tenant_wide_manager_enter_the_tenant_console(cast):
    for user in (cast.admin, cast.auditor, cast.manager):
        assert enters(console_client(user)), user.email


def test_an_employee_and_a_manager_of_one_branch_only_do_not_enter(cast):
    for user in (cast.employee, cast.branch_manager):
        response = console_client(user).get("/admin/")
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), user.email


def test_the_staff_flag_alone_opens_nothing(cast):
    with schema_context("acme"):
        User.objects.filter(pk=cast.employee.pk).update(is_staff=True, is_superuser=True)
        cast.employee.refresh_from_db()

    assert not enters(console_client(cast.employee))


def test_an_auditor_logs_in_through_the_form_and_the_attempt_is_recorded(cast):
    client, status = login(cast.auditor.email)

    assert status == 302
    assert enters(client)
    with schema_context("acme"):
        attempt = LoginAttempt.objects.get(email=cast.auditor.email)
    assert attempt.success and attempt.device_id == "admin-console"


def test_an_employee_with_the_right_password_gets_the_same_answer_as_a_wrong_password(cast):
    def form_errors(password: str) -> object:
        body = {"username": cast.employee.email, "password": password}
        response = Client(HTTP_HOST=ACME_HOST).post("/admin/login/", body)
        assert response.status_code == 200  # the form again
        return response.context["form"].errors

    assert form_errors(TEST_PASSWORD) == form_errors("Wrong-Passw0rd!")


def test_a_console_sign_in_lasts_a_working_day_not_two_weeks(cast):
    client, status = login(cast.auditor.email)

    assert status == 302
    assert client.cookies["sessionid"]["max-age"] == 8 * 3600


def test_the_console_login_has_the_apis_rate_limit_per_address_and_email(cast):
    def attempt(password: str) -> str:
        response = Client(HTTP_HOST=ACME_HOST).post(
            "/admin/login/", {"username": cast.auditor.email, "password": password}
        )
        return response.content.decode() if response.status_code == 200 else "signed in"

    for _ in range(5):  # the policy's default: 5/min
        assert "Too many attempts" not in attempt("Wrong-Passw0rd!")

    assert "Too many attempts" in attempt(TEST_PASSWORD)  # refused before the password is checked
    with schema_context("acme"):
        assert LoginAttempt.objects.filter(email=cast.auditor.email).count() == 5
    # Another address has its own budget (the account is locked by now: the lockout answers).
    other_address = Client(HTTP_HOST=ACME_HOST, REMOTE_ADDR="203.0.113.5")
    body = {"username": cast.auditor.email, "password": TEST_PASSWORD}
    assert "Too many attempts" not in other_address.post("/admin/login/", body).content.decode()


def test_losing_the_last_console_permission_closes_the_console_at_the_next_request(cast):
    from rbac.services import role_unassign

    client = console_client(cast.auditor)
    assert enters(client)
    with schema_context("acme"):
        role_unassign(assignment=cast.auditor.role_assignments.get(), actor=None)

    assert not enters(client)


# --- the session ends with the account ------------------------------------------------------


def test_a_deactivated_user_loses_the_console_session(cast):
    client = console_client(cast.auditor)
    assert enters(client)

    with schema_context("acme"):
        user_deactivate(user=cast.auditor, actor=None)

    assert not enters(client)


def test_a_password_changed_elsewhere_ends_the_console_session(cast):
    client = console_client(cast.auditor)
    assert enters(client)

    with schema_context("acme"):
        user = User.objects.get(pk=cast.auditor.pk)
        user.set_password(NEW_PASSWORD)
        user.save()

    assert not enters(client)


def test_an_acme_console_session_does_not_open_the_globex_console(cast, tenant_b):
    client = console_client(cast.admin)
    assert enters(client)
    cookie = client.cookies[settings.SESSION_COOKIE_NAME].value

    other = Client(HTTP_HOST="globex.idp.test")
    other.cookies[settings.SESSION_COOKIE_NAME] = cookie

    assert not enters(other)


# --- the forced password change --------------------------------------------------------------


@pytest.fixture
def must_change(cast) -> User:
    with schema_context("acme"):
        User.objects.filter(pk=cast.auditor.pk).update(must_change_password=True)
        cast.auditor.refresh_from_db()
    return cast.auditor


def test_a_user_who_must_change_their_password_is_sent_to_the_password_form_from_every_page(must_change):
    client = console_client(must_change)

    for path in ("/admin/", "/admin/identity/user/", "/admin/security/"):
        response = client.get(path)
        assert (response.status_code, response["Location"]) == (302, "/admin/password_change/"), path
    assert client.get("/admin/password_change/").status_code == 200


def test_the_console_password_change_goes_through_the_service_and_keeps_the_console_session(must_change):
    client = console_client(must_change)

    response = client.post(
        "/admin/password_change/",
        {"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD},
    )

    assert (response.status_code, response["Location"]) == (302, "/admin/")
    assert enters(client)
    with schema_context("acme"):
        user = User.objects.get(pk=must_change.pk)
        assert user.check_password(NEW_PASSWORD) and not user.must_change_password
        event = AuditEvent.objects.filter(type="password.changed", target_id=str(user.pk)).get()
    assert event.data["was_forced"] is True
    assert NEW_PASSWORD not in str(event.data)


def test_the_console_password_change_refuses_a_weak_password_and_changes_nothing(must_change):
    client = console_client(must_change)

    response = client.post(
        "/admin/password_change/",
        {"current_password": TEST_PASSWORD, "new_password": "weak", "new_password_again": "weak"},
    )

    assert response.status_code == 200
    assert response.context["form"].errors["new_password"]
    with schema_context("acme"):
        user = User.objects.get(pk=must_change.pk)
        assert user.check_password(TEST_PASSWORD) and user.must_change_password


def test_the_console_password_change_refuses_a_wrong_current_password(must_change):
    client = console_client(must_change)

    response = client.post(
        "/admin/password_change/",
        {"current_password": "Not-The-One-1!", "new_password": NEW_PASSWORD, "new_password_again": NEW_PASSWORD},
    )

    assert response.status_code == 200
    assert response.context["form"].errors["current_password"]
    with schema_context("acme"):
        assert User.objects.get(pk=must_change.pk).check_password(TEST_PASSWORD)


# --- the platform console ---------------------------------------------------------------------


def test_an_operator_enters_the_platform_console_and_sees_only_platform_pages(operator):
    client = Client(HTTP_HOST=settings.IDP_BASE_DOMAIN)
    client.force_login(operator, backend="identity.backends.LockoutModelBackend")

    index = client.get("/admin/")

    assert index.status_code == 200
    models = {model["object_name"] for app in index.context["app_list"] for model in app["models"]}
    assert {"Tenant", "Plan", "Domain", "User"} <= models
    assert not {"Role", "Branch", "ServiceClient", "DeviceSession"} & models
    assert client.get("/admin/tenants/tenant/").status_code == 200
    assert client.get("/admin/rbac/role/").status_code == 404


def test_the_tenant_console_shows_no_platform_pages(cast):
    client = console_client(cast.admin)

    index = client.get("/admin/")

    models = {model["object_name"] for app in index.context["app_list"] for model in app["models"]}
    assert {"User", "Role", "Branch", "ServiceClient", "DeviceSession", "AuditEvent", "LoginAttempt"} <= models
    assert not {"Tenant", "Plan", "Domain"} & models
    assert client.get("/admin/tenants/tenant/").status_code == 404


def test_a_tenant_admin_does_not_enter_the_platform_console(cast):
    client, status = login(cast.admin.email, host=settings.IDP_BASE_DOMAIN)

    assert status == 200  # the form again: no such operator
    assert not enters(client)
