"""Users and employees (/api/v1/users/): who may call it, creating an employee with a generated
password and roles, listing, updating, deactivating, admin-set passwords and unlocks (API.md
"Users and employees"); delegated administration by branch managers, who see and manage the
users of their branches only and never anyone above them."""

import itertools
import json
import logging
import re
import uuid

import pytest
from django.db.models import Q
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context
from rest_framework.test import APIClient

from core.errors import ProblemError
from identity.models import AuditEvent, User
from identity.services.users import user_deactivate
from rbac.catalog import ADMIN, AUDITOR, EMPLOYEE, MANAGER, SYSTEM_ROLES, Perm
from rbac.models import Branch, Role, RoleAssignment
from rbac.selectors import effective_permissions
from rbac.services import branch_create, role_assign, role_create
from sessions.models import DeviceSession, EndReason
from tenants.models import Tenant
from tests.concurrency import in_parallel, on_own_connection
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, client_for_host, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import TEST_PASSWORD, UserFactory

HOST = "acme.idp.test"
OTHER_HOST = "globex.idp.test"
USERS = "/api/v1/users/"
COOK_EMAIL = "cook@acme.example"
NEW_EMAIL = "new.cook@acme.example"
NEW_PASSWORD = "Fresh-Passw0rd!"
_addresses = (f"10.7.{n // 250}.{n % 250 + 1}" for n in itertools.count())


BRANCH_A, BRANCH_B = "nairobi-1", "mombasa-1"


# --- the cast and small helpers ---------------------------------------------------------------


def acme_tenant():
    return Tenant.objects.get(schema_name="acme")


def grant(user, role_name, branch=None):
    """Give `user` a system or tenant role, tenant-wide or at the branch with that external id
    (as the system, so no delegation rule applies)."""
    with tenant_context(acme_tenant()):
        at = Branch.objects.get(external_id=branch) if branch else None
        role_assign(user=user, role=Role.objects.get(name=role_name), branch=at, actor=None)
    return user


def role_id(name):
    with schema_context("acme"):
        return Role.objects.get(name=name).pk


def acme_person(email, role_name=None, branch=None, **fields):
    with schema_context("acme"):
        user = UserFactory(email=email, **fields)
    return grant(user, role_name, branch) if role_name else user


@pytest.fixture
def cook(tenant_a):
    """An employee: works at branch A and holds the Employee role tenant-wide."""
    return acme_person(COOK_EMAIL, EMPLOYEE, full_name="Cook Kamau", employee_id="E-100", branch_id=BRANCH_A)


@pytest.fixture
def cook_tokens(cook):
    return login_tokens(HOST, COOK_EMAIL, device_id="till-cook")


@pytest.fixture
def cook_client(cook_tokens):
    return bearer_client(HOST, cook_tokens["access"])


@pytest.fixture
def admin_client(tenant_a_admin_client):
    return tenant_a_admin_client


@pytest.fixture
def globex_admin_tokens(tenant_b_admin):
    return login_tokens(OTHER_HOST, SHARED_ADMIN_EMAIL)


def acme_user(email):
    with schema_context("acme"):
        return User.objects.filter(email=email).first()


def acme_reload(user):
    with schema_context("acme"):
        return User.objects.get(pk=user.pk)


def acme_events(type_, target=None):
    with schema_context("acme"):
        events = AuditEvent.objects.filter(type=type_)
        if target is not None:
            events = events.filter(target_id=str(target.pk))
        return list(events.order_by("id"))


def acme_user_count():
    with schema_context("acme"):
        return User.objects.count()


def counted_toward_cap():
    with schema_context("acme"):
        return User.objects.filter(
            Q(is_active=True) | Q(deactivated_at__isnull=True, email_verified_at__isnull=True)
        ).count()


def post_login(email, password, *, device_id="pos-7"):
    # A fresh address per attempt keeps the per-address throttle out of lockout tests.
    client = APIClient(HTTP_HOST=HOST, REMOTE_ADDR=next(_addresses))
    body = {"email": email, "password": password, "device_id": device_id, "device_name": "Till", "device_type": "pos"}
    return client.post("/api/v1/auth/token/", body, format="json")


def refresh(tokens):
    return client_for_host(HOST).post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")


def temporary_password(body):
    match = re.search(r"^Temporary password: (\S+)$", body, re.MULTILINE)
    assert match, body
    return match.group(1)


def create_body(**changes):
    return {"email": NEW_EMAIL, "full_name": "New Cook"} | changes


# --- permission matrix ------------------------------------------------------------------------

# name -> (method, path under /users/, body, status for the tenant's admin)
ENDPOINTS = {
    "list": ("get", "", None, 200),
    "create": ("post", "", create_body(), 201),
    "read": ("get", "{id}/", None, 200),
    "update": ("patch", "{id}/", {"full_name": "Renamed"}, 200),
    "deactivate": ("delete", "{id}/", None, 204),
    "set-password": ("post", "{id}/set-password/", {"password": NEW_PASSWORD}, 200),
    "unlock": ("post", "{id}/unlock/", None, 200),
}
ONE_USER_ENDPOINTS = [name for name, (_, path, _, _) in ENDPOINTS.items() if "{id}" in path]


def call(client, endpoint, target):
    method, path, body, _ = ENDPOINTS[endpoint]
    url = USERS + path.format(id=target.pk)
    return getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_anonymous_caller_gets_401_not_authenticated(endpoint, cook):
    assert_problem(call(client_for_host(HOST), endpoint, cook), 401, "not_authenticated")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_an_employee_gets_403_permission_denied_and_nothing_changes(endpoint, cook, cook_client):
    response = call(cook_client, endpoint, cook)

    assert_problem(response, 403, "permission_denied")
    assert acme_reload(cook).is_active and acme_reload(cook).full_name == "Cook Kamau"
    assert acme_user(NEW_EMAIL) is None


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_tenants_admin_is_allowed(endpoint, cook, admin_client):
    expected = ENDPOINTS[endpoint][3]

    response = call(admin_client, endpoint, cook)

    assert response.status_code == expected, response.content


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_another_tenants_admin_token_is_refused_here_with_401_invalid_token(endpoint, cook, globex_admin_tokens):
    response = call(bearer_client(HOST, globex_admin_tokens["access"]), endpoint, cook)

    assert_problem(response, 401, "invalid_token")
    assert acme_reload(cook).is_active


