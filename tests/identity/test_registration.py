"""Self-registration (register/) and email verification (the API and the emailed page)."""

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django.utils.http import urlsafe_base64_encode
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from identity.models import AuditEvent, User
from identity.verification import EmailVerificationTokenGenerator, uid_encode
from rbac.models import PermissionCode, Role, RoleAssignment
from rbac.selectors import effective_permissions
from rbac.services import role_assign
from tenants.models import Domain, Tenant
from tenants.policy import policy_validate
from tests.conftest import SHARED_ADMIN_EMAIL, client_for_host, login_tokens
from tests.core.test_errors import assert_problem

HOST = "acme.idp.test"
OTHER_HOST = "globex.idp.test"
EMAIL = "new.cook@example.com"
PASSWORD = "Fresh-Basil-42"
ACCEPTED = {"detail": "Check your email to finish signing up."}
LINK_RE = re.compile(r"(https?://[^/\s]+)/verify-email/([^/\s]+)/([^/\s]+)/")


def b64(text: str) -> str:
    return urlsafe_base64_encode(text.encode())


def register(host: str = HOST, **overrides: Any) -> Any:
    body = {"email": EMAIL, "password": PASSWORD, "full_name": "New Cook", **overrides}
    body = {key: value for key, value in body.items() if value is not None}
    return client_for_host(host).post("/api/v1/auth/register/", body, format="json")


def state_of(schema: str) -> dict[str, Any]:
    """Every user row and the audit log's size: what "nothing changed" compares."""
    with schema_context(schema):
        users = {
            str(user.pk): (
                user.email,
                user.password,
                user.full_name,
                user.phone,
                user.is_active,
                user.email_verified_at,
                user.deactivated_at,
            )
            for user in User.objects.all()
        }
        return {"users": users, "audit_events": AuditEvent.objects.count()}


def user_in(schema: str, email: str = EMAIL) -> User:
    with schema_context(schema):
        return User.objects.get(email=email)


def link_in(mail: Any) -> tuple[str, str, str]:
    """(origin, uid, token) of the verification link in an email."""
    match = LINK_RE.search(mail.body)
    assert match, mail.body
    return match.group(1), match.group(2), match.group(3)


def registered_link(mailoutbox: list, capture: Any, host: str = HOST, **overrides: Any) -> tuple[str, str]:
    """Register through the API and return (uid, token) from the emailed link."""
    with capture(execute=True):
        response = register(host, **overrides)
    assert response.status_code == 201, response.content
    _, uid, token = link_in(mailoutbox[-1])
    return uid, token


def verify_api(uid: str, token: str, host: str = HOST, method: str = "post") -> Any:
    return getattr(client_for_host(host), method)(f"/api/v1/auth/verify-email/{uid}/{token}/")


def login(email: str, password: str) -> Any:
    return APIClient(HTTP_HOST=HOST).post(
        "/api/v1/auth/token/",
        {"email": email, "password": password, "device_id": "phone-1", "device_name": "Phone", "device_type": "phone"},
        format="json",
    )


def set_policy(tenant: Tenant, changes: dict[str, Any]) -> None:
    tenant.policy = policy_validate(changes, current=tenant.policy, max_devices_per_user=3)
    tenant.save()


# --- register/ ---------------------------------------------------------------------------


def test_registration_answers_201_and_creates_an_inactive_unverified_user(tenant_a):
    response = register(phone="+254 712 345678")

    assert response.status_code == 201
    assert response.json() == ACCEPTED
    user = user_in("acme")
    assert (user.is_active, user.email_verified_at, user.deactivated_at) == (False, None, None)
    assert (user.full_name, user.phone) == ("New Cook", "+254 712 345678")
    assert user.check_password(PASSWORD)
    assert not (user.is_staff or user.is_superuser or user.is_tenant_admin or user.must_change_password)


def test_registration_stores_the_email_normalised(tenant_a):
    register(email="  New.Cook@Example.COM ")

    assert user_in("acme").email == EMAIL


def test_registration_leaves_a_user_created_audit_row_without_secrets(tenant_a):
    register()

    user = user_in("acme")
    with schema_context("acme"):
        event = AuditEvent.objects.get(type="user.created", target_id=str(user.pk))
    assert event.data == {"source": "registration"}
    assert event.actor_id == user.pk
    assert PASSWORD not in str(event.data) and user.password not in str(event.data)


