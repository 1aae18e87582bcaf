"""Security headers on every response: the API, early refusals, the admin, the API docs and
our own HTML pages, each with its Content-Security-Policy."""

import json
import os
import re
import subprocess
import sys

from django.conf import settings
from django.test import Client

from tests.conftest import client_for_host

TENANT_HOST = "acme.idp.test"
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc=\"([^\"]+)\"", re.IGNORECASE)


def directives(response) -> dict[str, str]:
    policy = response["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


def style_nonce(response) -> str:
    match = re.search(r"<style nonce=\"([^\"]+)\">", response.content.decode())
    assert match, "the page's <style> carries no nonce"
    return match.group(1)


def assert_common_headers(response, referrer_policy: str = "same-origin") -> None:
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == referrer_policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"
    assert directives(response)["frame-ancestors"] == "frame-ancestors 'none'"


def test_a_json_api_response_carries_the_strict_api_policy_and_the_common_headers():
    response = client_for_host(TENANT_HOST).get("/api/v1/ping/")

    assert response.status_code == 200
    assert_common_headers(response)
    assert response["Content-Security-Policy"] == settings.CSP_API
    assert directives(response)["default-src"] == "default-src 'none'"


def test_a_refusal_made_before_the_tenant_is_known_carries_the_headers_too():
    response = client_for_host("nobody.example.org").get("/api/v1/ping/")

    assert response.status_code == 404
    assert response.json()["code"] == "tenant_not_found"
    assert_common_headers(response)
    assert response["Content-Security-Policy"] == settings.CSP_API


def test_a_body_refused_as_too_large_carries_the_headers_too():
    response = client_for_host(TENANT_HOST).generic(
        "POST", "/api/v1/auth/token/", "{}", content_type="application/json", CONTENT_LENGTH=str(10**8)
    )

    assert response.status_code == 413
    assert_common_headers(response)


def test_the_admin_login_page_allows_scripts_and_styles_only_from_its_own_host():
    response = Client(HTTP_HOST=TENANT_HOST).get("/admin/login/")

    assert response.status_code == 200
    assert_common_headers(response)
    found = directives(response)
    assert found["script-src"] == "script-src 'self'"
    assert "'unsafe-inline'" not in found["style-src"]
    assert found["default-src"] == "default-src 'none'"
    assert not INLINE_SCRIPT.search(response.content.decode())


def test_swagger_ui_has_no_inline_script_and_loads_its_initialiser_from_its_own_host():
    client = Client(HTTP_HOST=TENANT_HOST)
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert_common_headers(response)
    page = response.content.decode()
    assert not INLINE_SCRIPT.search(page)
    found = directives(response)
    assert found["script-src"] == "script-src 'self'"
    sources = SCRIPT_SRC.findall(page)
    assert sources and all(source.startswith("/") for source in sources)
    initialiser = client.get(next(source for source in sources if "script" in source).replace("&amp;", "&"))
    assert initialiser.status_code == 200
    assert initialiser["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in initialiser.content


def test_swagger_uis_bundle_is_served_by_the_app_itself():
    client = Client(HTTP_HOST=TENANT_HOST)
    page = client.get("/api/docs/").content.decode()
    bundle = next(source for source in SCRIPT_SRC.findall(page) if source.endswith("swagger-ui-bundle.js"))

    response = client.get(bundle)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript") or "javascript" in response["Content-Type"]


def test_redoc_has_no_inline_script_and_nothing_from_another_host():
    response = Client(HTTP_HOST=TENANT_HOST).get("/api/redoc/")

    assert response.status_code == 200
    assert_common_headers(response)
    page = response.content.decode()
    assert not INLINE_SCRIPT.search(page)
    assert "https://" not in page
    assert directives(response)["script-src"] == "script-src 'self'"


def test_the_password_reset_page_allows_no_script_and_only_its_own_nonced_style():
    first = Client(HTTP_HOST=TENANT_HOST).get("/reset-password/", {"token": "x" * 43})
    second = Client(HTTP_HOST=TENANT_HOST).get("/reset-password/", {"token": "x" * 43})

    assert first.status_code == 200
    # The page's URL carries the reset token: it narrows the policy to never send the path.
    assert_common_headers(first, referrer_policy="strict-origin")
    nonce = style_nonce(first)
    found = directives(first)
    assert found["style-src"] == f"style-src 'nonce-{nonce}'"
    assert found["default-src"] == "default-src 'none'"
    assert "script-src" not in found
    assert nonce not in second["Content-Security-Policy"]


def test_the_email_verification_page_allows_no_script_and_only_its_own_nonced_style():
    response = Client(HTTP_HOST=TENANT_HOST).get("/verify-email/bm9ib2R5/not-a-token/")

    assert response.status_code == 400
    assert_common_headers(response, referrer_policy="strict-origin")
    nonce = style_nonce(response)
    assert directives(response)["style-src"] == f"style-src 'nonce-{nonce}'"
    assert "script-src" not in directives(response)


def test_hsts_is_sent_on_https_requests_with_production_settings(settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    response = client_for_host(TENANT_HOST).get("/api/v1/ping/", HTTP_X_FORWARDED_PROTO="https")

    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_production_settings_turn_on_hsts_and_secure_cookies():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.prod",
        "DATABASE_URL": "postgres://idp@db.invalid:5432/idp",
        "REDIS_URL": "redis://redis.invalid:6379/0",
        "SECRET_KEY": "a-long-random-value-for-this-test-only-0123456789",
        "IDP_KEY_ENCRYPTION_KEYS": "Zm9yLXRoaXMtdGVzdC1vbmx5LWZvci10aGlzLXRlc3Qh",
    }
    env.pop("SECURE_HSTS_SECONDS", None)
    names = ["SECURE_HSTS_SECONDS", "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"]
    script = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {names!r}}}))"
    )
    result = subprocess.run(  # noqa: S603 (our own interpreter, fixed arguments)
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True, cwd=settings.BASE_DIR
    )

    assert json.loads(result.stdout) == {
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
    }