@pytest.mark.parametrize("endpoint", ONE_USER_ENDPOINTS)
def test_another_tenants_admin_on_its_own_host_does_not_find_this_tenants_user(endpoint, cook, globex_admin_tokens):
    response = call(bearer_client(OTHER_HOST, globex_admin_tokens["access"]), endpoint, cook)

    assert_problem(response, 404, "not_found")
    assert acme_reload(cook).is_active and acme_reload(cook).full_name == "Cook Kamau"


def test_another_tenants_admin_lists_only_its_own_users(cook, globex_admin_tokens):
    response = bearer_client(OTHER_HOST, globex_admin_tokens["access"]).get(USERS)

    assert response.status_code == 200
    assert [user["email"] for user in response.json()["results"]] == [SHARED_ADMIN_EMAIL]


# --- creation ---------------------------------------------------------------------------------


def test_creating_an_employee_answers_201_with_the_user_and_never_a_password(admin_client, tenant_a_admin):
    body = create_body(
        email="  New.Cook@ACME.example ",
        phone="+254 712 345678",
        address="Moi Avenue 1, Nairobi",
        employee_id="E-300",
        kra_pin="a123456789b",
        branch_id="nairobi-1",
        restaurant_id="r-9",
    )

    response = admin_client.post(USERS, body, format="json")

    assert response.status_code == 201, response.content
    user = response.json()
    assert "password" not in user
    assert not any(str(value).startswith(("md5$", "argon2", "pbkdf2")) for value in user.values())
    assert user["email"] == NEW_EMAIL  # normalised
    assert user["kra_pin"] == "A123456789B"
    assert (user["employee_id"], user["branch_id"], user["restaurant_id"]) == ("E-300", "nairobi-1", "r-9")
    assert (user["is_active"], user["is_tenant_admin"], user["must_change_password"]) == (True, False, True)
    created = acme_user(NEW_EMAIL)
    assert str(created.pk) == user["id"] and created.must_change_password
    [event] = acme_events("user.created", created)
    assert event.actor_id == tenant_a_admin.pk
    assert event.data["email"] == NEW_EMAIL


def test_the_welcome_email_holds_the_temporary_password_on_its_own_line(
    admin_client, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(USERS, create_body(), format="json")

    [message] = mailoutbox
    assert message.to == [NEW_EMAIL]
    password = temporary_password(message.body)
    assert len(password) >= 16
    assert "must change this password at first login" in message.body
    assert "http://acme.idp.test" in message.body


def test_the_temporary_password_logs_in_and_must_be_changed_before_anything_else(
    admin_client, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(USERS, create_body(), format="json")
    password = temporary_password(mailoutbox[0].body)

    tokens = login_tokens(HOST, NEW_EMAIL, password, device_id="till-new")
    client = bearer_client(HOST, tokens["access"])

    assert tokens["user"]["must_change_password"] is True
    assert_problem(client.get(USERS), 403, "password_change_required")
    assert_problem(client.get("/api/v1/auth/activity/"), 403, "password_change_required")
    assert client.get("/api/v1/auth/whoami/").status_code == 200
    assert client.get("/api/v1/auth/profile/").status_code == 200


def test_the_temporary_password_is_never_logged_audited_or_returned(
    admin_client, mailoutbox, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(USERS, create_body(), format="json")

    password = temporary_password(mailoutbox[0].body)
    assert password not in response.content.decode()
    assert password not in caplog.text
    with schema_context("acme"):
        assert all(password not in json.dumps(event.data) for event in AuditEvent.objects.all())


def test_every_employee_gets_a_different_password(admin_client, mailoutbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(USERS, create_body(), format="json")
        admin_client.post(USERS, create_body(email="second@acme.example"), format="json")

    first, second = (temporary_password(message.body) for message in mailoutbox)
    assert first != second


def test_creation_past_the_plans_user_cap_answers_403_and_creates_and_sends_nothing(
    admin_client, tenant_a, mailoutbox, django_capture_on_commit_callbacks
):
    tenant_a.plan.max_users = counted_toward_cap()
    tenant_a.plan.save()
    before = acme_user_count()
    events_before = len(acme_events("user.created"))

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(USERS, create_body(), format="json")

    assert_problem(response, 403, "user_cap_reached")
    assert acme_user_count() == before
    assert acme_user(NEW_EMAIL) is None
    assert mailoutbox == []
    assert len(acme_events("user.created")) == events_before


def test_deactivated_users_do_not_count_toward_the_cap(admin_client, tenant_a, cook):
    tenant_a.plan.max_users = counted_toward_cap()
    tenant_a.plan.save()
    assert_problem(admin_client.post(USERS, create_body(), format="json"), 403, "user_cap_reached")

    assert admin_client.delete(f"{USERS}{cook.pk}/").status_code == 204

    assert admin_client.post(USERS, create_body(), format="json").status_code == 201


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "cook@@acme.example"}, "email"),
        ({"email": "cook@acme"}, "email"),
        ({"email": ""}, "email"),
        ({"email": "x" * 250 + "@acme.example"}, "email"),
        ({"full_name": ""}, "full_name"),
        ({"kra_pin": "A12345678B"}, "kra_pin"),
        ({"kra_pin": "1234567890B"}, "kra_pin"),
        ({"kra_pin": "A123456789"}, "kra_pin"),
        ({"phone": "call me maybe"}, "phone"),
        ({"roles": ["Manager"]}, "roles"),  # role assignments, not names: {"role": id, "branch": ...}
        ({"roles": [{"role": "Manager"}]}, "roles"),
        ({"roles": [{"branch": BRANCH_A}]}, "roles"),
        ({"roles": [{"role": 1, "level": "high"}]}, "roles"),
        ({"roles": {"role": 1}}, "roles"),
        ({"is_tenant_admin": True}, "is_tenant_admin"),
        ({"must_change_password": False}, "must_change_password"),
        ({"password": "Chosen-Passw0rd!"}, "password"),
        ({"fullname": "Typo"}, "fullname"),
    ],
)
def test_bad_creation_input_answers_400_naming_the_field_and_creates_nothing(
    admin_client, changes, field, mailoutbox, django_capture_on_commit_callbacks
):
    before = acme_user_count()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(USERS, create_body(**changes), format="json")

    body = assert_problem(response, 400, "invalid_request")
    assert any(key == field or key.startswith(f"{field}.") for key in body["errors"]), body["errors"]
    assert acme_user_count() == before
    assert mailoutbox == []


