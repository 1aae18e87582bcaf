"""One device, one session (or the tenant's limit); ending sessions; events for other services."""

import pytest
from django.core.cache import cache
from django_redis import get_redis_connection
from django_tenants.utils import schema_context

from config.settings.base import redis_cache
from identity.models import LoginAttempt
from sessions.events import session_events_publish, stream_key
from sessions.models import DeviceSession, EndReason, SessionEvent
from sessions.services import sessions_end
from tenants.policy import policy_validate
from tests.concurrency import in_parallel, on_own_connection
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, login_tokens
from tests.core.test_errors import assert_problem

HOST = "acme.idp.test"


def whoami(access, host=HOST):
    return bearer_client(host, access).get("/api/v1/auth/whoami/")


def refresh(token):
    from rest_framework.test import APIClient

    return APIClient(HTTP_HOST=HOST).post("/api/v1/auth/token/refresh/", {"refresh": token}, format="json")


def set_session_policy(tenant, **sessions):
    tenant.policy = policy_validate({"sessions": sessions}, current=tenant.policy, max_devices_per_user=3)
    tenant.save()


def active_sessions():
    with schema_context("acme"):
        return list(DeviceSession.objects.filter(ended_at__isnull=True))


# --- the policy ------------------------------------------------------------------------------


def test_a_login_on_a_second_device_ends_the_first_at_once(tenant_a_admin):
    first = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till-1")
    assert whoami(first["access"]).status_code == 200

    second = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till-2")

    assert_problem(whoami(first["access"]), 401, "session_ended")
    assert_problem(refresh(first["refresh"]), 401, "session_ended")
    assert whoami(second["access"]).status_code == 200
    with schema_context("acme"):
        assert DeviceSession.objects.get(pk=first["session_id"]).end_reason == "new_device"


def test_deny_new_refuses_a_second_device_naming_no_other_device(tenant_a, tenant_a_admin):
    set_session_policy(tenant_a, on_limit="deny_new")
    first = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till-1")
    from rest_framework.test import APIClient

    response = APIClient(HTTP_HOST=HOST).post(
        "/api/v1/auth/token/",
        {"email": SHARED_ADMIN_EMAIL, "password": "Correct-Horse-9", "device_id": "till-2"},
        format="json",
    )

    assert_problem(response, 409, "session_limit_reached")
    assert "till-1" not in response.content.decode()
    assert whoami(first["access"]).status_code == 200
    assert [s.device_id for s in active_sessions()] == ["till-1"]
    with schema_context("acme"):  # the credentials were right: recorded as such
        assert LoginAttempt.objects.filter(email=SHARED_ADMIN_EMAIL).latest("id").success


def test_a_login_again_from_the_same_device_replaces_its_session(tenant_a, tenant_a_admin):
    set_session_policy(tenant_a, on_limit="deny_new")
    first = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till-1")

    second = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till-1")

    assert [str(s.pk) for s in active_sessions()] == [second["session_id"]]
    assert_problem(whoami(first["access"]), 401, "session_ended")


def test_terminate_oldest_keeps_the_newest_sessions_up_to_the_limit(tenant_a, tenant_a_admin):
    set_session_policy(tenant_a, max_sessions_per_user=3)
    tokens = [login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id=f"till-{n}") for n in range(4)]

    assert sorted(s.device_id for s in active_sessions()) == ["till-1", "till-2", "till-3"]
    assert_problem(whoami(tokens[0]["access"]), 401, "session_ended")


def test_the_plans_device_cap_bounds_the_tenants_limit(tenant_a, tenant_a_admin):
    set_session_policy(tenant_a, max_sessions_per_user=3)
    tenant_a.plan.max_devices_per_user = 2
    tenant_a.plan.save()

    for n in range(3):
        login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id=f"till-{n}")

    assert len(active_sessions()) == 2


def test_twenty_simultaneous_logins_leave_exactly_the_limit_and_the_losers_tokens_are_refused(committed_tenant):
    host = "racing.idp.test"  # max_sessions_per_user is 3 there

    def login(index):
        return login_tokens(host, SHARED_ADMIN_EMAIL, device_id=f"device-{index}")

    counter = iter(range(20))
    results = in_parallel(lambda: login(next(counter)), 20)

    def active_and_answers():
        with schema_context("racing"):
            active = DeviceSession.objects.filter(ended_at__isnull=True).count()
        answers = [whoami(tokens["access"], host=host).status_code for tokens in results]
        return active, answers

    active, answers = on_own_connection(active_and_answers)
    assert active == 3
    assert answers.count(200) == 3
    assert answers.count(401) == 17


