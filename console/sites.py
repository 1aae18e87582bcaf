"""The two admin sites: the tenant console (tenant hosts) and the platform console (the public
host). Each URLconf mounts only its own site, so a tenant's models never appear on the
public host and the platform's never on a tenant's.

Access never comes from Django's model permissions or the staff flag:
- tenant console: RBAC. A user enters while they hold, tenant-wide, at least one of the codes
  the console shows something for (CONSOLE_CODES); each page and action asks for its own code
  (console.mixins.ConsolePermissionsMixin). Holdings at branches only do not count: the
  console's lists are tenant-wide, and a branch manager works through the API, which narrows
  every list to their branches.
- platform console: active superusers (the platform operators), on the public schema only.
Both sites send a user who must change their password to the password form first, and change
passwords through identity.services.passwords.password_change (policy, audit, other sessions
end), never through Django's own form.
"""

from functools import update_wrapper
from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, URLResolver, path, reverse

from core.ratelimit import rate_limit_hit
from core.tenancy import current_schema
from identity.models import User
from identity.throttles import LoginThrottle, address_and_email
from rbac.catalog import Perm
from rbac.selectors import EffectivePermissions, effective_permissions

# A tenant-wide holder of any of these enters the tenant console (Admin, Auditor, Manager).
CONSOLE_CODES: tuple[str, ...] = (
    Perm.USERS_VIEW,
    Perm.ROLES_VIEW,
    Perm.PERMISSIONS_VIEW,
    Perm.BRANCHES_VIEW,
    Perm.SESSIONS_VIEW,
    Perm.SERVICE_CLIENTS_VIEW,
    Perm.AUDIT_VIEW,
)
# What the platform console's pages require: being a platform operator (an active superuser).
OPERATOR = "platform.operator"
_PERMISSIONS_ATTR = "_console_permissions"


class ConsoleLoginForm(AdminAuthenticationForm):
    """Django's admin login (through identity.backends.LockoutModelBackend: the lockout and
    attempt records of the API), with the console's own entry rule in place of the staff flag.
    Someone who may not enter gets the same message as a wrong password.

    The API's login rate limit comes first, as at POST /api/v1/auth/token/: the same key
    (scope `login`, client address and email digest, as identity.throttles.LoginThrottle),
    so the console and the API share one budget per address and email."""

    site: "ConsoleSite"
    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "throttled": "Too many attempts. Try again in %(seconds)s seconds.",
    }

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        if username and self.request is not None:
            self._rate_limit_check(self.request, username)
        return super().clean()

    def _rate_limit_check(self, request: HttpRequest, username: str) -> None:
        policy = request.tenant.effective_policy  # type: ignore[attr-defined]  # the public host's too
        identity = address_and_email(getattr(request, "client_ip", None), username)
        decision = rate_limit_hit(scope=LoginThrottle.scope, identity=identity, rate=policy["rate_limits"]["login"])
        if decision is not None and not decision.allowed:
            raise ValidationError(
                self.error_messages["throttled"], code="throttled", params={"seconds": decision.reset_seconds}
            )

    def confirm_login_allowed(self, user: User) -> None:
        if not (user.is_active and self.site.may_enter(user)):
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


class ConsoleSite(admin.AdminSite):
    """What both consoles share. Subclasses say who may enter and who may do what."""

    enable_nav_sidebar = True
    site_url = None  # no "View site" link: the hosts serve an API, not a site

    def __init__(self) -> None:
        # Both sites are named "admin": each URLconf mounts one, and `admin:` URL names
        # (and rbac.checks' exemption of the admin namespace) apply to whichever is served.
        super().__init__(name="admin")
        # Bulk delete would bypass the services (no audit, no rules): never offered.
        self.disable_action("delete_selected")
        self.login_form = type(f"{type(self).__name__}LoginForm", (ConsoleLoginForm,), {"site": self})

    # --- who ----------------------------------------------------------------------------------

    def may_enter(self, user: Any) -> bool:
        raise NotImplementedError

    def allows(self, request: HttpRequest, code: str) -> bool:
        """Whether the signed-in user may do `code` in this console."""
        raise NotImplementedError

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_authenticated and user.is_active and self.may_enter(user))

    # --- the forced password change -----------------------------------------------------------

    def admin_view(self, view: Any, cacheable: bool = False) -> Any:
        if view in (self.password_change, self.password_change_done, self.logout):
            return super().admin_view(view, cacheable)

        def password_changed_first(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if getattr(request.user, "must_change_password", False):
                return HttpResponseRedirect(reverse("admin:password_change", current_app=self.name))
            return view(request, *args, **kwargs)

        return super().admin_view(update_wrapper(password_changed_first, view), cacheable)

    def password_change(  # type: ignore[override]  # a redirect once changed
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        from console.views import password_change_view  # views import this module

        return password_change_view(request, site=self)

    def password_change_done(  # type: ignore[override]  # nothing to show: back to the index
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return HttpResponseRedirect(reverse("admin:index", current_app=self.name))


class TenantConsoleSite(ConsoleSite):
    site_title = "Tenant console"
    site_header = "Tenant console"
    index_title = "Administration"
    index_template = "console/index.html"

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            context["site_header"] = f"{tenant.name} console"
        context["console_dashboard"] = self.has_permission(request) and self.allows(request, Perm.AUDIT_VIEW)
        return context

    def may_enter(self, user: Any) -> bool:
        return current_schema() != "public" and _enters(effective_permissions(user.pk))

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        if not (user.is_authenticated and user.is_active) or current_schema() == "public":
            return False
        return _enters(self.permissions_of(request))

    def permissions_of(self, request: HttpRequest) -> EffectivePermissions:
        """The user's permissions, read once per request (from the RBAC cache, which every
        RBAC change invalidates at once)."""
        held = getattr(request, _PERMISSIONS_ATTR, None)
        if held is None:
            held = effective_permissions(request.user.pk)
            setattr(request, _PERMISSIONS_ATTR, held)
        return held

    def allows(self, request: HttpRequest, code: str) -> bool:
        # branch None: tenant-wide holdings only (see the module's docstring).
        return self.has_permission(request) and self.permissions_of(request).allows(code)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        from console.views import security_dashboard_view  # views import this module

        def dashboard(request: HttpRequest) -> HttpResponse:
            return security_dashboard_view(request, site=self)

        dashboard_url = path("security/", self.admin_view(dashboard), name="security_dashboard")
        return [dashboard_url, *super().get_urls()]


def _enters(held: EffectivePermissions) -> bool:
    return any(held.allows(code) for code in CONSOLE_CODES)


class PlatformConsoleSite(ConsoleSite):
    site_title = "Platform console"
    site_header = "Platform console"
    index_title = "Tenants and plans"
    index_template = "console/index.html"

    def may_enter(self, user: Any) -> bool:
        return bool(user.is_superuser) and current_schema() == "public"

    def allows(self, request: HttpRequest, code: str) -> bool:
        # Operators may do whatever the platform console's pages offer (the same read-only
        # pages as tenants' for its own login attempts and audit log).
        return self.has_permission(request)


tenant_console = TenantConsoleSite()
platform_console = PlatformConsoleSite()