def test_a_missing_email_or_name_is_named_in_the_errors(admin_client):
    body = assert_problem(admin_client.post(USERS, {}, format="json"), 400, "invalid_request")

    assert set(body["errors"]) == {"email", "full_name"}


def test_an_email_already_used_in_this_tenant_in_any_case_answers_400(admin_client, cook, mailoutbox):
    before = acme_user_count()

    response = admin_client.post(USERS, create_body(email=" COOK@Acme.Example"), format="json")

    body = assert_problem(response, 400, "invalid_request")
    assert "email" in body["errors"]
    assert acme_user_count() == before
    assert acme_reload(cook).full_name == "Cook Kamau"


def test_an_email_used_in_another_tenant_is_free_here(admin_client, tenant_b):
    with schema_context("globex"):
        UserFactory(email=NEW_EMAIL)

    assert admin_client.post(USERS, create_body(), format="json").status_code == 201


# --- list -------------------------------------------------------------------------------------


@pytest.fixture
def staff(cook):
    with schema_context("acme"):
        UserFactory(email="waiter@acme.example", full_name="Wanjiru Otieno", employee_id="E-200", branch_id="mombasa-1")
        UserFactory(email="gone@acme.example", full_name="Gone", is_active=False, deactivated_at=timezone.now())


def emails(response):
    assert response.status_code == 200, response.content
    return [user["email"] for user in response.json()["results"]]


def test_the_list_is_paginated_and_ordered_by_email(admin_client, staff):
    response = admin_client.get(USERS)

    body = response.json()
    assert set(body) == {"count", "next", "previous", "results"}
    assert body["count"] == 4
    assert emails(response) == [SHARED_ADMIN_EMAIL, COOK_EMAIL, "gone@acme.example", "waiter@acme.example"]
    page = admin_client.get(USERS, {"page_size": 1, "page": 2}).json()
    assert [user["email"] for user in page["results"]] == [COOK_EMAIL]
    assert page["next"] and page["previous"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"is_active": "false"}, ["gone@acme.example"]),
        ({"is_active": "true"}, [SHARED_ADMIN_EMAIL, COOK_EMAIL, "waiter@acme.example"]),
        ({"branch_id": "nairobi-1"}, [COOK_EMAIL]),
        ({"branch_id": ""}, [SHARED_ADMIN_EMAIL, "gone@acme.example"]),  # no branch
        ({"search": "KAMAU"}, [COOK_EMAIL]),  # full name, any case
        ({"search": "e-200"}, ["waiter@acme.example"]),  # employee id
        ({"search": "acme.example"}, [COOK_EMAIL, "gone@acme.example", "waiter@acme.example"]),  # email
        ({"search": "waiter", "is_active": "false"}, []),
    ],
)
def test_the_list_filters_by_state_and_branch_and_searches_email_name_and_employee_id(
    admin_client, staff, query, expected
):
    assert emails(admin_client.get(USERS, query)) == expected


def test_a_bad_filter_value_answers_400_naming_it(admin_client):
    body = assert_problem(admin_client.get(USERS, {"is_active": "perhaps"}), 400, "invalid_request")

    assert "is_active" in body["errors"]


# --- read and update --------------------------------------------------------------------------


def test_reading_a_user_shows_profile_employee_and_access_fields_and_no_password(admin_client, cook):
    response = admin_client.get(f"{USERS}{cook.pk}/")

    assert response.status_code == 200
    user = response.json()
    assert user["id"] == str(cook.pk)
    assert (user["email"], user["full_name"], user["employee_id"]) == (COOK_EMAIL, "Cook Kamau", "E-100")
    assert {"is_active", "is_tenant_admin", "must_change_password", "roles", "deactivated_at"} <= set(user)
    assert not any("password" in key and key != "must_change_password" for key in user)


@pytest.mark.parametrize("user_id", ["not-a-uuid", "1", str(uuid.uuid4()), "00000000-0000-0000-0000-00000000000g"])
@pytest.mark.parametrize("endpoint", ONE_USER_ENDPOINTS)
def test_an_unknown_or_malformed_id_answers_404_not_found(admin_client, endpoint, user_id):
    method, path, body, _ = ENDPOINTS[endpoint]

    response = getattr(admin_client, method)(USERS + path.format(id=user_id), body, format="json")

    assert_problem(response, 404, "not_found")


