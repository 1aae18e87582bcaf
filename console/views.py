"""The console's own pages: the password change (the services' rules, not Django's form) and
the tenant console's security dashboard."""

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from console import charts, selectors
from console.mixins import problem_to_form
from console.sites import ConsoleSite
from core.errors import ProblemError
from identity.services.passwords import password_change
from rbac.catalog import Perm


class PasswordChangeForm(forms.Form):
    current_password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )
    new_password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    new_password_again = forms.CharField(
        strip=False, label="New password (again)", widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("new_password") != cleaned.get("new_password_again"):
            self.add_error("new_password_again", "The two new passwords differ.")
        return cleaned


def password_change_view(request: HttpRequest, *, site: ConsoleSite) -> HttpResponse:
    """Change the signed-in user's password through identity.services.passwords.password_change:
    the tenant's policy, the wrong-guess limit, the audit row, the notice email, and every
    device session of the user ends. The console session stays (its hash is renewed); a
    forced change is completed here, and until then every other console page leads here."""
    form = PasswordChangeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            password_change(
                tenant=request.tenant,  # type: ignore[attr-defined]
                user=request.user,  # type: ignore[arg-type]
                session_id=None,  # a console session is not a device session: all of those end
                current_password=form.cleaned_data["current_password"],
                new_password=form.cleaned_data["new_password"],
            )
        except ProblemError as problem:
            problem_to_form(form, problem)
        else:
            update_session_auth_hash(request, request.user)  # type: ignore[arg-type]
            messages.success(request, "Your password was changed; your devices were signed out.")
            return HttpResponseRedirect(reverse("admin:index", current_app=site.name))
    context = {
        **site.each_context(request),
        "title": "Change your password",
        "form": form,
        "forced": getattr(request.user, "must_change_password", False),
    }
    return TemplateResponse(request, "console/password_change.html", context)


def security_dashboard_view(request: HttpRequest, *, site: ConsoleSite) -> HttpResponse:
    """Failed logins and lockouts per day, active sessions by device type, the top failing
    addresses and the latest suspicious events: for holders of `audit.view` (and
    `sessions.view` for the sessions chart)."""
    if not site.allows(request, Perm.AUDIT_VIEW):
        raise PermissionDenied
    days = selectors.security_daily_counts()
    daily = charts.column_chart(
        [f"{day.day:%d %b}" for day in days],
        [
            ("failed-logins", [day.failed_logins for day in days]),
            ("lockouts", [day.lockouts for day in days]),
        ],
    )
    show_sessions = site.allows(request, Perm.SESSIONS_VIEW)
    device_types = selectors.active_sessions_by_device_type() if show_sessions else []
    failing_ips = selectors.top_failing_ips()
    context = {
        **site.each_context(request),
        "title": "Security dashboard",
        "window_days": selectors.DASHBOARD_DAYS,
        "daily": daily,
        "totals": {
            "failed_logins": sum(day.failed_logins for day in days),
            "lockouts": sum(day.lockouts for day in days),
        },
        "show_sessions": show_sessions,
        "device_types": charts.row_chart(device_types, series="sessions"),
        "active_sessions": sum(count for _, count in device_types),
        "failing_ips": charts.row_chart(failing_ips, series="failed-logins"),
        "suspicious_events": list(selectors.suspicious_events_recent()),
        "suspicious_types": selectors.SUSPICIOUS_EVENT_TYPES,
    }
    return TemplateResponse(request, "console/security_dashboard.html", context)
