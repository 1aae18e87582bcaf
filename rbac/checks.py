"""System check (tag "security"): every view the tenant and public hosts serve says who may
call each of its HTTP methods.

A DRF view must use MethodPermissions (rbac.permissions; rbac.permissions.MethodPermissions
is the default) and list a requirement in `required_permissions` for every method it handles:
`get`, `post`, `put`, `patch`, `delete`, whether written on the view or inherited from a
generic view's mixins (a viewset's routed actions count too). HEAD and OPTIONS follow GET.
A view that does not is reported here, so `manage.py check` (and runserver, migrate, the test
run through tests/rbac/test_every_view_declares.py) fails before anyone can call it. At
request time the same gap is ImproperlyConfigured: a 500, never an open endpoint.

Views that are not DRF views declaring requirements are listed below by name, each with the
reason it needs no declaration; anything else that is not a DRF view is an error too, so a
new plain Django view cannot slip in unnoticed.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error
from django.core.checks import Warning as CheckWarning
from django.urls import URLPattern, URLResolver
from rest_framework.permissions import BasePermission
from rest_framework.views import APIView

from rbac.permissions import MethodPermissions

HANDLER_METHODS = ("get", "post", "put", "patch", "delete")

_DOCS = "an OpenAPI document or its viewer: public by API.md (Discovery and docs), GET only"
EXEMPT_VIEWS: dict[str, str] = {
    # drf-spectacular's views are DRF views, but their permission is the package's own
    # setting (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"], AllowAny by default).
    "drf_spectacular.views.SpectacularAPIView": _DOCS,
    "drf_spectacular.views.SpectacularSwaggerSplitView": _DOCS,
    "drf_spectacular.views.SpectacularRedocView": _DOCS,
    "identity.web_passwords.reset_password_page": (
        "server-rendered page an emailed link opens; the single-use reset token it posts is the "
        "credential, checked by identity.services.passwords (CSRF-protected, throttled)"
    ),
    "identity.web_registration.verify_email_page": (
        "server-rendered page an emailed link opens; the signed verification token in its URL is "
        "the credential, checked by identity.verification (CSRF-protected)"
    ),
    "core.views.api_path_not_found": "the catch-all for unknown /api/ paths: answers 404 not_found, serves nothing",
}
EXEMPT_NAMESPACES: dict[str, str] = {
    "admin": "the admin consoles (console.sites): their own session login and RBAC checks per page",
}


@dataclass(frozen=True)
class Route:
    urlconf: str
    pattern: str
    callback: Callable[..., Any]
    namespaces: tuple[str, ...]

    @property
    def view_name(self) -> str:
        """The dotted path of the view: its class for class-based views."""
        view = getattr(self.callback, "cls", None) or getattr(self.callback, "view_class", None) or self.callback
        return f"{view.__module__}.{view.__qualname__}"

    @property
    def exemption(self) -> str | None:
        """Why this route needs no declaration, or None."""
        for namespace in self.namespaces:
            if namespace in EXEMPT_NAMESPACES:
                return EXEMPT_NAMESPACES[namespace]
        return EXEMPT_VIEWS.get(self.view_name)


def routes(urlconf: str) -> Iterator[Route]:
    """Every URL pattern of `urlconf`, included ones too, with its full pattern text."""
    yield from _walk(import_module(urlconf).urlpatterns, urlconf, "", ())


def _walk(entries: Iterable[Any], urlconf: str, prefix: str, namespaces: tuple[str, ...]) -> Iterator[Route]:
    for entry in entries:
        if isinstance(entry, URLResolver):
            inner = (*namespaces, entry.namespace) if entry.namespace else namespaces
            yield from _walk(entry.url_patterns, urlconf, prefix + str(entry.pattern), inner)
        elif isinstance(entry, URLPattern):
            yield Route(urlconf, prefix + str(entry.pattern), entry.callback, namespaces)


def handled_methods(view_class: type[APIView], actions: dict[str, str] | None = None) -> list[str]:
    """The HTTP methods (upper case) the view has a handler for, inherited ones included; for a
    viewset, the methods its route maps to actions."""
    if actions:
        return [method.upper() for method in HANDLER_METHODS if method in actions]
    return [
        method.upper()
        for method in HANDLER_METHODS
        if method in view_class.http_method_names and callable(getattr(view_class, method, None))
    ]


def uses_method_permissions(permission_classes: Sequence[Any]) -> bool:
    return any(
        (isinstance(entry, type) and issubclass(entry, MethodPermissions)) or isinstance(entry, MethodPermissions)
        for entry in permission_classes
    )


def view_messages(
    view_class: type[APIView],
    *,
    initkwargs: dict[str, Any] | None = None,
    actions: dict[str, str] | None = None,
    where: str = "",
) -> list[CheckMessage]:
    """What is wrong with one DRF view's declarations (as routed: `as_view()` arguments win)."""
    initkwargs = initkwargs or {}
    name = f"{view_class.__module__}.{view_class.__qualname__}"
    served = f"Served at {where}, it" if where else "It"
    permission_classes = initkwargs.get("permission_classes", view_class.permission_classes)
    if not uses_method_permissions(permission_classes):
        used = ", ".join(getattr(entry, "__name__", type(entry).__name__) for entry in permission_classes) or "none"
        return [
            Error(
                f"{served} does not declare per-method requirements: its permission classes are {used}.",
                hint="Set permission_classes = [MethodPermissions] (or leave the default) and "
                'required_permissions = {"GET": ..., "POST": ...} with a requirement for every method.',
                obj=name,
                id="rbac.E002",
            )
        ]
    required = initkwargs.get("required_permissions", getattr(view_class, "required_permissions", None))
    if not isinstance(required, dict):
        return [
            Error(
                f"{served} uses MethodPermissions but has no required_permissions.",
                hint='Add required_permissions = {"GET": HasPermission(...), ...}; public endpoints say '
                "AllowAny(), the caller's own ones IsAuthenticatedUser().",
                obj=name,
                id="rbac.E003",
            )
        ]
    handled = handled_methods(view_class, actions)
    messages: list[CheckMessage] = [
        Error(
            f"{served} handles {method} but required_permissions declares nothing for it.",
            hint=f'Add "{method}": <requirement> to required_permissions.',
            obj=name,
            id="rbac.E004",
        )
        for method in handled
        if method not in required
    ]
    messages += [
        Error(
            f"{served} declares {method!r} with {requirement!r}, which is not a permission object.",
            hint="Use an instance: HasPermission(Perm.X), IsAuthenticatedUser(), AllowAny().",
            obj=name,
            id="rbac.E005",
        )
        for method, requirement in required.items()
        if not isinstance(requirement, BasePermission)
    ]
    messages += [
        CheckWarning(
            f"{served} declares {method!r}, which it does not handle.",
            hint="HEAD and OPTIONS follow GET; remove the entry or add the handler.",
            obj=name,
            id="rbac.W001",
        )
        for method in required
        if method not in handled
    ]
    return messages


