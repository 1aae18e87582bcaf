"""Each console page and action maps to one permission code, read from RBAC (tenant-wide
holdings), never from Django's model permissions; an Auditor reads everything and changes
nothing."""

import pytest
from django.contrib.admin import ModelAdmin
from django.test import RequestFactory
from django_tenants.utils import schema_context

from console.sites import tenant_console
from identity.admin import RoleAssignmentInline
from identity.models import AuditEvent, LoginAttempt, User
from notifications.models import OutboxEmail
from rbac.catalog import Perm
from rbac.models import Branch, PermissionCode, Role, ServiceClient
from rbac.services import role_assign
from sessions.models import DeviceSession
from tests.console.conftest import console_client

# (model, permission check, code that grants it); None: nobody, not even an Admin.
MAPPING = [
    (User, "view", Perm.USERS_VIEW),
    (User, "add", Perm.USERS_CREATE),
    (User, "change", Perm.USERS_EDIT),
    (User, "delete", None),
    (User, "deactivate", Perm.USERS_DELETE),
    (User, "unlock", Perm.USERS_EDIT),
    (Role, "view", Perm.ROLES_VIEW),
    (Role, "add", Perm.ROLES_CREATE),
    (Role, "change", Perm.ROLES_EDIT),
    (Role, "delete", Perm.ROLES_DELETE),
    (PermissionCode, "view", Perm.PERMISSIONS_VIEW),
    (PermissionCode, "add", Perm.PERMISSIONS_CREATE),
    (PermissionCode, "change", None),
    (PermissionCode, "delete", Perm.PERMISSIONS_DELETE),
    (Branch, "view", Perm.BRANCHES_VIEW),
    (Branch, "add", Perm.BRANCHES_CREATE),
    (Branch, "change", Perm.BRANCHES_EDIT),
    (Branch, "delete", Perm.BRANCHES_DELETE),
    (ServiceClient, "view", Perm.SERVICE_CLIENTS_VIEW),
    (ServiceClient, "add", Perm.SERVICE_CLIENTS_CREATE),
    (ServiceClient, "change", None),
    (ServiceClient, "delete", None),
    (ServiceClient, "revoke", Perm.SERVICE_CLIENTS_DELETE),
    (DeviceSession, "view", Perm.SESSIONS_VIEW),
    (DeviceSession, "add", None),
    (DeviceSession, "change", None),
    (DeviceSession, "delete", None),
    (DeviceSession, "end", Perm.SESSIONS_DELETE),
    (LoginAttempt, "view", Perm.AUDIT_VIEW),
    (LoginAttempt, "add", None),
    (LoginAttempt, "change", None),
    (LoginAttempt, "delete", None),
    (AuditEvent, "view", Perm.AUDIT_VIEW),
    (AuditEvent, "add", None),
    (AuditEvent, "change", None),
    (AuditEvent, "delete", None),
    (OutboxEmail, "view", Perm.AUDIT_VIEW),
    (OutboxEmail, "add", None),
    (OutboxEmail, "change", None),
    (OutboxEmail, "delete", None),
]
INLINE_MAPPING = [
    ("view", Perm.ROLES_VIEW),
    ("add", Perm.ROLES_ASSIGN),
    ("change", None),
    ("delete", Perm.ROLES_ASSIGN),
]


def holder_of(*codes: str) -> User:
    """A user of acme holding exactly `codes` tenant-wide, through a role of their own."""
    role = Role.objects.create(name=f"holds {' '.join(codes)}")
    role.permissions.set(PermissionCode.objects.filter(code__in=codes))
    user = User.objects.create_user(email=f"{role.pk}@acme.example")
    role_assign(user=user, role=role, branch=None, actor=None)
    return user


def request_of(user: User):
    request = RequestFactory().get("/admin/", HTTP_HOST="acme.idp.test")
    request.user = user
    return request


def allowed(model_admin: ModelAdmin, check: str, user: User) -> bool:
    return getattr(model_admin, f"has_{check}_permission")(request_of(user))


def other_entry_code(code: str | None) -> str:
    """A code that lets a user into the console without being the one under test."""
    return Perm.USERS_VIEW if code == Perm.AUDIT_VIEW else Perm.AUDIT_VIEW