def test_registration_emails_a_verification_link_after_commit(tenant_a, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        register()
    assert mailoutbox == []  # nothing is sent before the user's row is committed

    for callback in callbacks:
        callback()

    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert mail.to == [EMAIL]
    origin, uid, _ = link_in(mail)
    assert origin == "http://acme.idp.test"
    assert uid == uid_encode(user_in("acme").pk)
    assert PASSWORD not in mail.body


def test_verification_link_uses_the_tenants_registered_primary_domain(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    Domain(domain="login.acme.example", tenant=tenant_a, is_primary=True).save()

    with django_capture_on_commit_callbacks(execute=True):
        register()

    origin, uid, token = link_in(mailoutbox[0])
    assert f"{origin}/verify-email/{uid}/{token}/".startswith("http://login.acme.example/verify-email/")


def test_taken_email_gets_the_same_status_and_body_and_nothing_changes(tenant_a, tenant_a_admin):
    fresh = register(email="someone.else@example.com")
    before = state_of("acme")

    taken = register(email=SHARED_ADMIN_EMAIL, password="Another-Pass-77", full_name="Mallory")

    assert (taken.status_code, taken.content) == (fresh.status_code, fresh.content)
    assert state_of("acme") == before
    assert user_in("acme", SHARED_ADMIN_EMAIL).password == tenant_a_admin.password


def test_taken_email_in_another_spelling_is_still_taken_and_unchanged(tenant_a, tenant_a_admin):
    before = state_of("acme")

    response = register(email=SHARED_ADMIN_EMAIL.upper())

    assert response.status_code == 201
    assert response.json() == ACCEPTED
    assert state_of("acme") == before


def test_taken_email_gets_a_notice_instead_of_a_link(tenant_a, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        register(email=SHARED_ADMIN_EMAIL)

    assert len(mailoutbox) == 1
    notice = mailoutbox[0]
    assert notice.to == [SHARED_ADMIN_EMAIL]
    assert "tried to register" in notice.body
    assert "reset your password" in notice.body
    assert not LINK_RE.search(notice.body)


def test_taken_and_new_addresses_cost_one_password_hash_each(tenant_a, monkeypatch):
    import identity.services.registration as registration

    hashed: list[str] = []
    real_make_password = registration.make_password

    def counting_make_password(raw: str) -> str:
        hashed.append("one more")
        return real_make_password(raw)

    monkeypatch.setattr(registration, "make_password", counting_make_password)

    register()
    assert len(hashed) == 1
    register(email=SHARED_ADMIN_EMAIL)
    assert len(hashed) == 2


def test_a_deactivated_account_gets_the_notice_and_stays_deactivated(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    register()
    with schema_context("acme"):
        User.objects.filter(email=EMAIL).update(deactivated_at=timezone.now())
    before = state_of("acme")

    with django_capture_on_commit_callbacks(execute=True):
        response = register(password="Another-Pass-77")

    assert response.json() == ACCEPTED
    assert state_of("acme") == before
    assert "tried to register" in mailoutbox[0].body


def test_registering_a_pending_address_again_sends_a_new_link_that_replaces_the_old_one(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    first_uid, first_token = registered_link(mailoutbox, django_capture_on_commit_callbacks)
    second_uid, second_token = registered_link(
        mailoutbox, django_capture_on_commit_callbacks, password="Second-Try-88", full_name="Renamed Cook"
    )

    with schema_context("acme"):
        assert User.objects.filter(email=EMAIL).count() == 1
    assert first_uid == second_uid
    assert_problem(verify_api(first_uid, first_token), 400, "invalid_token")
    assert verify_api(second_uid, second_token).status_code == 200
    assert login(EMAIL, "Second-Try-88").status_code == 200
    assert_problem(login(EMAIL, PASSWORD), 401, "invalid_credentials")
    assert user_in("acme").full_name == "Renamed Cook"


def test_registration_closed_answers_403_permission_denied_and_creates_nothing(tenant_a, mailoutbox):
    set_policy(tenant_a, {"registration": {"open": False}})
    before = state_of("acme")

    response = register()

    assert_problem(response, 403, "permission_denied")
    assert state_of("acme") == before
    assert mailoutbox == []


def test_registration_closed_answers_403_even_to_an_invalid_body(tenant_a):
    set_policy(tenant_a, {"registration": {"open": False}})

    assert_problem(register(email="not-an-email", password=""), 403, "permission_denied")


def test_registration_at_the_user_cap_answers_403_user_cap_reached_and_creates_nothing(tenant_a, mailoutbox):
    with schema_context("acme"):
        tenant_a.plan.max_users = User.objects.count()
    tenant_a.plan.save()
    before = state_of("acme")

    response = register()

    assert_problem(response, 403, "user_cap_reached")
    assert state_of("acme") == before
    assert mailoutbox == []


def test_registration_at_the_user_cap_answers_the_same_for_a_taken_address(tenant_a):
    with schema_context("acme"):
        tenant_a.plan.max_users = User.objects.count()
    tenant_a.plan.save()

    assert_problem(register(email=SHARED_ADMIN_EMAIL), 403, "user_cap_reached")


def test_pending_registrations_count_against_the_user_cap(tenant_a):
    with schema_context("acme"):
        tenant_a.plan.max_users = User.objects.count() + 1
    tenant_a.plan.save()
    assert register().status_code == 201

    assert_problem(register(email="second@example.com"), 403, "user_cap_reached")


def test_weak_password_answers_400_password_policy_and_creates_nothing(tenant_a, mailoutbox):
    before = state_of("acme")

    response = register(password="weak")

    body = assert_problem(response, 400, "password_policy")
    assert body["errors"]["password"]
    assert state_of("acme") == before
    assert mailoutbox == []


def test_weak_password_answers_the_same_for_a_taken_address(tenant_a):
    assert_problem(register(email=SHARED_ADMIN_EMAIL, password="weak"), 400, "password_policy")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": None}, "email"),
        ({"password": None}, "password"),
        ({"full_name": None}, "full_name"),
        ({"full_name": ""}, "full_name"),
        ({"phone": "call me maybe"}, "phone"),
        ({"email": "x" * 250 + "@example.com"}, "email"),
    ],
)
def test_bad_email_or_missing_fields_answer_400_invalid_request_and_create_nothing(tenant_a, overrides, field):
    before = state_of("acme")

    response = register(**overrides)

    body = assert_problem(response, 400, "invalid_request")
    assert field in body["errors"]
    assert state_of("acme") == before


# --- roles at registration --------------------------------------------------------------------


def roles_of(email: str = EMAIL) -> list[str]:
    """The roles `email` holds in acme (registrations assign tenant-wide only)."""
    with schema_context("acme"):
        assignments = RoleAssignment.objects.filter(user__email=email)
        assert not assignments.filter(branch__isnull=False).exists()
        return sorted(assignments.values_list("role__name", flat=True))


def rbac_rows() -> list[tuple[Any, ...]]:
    with schema_context("acme"):
        return sorted(RoleAssignment.objects.values_list("pk", "user_id", "role_id", "branch_id"))


@pytest.fixture
def choosable(tenant_a) -> Tenant:
    """acme lets registrants choose Waiter and Cashier (tenant roles) and lists Admin, which
    is never choosable whatever the policy says, and Ghost, which does not exist."""
    with schema_context("acme"):
        for name, codes in (("Waiter", ["orders.view"]), ("Cashier", ["orders.create"])):
            Role.objects.create(name=name).permissions.set(PermissionCode.objects.filter(code__in=codes))
    set_policy(tenant_a, {"registration": {"assignable_roles": ["Waiter", "cashier", "Admin", "Ghost"]}})
    return tenant_a


def test_a_registrant_gets_the_tenants_default_role_in_the_same_transaction(tenant_a):
    register()

    assert roles_of() == ["Employee"]
    with schema_context("acme"):
        event = AuditEvent.objects.get(type="role.assigned", target_id=str(user_in("acme").pk))
    assert event.actor_id is None and event.data["role"] == "Employee"


def test_a_pending_registrant_holds_no_permission_until_verified(tenant_a):
    register()

    with schema_context("acme"):
        assert not effective_permissions(user_in("acme").pk).allows("orders.view")


def test_the_default_role_is_the_policys(choosable):
    set_policy(choosable, {"registration": {"default_role": "waiter"}})

    register()

    assert roles_of() == ["Waiter"]


def test_a_default_role_that_does_not_exist_assigns_nothing_and_registration_still_works(tenant_a):
    set_policy(tenant_a, {"registration": {"default_role": "Nobody"}})

    assert register().status_code == 201

    assert roles_of() == []


def test_roles_the_policy_lets_registrants_choose_are_assigned_besides_the_default(choosable):
    response = register(roles=["waiter", "Cashier", "Waiter"])

    assert response.status_code == 201 and response.json() == ACCEPTED
    assert roles_of() == ["Cashier", "Employee", "Waiter"]


def test_choosing_the_default_role_holds_it_once(choosable):
    set_policy(choosable, {"registration": {"default_role": "Waiter"}})

    assert register(roles=["Waiter"]).status_code == 201

    assert roles_of() == ["Waiter"]


@pytest.mark.parametrize(
    "roles",
    [["Manager"], ["Waiter", "Manager"], ["Admin"], ["Ghost"], ["Employee"], ["Nobody"]],
    ids=["unlisted", "one-unlisted", "holds-all-permissions", "listed-but-missing", "default-not-listed", "unknown"],
)
def test_a_role_registrants_may_not_choose_answers_403_and_nothing_is_created_or_sent(choosable, mailoutbox, roles):
    before = (state_of("acme"), rbac_rows())

    response = register(roles=roles)

    body = assert_problem(response, 403, "permission_denied")
    assert "roles" in body["errors"]
    assert (state_of("acme"), rbac_rows()) == before
    assert mailoutbox == []


def test_without_a_policy_list_no_role_may_be_chosen(tenant_a):
    before = (state_of("acme"), rbac_rows())

    assert_problem(register(roles=["Employee"]), 403, "permission_denied")

    assert (state_of("acme"), rbac_rows()) == before


def test_roles_must_be_a_list_of_names(choosable):
    body = assert_problem(register(roles="Waiter"), 400, "invalid_request")

    assert "roles" in body["errors"]


def test_a_taken_address_gets_the_same_answer_to_a_role_choice_and_no_role(choosable, tenant_a_admin):
    fresh = register(email="someone.else@example.com", roles=["Waiter"])
    before = (state_of("acme"), rbac_rows())

    taken = register(email=SHARED_ADMIN_EMAIL, roles=["Waiter"])

    assert (taken.status_code, taken.content) == (fresh.status_code, fresh.content)
    assert (state_of("acme"), rbac_rows()) == before
    assert roles_of(SHARED_ADMIN_EMAIL) == ["Admin"]


def test_a_refused_role_choice_answers_the_same_for_a_taken_address(choosable, tenant_a_admin):
    new = register(email="someone.else@example.com", roles=["Manager"])
    taken = register(email=SHARED_ADMIN_EMAIL, roles=["Manager"])

    assert (taken.status_code, taken.content) == (new.status_code, new.content)
    assert_problem(taken, 403, "permission_denied")


def test_registering_a_pending_address_again_replaces_the_chosen_roles_and_keeps_the_rest(choosable):
    assert register(roles=["Waiter"]).status_code == 201
    with schema_context("acme"):  # an admin gives the pending user a role registrants cannot choose
        role_assign(user=user_in("acme"), role=Role.objects.get(name="Auditor"), branch=None, actor=None)

    assert register(roles=["Cashier"]).status_code == 201

    assert roles_of() == ["Auditor", "Cashier", "Employee"]
    assert register().status_code == 201
    assert roles_of() == ["Auditor", "Employee"]


def test_a_verified_registrant_may_use_the_permissions_of_the_chosen_roles(
    choosable, mailoutbox, django_capture_on_commit_callbacks
):
    uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks, roles=["Waiter"])
    assert verify_api(uid, token).status_code == 200

    with schema_context("acme"):
        held = effective_permissions(user_in("acme").pk)
    assert held.allows("orders.view") and held.allows("orders.create")  # Waiter's and Employee's
    assert not held.allows("users.view")


def test_registration_is_refused_on_the_platform_host(public_client):
    before = state_of("public")

    response = public_client.post(
        "/api/v1/auth/register/", {"email": EMAIL, "password": PASSWORD, "full_name": "X"}, format="json"
    )

    assert_problem(response, 403, "permission_denied")
    assert state_of("public") == before


def test_registration_throttle_answers_429_after_the_policy_rate_per_ip(tenant_a):
    set_policy(tenant_a, {"rate_limits": {"registration": "2/min"}})

    assert register(email="one@example.com").status_code == 201
    assert register(email="two@example.com").status_code == 201
    response = register(email="three@example.com")

    assert_problem(response, 429, "throttled")
    assert int(response["Retry-After"]) >= 1
    with schema_context("acme"):
        assert not User.objects.filter(email="three@example.com").exists()


def test_registration_throttle_defaults_to_10_per_hour_per_ip(tenant_a):
    for n in range(10):
        assert register(email=f"cook{n}@example.com").status_code == 201

    assert_problem(register(email="cook10@example.com"), 429, "throttled")
    other_ip = client_for_host(HOST).post(
        "/api/v1/auth/register/",
        {"email": "cook11@example.com", "password": PASSWORD, "full_name": "X"},
        format="json",
        REMOTE_ADDR="203.0.113.9",
    )
    assert other_ip.status_code == 201


# --- login before and after verification --------------------------------------------------


def test_login_before_verification_answers_403_email_not_verified(tenant_a):
    register()

    assert_problem(login(EMAIL, PASSWORD), 403, "email_not_verified")


def test_login_before_verification_with_a_wrong_password_answers_401_invalid_credentials(tenant_a):
    register()

    assert_problem(login(EMAIL, "Wrong-Password-1"), 401, "invalid_credentials")


# --- verify-email/ (API) ------------------------------------------------------------------


@pytest.mark.parametrize("method", ["post", "get"])
def test_verifying_through_the_api_activates_the_account_and_login_then_works(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks, method
):
    uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks)

    response = verify_api(uid, token, method=method)

    assert response.status_code == 200
    assert token not in response.content.decode()
    user = user_in("acme")
    assert user.is_active and user.email_verified_at is not None and user.deactivated_at is None
    with schema_context("acme"):
        event = AuditEvent.objects.get(type="email.verified", target_id=str(user.pk))
    assert token not in str(event.data)
    assert login_tokens(HOST, EMAIL, PASSWORD)["user"]["email"] == EMAIL


def test_verification_link_works_only_once(tenant_a, mailoutbox, django_capture_on_commit_callbacks):
    uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks)
    assert verify_api(uid, token).status_code == 200
    before = state_of("acme")

    assert_problem(verify_api(uid, token), 400, "invalid_token")
    assert state_of("acme") == before


