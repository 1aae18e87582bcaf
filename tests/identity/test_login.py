"""Password login: attempts, lockout, throttles, refusals (API.md "Login order")."""

import itertools
import logging
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context
from rest_framework.test import APIClient

from config.settings.base import redis_cache
from identity.models import AuditEvent, LoginAttempt, LoginLockout, User
from identity.services import login as login_services
from identity.services.login import login_credentials_check
from notifications.models import OutboxEmail
from sessions.models import DeviceSession
from sessions.services import Device
from tests.concurrency import in_parallel, on_own_connection
from tests.core.test_errors import assert_problem
from tests.factories import TEST_PASSWORD, UserFactory
from tests.identity.hashers import CountingMD5Hasher

HOST = "acme.idp.test"
EMAIL = "cook@acme.example"
_addresses = (f"10.0.{n // 250}.{n % 250 + 1}" for n in itertools.count())


def post_login(email=EMAIL, password=TEST_PASSWORD, *, ip=None, device_id="pos-1", host=HOST, **extra):
    """One login; every call comes from a fresh address unless `ip` is given, so the
    per-IP+email throttle stays out of tests that are about the lockout."""
    client = APIClient(HTTP_HOST=host, REMOTE_ADDR=ip or next(_addresses), HTTP_USER_AGENT="TillOS/2.1")
    body = {"email": email, "password": password, "device_id": device_id, "device_name": "Till 1", "device_type": "pos"}
    return client.post("/api/v1/auth/token/", body | extra, format="json")


@pytest.fixture
def cook(tenant_a):
    with schema_context("acme"):
        return UserFactory(email=EMAIL, full_name="Cook")


def attempts(email=EMAIL):
    with schema_context("acme"):
        return list(LoginAttempt.objects.filter(email=email).order_by("id"))


def lock_out(email=EMAIL):
    for _ in range(5):
        assert post_login(email, "Wrong-Passw0rd!").status_code == 401


# --- success ---------------------------------------------------------------------------------


def test_login_returns_tokens_the_session_and_the_user(cook):
    response = post_login(ip="203.0.113.7")

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "refresh", "token_type", "expires_in", "session_id", "user"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 30 * 60
    assert body["user"] == {
        "id": str(cook.pk),
        "email": EMAIL,
        "full_name": "Cook",
        "roles": [],
        "must_change_password": False,
    }
    with schema_context("acme"):
        session = DeviceSession.objects.get(pk=body["session_id"])
        assert (session.user_id, session.device_id, session.device_type) == (cook.pk, "pos-1", "pos")
        assert set(AuditEvent.objects.values_list("type", flat=True)) >= {"login.succeeded", "session.started"}
    [attempt] = attempts()
    assert attempt.success and attempt.user_id == cook.pk
    assert (attempt.ip, attempt.user_agent, attempt.device_id) == ("203.0.113.7", "TillOS/2.1", "pos-1")


def test_email_is_matched_whatever_its_case_and_surrounding_spaces(cook):
    assert post_login("  Cook@ACME.Example ").status_code == 200


# --- refusals ---------------------------------------------------------------------------------


def test_wrong_password_and_unknown_email_get_the_same_401(cook):
    wrong = post_login(EMAIL, "Wrong-Passw0rd!")
    unknown = post_login("nobody@acme.example", "Wrong-Passw0rd!")

    assert_problem(wrong, 401, "invalid_credentials")
    assert wrong.json() == unknown.json()
    assert [a.reason for a in attempts()] == ["invalid_credentials"]
    assert [(a.user_id, a.reason) for a in attempts("nobody@acme.example")] == [(None, "invalid_credentials")]


def test_an_unknown_email_costs_the_same_password_check_as_a_known_one(cook, settings):
    settings.PASSWORD_HASHERS = ["tests.identity.hashers.CountingMD5Hasher"]
    login_services._dummy_password_hash.cache_clear()
    with schema_context("acme"):
        User.objects.filter(pk=cook.pk).update(password=make_password(TEST_PASSWORD))

    CountingMD5Hasher.verifications = 0
    post_login(EMAIL, "Wrong-Passw0rd!")
    known = CountingMD5Hasher.verifications
    CountingMD5Hasher.verifications = 0
    post_login("nobody@acme.example", "Wrong-Passw0rd!")
    unknown = CountingMD5Hasher.verifications
    login_services._dummy_password_hash.cache_clear()

    assert known == unknown == 1