# --- own sessions ------------------------------------------------------------------------------


def test_a_user_lists_own_active_sessions_with_the_current_one_marked(tenant_a, tenant_a_admin):
    set_session_policy(tenant_a, max_sessions_per_user=2)
    login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="phone")
    mine = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till")

    body = bearer_client(HOST, mine["access"]).get("/api/v1/sessions/").json()

    assert {s["device_id"]: s["current"] for s in body["results"]} == {"phone": False, "till": True}
    assert all("ended_at" not in s for s in body["results"])


def test_include_ended_adds_ended_sessions_with_their_reason(tenant_a_admin):
    login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till-1")
    mine = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till-2")

    body = bearer_client(HOST, mine["access"]).get("/api/v1/sessions/?include_ended=true").json()

    ended = [s for s in body["results"] if s["device_id"] == "till-1"]
    assert ended[0]["end_reason"] == "new_device" and ended[0]["ended_at"]


def test_ending_one_of_own_sessions_refuses_its_tokens(tenant_a, tenant_a_admin):
    set_session_policy(tenant_a, max_sessions_per_user=2)
    phone = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="phone")
    till = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till")

    response = bearer_client(HOST, till["access"]).delete(f"/api/v1/sessions/{phone['session_id']}/")

    assert response.status_code == 204
    assert_problem(whoami(phone["access"]), 401, "session_ended")
    assert whoami(till["access"]).status_code == 200


@pytest.mark.parametrize("session_id", ["another-users", "not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_another_users_or_an_unknown_session_is_not_found_and_nothing_ends(tenant_a_admin, tenant_a, session_id):
    from django_tenants.utils import tenant_context

    from identity.models import User
    from sessions.services import Device, session_start

    with tenant_context(tenant_a):
        other = User.objects.create_user(email="other@acme.example", password="Correct-Horse-9")
        theirs = session_start(
            user=other,
            device=Device("x"),
            ip=None,
            user_agent="",
            policy=tenant_a.effective_policy,
            max_devices_per_user=3,
        )
    mine = login_tokens(HOST, SHARED_ADMIN_EMAIL)
    target = str(theirs.pk) if session_id == "another-users" else session_id

    assert_problem(bearer_client(HOST, mine["access"]).delete(f"/api/v1/sessions/{target}/"), 404, "not_found")
    with schema_context("acme"):
        assert DeviceSession.objects.get(pk=theirs.pk).ended_at is None


def test_revoke_all_ends_every_session_or_all_but_the_current(tenant_a, tenant_a_admin):
    set_session_policy(tenant_a, max_sessions_per_user=3)
    phone = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="phone")
    tablet = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="tablet")
    till = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till")

    kept = bearer_client(HOST, till["access"]).post(
        "/api/v1/sessions/revoke-all/", {"keep_current": True}, format="json"
    )
    assert kept.json() == {"ended": 2}
    assert_problem(whoami(phone["access"]), 401, "session_ended")
    assert_problem(whoami(tablet["access"]), 401, "session_ended")
    assert whoami(till["access"]).status_code == 200

    everything = bearer_client(HOST, till["access"]).post("/api/v1/sessions/revoke-all/", {}, format="json")
    assert everything.json() == {"ended": 1}
    assert_problem(whoami(till["access"]), 401, "session_ended")


def test_session_endpoints_need_a_bearer_token(tenant_a):
    from rest_framework.test import APIClient

    assert_problem(APIClient(HTTP_HOST=HOST).get("/api/v1/sessions/"), 401, "not_authenticated")


# --- events and activity -------------------------------------------------------------------------


def test_every_ended_session_is_published_on_the_tenants_stream(tenant_a_admin, django_capture_on_commit_callbacks):
    first = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till-1")
    with django_capture_on_commit_callbacks(execute=True):
        login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till-2")

    entries = get_redis_connection("default").xrange(stream_key("acme"))
    fields = {key.decode(): value.decode() for key, value in entries[-1][1].items()}
    assert fields["sid"] == first["session_id"]
    assert fields["reason"] == "new_device"
    assert fields["did"] == "till-1"
    assert fields["ended_at"]
    with schema_context("acme"):
        assert SessionEvent.objects.get(session_id=first["session_id"]).published_at is not None