@pytest.mark.parametrize(
    "spoil",
    [
        pytest.param(lambda uid, token: (uid, token[:-1] + ("0" if token[-1] != "0" else "1")), id="tampered-token"),
        pytest.param(lambda uid, token: (uid, "abc"), id="malformed-token"),
        pytest.param(lambda uid, token: (uid, "zzzzzzzzzzzzzz-" + token.split("-")[1]), id="huge-timestamp"),
        pytest.param(lambda uid, token: ("not-base64!", token), id="garbage-uid"),
        pytest.param(lambda uid, token: (b64("0000"), token), id="uid-not-a-uuid"),
        pytest.param(lambda uid, token: (b64("6f1c1c52-4d3a-4f0e-9c61-2d7d5f1e0b9a"), token), id="uid-of-no-user"),
        pytest.param(lambda uid, token: (uid + "A", token), id="uid-with-extra-characters"),
    ],
)
def test_bad_token_or_uid_answers_400_invalid_token_and_changes_nothing(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks, spoil
):
    uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks)
    before = state_of("acme")

    assert_problem(verify_api(*spoil(uid, token)), 400, "invalid_token")
    assert state_of("acme") == before


def test_a_link_for_another_user_does_not_verify_this_one(tenant_a, mailoutbox, django_capture_on_commit_callbacks):
    uid, _ = registered_link(mailoutbox, django_capture_on_commit_callbacks)
    _, other_token = registered_link(mailoutbox, django_capture_on_commit_callbacks, email="other@example.com")
    before = state_of("acme")

    assert_problem(verify_api(uid, other_token), 400, "invalid_token")
    assert state_of("acme") == before


