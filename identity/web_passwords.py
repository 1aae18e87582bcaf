"""The page an emailed password reset link opens: `<tenant origin>/reset-password/?token=...`.

A plain HTML form (no script, no external asset) that posts back to this page with Django's
CSRF token; the page calls the same service as the API (identity.services.passwords) and
shows the outcome. The token travels in the form body on submission, not in the URL.

What the page reveals: a GET always shows the form, whatever the token (only a missing
token is called invalid at once). Only a submission says whether the link was good.
The token never reaches a log, and `strict-origin` (meta and header) keeps it out of Referer.
Not `no-referrer`: under it browsers send `Origin: null` with the form's POST, which Django's
CSRF check refuses, so nobody could reset a password through the page.
"""

from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods
from rest_framework.request import Request

from core.errors import ErrorCode, ProblemError
from identity.services.passwords import password_reset_confirm
from identity.throttles import PasswordResetConfirmThrottle

TEMPLATE = "identity/reset_password.html"
# Nothing may load from elsewhere; the only styles are inline; the form posts to this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
MISMATCH = "The two passwords do not match."


class ResetPasswordForm(forms.Form):
    token = forms.CharField(max_length=512, strip=False)
    new_password = forms.CharField(max_length=1024, strip=False)
    new_password_confirm = forms.CharField(max_length=1024, strip=False)


def _policy_hints(rules: dict[str, Any]) -> list[str]:
    hints = [f"at least {rules['min_length']} characters"]
    hints += [
        text
        for key, text in (
            ("require_upper", "an upper-case letter"),
            ("require_lower", "a lower-case letter"),
            ("require_digit", "a digit"),
            ("require_special", "a special character such as ! or #"),
        )
        if rules[key]
    ]
    return hints


def _page(request: HttpRequest, *, state: str, token: str = "", errors: Any = (), status: int = 200) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    context = {
        "state": state,
        "token": token,
        "errors": list(errors),
        "tenant_name": tenant.name,
        "hints": _policy_hints(tenant.effective_policy["password"]),
    }
    response = render(request, TEMPLATE, context, status=status)
    response["Referrer-Policy"] = "strict-origin"
    # The page's one <style> block carries this response's nonce (core.middleware).
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.format(nonce=request.csp_nonce)  # type: ignore[attr-defined]
    return response


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def reset_password_page(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        token = request.GET.get("token", "")
        return _page(request, state="form" if token else "invalid", token=token, status=200 if token else 400)

    # The API's limit (per client address), shared with it: the page is no way around it.
    throttle = PasswordResetConfirmThrottle()
    if not throttle.allow_request(Request(request), None):
        wait = int(throttle.wait() or 1)
        return _page(
            request, state="throttled", errors=[f"Too many attempts. Try again in {wait} seconds."], status=429
        )

    form = ResetPasswordForm(request.POST)
    token = request.POST.get("token", "")
    if not form.is_valid():
        if "token" in form.errors:
            return _page(request, state="invalid", status=400)
        return _page(request, state="form", token=token, errors=["Enter the new password twice."], status=400)
    data = form.cleaned_data
    if data["new_password"] != data["new_password_confirm"]:
        return _page(request, state="form", token=token, errors=[MISMATCH], status=400)
    try:
        password_reset_confirm(
            tenant=request.tenant,  # type: ignore[attr-defined]
            token=data["token"],
            new_password=data["new_password"],
        )
    except ProblemError as refusal:
        if refusal.code == ErrorCode.INVALID_TOKEN:
            return _page(request, state="invalid", status=400)
        if refusal.code in (ErrorCode.PASSWORD_POLICY, ErrorCode.PASSWORD_REUSED):
            messages = [message for field_messages in (refusal.errors or {}).values() for message in field_messages]
            return _page(request, state="form", token=token, errors=messages or [refusal.detail], status=400)
        if refusal.code == ErrorCode.SERVICE_UNAVAILABLE:
            return _page(
                request, state="form", token=token, errors=["Please try again in a moment."], status=refusal.status
            )
        raise
    return _page(request, state="success")
