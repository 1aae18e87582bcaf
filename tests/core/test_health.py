from django.test import override_settings

from config.settings.base import redis_cache
from tests.conftest import client_for_host

UNKNOWN_HOST = "nobody.example.org"


def test_liveness_answers_on_an_unknown_host():
    response = client_for_host(UNKNOWN_HOST).get("/health/live/")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_checks_postgresql_redis_and_the_broker_on_an_unknown_host(settings):
    # The settings fixture restores both after the test (an override_settings decorator
    # combined with it leaked CELERY_TASK_ALWAYS_EAGER=False into later tests).
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = settings.REDIS_URL

    response = client_for_host(UNKNOWN_HOST).get("/health/ready/")

    assert response.status_code == 200
    assert response.json()["checks"] == {"postgresql": "ok", "redis": "ok", "broker": "ok"}


def test_readiness_answers_on_a_suspended_tenants_host(tenant_a):
    tenant_a.is_active = False
    tenant_a.save()

    response = client_for_host("acme.idp.test").get("/health/ready/")

    assert response.status_code == 200


@override_settings(CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL="redis://127.0.0.1:1/0")
def test_readiness_names_an_unreachable_broker_with_503():
    response = client_for_host(UNKNOWN_HOST).get("/health/ready/")

    body = response.json()
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert body["code"] == "service_unavailable"
    assert "broker" in body["detail"]
    assert body["checks"]["broker"] == "unavailable"
    assert body["checks"]["postgresql"] == "ok"


def test_readiness_names_an_unreachable_redis_with_503(settings):
    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0")}

    response = client_for_host(UNKNOWN_HOST).get("/health/ready/")

    body = response.json()
    assert response.status_code == 503
    assert body["code"] == "service_unavailable"
    assert body["checks"]["redis"] == "unavailable"
    assert "redis" in body["detail"]
