"""Every URL the tenant hosts and the public host serve is a DRF view that declares, for each
HTTP method it handles, what a caller needs; or it is listed as exempt with its reason. The
system check (rbac.checks, tag "security") says the same at start-up, and reports a view that
forgets (STYLE.md: "a view that forgets is a configuration error, not an open door")."""

import pytest
from django.core.checks import Tags, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from django.urls import path
from rest_framework import generics, viewsets
from rest_framework.permissions import AllowAny, BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from identity.api.users_views import UserDetailView, UserListCreateView
from rbac.checks import EXEMPT_NAMESPACES, EXEMPT_VIEWS, Route, handled_methods, routes, view_permissions_check
from rbac.permissions import MethodPermissions

SERVED_URLCONFS = ("config.urls_tenant", "config.urls_public")
ROUTES = [route for urlconf in SERVED_URLCONFS for route in routes(urlconf)]


def route_id(route: Route) -> str:
    return f"{route.urlconf.rsplit('.', 1)[-1]}:/{route.pattern}"


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_every_route_is_a_drf_view_declaring_each_method_it_handles_or_an_exempt_one(route):
    if route.exemption is not None:
        assert len(route.exemption) > 20, "an exemption says why"
        return
    view = route.callback.cls  # only DRF views carry it
    initkwargs = route.callback.initkwargs
    permission_classes = initkwargs.get("permission_classes", view.permission_classes)
    required = initkwargs.get("required_permissions", getattr(view, "required_permissions", None))
    methods = handled_methods(view, getattr(route.callback, "actions", None))

    assert issubclass(view, APIView)
    assert any(isinstance(c, type) and issubclass(c, MethodPermissions) for c in permission_classes), permission_classes
    assert isinstance(required, dict), f"{view.__qualname__} has no required_permissions"
    assert methods, f"{view.__qualname__} handles no method"
    for method in methods:
        assert method in required, f"{view.__qualname__} handles {method} without declaring it"
        assert isinstance(required[method], BasePermission), f"{view.__qualname__} {method}: {required[method]!r}"


def test_the_walk_sees_both_hosts_own_routes_and_their_shared_ones():
    patterns = {(route.urlconf, route.pattern) for route in ROUTES}

    assert ("config.urls_tenant", "api/v1/users/<str:user_id>/set-password/") in patterns
    assert ("config.urls_tenant", "api/v1/ping/") in patterns
    assert ("config.urls_public", "api/v1/platform/tenants/") in patterns
    assert {("config.urls_tenant", "api/v1/auth/token/"), ("config.urls_public", "api/v1/auth/token/")} <= patterns
    assert not any(route.pattern.startswith("api/v1/platform/") for route in ROUTES if route.urlconf.endswith("tenant"))


def test_inherited_generic_handlers_count_as_handled_methods():
    assert handled_methods(UserListCreateView) == ["GET", "POST"]  # get from ListAPIView
    assert handled_methods(UserDetailView) == ["GET", "PATCH", "DELETE"]


def test_every_exemption_names_a_view_that_is_still_served():
    served = {route.view_name for route in ROUTES}
    namespaces = {namespace for route in ROUTES for namespace in route.namespaces}

    assert set(EXEMPT_VIEWS) <= served
    assert set(EXEMPT_NAMESPACES) <= namespaces


def test_the_security_check_is_registered_and_finds_nothing_to_report():
    messages = [message for message in run_checks(tags=[Tags.security]) if (message.id or "").startswith("rbac.")]

    assert messages == []
    assert view_permissions_check() == []


# --- a URLconf with the mistakes the check exists for ----------------------------------------


class NothingDeclaredView(APIView):
    """Default permission classes, no required_permissions."""

    def get(self, request: Request) -> Response:
        return Response({})


class GetOnlyDeclaredView(APIView):
    permission_classes = [MethodPermissions]
    required_permissions = {"GET": AllowAny()}

    def get(self, request: Request) -> Response:
        return Response({})

    def delete(self, request: Request) -> Response:
        return Response({})


class GenericCreateUndeclaredView(generics.ListCreateAPIView):
    """Handles POST through CreateModelMixin without writing a post() of its own."""

    required_permissions = {"GET": AllowAny()}


class OwnPermissionClassesView(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response({})


class RequirementClassNotInstanceView(APIView):
    required_permissions = {"GET": AllowAny}

    def get(self, request: Request) -> Response:
        return Response({})


class ThingViewSet(viewsets.ViewSet):
    required_permissions = {"GET": AllowAny()}

    def list(self, request: Request) -> Response:
        return Response([])

    def create(self, request: Request) -> Response:
        return Response({})


class DeclaredAtRouteView(APIView):
    """Declares through as_view(): what the check must read, as DRF does."""

    required_permissions = None

    def get(self, request: Request) -> Response:
        return Response({})


def plain_django_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello")


urlpatterns = [
    path("nothing/", NothingDeclaredView.as_view()),
    path("get-only/", GetOnlyDeclaredView.as_view()),
    path("generic/", GenericCreateUndeclaredView.as_view()),
    path("own-classes/", OwnPermissionClassesView.as_view()),
    path("class-not-instance/", RequirementClassNotInstanceView.as_view()),
    path("things/", ThingViewSet.as_view({"get": "list", "post": "create"})),
    path("plain/", plain_django_view),
    path("declared-at-route/", DeclaredAtRouteView.as_view(required_permissions={"GET": AllowAny()})),
]
BROKEN = __name__


def reported() -> dict[str, set[str]]:
    messages: dict[str, set[str]] = {}
    for message in view_permissions_check():
        messages.setdefault(str(message.obj).rsplit(".", 1)[-1], set()).add(message.id or "")
    return messages


@override_settings(ROOT_URLCONF=BROKEN, PUBLIC_SCHEMA_URLCONF=BROKEN)
def test_the_check_reports_each_undeclared_view_with_what_is_missing():
    assert reported() == {
        "NothingDeclaredView": {"rbac.E003"},  # no required_permissions at all
        "GetOnlyDeclaredView": {"rbac.E004"},  # DELETE undeclared
        "GenericCreateUndeclaredView": {"rbac.E004"},  # POST from the mixin undeclared
        "OwnPermissionClassesView": {"rbac.E002"},  # not per-method
        "RequirementClassNotInstanceView": {"rbac.E005"},  # AllowAny, not AllowAny()
        "ThingViewSet": {"rbac.E004"},  # the routed POST action undeclared
        "plain_django_view": {"rbac.E001"},  # not DRF, not exempt
    }  # and nothing about DeclaredAtRouteView


@override_settings(ROOT_URLCONF=BROKEN, PUBLIC_SCHEMA_URLCONF=BROKEN)
def test_the_check_names_the_undeclared_method_and_where_the_view_is_served():
    [message] = [m for m in view_permissions_check() if str(m.obj).endswith("GetOnlyDeclaredView")]

    assert "handles DELETE" in message.msg
    assert "get-only/" in message.msg
    assert message.is_serious()


@override_settings(ROOT_URLCONF=BROKEN, PUBLIC_SCHEMA_URLCONF=BROKEN)
def test_manage_py_check_fails_on_an_undeclared_view():
    with pytest.raises(SystemCheckError, match=r"rbac\.E003"):
        call_command("check")