def _clock(when: datetime) -> Any:
    return lambda self: when


def test_expired_verification_link_answers_400_invalid_token(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks, monkeypatch
):
    with monkeypatch.context() as patch:
        patch.setattr(EmailVerificationTokenGenerator, "_now", _clock(datetime.now() - timedelta(days=3, minutes=1)))
        uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks)
    before = state_of("acme")

    assert_problem(verify_api(uid, token), 400, "invalid_token")
    assert state_of("acme") == before


def test_verification_link_lasts_three_days_whatever_the_password_reset_timeout(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks, monkeypatch, settings
):
    settings.PASSWORD_RESET_TIMEOUT = 60
    with monkeypatch.context() as patch:
        patch.setattr(EmailVerificationTokenGenerator, "_now", _clock(datetime.now() - timedelta(days=2, hours=23)))
        uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks)

    assert verify_api(uid, token).status_code == 200


def test_a_link_from_one_tenant_does_not_verify_in_another(
    tenant_a, tenant_b, mailoutbox, django_capture_on_commit_callbacks
):
    uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks, host=HOST)
    registered_link(mailoutbox, django_capture_on_commit_callbacks, host=OTHER_HOST)
    before_a, before_b = state_of("acme"), state_of("globex")

    assert_problem(verify_api(uid, token, host=OTHER_HOST), 400, "invalid_token")
    assert (state_of("acme"), state_of("globex")) == (before_a, before_b)
    assert not user_in("globex").is_active


