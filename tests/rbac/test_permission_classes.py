"""The DRF permission classes (rbac.permissions): permission codes held
tenant-wide or at a branch, roles, composites, and per-method declarations where a method a
view handles but does not declare is a configuration error, never an open door."""

from dataclasses import dataclass
from typing import cast

import pytest
from django.core.exceptions import ImproperlyConfigured
from django_tenants.utils import tenant_context
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.test import APIRequestFactory, force_authenticate
from rest_framework.views import APIView

from identity.models import User
from rbac.catalog import AUDITOR, EMPLOYEE, MANAGER, Perm
from rbac.models import Branch, Role
from rbac.permissions import (
    HasPermission,
    HasRole,
    IsAllOf,
    IsAnyOf,
    IsAuditor,
    IsAuthenticatedUser,
    IsManager,
    IsTenantAdmin,
    MethodPermissions,
)
from rbac.services import branch_create, role_assign
from tenants.models import Tenant
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, client_for_host, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import UserFactory

HOST = "acme.idp.test"
factory = APIRequestFactory()


@dataclass
class People:
    admin: User
    manager: User  # Manager at branch "br-a" only
    employee: User  # Employee tenant-wide
    auditor: User  # Auditor tenant-wide
    nobody: User  # no role at all
    gone: User  # Employee tenant-wide, deactivated


@pytest.fixture
def acme(tenant_a: Tenant):
    with tenant_context(tenant_a):
        yield tenant_a


@pytest.fixture
def people(acme: Tenant, tenant_a_admin: User) -> People:
    branch = branch_create(tenant=acme, external_id="br-a", name="Branch A", actor=tenant_a_admin)

    def holder(email: str, role: str, at: Branch | None, **fields: object) -> User:
        user = make_user(email=email, **fields)
        role_assign(user=user, role=Role.objects.get(name=role), branch=at, actor=None)
        return user

    return People(
        admin=tenant_a_admin,
        manager=holder("manager@acme.example", MANAGER, branch, branch_id="br-a"),
        employee=holder("employee@acme.example", EMPLOYEE, None),
        auditor=holder("auditor@acme.example", AUDITOR, None),
        nobody=make_user(email="nobody@acme.example"),
        gone=holder("gone@acme.example", EMPLOYEE, None, is_active=False),
    )


def make_user(**fields: object) -> User:
    return cast(User, UserFactory(**fields))


def request_by(user: User | None, method: str = "get") -> Request:
    request = Request(getattr(factory, method)("/"))
    request.user = user  # type: ignore[assignment]  # UNAUTHENTICATED_USER = None: anonymous is None
    return request


def allows(requirement: BasePermission, user: User | None) -> bool:
    return bool(requirement.has_permission(request_by(user), APIView()))


# --- HasPermission ------------------------------------------------------------------------------


def test_has_permission_admits_a_tenant_wide_holder_and_admins_through_all_permissions(people):
    assert allows(HasPermission(Perm.ORDERS_CREATE), people.employee)
    assert allows(HasPermission(Perm.USERS_DELETE), people.admin)
    assert allows(HasPermission("loyalty.grant"), people.admin)  # `*`: any code of the tenant


def test_has_permission_refuses_a_holder_at_a_branch_only_unless_anywhere_is_asked(people):
    assert not allows(HasPermission(Perm.USERS_VIEW), people.manager)
    assert allows(HasPermission(Perm.USERS_VIEW, anywhere=True), people.manager)


def test_has_permission_anywhere_still_needs_the_code_somewhere(people):
    assert not allows(HasPermission(Perm.USERS_DELETE, anywhere=True), people.manager)
    assert not allows(HasPermission(Perm.USERS_VIEW, anywhere=True), people.employee)
    assert not allows(HasPermission(Perm.ORDERS_VIEW, anywhere=True), people.nobody)


def test_has_permission_reads_patterns_such_as_the_auditors_star_dot_view(people):
    assert allows(HasPermission(Perm.USERS_VIEW), people.auditor)
    assert allows(HasPermission("loyalty.view"), people.auditor)
    assert not allows(HasPermission(Perm.USERS_EDIT, anywhere=True), people.auditor)