def test_an_admin_updates_profile_and_employee_fields_and_the_audit_row_has_before_and_after(
    admin_client, cook, tenant_a_admin
):
    changes = {"full_name": "Cook Wanjiku", "kra_pin": "p051234567q", "branch_id": "mombasa-1", "phone": "0712 345 678"}

    response = admin_client.patch(f"{USERS}{cook.pk}/", changes, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["kra_pin"] == "P051234567Q"
    stored = acme_reload(cook)
    assert (stored.full_name, stored.kra_pin, stored.branch_id) == ("Cook Wanjiku", "P051234567Q", "mombasa-1")
    assert stored.employee_id == "E-100"  # not sent, not changed
    [event] = acme_events("user.updated", cook)
    assert event.actor_id == tenant_a_admin.pk
    assert event.data["changes"] == {
        "full_name": {"before": "Cook Kamau", "after": "Cook Wanjiku"},
        "kra_pin": {"before": "", "after": "P051234567Q"},
        "branch_id": {"before": "nairobi-1", "after": "mombasa-1"},
        "phone": {"before": "", "after": "0712 345 678"},
    }


def test_an_update_that_changes_nothing_writes_no_audit_row(admin_client, cook):
    response = admin_client.patch(f"{USERS}{cook.pk}/", {"full_name": "Cook Kamau"}, format="json")

    assert response.status_code == 200
    assert acme_events("user.updated", cook) == []


def test_the_email_can_be_changed_and_is_normalised(admin_client, cook):
    response = admin_client.patch(f"{USERS}{cook.pk}/", {"email": " Chef@ACME.example"}, format="json")

    assert response.status_code == 200, response.content
    assert acme_reload(cook).email == "chef@acme.example"
    assert post_login("chef@acme.example", TEST_PASSWORD).status_code == 200


def test_an_email_taken_by_another_user_in_any_case_is_refused_and_nothing_changes(admin_client, cook):
    response = admin_client.patch(
        f"{USERS}{cook.pk}/", {"email": SHARED_ADMIN_EMAIL.upper(), "full_name": "Other"}, format="json"
    )

    body = assert_problem(response, 400, "invalid_request")
    assert "email" in body["errors"]
    stored = acme_reload(cook)
    assert (stored.email, stored.full_name) == (COOK_EMAIL, "Cook Kamau")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"is_tenant_admin": True}, "is_tenant_admin"),
        ({"must_change_password": True}, "must_change_password"),
        ({"is_active": False}, "is_active"),
        ({"password": "Chosen-Passw0rd!"}, "password"),
        ({"roles": ["Admin"]}, "roles"),
        ({"kra_pin": "A1B"}, "kra_pin"),
        ({"email": "nope"}, "email"),
        ({"full_name": ""}, "full_name"),
    ],
)
def test_access_flags_and_bad_values_are_refused_by_update_and_nothing_changes(admin_client, cook, changes, field):
    response = admin_client.patch(f"{USERS}{cook.pk}/", changes | {"employee_id": "E-999"}, format="json")

    body = assert_problem(response, 400, "invalid_request")
    assert field in body["errors"]
    stored = acme_reload(cook)
    assert (stored.is_tenant_admin, stored.must_change_password, stored.is_active) == (False, False, True)
    assert stored.employee_id == "E-100"
    assert acme_events("user.updated", cook) == []


# --- deactivation -----------------------------------------------------------------------------


def test_deactivation_ends_every_session_and_the_user_can_no_longer_use_a_token_or_log_in(
    admin_client, cook, cook_tokens, cook_client, tenant_a_admin, django_capture_on_commit_callbacks
):
    assert cook_client.get("/api/v1/auth/whoami/").status_code == 200  # the session is known active

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.delete(f"{USERS}{cook.pk}/")

    assert response.status_code == 204
    stored = acme_reload(cook)
    assert stored.is_active is False and stored.deactivated_at is not None
    with schema_context("acme"):
        sessions = list(DeviceSession.objects.filter(user_id=cook.pk))
    assert sessions and all(s.ended_at and s.end_reason == EndReason.USER_DISABLED for s in sessions)
    assert_problem(cook_client.get("/api/v1/auth/whoami/"), 401, "session_ended")
    assert_problem(post_login(COOK_EMAIL, TEST_PASSWORD), 403, "account_disabled")
    [event] = acme_events("user.deactivated", cook)
    assert event.actor_id == tenant_a_admin.pk


def test_a_deactivated_users_refresh_answers_403_account_disabled(
    admin_client, cook, cook_tokens, django_capture_on_commit_callbacks
):
    # API.md "Which code when two could apply": the account's state wins over the session's.
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.delete(f"{USERS}{cook.pk}/")

    assert_problem(refresh(cook_tokens), 403, "account_disabled")


def test_the_last_active_admin_cannot_be_deactivated(admin_client, tenant_a_admin):
    response = admin_client.delete(f"{USERS}{tenant_a_admin.pk}/")

    assert_problem(response, 403, "last_admin")
    assert acme_reload(tenant_a_admin).is_active
    assert admin_client.get(USERS).status_code == 200  # the admin's session goes on
    assert acme_events("user.deactivated") == []


def test_an_admin_can_be_deactivated_while_another_active_admin_remains(admin_client, tenant_a_admin):
    with schema_context("acme"):
        UserFactory(email="second.admin@acme.example", is_tenant_admin=True)
        UserFactory(email="former.admin@acme.example", is_tenant_admin=True, is_active=False)
    other = acme_user("second.admin@acme.example")

    assert admin_client.delete(f"{USERS}{other.pk}/").status_code == 204
    assert_problem(admin_client.delete(f"{USERS}{tenant_a_admin.pk}/"), 403, "last_admin")