def test_a_deactivated_user_is_never_activated_by_an_old_link(tenant_a, mailoutbox, django_capture_on_commit_callbacks):
    uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks)
    with schema_context("acme"):
        User.objects.filter(email=EMAIL).update(deactivated_at=timezone.now())
    before = state_of("acme")

    assert_problem(verify_api(uid, token), 400, "invalid_token")
    assert state_of("acme") == before


def test_a_link_stops_working_when_the_email_changes(tenant_a, mailoutbox, django_capture_on_commit_callbacks):
    uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks)
    with schema_context("acme"):
        User.objects.filter(email=EMAIL).update(email="changed@example.com")

    assert_problem(verify_api(uid, token), 400, "invalid_token")
    assert not user_in("acme", "changed@example.com").is_active


def test_verify_email_is_refused_on_the_platform_host(
    tenant_a, public_client, mailoutbox, django_capture_on_commit_callbacks
):
    uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks)

    assert_problem(public_client.post(f"/api/v1/auth/verify-email/{uid}/{token}/"), 400, "invalid_token")
    assert not user_in("acme").is_active


# --- the page the emailed link opens -------------------------------------------------------


def browser() -> Client:
    """A client that enforces CSRF like a browser session does."""
    return Client(HTTP_HOST=HOST, enforce_csrf_checks=True)


