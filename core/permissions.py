"""The project's default DRF permission: every view declares what each HTTP method requires.

`REST_FRAMEWORK["DEFAULT_PERMISSION_CLASSES"]` is `DeclaredPermissions`, so a view that names
no permission classes is still judged by its `required_permissions`, and a view without them
is a configuration error (ImproperlyConfigured on the request; `rbac.checks` at start-up and
tests/rbac/test_every_view_declares.py before that), never an open door.
"""

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request

from rbac.permissions import MethodPermissions


class DeclaredPermissions(MethodPermissions):
    """`rbac.permissions.MethodPermissions`, with the methods a view does not handle left to DRF.

    DRF checks permissions before it looks for the method's handler. For a method the view
    has no handler for (PUT on a GET/PATCH view, POST on whoami/) there is nothing to
    declare: this lets the request through to DRF's 405 method_not_allowed, where
    MethodPermissions alone would call it a configuration error and answer 500.

    OPTIONS follows GET's requirement (as in MethodPermissions) on a view that handles GET;
    on one that does not, it needs what any of the view's methods needs. HEAD is GET's
    handler (Django's View.setup), so it follows GET too.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        method = (request.method or "").lower()
        if not _handles(view, method):
            return True  # no handler runs: DRF answers 405
        if method == "options" and not _handles(view, "get"):
            required = getattr(view, "required_permissions", None)
            if not isinstance(required, dict):
                name = view.__class__.__name__
                raise ImproperlyConfigured(f"{name} uses MethodPermissions without required_permissions")
            return any(requirement.has_permission(request, view) for requirement in required.values())
        return super().has_permission(request, view)


def _handles(view: Any, method: str) -> bool:
    return method in view.http_method_names and callable(getattr(view, method, None))