def test_an_unverified_account_is_refused_only_to_someone_who_knows_its_password(cook):
    with schema_context("acme"):
        User.objects.filter(pk=cook.pk).update(is_active=False, email_verified_at=None)

    assert_problem(post_login(), 403, "email_not_verified")
    assert_problem(post_login(password="Wrong-Passw0rd!"), 401, "invalid_credentials")


def test_a_deactivated_account_is_refused_with_account_disabled(cook):
    with schema_context("acme"):
        User.objects.filter(pk=cook.pk).update(is_active=False, deactivated_at=timezone.now())

    assert_problem(post_login(), 403, "account_disabled")
    with schema_context("acme"):
        assert not DeviceSession.objects.filter(user=cook).exists()


def test_a_suspended_tenant_cannot_log_in(cook, tenant_a):
    tenant_a.is_active = False
    tenant_a.save()

    assert_problem(post_login(), 403, "tenant_inactive")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"device_id": ""}, "device_id"),
        ({"email": ["a", "b"]}, "email"),
        ({"password": None}, "password"),
        ({"device_type": "x" * 33}, "device_type"),
    ],
)
def test_bad_login_input_answers_400_and_records_nothing(cook, body, field):
    response = post_login(**body)

    assert field in assert_problem(response, 400, "invalid_request")["errors"]
    assert attempts() == []


# --- lockout ---------------------------------------------------------------------------------


def test_the_fifth_failure_answers_401_and_the_next_attempt_423_even_with_the_right_password(cook):
    responses = [post_login(password="Wrong-Passw0rd!") for _ in range(5)]
    locked = post_login()

    assert [r.status_code for r in responses] == [401] * 5
    assert_problem(locked, 423, "account_locked")
    assert 899 <= int(locked["Retry-After"]) <= 900
    assert [a.reason for a in attempts()][-1] == "locked"
    with schema_context("acme"):
        assert AuditEvent.objects.filter(type="account.locked", target_id=str(cook.pk)).count() == 1
        assert not DeviceSession.objects.filter(user=cook).exists()


def test_attempts_while_locked_do_not_extend_the_lock(cook):
    lock_out()
    with schema_context("acme"):
        locked_until = LoginLockout.objects.get(email=EMAIL).locked_until

    for _ in range(3):
        assert post_login(password="Wrong-Passw0rd!").status_code == 423

    with schema_context("acme"):
        assert LoginLockout.objects.get(email=EMAIL).locked_until == locked_until


def test_an_unknown_email_is_locked_the_same_way_with_the_same_answers(cook):
    known = [post_login(EMAIL, "Wrong-Passw0rd!") for _ in range(6)]
    unknown = [post_login("ghost@acme.example", "Wrong-Passw0rd!") for _ in range(6)]

    assert [(r.status_code, r.json()) for r in known] == [(r.status_code, r.json()) for r in unknown]
    assert unknown[-1].status_code == 423
    assert known[-1]["Retry-After"] == unknown[-1]["Retry-After"]


def test_a_success_before_the_threshold_resets_the_count(cook):
    for _ in range(4):
        post_login(password="Wrong-Passw0rd!")
    assert post_login().status_code == 200

    after = [post_login(password="Wrong-Passw0rd!").status_code for _ in range(4)]

    assert after == [401] * 4
    assert post_login().status_code == 200


def test_case_and_whitespace_variants_of_an_email_share_one_counter(cook):
    for variant in [
        "cook@acme.example",
        "COOK@acme.example",
        " Cook@Acme.Example",
        "cook@ACME.EXAMPLE ",
        "Cook@acme.example",
    ]:
        post_login(variant, "Wrong-Passw0rd!")

    assert_problem(post_login(), 423, "account_locked")


def test_failures_older_than_the_window_do_not_count(cook):
    for _ in range(4):
        post_login(password="Wrong-Passw0rd!")
    with schema_context("acme"):
        LoginAttempt.objects.filter(email=EMAIL).update(timestamp=timezone.now() - timedelta(minutes=16))

    assert post_login(password="Wrong-Passw0rd!").status_code == 401
    assert post_login().status_code == 200