def page_path(uid: str, token: str) -> str:
    return f"/verify-email/{uid}/{token}/"


CSRF_INPUT_RE = re.compile(r'<input type="hidden" name="csrfmiddlewaretoken" value="([^"]+)">')


def csrf_of(page: Any) -> str:
    match = CSRF_INPUT_RE.search(page.content.decode())
    assert match, page.content
    return match.group(1)


def test_verification_page_get_shows_a_confirm_form_and_does_not_activate(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks)

    response = browser().get(page_path(uid, token))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert '<form method="post">' in html
    assert CSRF_INPUT_RE.search(html)
    assert "Confirm my email" in html
    assert not user_in("acme").is_active


def test_verification_page_loads_nothing_external_and_leaks_no_referrer(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks)

    response = browser().get(page_path(uid, token))

    html = response.content.decode()
    assert "<script" not in html and "src=" not in html and "href=" not in html and "@import" not in html
    assert '<meta name="referrer" content="strict-origin">' in html
    assert response["Referrer-Policy"] == "strict-origin"
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert "no-store" in response["Cache-Control"]


def test_posting_the_verification_page_activates_and_shows_success(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks)
    client = browser()
    csrf = csrf_of(client.get(page_path(uid, token)))

    # The Origin header a browser sends for the form under the page's referrer policy.
    response = client.post(page_path(uid, token), {"csrfmiddlewaretoken": csrf}, HTTP_ORIGIN="http://acme.idp.test")

    assert response.status_code == 200
    assert "Your email is confirmed, you can sign in" in response.content.decode()
    assert user_in("acme").is_active
    assert login(EMAIL, PASSWORD).status_code == 200


def test_posting_the_verification_page_twice_says_the_link_is_invalid(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks)
    client = browser()
    csrf = csrf_of(client.get(page_path(uid, token)))
    client.post(page_path(uid, token), {"csrfmiddlewaretoken": csrf})

    response = client.post(page_path(uid, token), {"csrfmiddlewaretoken": csrf})

    assert response.status_code == 400
    assert "This link is invalid or has expired" in response.content.decode()


def test_posting_the_verification_page_without_the_csrf_token_activates_nothing(
    tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    uid, token = registered_link(mailoutbox, django_capture_on_commit_callbacks)
    before = state_of("acme")

    response = browser().post(page_path(uid, token))

    assert response.status_code == 403
    assert state_of("acme") == before


def test_verification_page_with_a_bad_link_says_so_and_offers_no_button(tenant_a):
    response = browser().get(page_path(b64("6f1c1c52-4d3a-4f0e-9c61-2d7d5f1e0b9a"), "abc-def"))

    assert response.status_code == 400
    html = response.content.decode()
    assert "This link is invalid or has expired" in html
    assert "<form" not in html