def test_has_permission_refuses_anonymous_and_deactivated_callers(people):
    assert not allows(HasPermission(Perm.ORDERS_VIEW, anywhere=True), None)
    assert not allows(HasPermission(Perm.ORDERS_VIEW, anywhere=True), people.gone)


# --- roles --------------------------------------------------------------------------------------


def test_has_role_means_tenant_wide_unless_anywhere_is_asked(people):
    assert allows(HasRole(EMPLOYEE), people.employee)
    assert not allows(HasRole(MANAGER), people.manager)
    assert allows(HasRole(MANAGER, anywhere=True), people.manager)
    assert not allows(HasRole(MANAGER, anywhere=True), people.employee)


def test_the_role_shortcuts_name_the_system_roles(people):
    assert allows(IsTenantAdmin, people.admin)
    assert not allows(IsTenantAdmin, people.manager)
    assert allows(IsManager, people.manager)  # at a branch is enough
    assert not allows(IsManager, people.admin)  # a role, not a level: the admin is not a Manager
    assert allows(IsAuditor, people.auditor)
    assert not any(allows(shortcut, None) for shortcut in (IsTenantAdmin, IsManager, IsAuditor))


def test_a_tenant_admin_flag_without_the_admin_role_is_not_an_admin(people):
    flagged = make_user(email="flagged@acme.example", is_tenant_admin=True)

    assert not allows(IsTenantAdmin, flagged)
    assert not allows(HasPermission(Perm.USERS_VIEW, anywhere=True), flagged)


def test_is_authenticated_user_admits_any_active_user_and_nobody_else(people):
    assert allows(IsAuthenticatedUser(), people.nobody)
    assert not allows(IsAuthenticatedUser(), None)
    assert not allows(IsAuthenticatedUser(), people.gone)


def test_a_requirement_instance_can_stand_in_permission_classes_as_it_is():
    # DRF instantiates each entry of permission_classes: an instance returns itself.
    assert IsTenantAdmin() is IsTenantAdmin
    requirement = HasPermission(Perm.USERS_VIEW, anywhere=True)
    assert requirement() is requirement


# --- composites -------------------------------------------------------------------------------


def test_is_any_of_admits_a_caller_who_meets_one_requirement(people):
    admin_or_auditor = IsAnyOf(IsTenantAdmin, IsAuditor)

    assert allows(admin_or_auditor, people.admin)
    assert allows(admin_or_auditor, people.auditor)
    assert not allows(admin_or_auditor, people.manager)
    assert not allows(admin_or_auditor, None)


def test_is_all_of_admits_only_a_caller_who_meets_every_requirement(people):
    branch_manager_who_refunds = IsAllOf(IsManager, HasPermission(Perm.ORDERS_REFUND, anywhere=True))
    tenant_wide_manager = IsAllOf(IsManager, HasPermission(Perm.USERS_VIEW))

    assert allows(branch_manager_who_refunds, people.manager)
    assert not allows(branch_manager_who_refunds, people.admin)  # may refund, holds no Manager role
    assert not allows(tenant_wide_manager, people.manager)  # users.view at a branch only


def test_composites_nest(people):
    requirement = IsAnyOf(IsAllOf(IsManager, HasPermission(Perm.USERS_EDIT, anywhere=True)), IsTenantAdmin)

    assert allows(requirement, people.manager)
    assert allows(requirement, people.admin)
    assert not allows(requirement, people.auditor)


# --- per-method declarations -------------------------------------------------------------------


class OrdersView(APIView):
    """A view that handles GET and POST but declares GET only."""

    authentication_classes = []
    permission_classes = [MethodPermissions]
    required_permissions: dict[str, BasePermission] = {"GET": AllowAny()}

    def get(self, request: Request) -> Response:
        return Response({"ok": True})

    def post(self, request: Request) -> Response:  # pragma: no cover - must never run
        raise AssertionError("an undeclared method ran")


