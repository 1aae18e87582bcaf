"""Every change made in the console goes through the API's services: it is audited, and the
delegation rules hold. A refusal is an error message on the page, never a 500, and leaves
every row as it was."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import check_password
from django.utils import timezone
from django_tenants.utils import schema_context

from identity.models import AuditEvent, IpBlock, LoginLockout, User
from rbac.catalog import ADMIN, EMPLOYEE, MANAGER
from rbac.models import Branch, PermissionCode, Role, RoleAssignment, ServiceClient
from rbac.services import role_assign
from sessions.models import DeviceSession, EndReason
from tests.console.conftest import console_client
from tests.console.forms import messages_of, page_form_data, run_action, submit
from tests.factories import TEST_PASSWORD

USERS = "/admin/identity/user/"
NEW_EMAIL = "new.cook@acme.example"


def in_acme(fn):
    with schema_context("acme"):
        return fn()


@pytest.fixture(autouse=True)
def _audit_mark(cast):
    """Events written before the test (the tenants' and the cast's own) are not its events."""
    global _first_event_id
    _first_event_id = in_acme(
        lambda: (AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    )


_first_event_id = 0


def events(type_: str) -> list[AuditEvent]:
    """The acme audit events of this type the test wrote."""
    return in_acme(lambda: list(AuditEvent.objects.filter(type=type_, id__gte=_first_event_id)))


def role_id(name: str) -> int:
    return in_acme(lambda: Role.objects.get(name=name).pk)


def employee_body(**changes):
    return {"email": NEW_EMAIL, "full_name": "New Cook", "branch_id": ""} | changes


# --- employees --------------------------------------------------------------------------------


def test_creating_an_employee_shows_the_generated_password_once_and_emails_the_same_one(
    cast, mailoutbox, django_capture_on_commit_callbacks
):
    client = console_client(cast.admin)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{USERS}add/", employee_body())

    assert response.status_code == 200
    assert "console/secret_once.html" in [template.name for template in response.templates]
    assert "no-store" in response["Cache-Control"]
    password = response.context["secret"]
    emailed = re.search(r"^Temporary password: (\S+)$", mailoutbox[-1].body, re.MULTILINE)
    assert emailed and emailed.group(1) == password
    with schema_context("acme"):
        user = User.objects.get(email=NEW_EMAIL)
        assert user.check_password(password) and user.must_change_password
        assert list(user.role_assignments.values_list("role__name", flat=True)) == [EMPLOYEE]
        created = AuditEvent.objects.get(type="user.created", target_id=str(user.pk))
    assert created.actor_id == cast.admin.pk
    assert password not in str(created.data)
    assert password not in str(messages_of(response))


def test_an_employee_is_created_with_the_roles_picked_at_their_branch(cast):
    client = console_client(cast.admin)

    client.post(f"{USERS}add/", employee_body(branch_id="12", roles=[role_id(MANAGER)], roles_at_branch="on"))

    with schema_context("acme"):
        assignment = RoleAssignment.objects.get(user__email=NEW_EMAIL)
    assert (assignment.role.name, assignment.branch_id) == (MANAGER, cast.branch.pk)


def test_a_manager_creating_an_admin_is_refused_on_the_form_and_nothing_is_written(cast, mailoutbox):
    client = console_client(cast.manager)

    response = client.post(f"{USERS}add/", employee_body(roles=[role_id(ADMIN)]))

    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "You cannot grant permissions you do not hold." in " ".join(form.non_field_errors())
    assert form["email"].value() == NEW_EMAIL  # what was typed is kept
    assert any("Not held: *" in message for message in messages_of(response))
    with schema_context("acme"):
        assert not User.objects.filter(email=NEW_EMAIL).exists()
    assert not events("user.created")
    assert not mailoutbox


def test_editing_an_employee_goes_through_user_update_and_records_before_and_after(cast):
    client = console_client(cast.admin)

    response = submit(client, f"{USERS}{cast.employee.pk}/change/", full_name="Head Cook", employee_id="E-9")

    assert response.status_code == 302
    [event] = events("user.updated")
    assert event.actor_id == cast.admin.pk
    assert event.data["changes"]["full_name"]["after"] == "Head Cook"
    assert event.data["changes"]["employee_id"] == {"before": "", "after": "E-9"}


def test_a_manager_cannot_edit_an_admin_and_the_admin_is_unchanged(cast):
    client = console_client(cast.manager)

    response = submit(client, f"{USERS}{cast.admin.pk}/change/", full_name="Taken Over")

    assert response.status_code == 200
    assert any("You cannot manage a user who holds permissions" in message for message in messages_of(response))
    with schema_context("acme"):
        assert User.objects.get(pk=cast.admin.pk).full_name != "Taken Over"
    assert not events("user.updated")


def test_assigning_a_role_on_the_employee_page_is_audited(cast):
    client = console_client(cast.admin)
    url = f"{USERS}{cast.employee.pk}/change/"
    page = client.get(url)
    data = page_form_data(page)
    new_row = data["role_assignments-TOTAL_FORMS"] - 1
    data[f"role_assignments-{new_row}-role"] = role_id(MANAGER)
    data[f"role_assignments-{new_row}-branch"] = cast.branch.pk

    response = client.post(url, data)

    assert response.status_code == 302
    [event] = events("role.assigned")
    assert (event.actor_id, event.target_id) == (cast.admin.pk, str(cast.employee.pk))
    assert event.data["role"] == MANAGER and event.data["branch"] == "12"


def test_removing_a_role_on_the_employee_page_is_audited(cast):
    client = console_client(cast.admin)
    url = f"{USERS}{cast.employee.pk}/change/"
    data = page_form_data(client.get(url))
    data["role_assignments-0-DELETE"] = "on"

    assert client.post(url, data).status_code == 302

    with schema_context("acme"):
        assert not RoleAssignment.objects.filter(user=cast.employee).exists()
    [event] = events("role.unassigned")
    assert (event.actor_id, event.data["role"]) == (cast.admin.pk, EMPLOYEE)


def test_a_manager_giving_the_admin_role_is_refused_with_a_message_and_no_row(cast):
    client = console_client(cast.manager)
    url = f"{USERS}{cast.employee.pk}/change/"
    data = page_form_data(client.get(url))
    new_row = data["role_assignments-TOTAL_FORMS"] - 1
    data[f"role_assignments-{new_row}-role"] = role_id(ADMIN)

    response = client.post(url, data)

    assert response.status_code == 200
    assert any("You cannot grant permissions you do not hold" in message for message in messages_of(response))
    with schema_context("acme"):
        assert not RoleAssignment.objects.filter(user=cast.employee, role__name=ADMIN).exists()
    assert not events("role.assigned")


def test_the_last_admin_keeps_the_admin_role_and_the_refusal_is_shown(cast):
    client = console_client(cast.admin)
    url = f"{USERS}{cast.admin.pk}/change/"
    data = page_form_data(client.get(url))
    data["role_assignments-0-DELETE"] = "on"

    response = client.post(url, data)

    assert response.status_code == 200
    assert any("last administrator" in message for message in messages_of(response))
    with schema_context("acme"):
        assert RoleAssignment.objects.filter(user=cast.admin, role__name=ADMIN).exists()
    assert not events("role.unassigned")


def test_deactivating_from_the_list_ends_the_users_sessions_and_is_audited(cast):
    with schema_context("acme"):
        session = DeviceSession.objects.create(
            user=cast.employee, device_id="pos-1", expires_at=timezone.now() + timedelta(days=1)
        )

    response = run_action(console_client(cast.admin), USERS, "deactivate_users", cast.employee.pk)

    assert "Deactivated: 1." in messages_of(response)
    with schema_context("acme"):
        assert not User.objects.get(pk=cast.employee.pk).is_active
        assert DeviceSession.objects.get(pk=session.pk).end_reason == EndReason.USER_DISABLED
    [event] = events("user.deactivated")
    assert event.actor_id == cast.admin.pk


def test_deactivating_the_last_admin_is_refused_with_a_message(cast):
    response = run_action(console_client(cast.admin), USERS, "deactivate_users", cast.admin.pk)

    assert response.status_code == 200
    assert any("last active administrator" in message for message in messages_of(response))
    with schema_context("acme"):
        assert User.objects.get(pk=cast.admin.pk).is_active


def test_unlocking_from_the_list_lifts_the_lock_and_is_audited(cast):
    with schema_context("acme"):
        LoginLockout.objects.create(email=cast.employee.email, locked_until=timezone.now() + timedelta(minutes=15))

    response = run_action(console_client(cast.admin), USERS, "unlock_users", cast.employee.pk)

    assert "Unlocked: 1." in messages_of(response)
    with schema_context("acme"):
        assert LoginLockout.objects.get(email=cast.employee.email).locked_until is None
    assert events("account.unlocked")


def test_an_auditor_cannot_run_an_action(cast):
    response = run_action(console_client(cast.auditor), USERS, "deactivate_users", cast.employee.pk)

    assert response.status_code == 200
    with schema_context("acme"):
        assert User.objects.get(pk=cast.employee.pk).is_active
    assert not events("user.deactivated")


# --- roles, codes, branches ---------------------------------------------------------------------


def test_roles_are_created_edited_and_deleted_through_the_services(cast):
    client = console_client(cast.admin)

    created = client.post(
        "/admin/rbac/role/add/", {"name": "Shift lead", "description": "", "permissions": ["orders.view"]}
    )
    assert created.status_code == 302
    pk = in_acme(lambda: Role.objects.get(name="Shift lead").pk)
    edited = submit(client, f"/admin/rbac/role/{pk}/change/", permissions=["orders.view", "orders.refund"])
    assert edited.status_code == 302
    deleted = client.post(f"/admin/rbac/role/{pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302

    assert [e.data["after"]["permissions"] for e in events("role.created")] == [["orders.view"]]
    [updated] = events("role.updated")
    assert updated.data["after"]["permissions"] == ["orders.refund", "orders.view"]
    assert events("role.deleted")
    assert not in_acme(lambda: Role.objects.filter(name="Shift lead").exists())


def test_a_role_holding_more_than_its_creator_is_refused_and_not_created(cast):
    with schema_context("acme"):
        maker_role = Role.objects.create(name="Role maker")
        maker_role.permissions.set(PermissionCode.objects.filter(code__in=["roles.view", "roles.create"]))
        maker = User.objects.create_user(email="maker@acme.example", password=TEST_PASSWORD)
        role_assign(user=maker, role=maker_role, branch=None, actor=None)

    response = console_client(maker).post(
        "/admin/rbac/role/add/", {"name": "Too strong", "description": "", "permissions": ["users.delete"]}
    )

    assert response.status_code == 200
    assert any("Not held: users.delete" in message for message in messages_of(response))
    assert not in_acme(lambda: Role.objects.filter(name="Too strong").exists())


def test_system_roles_cannot_be_deleted_from_the_console(cast):
    pk = role_id(EMPLOYEE)

    response = console_client(cast.admin).post(f"/admin/rbac/role/{pk}/delete/", {"post": "yes"})

    assert response.status_code == 403
    assert in_acme(lambda: Role.objects.filter(pk=pk).exists())


def test_permission_codes_are_added_and_deleted_through_the_services(cast):
    client = console_client(cast.admin)

    assert (
        client.post("/admin/rbac/permissioncode/add/", {"code": "orders.void", "description": "Void"}).status_code
        == 302
    )
    pk = in_acme(lambda: PermissionCode.objects.get(code="orders.void").pk)
    assert client.post(f"/admin/rbac/permissioncode/{pk}/delete/", {"post": "yes"}).status_code == 302

    assert events("permission.created") and events("permission.deleted")


def test_a_malformed_permission_code_is_refused_on_the_form(cast):
    response = console_client(cast.admin).post(
        "/admin/rbac/permissioncode/add/", {"code": "Orders Void", "description": ""}
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["code"]
    assert not in_acme(lambda: PermissionCode.objects.filter(code="Orders Void").exists())


def test_branches_are_created_renamed_and_deleted_through_the_services(cast):
    client = console_client(cast.admin)

    assert client.post("/admin/rbac/branch/add/", {"external_id": "13", "name": "Kilimani"}).status_code == 302
    pk = in_acme(lambda: Branch.objects.get(external_id="13").pk)
    assert submit(client, f"/admin/rbac/branch/{pk}/change/", name="Kilimani Mall").status_code == 302
    assert client.post(f"/admin/rbac/branch/{pk}/delete/", {"post": "yes"}).status_code == 302

    assert events("branch.created") and events("branch.deleted")
    [updated] = events("branch.updated")
    assert updated.data["after"]["name"] == "Kilimani Mall"


def test_a_branch_with_role_assignments_is_not_deleted_and_the_reason_is_shown(cast):
    response = console_client(cast.admin).post(f"/admin/rbac/branch/{cast.branch.pk}/delete/", {"post": "yes"})

    assert response.status_code == 200
    assert response.context["protected"]  # the assignments that hold it, listed on the page
    assert in_acme(lambda: Branch.objects.filter(pk=cast.branch.pk).exists())
    assert not events("branch.deleted")


# --- service clients and sessions ------------------------------------------------------------


def test_a_service_client_secret_is_shown_once_and_stored_only_as_a_hash(cast):
    response = console_client(cast.admin).post(
        "/admin/rbac/serviceclient/add/", {"name": "POS back end", "scopes": ["authz:check"], "branches": ["12"]}
    )

    assert response.status_code == 200
    secret = response.context["secret"]
    with schema_context("acme"):
        client = ServiceClient.objects.get(name="POS back end")
        assert list(client.branches.values_list("external_id", flat=True)) == ["12"]
    assert check_password(secret, client.secret_hash) and secret not in client.secret_hash
    [event] = events("service_client.created")
    assert secret not in str(event.data) and event.actor_id == cast.admin.pk


def test_revoking_a_service_client_from_the_list_keeps_its_row(cast):
    from rbac.service_clients import service_client_create

    with schema_context("acme"):
        created = service_client_create(name="Reports", scopes=["authz:check"], actor=None)

    response = run_action(console_client(cast.admin), "/admin/rbac/serviceclient/", "revoke_clients", created.client.pk)

    assert "Revoked: 1." in messages_of(response)
    with schema_context("acme"):
        assert not ServiceClient.objects.get(pk=created.client.pk).is_active
    assert events("service_client.revoked")


@pytest.fixture
def admin_session(cast) -> DeviceSession:
    with schema_context("acme"):
        return DeviceSession.objects.create(
            user=cast.admin, device_id="till-1", device_type="pos", expires_at=timezone.now() + timedelta(days=1)
        )


def test_ending_a_session_from_the_list_is_audited_with_the_admin_as_actor(cast, admin_session):
    with schema_context("acme"):
        session = DeviceSession.objects.create(
            user=cast.employee, device_id="till-2", expires_at=timezone.now() + timedelta(days=1)
        )

    response = run_action(
        console_client(cast.admin), "/admin/device_sessions/devicesession/", "end_sessions", session.pk
    )

    assert "Ended: 1." in messages_of(response)
    with schema_context("acme"):
        assert DeviceSession.objects.get(pk=session.pk).end_reason == EndReason.ADMIN
    [event] = events("session.ended")
    assert event.actor_id == cast.admin.pk


def test_a_manager_cannot_end_an_admins_session(cast, admin_session):
    response = run_action(
        console_client(cast.manager), "/admin/device_sessions/devicesession/", "end_sessions", admin_session.pk
    )

    assert any("permissions you do not hold" in message for message in messages_of(response))
    with schema_context("acme"):
        assert DeviceSession.objects.get(pk=admin_session.pk).ended_at is None


# --- the platform console --------------------------------------------------------------------


def test_an_operator_changes_a_plan_and_suspends_a_tenant_through_the_services(operator, tenant_a, plan):
    from django.conf import settings
    from django.test import Client

    client = Client(HTTP_HOST=settings.IDP_BASE_DOMAIN)
    client.force_login(operator, backend="identity.backends.LockoutModelBackend")

    assert submit(client, f"/admin/tenants/plan/{plan.pk}/change/", max_users=30).status_code == 302
    assert submit(client, f"/admin/tenants/tenant/{tenant_a.pk}/change/", is_active=None).status_code == 302

    tenant_a.refresh_from_db()
    plan.refresh_from_db()
    assert plan.max_users == 30 and not tenant_a.is_active
    assert AuditEvent.objects.filter(type="plan.updated", actor_id=operator.pk).exists()
    assert AuditEvent.objects.filter(type="tenant.updated", actor_id=operator.pk).exists()


def test_a_temporary_password_given_to_user_create_must_meet_the_policy(cast, tenant_a):
    from core.errors import ErrorCode, ProblemError
    from identity.services.users import user_create

    with schema_context("acme"), pytest.raises(ProblemError) as refused:
        user_create(tenant=tenant_a, actor=cast.admin, email=NEW_EMAIL, full_name="Weak", temporary_password="weak")

    assert refused.value.code == ErrorCode.PASSWORD_POLICY
    assert not in_acme(lambda: User.objects.filter(email=NEW_EMAIL).exists())


# --- IP blocks ---------------------------------------------------------------------------------


@pytest.fixture
def ip_block(cast) -> IpBlock:
    with schema_context("acme"):
        return IpBlock.objects.create(
            ip="203.0.113.9", reason="failed_logins_across_accounts", expires_at=timezone.now() + timedelta(hours=1)
        )


def test_lifting_an_ip_block_from_the_list_goes_through_the_service_and_is_audited(cast, ip_block):
    response = run_action(console_client(cast.admin), "/admin/identity/ipblock/", "lift_blocks", ip_block.pk)

    assert "Lifted: 1." in messages_of(response)
    with schema_context("acme"):
        ip_block.refresh_from_db()
    assert ip_block.lifted_at is not None and ip_block.lifted_by_id == cast.admin.pk
    [event] = events("ip.unblocked")
    assert event.actor_id == cast.admin.pk and event.data["ip"] == "203.0.113.9"


def test_an_auditor_sees_ip_blocks_but_cannot_lift_them(cast, ip_block):
    client = console_client(cast.auditor)

    listing = client.get("/admin/identity/ipblock/")
    refused = run_action(client, "/admin/identity/ipblock/", "lift_blocks", ip_block.pk)

    assert listing.status_code == 200 and "203.0.113.9" in listing.content.decode()
    assert b"lift_blocks" not in listing.content
    assert "Lifted" not in " ".join(messages_of(refused))
    with schema_context("acme"):
        ip_block.refresh_from_db()
    assert ip_block.lifted_at is None
    assert not events("ip.unblocked")