def test_events_wait_in_the_outbox_while_redis_is_down_and_go_out_after(tenant_a_admin, settings):
    first = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till-1")
    login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="till-2")
    healthy = settings.CACHES
    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0")}

    with schema_context("acme"):
        assert session_events_publish() == 0
        assert SessionEvent.objects.get(session_id=first["session_id"]).published_at is None

    settings.CACHES = healthy
    with schema_context("acme"):
        assert session_events_publish() == 1
        assert SessionEvent.objects.get(session_id=first["session_id"]).published_at is not None


def test_last_active_at_is_written_at_most_once_a_minute(tenant_a_admin):
    tokens = login_tokens(HOST, SHARED_ADMIN_EMAIL)
    with schema_context("acme"):
        DeviceSession.objects.filter(pk=tokens["session_id"]).update(last_active_at="2020-01-01T00:00:00Z")

    whoami(tokens["access"])
    with schema_context("acme"):
        touched = DeviceSession.objects.get(pk=tokens["session_id"]).last_active_at
        DeviceSession.objects.filter(pk=tokens["session_id"]).update(last_active_at="2020-01-01T00:00:00Z")
    whoami(tokens["access"])  # same minute: no write
    with schema_context("acme"):
        untouched = DeviceSession.objects.get(pk=tokens["session_id"]).last_active_at
        cache.delete(f"device-session-touch:{tokens['session_id']}")  # the next minute
    whoami(tokens["access"])
    with schema_context("acme"):
        touched_again = DeviceSession.objects.get(pk=tokens["session_id"]).last_active_at

    assert touched.year > 2020
    assert untouched.year == 2020
    assert touched_again.year > 2020


# --- housekeeping --------------------------------------------------------------------------------


def test_the_cleanup_ends_expired_families_and_flushes_expired_blacklist_rows(tenant_a_admin):
    from datetime import timedelta

    from django.utils import timezone
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

    from sessions.tasks import sessions_cleanup

    expired = login_tokens(HOST, SHARED_ADMIN_EMAIL)
    with schema_context("acme"):
        DeviceSession.objects.filter(pk=expired["session_id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
        OutstandingToken.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    with schema_context("globex"):
        untouched = DeviceSession.objects.filter(ended_at__isnull=True).count()

    results = sessions_cleanup()

    assert results["acme"]["ended"] == 1
    assert results["acme"]["tokens_flushed"] >= 1
    assert "tenant_template" not in results
    with schema_context("acme"):
        assert DeviceSession.objects.get(pk=expired["session_id"]).end_reason == "expired"
        assert not OutstandingToken.objects.exists()
    with schema_context("globex"):
        assert DeviceSession.objects.filter(ended_at__isnull=True).count() == untouched


def test_an_ended_sessions_access_token_is_refused_and_its_session_not_touched(tenant_a_admin):
    tokens = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="pos-ended")
    assert whoami(tokens["access"]).status_code == 200
    cache.delete(f"device-session-touch:{tokens['session_id']}")  # the next minute
    with schema_context("acme"):
        session = DeviceSession.objects.get(pk=tokens["session_id"])
        sessions_end([session], reason=EndReason.LOGOUT)
        ended_activity = DeviceSession.objects.get(pk=session.pk).last_active_at

    refused = whoami(tokens["access"])

    assert_problem(refused, 401, "session_ended")
    with schema_context("acme"):
        assert DeviceSession.objects.get(pk=tokens["session_id"]).last_active_at == ended_activity


def test_without_redis_the_database_answers_the_session_check_and_nothing_is_written(tenant_a_admin, settings):
    tokens = login_tokens(HOST, SHARED_ADMIN_EMAIL, device_id="pos-no-redis")
    with schema_context("acme"):
        DeviceSession.objects.filter(pk=tokens["session_id"]).update(last_active_at="2020-01-01T00:00:00Z")
    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0")}

    answered = whoami(tokens["access"])

    assert answered.status_code == 200
    with schema_context("acme"):
        assert DeviceSession.objects.get(pk=tokens["session_id"]).last_active_at.year == 2020