def route_messages(route: Route) -> list[CheckMessage]:
    if route.exemption is not None:
        return []
    view_class = getattr(route.callback, "cls", None)
    if not (isinstance(view_class, type) and issubclass(view_class, APIView)):
        return [
            Error(
                f"Served at {route.pattern}, it is not a DRF view and is not listed as exempt.",
                hint="Make it a DRF view with required_permissions, or add it to rbac.checks.EXEMPT_VIEWS "
                "with the reason it needs no declaration.",
                obj=route.view_name,
                id="rbac.E001",
            )
        ]
    return view_messages(
        view_class,
        initkwargs=getattr(route.callback, "initkwargs", None),
        actions=getattr(route.callback, "actions", None),
        where=route.pattern,
    )


def served_urlconfs() -> list[str]:
    """The tenant hosts' URLconf and the public host's (django-tenants' PUBLIC_SCHEMA_URLCONF)."""
    names = [settings.ROOT_URLCONF, getattr(settings, "PUBLIC_SCHEMA_URLCONF", None)]
    return [name for name in dict.fromkeys(names) if name]


def urlconf_messages(urlconfs: Iterable[str]) -> list[CheckMessage]:
    """One report per view however many routes serve it (both hosts share the auth routes)."""
    messages: list[CheckMessage] = []
    seen: set[tuple[str, str]] = set()
    for urlconf in urlconfs:
        for route in routes(urlconf):
            key = (route.view_name, repr(sorted(getattr(route.callback, "initkwargs", {}).items())))
            if key not in seen:
                seen.add(key)
                messages += route_messages(route)
    return messages


def view_permissions_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Registered by RbacConfig.ready() with the "security" tag."""
    return urlconf_messages(served_urlconfs())