def test_the_lock_ends_after_its_duration(cook):
    lock_out()
    with schema_context("acme"):
        LoginLockout.objects.filter(email=EMAIL).update(locked_until=timezone.now() - timedelta(seconds=1))

    assert post_login().status_code == 200


def test_the_tenants_lockout_policy_applies(cook, tenant_a):
    from tenants.policy import policy_validate

    tenant_a.policy = policy_validate({"lockout": {"threshold": 2}}, current=tenant_a.policy, max_devices_per_user=3)
    tenant_a.save()

    assert [post_login(password="Wrong-Passw0rd!").status_code for _ in range(3)] == [401, 401, 423]


# --- durability ------------------------------------------------------------------------------


def test_the_attempt_stays_recorded_when_the_session_step_rolls_back(cook, tenant_a, monkeypatch):
    def broken_session_start(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(login_services, "session_start", broken_session_start)

    with pytest.raises(RuntimeError), tenant_context(tenant_a):
        login_services.login(tenant=tenant_a, email=EMAIL, password=TEST_PASSWORD, device=Device("pos-1"))

    assert [a.success for a in attempts()] == [True]
    with schema_context("acme"):
        assert not DeviceSession.objects.exists()


def test_attempts_cannot_be_recorded_inside_a_transaction_that_could_roll_them_back(cook):
    with pytest.raises(RuntimeError, match="durable"), schema_context("acme"), transaction.atomic():
        login_credentials_check(
            email=EMAIL, password="Wrong-Passw0rd!", device=Device("pos-1"), lockout_policy={"threshold": 5}
        )


def test_an_old_hash_is_upgraded_to_argon2_at_login(cook, settings):
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    with schema_context("acme"):
        assert User.objects.get(pk=cook.pk).password.startswith("md5$")

    assert post_login().status_code == 200

    with schema_context("acme"):
        assert User.objects.get(pk=cook.pk).password.startswith("argon2")


# --- throttle --------------------------------------------------------------------------------


def test_login_is_throttled_per_address_and_email_with_ratelimit_headers(cook):
    first = post_login(password="Wrong-Passw0rd!", ip="198.51.100.1")
    for _ in range(4):
        post_login(password="Wrong-Passw0rd!", ip="198.51.100.1")
    throttled = post_login(ip="198.51.100.1")

    assert first["RateLimit-Limit"] == "5"
    assert first["RateLimit-Remaining"] == "4"
    assert_problem(throttled, 429, "throttled")
    assert 1 <= int(throttled["Retry-After"]) <= 60
    assert throttled["RateLimit-Remaining"] == "0"
    # The throttle answers first: this attempt was not judged or recorded.
    assert len(attempts()) == 5
    assert post_login(ip="198.51.100.2").status_code == 423  # another address: the lockout answers


def test_throttles_fail_open_and_the_lockout_still_holds_when_redis_is_down(cook, settings, caplog):
    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0")}

    with caplog.at_level(logging.ERROR, logger="idp.ratelimit"):
        statuses = [post_login(password="Wrong-Passw0rd!", ip="198.51.100.9").status_code for _ in range(6)]

    assert statuses == [401] * 5 + [423]
    assert "failing open" in caplog.text


# --- concurrency -----------------------------------------------------------------------------


def test_fifty_parallel_wrong_passwords_for_one_account_judge_at_most_five():
    email = "race@acme.example"

    def create():
        with schema_context("acme"):
            return User.objects.create_user(email=email, password=TEST_PASSWORD).pk

    def cleanup():
        with schema_context("acme"):
            LoginAttempt.objects.filter(email=email).delete()
            LoginLockout.objects.filter(email=email).delete()
            AuditEvent.objects.filter(data__email=email).delete()
            OutboxEmail.objects.filter(to=email).delete()  # the committed "account locked" email
            User.objects.filter(email=email).delete()

    on_own_connection(create)
    try:
        counter = itertools.count()
        results = in_parallel(
            lambda: post_login(email, "Wrong-Passw0rd!", ip=f"192.0.2.{next(counter) + 1}").status_code, 50
        )
        reasons = on_own_connection(lambda: [a.reason for a in attempts(email)])
    finally:
        on_own_connection(cleanup)

    assert sorted(set(results)) == [401, 423]
    assert results.count(401) == 5
    assert reasons.count("invalid_credentials") == 5
    assert reasons.count("locked") == 45