def test_two_admins_deactivating_each_other_at_once_leave_one_of_them_active(tenant_a_admin):
    # Runs on real, committing connections: each deactivation must see the other's result.
    def create():
        return acme_person("race.admin@acme.example", ADMIN).pk

    other_pk = on_own_connection(create)
    pair = [tenant_a_admin.pk, other_pk]
    turn = itertools.count()

    def deactivate_the_other():
        index = next(turn)
        with schema_context("acme"):
            actor, target = (User.objects.get(pk=pair[(index + shift) % 2]) for shift in (0, 1))
            try:
                user_deactivate(user=target, actor=actor)
            except ProblemError as refusal:
                return refusal.code.value
            return "deactivated"

    def active_admins():
        with schema_context("acme"):
            return User.objects.filter(pk__in=pair, is_active=True).count()

    def cleanup():
        with schema_context("acme"):
            User.objects.filter(pk=tenant_a_admin.pk).update(is_active=True, deactivated_at=None)
            events = AuditEvent.objects.filter(target_id__in=[str(pk) for pk in pair])
            events.filter(type__in=["user.deactivated", "role.assigned"]).delete()
            User.objects.filter(pk=other_pk).delete()

    try:
        results = in_parallel(deactivate_the_other, 2)
        remaining = on_own_connection(active_admins)
    finally:
        on_own_connection(cleanup)

    assert sorted(results) == ["deactivated", "last_admin"]
    assert remaining == 1


def test_deactivating_a_deactivated_user_changes_nothing(admin_client, cook):
    assert admin_client.delete(f"{USERS}{cook.pk}/").status_code == 204
    first = acme_reload(cook).deactivated_at

    assert admin_client.delete(f"{USERS}{cook.pk}/").status_code == 204

    assert acme_reload(cook).deactivated_at == first
    assert len(acme_events("user.deactivated", cook)) == 1


# --- admin-set password -----------------------------------------------------------------------


def test_setting_a_password_ends_the_users_sessions_and_forces_a_change_at_next_login(
    admin_client, cook, cook_client, tenant_a_admin, django_capture_on_commit_callbacks
):
    assert cook_client.get("/api/v1/auth/whoami/").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(f"{USERS}{cook.pk}/set-password/", {"password": NEW_PASSWORD}, format="json")

    assert response.status_code == 200, response.content
    assert response.json() == {"must_change_password": True, "sessions_ended": 1}
    assert_problem(cook_client.get("/api/v1/auth/whoami/"), 401, "session_ended")
    with schema_context("acme"):
        assert set(DeviceSession.objects.filter(user_id=cook.pk).values_list("end_reason", flat=True)) == {
            EndReason.ADMIN
        }
    assert_problem(post_login(COOK_EMAIL, TEST_PASSWORD), 401, "invalid_credentials")
    tokens = post_login(COOK_EMAIL, NEW_PASSWORD).json()
    assert tokens["user"]["must_change_password"] is True
    assert_problem(bearer_client(HOST, tokens["access"]).get("/api/v1/auth/activity/"), 403, "password_change_required")
    [event] = acme_events("password.changed", cook)
    assert event.actor_id == tenant_a_admin.pk
    assert event.data["by_admin"] is True
    assert NEW_PASSWORD not in json.dumps(event.data)


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("Sh0rt!x", "password_policy"),
        ("alllowercase1!", "password_policy"),
        ("NoDigits-here!", "password_policy"),
        ("NoSpecials123", "password_policy"),
        ("", "invalid_request"),
    ],
)
def test_a_password_that_breaks_the_policy_answers_400_and_changes_nothing(
    admin_client, cook, cook_client, password, code
):
    response = admin_client.post(f"{USERS}{cook.pk}/set-password/", {"password": password}, format="json")

    body = assert_problem(response, 400, code)
    assert "password" in body["errors"]
    assert cook_client.get("/api/v1/auth/whoami/").status_code == 200
    assert not acme_reload(cook).must_change_password
    assert acme_events("password.changed", cook) == []


def test_the_tenants_password_policy_applies_to_admin_set_passwords(admin_client, cook, tenant_a):
    tenant_a.policy = tenant_a.effective_policy | {
        "password": tenant_a.effective_policy["password"] | {"min_length": 20}
    }
    tenant_a.save()

    response = admin_client.post(f"{USERS}{cook.pk}/set-password/", {"password": NEW_PASSWORD}, format="json")

    assert_problem(response, 400, "password_policy")


# --- unlock -----------------------------------------------------------------------------------


def test_unlock_lifts_a_lockout_made_by_failed_logins(admin_client, cook, tenant_a_admin):
    assert [post_login(COOK_EMAIL, "Wrong-Passw0rd!").status_code for _ in range(5)] == [401] * 5
    assert_problem(post_login(COOK_EMAIL, TEST_PASSWORD), 423, "account_locked")

    response = admin_client.post(f"{USERS}{cook.pk}/unlock/")

    assert response.status_code == 200
    assert response.json() == {"was_locked": True}
    assert post_login(COOK_EMAIL, TEST_PASSWORD).status_code == 200
    [event] = acme_events("account.unlocked", cook)
    assert event.actor_id == tenant_a_admin.pk


def test_unlocking_an_account_that_is_not_locked_says_so(admin_client, cook):
    response = admin_client.post(f"{USERS}{cook.pk}/unlock/")

    assert response.status_code == 200
    assert response.json() == {"was_locked": False}


# --- delegated administration: the cast of branches and roles ----------------------------------

MANAGER_A_EMAIL, MANAGER_B_EMAIL = "manager.a@acme.example", "manager.b@acme.example"
BARISTA_EMAIL = "barista@acme.example"  # an employee of branch B
BRANCH_ADMIN_EMAIL = "branch.admin@acme.example"  # a tenant admin who works at branch A
AUDITOR_EMAIL = "auditor@acme.example"


@pytest.fixture
def branches(tenant_a, tenant_a_admin):
    with tenant_context(tenant_a):
        for external_id, name in ((BRANCH_A, "Nairobi CBD"), (BRANCH_B, "Mombasa Nyali")):
            branch_create(tenant=tenant_a, external_id=external_id, name=name, actor=tenant_a_admin)


@pytest.fixture
def barista(branches):
    return acme_person(BARISTA_EMAIL, EMPLOYEE, full_name="Barista Achieng", branch_id=BRANCH_B)


