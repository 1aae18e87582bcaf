"""The page an emailed verification link opens: /verify-email/<uid>/<token>/ on the tenant host.

GET never activates: mail scanners and link previewers fetch links before people click them,
so GET only shows a "Confirm my email" button (or says the link does not work) and the
button POSTs back to the same URL, protected by Django's CSRF token.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_http_methods

from core.errors import ErrorCode, ProblemError
from identity.services.registration import email_verification_link_works, email_verify

# The URL carries the token, so it must not reach anyone else in a Referer header. Not
# "no-referrer": under it browsers send `Origin: null` with the button's same-origin POST,
# which Django's CSRF check refuses, so no one could confirm. "strict-origin" sends only the
# origin (never the path) and only over HTTPS.
REFERRER_POLICY = "strict-origin"
# Nothing external, no scripts: only the page's own <style> block (by its nonce), the form
# posts to this page only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@never_cache
@csrf_protect
@require_http_methods(["GET", "POST"])
def verify_email_page(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    tenant = request.tenant  # type: ignore[attr-defined]
    if request.method == "POST":
        try:
            email_verify(tenant=tenant, uidb64=uidb64, token=token)
            state = "verified"
        except ProblemError as refusal:
            if refusal.code != ErrorCode.INVALID_TOKEN:
                raise
            state = "invalid"
    else:
        state = "confirm" if email_verification_link_works(tenant=tenant, uidb64=uidb64, token=token) else "invalid"
    response = render(
        request,
        "identity/verify_email.html",
        {"state": state, "tenant_name": tenant.name, "referrer_policy": REFERRER_POLICY},
        status=400 if state == "invalid" else 200,
    )
    response["Referrer-Policy"] = REFERRER_POLICY
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.format(nonce=request.csp_nonce)  # type: ignore[attr-defined]
    response["X-Robots-Tag"] = "noindex"
    return response
