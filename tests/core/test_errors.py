"""Every error, whatever raised it, is RFC 9457 problem JSON with a stable code."""

import json

import pytest
from django.test import override_settings
from rest_framework import exceptions as drf

from core.errors import ERROR_CATALOG, ErrorCode
from core.problems import flatten_errors, problem_from_exception
from tenants.models import Plan
from tests.conftest import client_for_host

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "user_message"}


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = json.loads(response.content)
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:idp:error:{code}"
    return body


def test_every_error_code_has_a_status_title_and_user_message():
    assert set(ERROR_CATALOG) == set(ErrorCode)
    for status, title, user_message in ERROR_CATALOG.values():
        assert 400 <= status < 600 and title and user_message


def test_unknown_host_answers_404_tenant_not_found():
    response = client_for_host("nobody.example.org").get("/api/v1/platform/plans/")

    assert_problem(response, 404, "tenant_not_found")


def test_x_forwarded_host_does_not_choose_the_tenant():
    response = client_for_host("nobody.example.org").get("/api/docs/", HTTP_X_FORWARDED_HOST="acme.idp.test")

    assert_problem(response, 404, "tenant_not_found")


def test_unknown_path_on_a_tenant_host_answers_404_not_found(tenant_a):
    response = client_for_host("acme.idp.test").get("/api/v1/no-such-thing/")

    assert_problem(response, 404, "not_found")


@override_settings(DEBUG=True)
def test_unknown_api_path_is_problem_json_even_with_debug_on(tenant_a):
    response = client_for_host("acme.idp.test").get("/api/v1/no-such-thing/")

    assert_problem(response, 404, "not_found")


def test_unknown_object_answers_404_not_found(operator_client):
    response = operator_client.get("/api/v1/platform/plans/no-such-plan/")

    assert_problem(response, 404, "not_found")


def test_anonymous_request_answers_401_not_authenticated_with_a_challenge(public_client):
    response = public_client.get("/api/v1/platform/plans/")

    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_wrong_method_answers_405(operator_client):
    response = operator_client.put("/api/v1/platform/plans/", {}, format="json")

    assert_problem(response, 405, "method_not_allowed")


def test_unsupported_content_type_answers_415_and_creates_nothing(operator_client):
    before = Plan.objects.count()

    response = operator_client.post("/api/v1/platform/plans/", "code=x", content_type="text/plain")

    assert_problem(response, 415, "unsupported_media_type")
    assert Plan.objects.count() == before


def test_malformed_json_answers_400_invalid_request_and_creates_nothing(operator_client):
    before = Plan.objects.count()

    response = operator_client.post("/api/v1/platform/plans/", '{"code": ', content_type="application/json")

    assert_problem(response, 400, "invalid_request")
    assert Plan.objects.count() == before


def test_field_errors_are_listed_per_field(operator_client):
    response = operator_client.post("/api/v1/platform/plans/", {"code": "bad code!"}, format="json")

    body = assert_problem(response, 400, "invalid_request")
    assert set(body["errors"]) >= {"code", "name", "max_users", "max_branches"}
    assert all(isinstance(messages, list) and messages for messages in body["errors"].values())


def test_oversized_body_answers_413_before_it_is_read(operator_client, settings):
    before = Plan.objects.count()
    body = json.dumps({"code": "big", "name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})

    response = operator_client.post("/api/v1/platform/plans/", body, content_type="application/json")

    assert_problem(response, 413, "payload_too_large")
    assert Plan.objects.count() == before


def test_unexpected_exception_answers_500_without_internals(operator_client, monkeypatch):
    def broken():
        raise RuntimeError("secret internals: SELECT * FROM users")

    monkeypatch.setattr("tenants.selectors.plan_list", broken)

    response = operator_client.get("/api/v1/platform/plans/")

    body = assert_problem(response, 500, "server_error")
    assert "secret internals" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert body["detail"] == "An unexpected error occurred."


def test_throttled_maps_to_429_with_retry_after_rounded_up():
    response = problem_from_exception(drf.Throttled(wait=7.2))

    assert response is not None
    assert response.status_code == 429
    assert response["Retry-After"] == "8"  # never invite a retry before the window opens
    assert json.loads(response.content)["code"] == "throttled"


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ({"policy": {"lockout": {"threshold": ["Too big."]}}}, {"policy.lockout.threshold": ["Too big."]}),
        (["Not allowed."], {"non_field_errors": ["Not allowed."]}),
        ({"checks": [{}, {"permission": ["Unknown."]}]}, {"checks.1.permission": ["Unknown."]}),
    ],
)
def test_nested_validation_errors_are_flattened_to_field_paths(detail, expected):
    assert flatten_errors(detail) == expected


def test_every_response_carries_a_request_id_and_echoes_a_sane_one(public_client):
    echoed = public_client.get("/health/live/", HTTP_X_REQUEST_ID="abc-123")
    generated = public_client.get("/health/live/", HTTP_X_REQUEST_ID="bad id with spaces")

    assert echoed["X-Request-ID"] == "abc-123"
    assert generated["X-Request-ID"] != "bad id with spaces"
    assert len(generated["X-Request-ID"]) == 32