class UndeclaredView(APIView):
    """Names no permission classes (so gets the default) and declares nothing."""

    authentication_classes = []
    ran = False

    def get(self, request: Request) -> Response:  # pragma: no cover - must never run
        UndeclaredView.ran = True
        return Response({"open": True})


def test_method_permissions_raises_improperly_configured_for_a_method_the_view_does_not_declare():
    with pytest.raises(ImproperlyConfigured, match="declares no permission for POST"):
        MethodPermissions().has_permission(request_by(None, "post"), OrdersView())


def test_method_permissions_raises_improperly_configured_without_required_permissions():
    with pytest.raises(ImproperlyConfigured, match="without required_permissions"):
        MethodPermissions().has_permission(request_by(None), UndeclaredView())


def test_method_permissions_applies_the_declared_requirement_of_the_method():
    view = OrdersView()
    view.required_permissions = {"GET": AllowAny(), "POST": IsAuthenticatedUser()}

    assert MethodPermissions().has_permission(request_by(None), view)
    assert not MethodPermissions().has_permission(request_by(None, "post"), view)


def test_head_and_options_follow_get():
    view = OrdersView()
    view.required_permissions = {"GET": IsAuthenticatedUser()}

    assert not MethodPermissions().has_permission(request_by(None, "head"), view)
    assert not MethodPermissions().has_permission(request_by(None, "options"), view)


def test_the_default_permission_class_is_the_per_method_one():
    assert [MethodPermissions] == api_settings.DEFAULT_PERMISSION_CLASSES
    assert UndeclaredView.permission_classes == [MethodPermissions]


def test_a_view_that_declares_nothing_is_a_server_error_and_never_runs(caplog):
    response = UndeclaredView.as_view()(factory.get("/"))

    assert response.status_code == 500
    assert "open" not in response.content.decode()
    assert UndeclaredView.ran is False
    assert "ImproperlyConfigured" in caplog.text


def test_an_undeclared_method_the_view_handles_is_a_server_error_and_never_runs():
    response = OrdersView.as_view()(factory.post("/", {}, format="json"))

    assert response.status_code == 500


def test_a_method_the_view_does_not_handle_is_405_not_a_configuration_error():
    class DeclaredOrdersView(OrdersView):
        permission_classes = [MethodPermissions]

    response = DeclaredOrdersView.as_view()(factory.put("/", {}, format="json"))

    assert response.status_code == 405


def test_options_on_a_view_without_get_is_judged_by_its_declared_methods(people):
    class ActionView(APIView):
        permission_classes = [MethodPermissions]
        required_permissions = {"POST": HasPermission(Perm.USERS_EDIT, anywhere=True)}

        def post(self, request: Request) -> Response:  # pragma: no cover - OPTIONS only here
            return Response({})

    def options_by(user: User) -> int:
        request = factory.options("/")
        force_authenticate(request, user)
        return ActionView.as_view()(request).status_code

    assert options_by(people.manager) == 200
    assert options_by(people.employee) == 403


# --- through the real stack ---------------------------------------------------------------------


def test_a_wrong_method_on_the_users_api_answers_405_to_the_admin_and_to_anyone(tenant_a_admin):
    admin = bearer_client(HOST, login_tokens(HOST, SHARED_ADMIN_EMAIL)["access"])

    assert_problem(admin.put(f"/api/v1/users/{tenant_a_admin.pk}/", {}, format="json"), 405, "method_not_allowed")
    assert_problem(client_for_host(HOST).put("/api/v1/users/", {}, format="json"), 405, "method_not_allowed")


def test_options_on_an_action_endpoint_is_answered_not_a_server_error(tenant_a_admin):
    admin = bearer_client(HOST, login_tokens(HOST, SHARED_ADMIN_EMAIL)["access"])
    path = f"/api/v1/users/{tenant_a_admin.pk}/set-password/"

    assert admin.options(path).status_code == 200
    assert_problem(client_for_host(HOST).options(path), 401, "not_authenticated")