@pytest.fixture
def manager_a(branches):
    """Manager at branch A only (works there too)."""
    return acme_person(MANAGER_A_EMAIL, MANAGER, BRANCH_A, branch_id=BRANCH_A)


@pytest.fixture
def manager_b(branches):
    return acme_person(MANAGER_B_EMAIL, MANAGER, BRANCH_B, branch_id=BRANCH_B)


@pytest.fixture
def branch_admin(branches):
    """A second tenant admin (the Admin role tenant-wide), whose branch is A."""
    return acme_person(BRANCH_ADMIN_EMAIL, ADMIN, branch_id=BRANCH_A)


@pytest.fixture
def auditor(tenant_a):
    """The Auditor role tenant-wide: `audit.view` and `*.view`."""
    return acme_person(AUDITOR_EMAIL, AUDITOR)


@pytest.fixture
def auditor_client(auditor):
    return client_of(AUDITOR_EMAIL)


def client_of(email, device_id="till-9"):
    return bearer_client(HOST, login_tokens(HOST, email, device_id=device_id)["access"])


@pytest.fixture
def manager_a_client(manager_a):
    return client_of(MANAGER_A_EMAIL)


@pytest.fixture
def manager_b_client(manager_b):
    return client_of(MANAGER_B_EMAIL)


def snapshot(*users):
    """What an action on a user could change: the row's fields, its role assignments, and
    the user's sessions and audit trail."""
    with schema_context("acme"):
        rows = []
        for user in users:
            stored = User.objects.get(pk=user.pk)
            rows.append(
                (
                    stored.email,
                    stored.full_name,
                    stored.branch_id,
                    stored.password,
                    stored.is_active,
                    stored.must_change_password,
                    sorted(RoleAssignment.objects.filter(user=stored).values_list("role__name", "branch__external_id")),
                    DeviceSession.objects.filter(user=stored, ended_at__isnull=True).count(),
                    AuditEvent.objects.filter(target_id=str(stored.pk)).count(),
                )
            )
        return rows


def acme_state():
    """Every user and role assignment of the tenant: for refusals that must leave all as it was."""
    with schema_context("acme"):
        return (
            sorted(User.objects.values_list("email", "branch_id", "is_active")),
            sorted(RoleAssignment.objects.values_list("user__email", "role__name", "branch__external_id")),
            AuditEvent.objects.count(),
        )


# --- the manager matrix ------------------------------------------------------------------------

# name -> (method, path under /users/, body); a creation's branch is the target's branch
MANAGER_ENDPOINTS = {
    "read": ("get", "{id}/", None),
    "update": ("patch", "{id}/", {"full_name": "Renamed"}),
    "deactivate": ("delete", "{id}/", None),
    "set-password": ("post", "{id}/set-password/", {"password": NEW_PASSWORD}),
    "unlock": ("post", "{id}/unlock/", None),
}


def call_on(client, endpoint, target):
    method, path, body = MANAGER_ENDPOINTS[endpoint]
    url = USERS + path.format(id=target.pk)
    return getattr(client, method)(url, body, format="json") if body else getattr(client, method)(url)


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [("read", 200), ("update", 200), ("set-password", 200), ("unlock", 200)],
)
def test_a_manager_at_branch_a_manages_the_employees_of_branch_a(endpoint, expected, cook, manager_a_client):
    response = call_on(manager_a_client, endpoint, cook)

    assert response.status_code == expected, response.content


def test_a_managers_changes_are_audited_as_theirs(cook, manager_a, manager_a_client):
    assert manager_a_client.patch(f"{USERS}{cook.pk}/", {"full_name": "Cook Wanjiku"}, format="json").status_code == 200

    [event] = acme_events("user.updated", cook)
    assert event.actor_id == manager_a.pk


@pytest.mark.parametrize("endpoint", ["read", "update", "set-password", "unlock"])
def test_a_manager_at_branch_a_does_not_find_users_of_branch_b_and_nothing_changes(endpoint, barista, manager_a_client):
    before = snapshot(barista)

    response = call_on(manager_a_client, endpoint, barista)

    assert_problem(response, 404, "not_found")
    assert snapshot(barista) == before


@pytest.mark.parametrize("endpoint", ["read", "update", "set-password", "unlock"])
def test_a_manager_at_branch_b_manages_branch_b_and_does_not_find_branch_a(endpoint, cook, barista, manager_b_client):
    before = snapshot(cook)

    assert call_on(manager_b_client, endpoint, barista).status_code == 200
    assert_problem(call_on(manager_b_client, endpoint, cook), 404, "not_found")
    assert snapshot(cook) == before


def test_a_manager_does_not_find_users_without_a_branch(tenant_a_admin, manager_a_client):
    assert_problem(manager_a_client.get(f"{USERS}{tenant_a_admin.pk}/"), 404, "not_found")


def test_a_managers_list_holds_the_users_of_their_branch_only(cook, barista, manager_a, manager_b, manager_a_client):
    assert emails(manager_a_client.get(USERS)) == [COOK_EMAIL, MANAGER_A_EMAIL]
    assert emails(manager_a_client.get(USERS, {"branch_id": BRANCH_B})) == []
    assert emails(manager_a_client.get(USERS, {"branch_id": ""})) == []
    assert emails(client_of(MANAGER_B_EMAIL).get(USERS)) == [BARISTA_EMAIL, MANAGER_B_EMAIL]


@pytest.mark.parametrize("target", ["cook", "barista"])
def test_a_manager_cannot_deactivate_anyone_without_users_delete(target, request, manager_a_client):
    user = request.getfixturevalue(target)
    before = snapshot(user)

    response = call_on(manager_a_client, "deactivate", user)

    assert_problem(response, 403, "permission_denied")
    assert snapshot(user) == before


