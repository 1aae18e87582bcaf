"""Session state: Redis answers, PostgreSQL is the truth, an outage never means "allowed"."""

from django.core.cache import cache
from django_tenants.utils import schema_context

from config.settings.base import redis_cache
from sessions.models import DeviceSession
from sessions.services import session_end
from sessions.state import ENDED_TTL_SECONDS, PROVISIONAL_TTL_SECONDS
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, login_tokens
from tests.core.test_errors import assert_problem

HOST = "acme.idp.test"


def whoami(access):
    return bearer_client(HOST, access).get("/api/v1/auth/whoami/")


def test_an_ended_session_is_marked_at_once_and_for_long_once_committed(tenant_a, django_capture_on_commit_callbacks):
    tokens = login_tokens(HOST, SHARED_ADMIN_EMAIL)
    assert whoami(tokens["access"]).status_code == 200  # cached as active
    key = f"device-session:{tokens['session_id']}"

    with schema_context("acme"), django_capture_on_commit_callbacks(execute=False) as callbacks:
        session_end(session=DeviceSession.objects.get(pk=tokens["session_id"]), reason="admin")
        provisional_ttl = cache.ttl(key)  # type: ignore[attr-defined]  # django-redis
    assert_problem(whoami(tokens["access"]), 401, "session_ended")
    for callback in callbacks:
        callback()

    with schema_context("acme"):
        final_ttl = cache.ttl(key)  # type: ignore[attr-defined]  # django-redis
    assert 0 < provisional_ttl <= PROVISIONAL_TTL_SECONDS
    assert final_ttl > PROVISIONAL_TTL_SECONDS
    assert final_ttl <= ENDED_TTL_SECONDS


def test_with_redis_down_the_database_decides(tenant_a, settings):
    tokens = login_tokens(HOST, SHARED_ADMIN_EMAIL)
    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0")}

    assert whoami(tokens["access"]).status_code == 200
    with schema_context("acme"):
        session_end(session=DeviceSession.objects.get(pk=tokens["session_id"]), reason="admin")
    assert_problem(whoami(tokens["access"]), 401, "session_ended")
