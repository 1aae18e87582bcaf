"""DRF permission classes. A view says what each of its HTTP methods needs:

    permission_classes = [MethodPermissions]
    required_permissions = {"GET": HasPermission(Perm.USERS_VIEW, anywhere=True),
                            "POST": HasPermission(Perm.USERS_CREATE)}

A method the view handles but does not list is a configuration error (raised on the first
request, and found for every URL by tests/rbac/test_every_view_declares.py), never an open door.
"""

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from rbac.catalog import ADMIN, AUDITOR, MANAGER
from rbac.selectors import effective_permissions


class Requirement(BasePermission):
    """A permission object that can be listed in permission_classes as it is (DRF
    instantiates every entry; an instance returns itself)."""

    def __call__(self) -> "Requirement":
        return self

    @staticmethod
    def _user(request: Request) -> Any:
        user = request.user
        return user if user is not None and user.is_authenticated and user.is_active else None


class HasPermission(Requirement):
    """Holds `code` tenant-wide; with `anywhere`, at any branch too (the view then narrows what
    it shows or changes to that branch scope: rbac.selectors.Scope)."""

    def __init__(self, code: str, *, anywhere: bool = False) -> None:
        self.code = code
        self.anywhere = anywhere

    def has_permission(self, request: Request, view: Any) -> bool:
        user = self._user(request)
        if user is None:
            return False
        scope = effective_permissions(user.pk).scope(self.code)
        return scope.everywhere or (self.anywhere and scope.anywhere)

    def __repr__(self) -> str:
        return f"HasPermission({self.code!r}{', anywhere=True' if self.anywhere else ''})"


class HasRole(Requirement):
    def __init__(self, role: str, *, anywhere: bool = False) -> None:
        self.role = role
        self.anywhere = anywhere

    def has_permission(self, request: Request, view: Any) -> bool:
        from rbac.models import RoleAssignment

        user = self._user(request)
        if user is None:
            return False
        held = RoleAssignment.objects.filter(user=user, role__name=self.role)
        return (held if self.anywhere else held.filter(branch__isnull=True)).exists()


IsTenantAdmin = HasRole(ADMIN)
IsManager = HasRole(MANAGER, anywhere=True)
IsAuditor = HasRole(AUDITOR, anywhere=True)


class IsAuthenticatedUser(Requirement):
    def has_permission(self, request: Request, view: Any) -> bool:
        return self._user(request) is not None


class IsAnyOf(Requirement):
    def __init__(self, *requirements: BasePermission) -> None:
        self.requirements = requirements

    def has_permission(self, request: Request, view: Any) -> bool:
        return any(requirement.has_permission(request, view) for requirement in self.requirements)


class IsAllOf(Requirement):
    def __init__(self, *requirements: BasePermission) -> None:
        self.requirements = requirements

    def has_permission(self, request: Request, view: Any) -> bool:
        return all(requirement.has_permission(request, view) for requirement in self.requirements)


class MethodPermissions(BasePermission):
    """Looks up `view.required_permissions[request.method]`; a handled method without an entry
    is ImproperlyConfigured (and found at start-up by rbac.checks).

    DRF checks permissions before it looks for the method's handler: a method the view does
    not handle (PUT on a GET/PATCH view) has nothing to declare and goes on to DRF's 405.
    HEAD follows GET (Django serves it with GET's handler); OPTIONS follows GET, or on a view
    without GET, needs what any of the view's methods needs.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        method = (request.method or "").lower()
        if not _handles(view, method):
            return True  # no handler runs: DRF answers 405 method_not_allowed
        required = getattr(view, "required_permissions", None)
        if not isinstance(required, dict):
            raise ImproperlyConfigured(f"{view.__class__.__name__} uses MethodPermissions without required_permissions")
        if method == "options" and not _handles(view, "get"):
            return any(requirement.has_permission(request, view) for requirement in required.values())
        key = "GET" if method in ("head", "options") else method.upper()
        if key not in required:
            raise ImproperlyConfigured(f"{view.__class__.__name__} declares no permission for {request.method}")
        return bool(required[key].has_permission(request, view))


def _handles(view: Any, method: str) -> bool:
    if method not in view.http_method_names:
        return False
    handler = "get" if method == "head" else method  # Django serves HEAD with GET's handler
    return callable(getattr(view, handler, None))