def test_a_manager_creates_an_employee_of_their_branch(manager_a, manager_a_client):
    response = manager_a_client.post(USERS, create_body(branch_id=BRANCH_A), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["branch_id"] == BRANCH_A
    assert response.json()["roles"] == [EMPLOYEE]
    [event] = acme_events("user.created", acme_user(NEW_EMAIL))
    assert event.actor_id == manager_a.pk


@pytest.mark.parametrize("branch_id", [BRANCH_B, "", None, "nowhere-9"])
def test_a_manager_cannot_create_a_user_outside_their_branches_and_nothing_is_created(
    branch_id, manager_a_client, mailoutbox, django_capture_on_commit_callbacks
):
    body = create_body() if branch_id is None else create_body(branch_id=branch_id)
    before = acme_state()

    with django_capture_on_commit_callbacks(execute=True):
        response = manager_a_client.post(USERS, body, format="json")

    assert_problem(response, 403, "permission_denied")
    assert acme_state() == before
    assert mailoutbox == []


@pytest.mark.parametrize("branch_id", [BRANCH_B, ""])
def test_a_manager_cannot_move_a_user_out_of_their_branches_and_nothing_changes(branch_id, cook, manager_a_client):
    before = snapshot(cook)

    response = manager_a_client.patch(f"{USERS}{cook.pk}/", {"branch_id": branch_id, "full_name": "X"}, format="json")

    assert_problem(response, 403, "permission_denied")
    assert snapshot(cook) == before


@pytest.mark.parametrize("endpoint", ["update", "set-password", "unlock"])
def test_a_manager_cannot_act_on_an_admin_of_their_branch_and_nothing_changes(endpoint, branch_admin, manager_a_client):
    before = snapshot(branch_admin)

    response = call_on(manager_a_client, endpoint, branch_admin)

    body = assert_problem(response, 403, "privilege_escalation")
    assert "*" in body["not_held"]
    assert snapshot(branch_admin) == before
    assert post_login(BRANCH_ADMIN_EMAIL, TEST_PASSWORD).status_code == 200  # the password is theirs still


def test_a_manager_may_still_read_an_admin_of_their_branch(branch_admin, manager_a_client):
    assert manager_a_client.get(f"{USERS}{branch_admin.pk}/").status_code == 200


def test_a_manager_cannot_reset_the_password_of_an_auditor_of_their_branch(branches, manager_a_client):
    # The Auditor's `*.view` reads every resource of the tenant: more than a Manager holds.
    watcher = acme_person("watcher@acme.example", AUDITOR, branch_id=BRANCH_A)
    before = snapshot(watcher)

    response = call_on(manager_a_client, "set-password", watcher)

    body = assert_problem(response, 403, "privilege_escalation")
    assert body["not_held"] == ["*.view"]
    assert snapshot(watcher) == before


@pytest.fixture
def branch_lead_client(tenant_a, tenant_a_admin, branches):
    """A tenant role with a Manager's codes plus users.delete, held at branch A."""
    with tenant_context(tenant_a):
        role_create(name="Branch lead", permissions=[*SYSTEM_ROLES[MANAGER], Perm.USERS_DELETE], actor=tenant_a_admin)
    acme_person("lead@acme.example", "Branch lead", BRANCH_A, branch_id=BRANCH_A)
    return client_of("lead@acme.example")


def test_a_holder_of_users_delete_at_a_branch_deactivates_its_employees(cook, branch_lead_client):
    assert branch_lead_client.delete(f"{USERS}{cook.pk}/").status_code == 204
    assert acme_reload(cook).is_active is False


def test_a_holder_of_users_delete_at_a_branch_cannot_deactivate_an_admin_there(branch_admin, branch_lead_client):
    before = snapshot(branch_admin)

    response = branch_lead_client.delete(f"{USERS}{branch_admin.pk}/")

    assert_problem(response, 403, "privilege_escalation")
    assert snapshot(branch_admin) == before


def test_a_holder_of_users_delete_at_a_branch_does_not_find_other_branches_users(barista, branch_lead_client):
    before = snapshot(barista)

    assert_problem(branch_lead_client.delete(f"{USERS}{barista.pk}/"), 404, "not_found")
    assert snapshot(barista) == before


# --- the auditor -------------------------------------------------------------------------------


def test_the_auditor_lists_and_reads_every_user_through_star_dot_view(cook, barista, auditor_client):
    assert set(emails(auditor_client.get(USERS))) >= {COOK_EMAIL, BARISTA_EMAIL, SHARED_ADMIN_EMAIL}
    assert auditor_client.get(f"{USERS}{barista.pk}/").status_code == 200


@pytest.mark.parametrize("endpoint", ["update", "deactivate", "set-password", "unlock"])
def test_the_auditor_changes_nothing(endpoint, cook, auditor_client):
    before = snapshot(cook)

    response = call_on(auditor_client, endpoint, cook)

    assert_problem(response, 403, "permission_denied")
    assert snapshot(cook) == before


def test_the_auditor_creates_nobody(auditor_client):
    before = acme_state()

    assert_problem(auditor_client.post(USERS, create_body(), format="json"), 403, "permission_denied")
    assert acme_state() == before


# --- roles given at creation -------------------------------------------------------------------


def assignments_of(email):
    with schema_context("acme"):
        return sorted(RoleAssignment.objects.filter(user__email=email).values_list("role__name", "branch__external_id"))


def test_an_employee_created_without_roles_gets_the_tenants_default_role(admin_client, tenant_a_admin):
    response = admin_client.post(USERS, create_body(), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["roles"] == [EMPLOYEE]
    assert assignments_of(NEW_EMAIL) == [(EMPLOYEE, None)]
    [event] = acme_events("role.assigned", acme_user(NEW_EMAIL))
    assert event.actor_id is None  # the tenant's default, given by the system


def test_an_empty_roles_list_also_gives_the_default_role(admin_client):
    response = admin_client.post(USERS, create_body(roles=[]), format="json")

    assert response.status_code == 201, response.content
    assert assignments_of(NEW_EMAIL) == [(EMPLOYEE, None)]


def test_the_default_role_follows_the_tenants_policy(admin_client, tenant_a):
    tenant_a.policy = tenant_a.effective_policy | {
        "registration": tenant_a.effective_policy["registration"] | {"default_role": AUDITOR}
    }
    tenant_a.save()

    assert admin_client.post(USERS, create_body(), format="json").status_code == 201
    assert assignments_of(NEW_EMAIL) == [(AUDITOR, None)]


def test_an_admin_creates_an_employee_with_roles_tenant_wide_and_at_a_branch(admin_client, tenant_a_admin, branches):
    roles = [{"role": role_id(MANAGER), "branch": BRANCH_A}, {"role": role_id(AUDITOR)}]

    response = admin_client.post(USERS, create_body(roles=roles), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["roles"] == [AUDITOR, MANAGER]
    assert assignments_of(NEW_EMAIL) == [(AUDITOR, None), (MANAGER, BRANCH_A)]  # and no default role
    events = acme_events("role.assigned", acme_user(NEW_EMAIL))
    assert [(e.data["role"], e.data["branch"], e.actor_id) for e in events] == [
        (MANAGER, BRANCH_A, tenant_a_admin.pk),
        (AUDITOR, None, tenant_a_admin.pk),
    ]


def test_a_manager_creates_an_employee_with_a_role_at_their_branch(manager_a_client):
    roles = [{"role": role_id(EMPLOYEE), "branch": BRANCH_A}]

    response = manager_a_client.post(USERS, create_body(branch_id=BRANCH_A, roles=roles), format="json")

    assert response.status_code == 201, response.content
    assert assignments_of(NEW_EMAIL) == [(EMPLOYEE, BRANCH_A)]


@pytest.mark.parametrize(
    ("roles", "code"),
    [
        ([{"role": AUDITOR, "branch": BRANCH_A}], "privilege_escalation"),  # *.view: more than a Manager holds
        ([{"role": ADMIN, "branch": BRANCH_A}], "privilege_escalation"),
        ([{"role": EMPLOYEE, "branch": None}], "permission_denied"),  # roles.assign at branch A only
        ([{"role": EMPLOYEE, "branch": BRANCH_B}], "permission_denied"),
        ([{"role": EMPLOYEE, "branch": BRANCH_A}, {"role": AUDITOR, "branch": BRANCH_A}], "privilege_escalation"),
    ],
)
def test_a_manager_giving_a_role_they_may_not_give_creates_nothing(
    roles, code, manager_a_client, mailoutbox, django_capture_on_commit_callbacks
):
    body = create_body(branch_id=BRANCH_A, roles=[r | {"role": role_id(r["role"])} for r in roles])
    before = acme_state()

    with django_capture_on_commit_callbacks(execute=True):
        response = manager_a_client.post(USERS, body, format="json")

    assert_problem(response, 403, code)
    assert acme_state() == before
    assert acme_user(NEW_EMAIL) is None
    assert mailoutbox == []


def test_a_tenant_wide_creator_without_every_permission_cannot_give_the_admin_role(tenant_a, tenant_a_admin):
    with tenant_context(tenant_a):
        role_create(name="People ops", permissions=[Perm.USERS_CREATE, Perm.ROLES_ASSIGN], actor=tenant_a_admin)
    client = client_of(acme_person("ops@acme.example", "People ops").email)
    before = acme_state()

    response = client.post(USERS, create_body(roles=[{"role": role_id(ADMIN)}]), format="json")

    body = assert_problem(response, 403, "privilege_escalation")
    assert "*" in body["not_held"]
    assert acme_state() == before


@pytest.mark.parametrize(
    "roles",
    [
        [{"role": 987654}],  # no such role
        [{"role": "EMPLOYEE", "branch": "nowhere-9"}],  # no such branch
        [{"role": "EMPLOYEE"}, {"role": "EMPLOYEE", "branch": None}],  # the same assignment twice
    ],
)
def test_an_unknown_role_or_branch_or_a_repeated_one_answers_400_naming_roles_and_creates_nothing(
    roles, admin_client, branches, mailoutbox, django_capture_on_commit_callbacks
):
    roles = [r | {"role": role_id(EMPLOYEE)} if r["role"] == "EMPLOYEE" else r for r in roles]
    before = acme_state()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(USERS, create_body(roles=roles), format="json")

    body = assert_problem(response, 400, "invalid_request")
    assert "roles" in body["errors"]
    assert acme_state() == before
    assert mailoutbox == []


def test_roles_cannot_be_changed_through_update(admin_client, cook):
    before = snapshot(cook)

    response = admin_client.patch(f"{USERS}{cook.pk}/", {"roles": [{"role": role_id(ADMIN)}]}, format="json")

    body = assert_problem(response, 400, "invalid_request")
    assert "roles" in body["errors"]
    assert snapshot(cook) == before


def test_a_deactivated_users_cached_permissions_are_dropped_at_once(admin_client, cook):
    with schema_context("acme"):
        assert effective_permissions(cook.pk).allows(Perm.ORDERS_VIEW)  # now cached

    assert admin_client.delete(f"{USERS}{cook.pk}/").status_code == 204

    with schema_context("acme"):
        assert not effective_permissions(cook.pk).allows(Perm.ORDERS_VIEW)


def test_an_employee_created_by_a_branch_manager_gets_the_default_role_at_that_branch_only(manager_a_client):
    response = manager_a_client.post(USERS, create_body(branch_id=BRANCH_A), format="json")

    assert response.status_code == 201, response.content
    assert assignments_of(NEW_EMAIL) == [(EMPLOYEE, BRANCH_A)]  # never wider than the manager's reach