@pytest.mark.parametrize(("model", "check", "code"), MAPPING, ids=lambda value: getattr(value, "__name__", value))
def test_each_console_permission_is_granted_by_its_code_alone(tenant_a, tenant_a_admin, model, check, code):
    model_admin = tenant_console._registry[model]
    with schema_context("acme"):
        without = holder_of(other_entry_code(code))
        if code is None:
            assert not allowed(model_admin, check, tenant_a_admin)  # not even for an Admin
        else:
            assert allowed(model_admin, check, holder_of(code, other_entry_code(code)))
        assert not allowed(model_admin, check, without)


@pytest.mark.parametrize(("check", "code"), INLINE_MAPPING)
def test_role_assignments_on_the_employee_page_need_roles_assign(tenant_a, tenant_a_admin, check, code):
    inline = RoleAssignmentInline(User, tenant_console)
    with schema_context("acme"):
        without = holder_of(Perm.USERS_VIEW)
        checker = getattr(inline, f"has_{check}_permission")
        if code is None:
            assert not checker(request_of(tenant_a_admin))
        else:
            assert checker(request_of(holder_of(code, Perm.USERS_VIEW)))
        assert not checker(request_of(without))


def test_holdings_at_a_branch_only_grant_nothing_in_the_console(cast):
    model_admin = tenant_console._registry[User]

    with schema_context("acme"):
        assert not allowed(model_admin, "view", cast.branch_manager)
        assert not allowed(model_admin, "add", cast.branch_manager)


def test_an_auditor_reads_every_page_and_may_change_nothing(cast):
    with schema_context("acme"):
        request = request_of(cast.auditor)
        for model, model_admin in tenant_console._registry.items():
            assert model_admin.has_view_permission(request), model
            assert not model_admin.has_add_permission(request), model
            assert not model_admin.has_change_permission(request), model
            assert not model_admin.has_delete_permission(request), model
            assert not model_admin.get_actions(request), model


def test_no_console_page_offers_the_bulk_delete_that_bypasses_the_services(cast):
    with schema_context("acme"):
        request = request_of(cast.admin)
        for model, model_admin in tenant_console._registry.items():
            assert "delete_selected" not in model_admin.get_actions(request), model


def test_an_auditor_gets_403_for_an_add_page_and_a_change(cast):
    client = console_client(cast.auditor)
    with schema_context("acme"):
        branch_url = f"/admin/rbac/branch/{cast.branch.pk}/change/"

    assert client.get("/admin/rbac/branch/add/").status_code == 403
    response = client.post(branch_url, {"external_id": "99", "name": "Renamed", "restaurant_id": ""})
    assert response.status_code == 403
    with schema_context("acme"):
        assert Branch.objects.get(pk=cast.branch.pk).name == "Westlands"


def test_every_console_page_opens_for_an_admin_and_an_auditor(cast):
    from datetime import timedelta

    from django.utils import timezone

    from rbac.service_clients import service_client_create

    with schema_context("acme"):
        client_row = service_client_create(name="POS", scopes=["authz:check"], branches=["12"], actor=None).client
        session = DeviceSession.objects.create(
            user=cast.employee, device_id="pos-1", expires_at=timezone.now() + timedelta(days=1)
        )
        attempt = LoginAttempt.objects.create(email=cast.employee.email, success=False, reason="locked")
        event = AuditEvent.objects.create(type="role.created", data={"after": {"name": "x"}})
        pages = [
            "/admin/",
            "/admin/security/",
            f"/admin/identity/user/{cast.employee.pk}/change/",
            f"/admin/rbac/role/{Role.objects.get(name='Manager').pk}/change/",
            f"/admin/rbac/permissioncode/{PermissionCode.objects.get(code='orders.view').pk}/change/",
            f"/admin/rbac/branch/{cast.branch.pk}/change/",
            f"/admin/rbac/serviceclient/{client_row.pk}/change/",
            f"/admin/device_sessions/devicesession/{session.pk}/change/",
            f"/admin/device_sessions/devicesession/?user__id__exact={cast.employee.pk}",
            f"/admin/identity/loginattempt/{attempt.pk}/change/",
            f"/admin/identity/auditevent/{event.pk}/change/",
            "/admin/notifications/outboxemail/",
        ]
        pages += [f"/admin/{model._meta.app_label}/{model._meta.model_name}/" for model in tenant_console._registry]
    for user in (cast.admin, cast.auditor):
        client = console_client(user)
        for page in pages:
            response = client.get(page)
            assert response.status_code == 200, (user.email, page, response.status_code)
            assert b"secret_hash" not in response.content and client_row.secret_hash.encode() not in response.content
