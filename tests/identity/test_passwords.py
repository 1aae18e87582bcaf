"""Password change, reset by email, and the reset page (API.md "Authentication")."""

import itertools
import re

import pytest
from django.core.cache import cache
from django.test import Client
from django_redis import get_redis_connection
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from identity.models import AuditEvent, User
from identity.services.passwords import (
    reset_pointer_cache_key,
    reset_token_cache_key,
    reset_token_digest,
)
from sessions.models import DeviceSession, EndReason
from tenants.models import Domain
from tenants.policy import policy_validate
from tests.concurrency import in_parallel, on_own_connection
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import TEST_PASSWORD, UserFactory

HOST = "acme.idp.test"
EMAIL = "waiter@acme.example"
NEW_PASSWORD = "Fresh-Basil-42!"
CHANGE_URL = "/api/v1/auth/change-password/"
RESET_URL = "/api/v1/auth/password-reset/"
CONFIRM_URL = "/api/v1/auth/password-reset/confirm/"
PAGE_URL = "/reset-password/"
TOKEN_IN_LINK = re.compile(r"/reset-password/\?token=([A-Za-z0-9_-]+)")
_addresses = (f"10.1.{n // 250}.{n % 250 + 1}" for n in itertools.count())


@pytest.fixture
def waiter(tenant_a):
    with schema_context("acme"):
        return UserFactory(email=EMAIL, full_name="Waiter")


@pytest.fixture
def three_sessions_allowed(tenant_a):
    tenant_a.policy = policy_validate(
        {"sessions": {"max_sessions_per_user": 3}}, current=tenant_a.policy, max_devices_per_user=3
    )
    tenant_a.save()


def anonymous(host=HOST, ip=None):
    """A client from a fresh address unless `ip` is given, so per-IP throttles stay out of
    tests that are not about them."""
    return APIClient(HTTP_HOST=host, REMOTE_ADDR=ip or next(_addresses))


def password_is(password, email=EMAIL):
    with schema_context("acme"):
        return User.objects.get(email=email).check_password(password)


def refreshed(user):
    with schema_context("acme"):
        return User.objects.get(pk=user.pk)


def active_sessions(user):
    with schema_context("acme"):
        return {
            str(pk)
            for pk in DeviceSession.objects.filter(user=user, ended_at__isnull=True).values_list("id", flat=True)
        }


def audit_types(user):
    with schema_context("acme"):
        return list(AuditEvent.objects.filter(target_id=str(user.pk)).values_list("type", flat=True))


def change(client, current=TEST_PASSWORD, new=NEW_PASSWORD, **extra):
    return client.post(CHANGE_URL, {"current_password": current, "new_password": new} | extra, format="json")


def request_reset_token(capture, mailoutbox, email=EMAIL, host=HOST):
    """Ask for a reset through the API and return the token from the emailed link."""
    sent_before = len(mailoutbox)
    with capture(execute=True):
        response = anonymous(host).post(RESET_URL, {"email": email}, format="json")
    assert response.status_code == 202, response.content
    assert len(mailoutbox) == sent_before + 1
    match = TOKEN_IN_LINK.search(mailoutbox[-1].body)
    assert match is not None, mailoutbox[-1].body
    return match.group(1)


def confirm(token, new=NEW_PASSWORD, host=HOST):
    return anonymous(host).post(CONFIRM_URL, {"token": token, "new_password": new}, format="json")


def redis_ttl(key):
    return cache.ttl(key)  # type: ignore[attr-defined]  # django-redis' extension of the cache API


def page_client():
    return Client(HTTP_HOST=HOST, REMOTE_ADDR=next(_addresses), enforce_csrf_checks=True)


def csrf_token_of(response):
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode())
    assert match is not None
    return match.group(1)


# --- change ------------------------------------------------------------------------------


def test_change_password_sets_the_new_password_and_the_current_session_stays_valid(
    waiter, mailoutbox, django_capture_on_commit_callbacks
):
    tokens = login_tokens(HOST, EMAIL)
    client = bearer_client(HOST, tokens["access"])

    with django_capture_on_commit_callbacks(execute=True):
        response = change(client)

    assert response.status_code == 200, response.content
    assert response.json() == {"detail": "Your password has been changed.", "other_sessions_ended": 0}
    assert password_is(NEW_PASSWORD)
    assert client.get("/api/v1/auth/whoami/").status_code == 200
    refresh = anonymous().post("/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert refresh.status_code == 200, refresh.content
    assert "password.changed" in audit_types(waiter)
    [notice] = mailoutbox
    assert notice.to == [EMAIL]
    assert "changed" in notice.subject
    assert NEW_PASSWORD not in notice.body and TEST_PASSWORD not in notice.body


def test_change_password_ends_the_users_other_sessions_but_not_the_current_one(waiter, three_sessions_allowed):
    current = login_tokens(HOST, EMAIL, device_id="pos-1")
    other = login_tokens(HOST, EMAIL, device_id="tablet-2")

    response = change(bearer_client(HOST, current["access"]))

    assert response.status_code == 200, response.content
    assert response.json()["other_sessions_ended"] == 1
    assert active_sessions(waiter) == {current["session_id"]}
    with schema_context("acme"):
        assert DeviceSession.objects.get(pk=other["session_id"]).end_reason == EndReason.PASSWORD_CHANGE
    assert_problem(bearer_client(HOST, other["access"]).get("/api/v1/auth/whoami/"), 401, "session_ended")
    assert bearer_client(HOST, current["access"]).get("/api/v1/auth/whoami/").status_code == 200


def test_change_password_with_logout_other_sessions_false_keeps_the_other_sessions(waiter, three_sessions_allowed):
    current = login_tokens(HOST, EMAIL, device_id="pos-1")
    other = login_tokens(HOST, EMAIL, device_id="tablet-2")
    before = active_sessions(waiter)

    response = change(bearer_client(HOST, current["access"]), logout_other_sessions=False)

    assert response.status_code == 200, response.content
    assert response.json()["other_sessions_ended"] == 0
    assert active_sessions(waiter) == before and len(before) == 2
    assert bearer_client(HOST, other["access"]).get("/api/v1/auth/whoami/").status_code == 200


def test_change_password_completes_a_forced_change_so_other_endpoints_answer_again(waiter):
    with schema_context("acme"):
        User.objects.filter(pk=waiter.pk).update(must_change_password=True)
    client = bearer_client(HOST, login_tokens(HOST, EMAIL)["access"])
    # whoami answers during a forced change; anything else is refused until it is done.
    assert client.get("/api/v1/auth/whoami/").json()["must_change_password"] is True
    assert_problem(client.post("/api/v1/auth/whoami/"), 403, "password_change_required")

    response = change(client)

    assert response.status_code == 200, response.content
    assert refreshed(waiter).must_change_password is False
    assert client.get("/api/v1/auth/whoami/").json()["must_change_password"] is False
    # Past the forced-change gate: the request now reaches the view (which has no POST).
    assert_problem(client.post("/api/v1/auth/whoami/"), 405, "method_not_allowed")


def test_change_password_with_a_wrong_current_password_answers_400_wrong_password_and_changes_nothing(
    waiter, three_sessions_allowed, mailoutbox, django_capture_on_commit_callbacks
):
    current = login_tokens(HOST, EMAIL, device_id="pos-1")
    login_tokens(HOST, EMAIL, device_id="tablet-2")
    before = active_sessions(waiter)

    with django_capture_on_commit_callbacks(execute=True):
        response = change(bearer_client(HOST, current["access"]), current="Not-The-Passw0rd!")

    body = assert_problem(response, 400, "wrong_password")
    assert "current_password" in body["errors"]
    assert password_is(TEST_PASSWORD)
    assert active_sessions(waiter) == before
    assert mailoutbox == []
    assert "password.change_failed" in audit_types(waiter)
    assert "password.changed" not in audit_types(waiter)


def test_change_password_breaking_the_policy_answers_400_password_policy_per_rule_and_changes_nothing(waiter):
    client = bearer_client(HOST, login_tokens(HOST, EMAIL)["access"])

    response = change(client, new="short")

    body = assert_problem(response, 400, "password_policy")
    assert set(body["errors"]) == {"new_password"}
    assert len(body["errors"]["new_password"]) == 4  # length, upper, digit, special
    assert password_is(TEST_PASSWORD)


def test_change_password_to_the_current_password_answers_400_password_reused(waiter):
    client = bearer_client(HOST, login_tokens(HOST, EMAIL)["access"])

    response = change(client, new=TEST_PASSWORD)

    body = assert_problem(response, 400, "password_reused")
    assert "new_password" in body["errors"]
    assert "password.changed" not in audit_types(waiter)


def test_change_password_without_a_bearer_token_answers_401(waiter):
    response = change(anonymous())

    assert_problem(response, 401, "not_authenticated")
    assert password_is(TEST_PASSWORD)


def test_change_password_with_missing_fields_answers_400_invalid_request(waiter):
    client = bearer_client(HOST, login_tokens(HOST, EMAIL)["access"])

    response = client.post(CHANGE_URL, {"new_password": NEW_PASSWORD}, format="json")

    body = assert_problem(response, 400, "invalid_request")
    assert "current_password" in body["errors"]
    assert password_is(TEST_PASSWORD)


def test_change_password_stops_answering_guesses_after_the_lockout_threshold_of_wrong_passwords(waiter):
    client = bearer_client(HOST, login_tokens(HOST, EMAIL)["access"])
    for _ in range(5):  # the tenant's lockout threshold
        assert_problem(change(client, current="Guess-Numb3r!"), 400, "wrong_password")

    response = change(client)  # even the right password is not judged now

    assert_problem(response, 429, "throttled")
    assert 0 < int(response["Retry-After"]) <= 15 * 60
    assert password_is(TEST_PASSWORD)


def test_policy_failures_do_not_count_as_wrong_password_guesses(waiter):
    client = bearer_client(HOST, login_tokens(HOST, EMAIL)["access"])
    for _ in range(6):
        assert_problem(change(client, new="weak"), 400, "password_policy")

    assert change(client).status_code == 200


# --- reset request --------------------------------------------------------------------------


def test_password_reset_for_a_known_email_answers_202_and_emails_a_single_use_link(
    waiter, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = anonymous().post(RESET_URL, {"email": "  Waiter@ACME.example "}, format="json")

    assert response.status_code == 202, response.content
    [message] = mailoutbox
    assert message.to == [EMAIL]
    assert re.search(r"http://acme\.idp\.test/reset-password/\?token=[A-Za-z0-9_-]{43}\s", message.body)
    assert "password.reset_requested" in audit_types(waiter)


def test_password_reset_for_an_unknown_email_answers_the_same_202_and_sends_nothing(
    waiter, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        known = anonymous().post(RESET_URL, {"email": EMAIL}, format="json")
        unknown = anonymous().post(RESET_URL, {"email": "nobody@acme.example"}, format="json")

    assert unknown.status_code == known.status_code == 202
    assert unknown.content == known.content
    assert unknown["Content-Type"] == known["Content-Type"]
    assert [message.to for message in mailoutbox] == [[EMAIL]]


def test_password_reset_for_a_deactivated_user_sends_nothing(waiter, mailoutbox, django_capture_on_commit_callbacks):
    with schema_context("acme"):
        User.objects.filter(pk=waiter.pk).update(is_active=False)

    with django_capture_on_commit_callbacks(execute=True):
        response = anonymous().post(RESET_URL, {"email": EMAIL}, format="json")

    assert response.status_code == 202
    assert mailoutbox == []


def test_password_reset_with_a_malformed_email_answers_400_invalid_request(waiter, mailoutbox):
    response = anonymous().post(RESET_URL, {"email": "not an email"}, format="json")

    body = assert_problem(response, 400, "invalid_request")
    assert "email" in body["errors"]
    assert mailoutbox == []


def test_password_reset_link_uses_the_tenants_registered_primary_domain_not_the_request_host(
    tenant_a, waiter, mailoutbox, django_capture_on_commit_callbacks
):
    Domain(domain="login.acme.example", tenant=tenant_a, is_primary=True).save()

    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox, host=HOST)

    assert mailoutbox[0].body.count("http://login.acme.example/reset-password/?token=") == 1
    assert "acme.idp.test" not in mailoutbox[0].body
    assert confirm(token).status_code == 200


def test_password_reset_token_is_stored_only_as_its_hash(waiter, mailoutbox, django_capture_on_commit_callbacks):
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)

    redis = get_redis_connection("default")
    seen_digest = False
    for key in redis.scan_iter("*"):
        assert token.encode() not in key
        if redis.type(key) == b"string":
            value = redis.get(key) or b""
            assert token.encode() not in value
            seen_digest = seen_digest or reset_token_digest(token).encode() in key + value
    assert seen_digest


def test_password_reset_token_expires_after_ten_minutes(waiter, mailoutbox, django_capture_on_commit_callbacks):
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)

    with schema_context("acme"):
        assert 590 <= redis_ttl(reset_token_cache_key(reset_token_digest(token))) <= 600
        assert 590 <= redis_ttl(reset_pointer_cache_key(waiter.pk)) <= 600


def test_password_reset_throttle_answers_429_after_three_requests_a_minute_for_one_ip_and_email(waiter):
    client = anonymous(ip="198.51.100.9")
    statuses = [client.post(RESET_URL, {"email": EMAIL}, format="json").status_code for _ in range(3)]

    response = client.post(RESET_URL, {"email": EMAIL}, format="json")

    assert statuses == [202, 202, 202]
    assert_problem(response, 429, "throttled")
    assert 0 < int(response["Retry-After"]) <= 60
    assert response["RateLimit-Limit"] == "3"
    assert response["RateLimit-Remaining"] == "0"
    assert int(response["RateLimit-Reset"]) > 0
    # Another address for the same email, or another email from the same address, is counted apart.
    assert anonymous(ip="198.51.100.10").post(RESET_URL, {"email": EMAIL}, format="json").status_code == 202
    assert client.post(RESET_URL, {"email": "other@acme.example"}, format="json").status_code == 202


# --- reset confirm --------------------------------------------------------------------------


def test_password_reset_confirm_sets_the_password_and_ends_every_session(
    waiter, three_sessions_allowed, mailoutbox, django_capture_on_commit_callbacks
):
    first = login_tokens(HOST, EMAIL, device_id="pos-1")
    second = login_tokens(HOST, EMAIL, device_id="tablet-2")
    with schema_context("acme"):
        User.objects.filter(pk=waiter.pk).update(must_change_password=True)
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)

    with django_capture_on_commit_callbacks(execute=True):
        response = confirm(token)

    assert response.status_code == 200, response.content
    assert password_is(NEW_PASSWORD)
    assert refreshed(waiter).must_change_password is False
    assert active_sessions(waiter) == set()
    with schema_context("acme"):
        reasons = set(DeviceSession.objects.filter(user=waiter).values_list("end_reason", flat=True))
    assert reasons == {EndReason.PASSWORD_RESET}
    for tokens in (first, second):
        assert_problem(bearer_client(HOST, tokens["access"]).get("/api/v1/auth/whoami/"), 401, "session_ended")
    assert "password.reset" in audit_types(waiter)
    notice = mailoutbox[-1]
    assert "reset" in notice.subject and token not in notice.body and NEW_PASSWORD not in notice.body
    assert login_tokens(HOST, EMAIL, password=NEW_PASSWORD)["access"]


def test_password_reset_confirm_lifts_a_lockout(waiter, mailoutbox, django_capture_on_commit_callbacks):
    for _ in range(5):
        anonymous().post(
            "/api/v1/auth/token/", {"email": EMAIL, "password": "Wrong-Passw0rd!", "device_id": "pos-1"}, format="json"
        )
    locked = anonymous().post(
        "/api/v1/auth/token/", {"email": EMAIL, "password": TEST_PASSWORD, "device_id": "pos-1"}, format="json"
    )
    assert_problem(locked, 423, "account_locked")
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)

    assert confirm(token).status_code == 200

    assert login_tokens(HOST, EMAIL, password=NEW_PASSWORD)["access"]


def test_password_reset_token_works_only_once(waiter, mailoutbox, django_capture_on_commit_callbacks):
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)
    assert confirm(token).status_code == 200

    response = confirm(token, new="Another-Pass-77!")

    assert_problem(response, 400, "invalid_token")
    assert password_is(NEW_PASSWORD)


def test_a_newer_password_reset_supersedes_the_older_link(waiter, mailoutbox, django_capture_on_commit_callbacks):
    older = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)
    newer = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)

    assert_problem(confirm(older), 400, "invalid_token")
    assert password_is(TEST_PASSWORD)
    with schema_context("acme"):
        assert cache.get(reset_token_cache_key(reset_token_digest(older))) is None
    assert confirm(newer).status_code == 200


def test_an_expired_password_reset_token_answers_invalid_token(waiter, mailoutbox, django_capture_on_commit_callbacks):
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)
    with schema_context("acme"):
        cache.delete(reset_token_cache_key(reset_token_digest(token)))  # what the TTL does

    assert_problem(confirm(token), 400, "invalid_token")
    assert password_is(TEST_PASSWORD)


@pytest.mark.parametrize("token", ["made-up", "A" * 43, "", "x" * 500])
def test_a_made_up_password_reset_token_answers_400(waiter, token):
    response = confirm(token)

    # A blank token is a missing field; anything else is a token that does not exist.
    assert_problem(response, 400, "invalid_request" if token == "" else "invalid_token")
    assert password_is(TEST_PASSWORD)


def test_a_password_reset_token_of_one_tenant_is_invalid_at_another(
    waiter, tenant_b, mailoutbox, django_capture_on_commit_callbacks
):
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)

    assert_problem(confirm(token, host="globex.idp.test"), 400, "invalid_token")
    assert confirm(token).status_code == 200


def test_a_policy_failure_on_confirm_changes_nothing_and_keeps_the_token_usable(
    waiter, mailoutbox, django_capture_on_commit_callbacks
):
    session = login_tokens(HOST, EMAIL)
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)

    body = assert_problem(confirm(token, new="weakpass"), 400, "password_policy")

    assert set(body["errors"]) == {"new_password"}
    assert password_is(TEST_PASSWORD)
    assert active_sessions(waiter) == {session["session_id"]}
    assert bearer_client(HOST, session["access"]).get("/api/v1/auth/whoami/").status_code == 200
    assert confirm(token).status_code == 200


def test_confirm_with_the_current_password_answers_password_reused_and_keeps_the_token(
    waiter, mailoutbox, django_capture_on_commit_callbacks
):
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)

    assert_problem(confirm(token, new=TEST_PASSWORD), 400, "password_reused")

    assert confirm(token).status_code == 200


def test_confirm_for_a_user_deactivated_since_the_request_answers_invalid_token(
    waiter, mailoutbox, django_capture_on_commit_callbacks
):
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)
    with schema_context("acme"):
        User.objects.filter(pk=waiter.pk).update(is_active=False)

    assert_problem(confirm(token), 400, "invalid_token")
    assert password_is(TEST_PASSWORD)


def test_password_reset_confirm_throttle_answers_429_after_ten_attempts_an_hour_from_one_ip(waiter):
    client = anonymous(ip="198.51.100.20")
    for _ in range(10):
        client.post(CONFIRM_URL, {"token": "A" * 43, "new_password": NEW_PASSWORD}, format="json")

    response = client.post(CONFIRM_URL, {"token": "A" * 43, "new_password": NEW_PASSWORD}, format="json")

    assert_problem(response, 429, "throttled")
    assert response["RateLimit-Limit"] == "10"


def test_no_password_or_token_reaches_the_audit_trail(waiter, mailoutbox, django_capture_on_commit_callbacks):
    client = bearer_client(HOST, login_tokens(HOST, EMAIL)["access"])
    change(client, current="Wrong-Guess-1!")
    assert change(client).status_code == 200
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)
    confirm(token, new="weak")
    assert confirm(token, new="Third-Pass-99!").status_code == 200

    with schema_context("acme"):
        rows = [str(row) for row in AuditEvent.objects.values("type", "data")]
    for secret in (TEST_PASSWORD, NEW_PASSWORD, "Wrong-Guess-1!", "Third-Pass-99!", token):
        assert not any(secret in row for row in rows)


def test_concurrent_confirmations_of_one_reset_token_let_exactly_one_through(committed_tenant, mailoutbox):
    host = "racing.idp.test"
    asked = on_own_connection(
        lambda: anonymous(host).post(RESET_URL, {"email": SHARED_ADMIN_EMAIL}, format="json").status_code
    )
    assert asked == 202
    match = TOKEN_IN_LINK.search(mailoutbox[-1].body)
    assert match is not None
    numbers = itertools.count()

    def attempt():
        password = f"Racing-Pass-{next(numbers)}!"
        return password, confirm(match.group(1), new=password, host=host).status_code

    results = in_parallel(attempt, 8)

    winners = [password for password, status in results if status == 200]
    assert len(winners) == 1, results
    assert sorted(status for _, status in results) == [200] + [400] * 7

    def winner_is_set():
        with schema_context("racing"):
            return User.objects.get(email=SHARED_ADMIN_EMAIL).check_password(winners[0])

    assert on_own_connection(winner_is_set)


# --- the reset page ---------------------------------------------------------------------------


def test_reset_page_renders_a_self_contained_form_with_a_csrf_token(waiter):
    response = page_client().get(PAGE_URL, {"token": "any-token-at-all"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert 'name="csrfmiddlewaretoken"' in html
    # strict-origin, not no-referrer: browsers send `Origin: null` under no-referrer and
    # the CSRF check would refuse the form.
    assert '<meta name="referrer" content="strict-origin">' in html
    assert response["Referrer-Policy"] == "strict-origin"
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert "no-store" in response["Cache-Control"]
    assert 'method="post"' in html and 'action="/reset-password/"' in html
    assert not re.search(r"(https?:)?//", html)  # nothing external, not even scheme-relative
    assert "<script" not in html and "src=" not in html


def test_reset_page_looks_the_same_for_a_good_and_a_bad_token_before_submission(
    waiter, mailoutbox, django_capture_on_commit_callbacks
):
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)
    bogus = "B" * 43

    good = page_client().get(PAGE_URL, {"token": token})
    bad = page_client().get(PAGE_URL, {"token": bogus})

    def without_secrets(response, value):
        html = response.content.decode().replace(value, "TOKEN")
        html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
        return re.sub(r'nonce="[^"]+"', "", html)  # the style's CSP nonce is fresh per response

    assert good.status_code == bad.status_code == 200
    assert without_secrets(good, token) == without_secrets(bad, bogus)


def test_posting_the_reset_page_form_resets_the_password_and_shows_success(
    waiter, mailoutbox, django_capture_on_commit_callbacks
):
    session = login_tokens(HOST, EMAIL)
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)
    client = page_client()
    form = client.get(PAGE_URL, {"token": token})

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            PAGE_URL,
            {
                "csrfmiddlewaretoken": csrf_token_of(form),
                "token": token,
                "new_password": NEW_PASSWORD,
                "new_password_confirm": NEW_PASSWORD,
            },
        )

    assert response.status_code == 200, response.content
    assert "Your password has been reset" in response.content.decode()
    assert token not in response.content.decode()
    assert password_is(NEW_PASSWORD)
    assert_problem(bearer_client(HOST, session["access"]).get("/api/v1/auth/whoami/"), 401, "session_ended")
    assert "password.reset" in audit_types(waiter)
    assert mailoutbox[-1].subject.endswith("password was reset")


def test_posting_the_reset_page_with_an_invalid_token_shows_the_error_and_changes_nothing(waiter):
    client = page_client()
    form = client.get(PAGE_URL, {"token": "C" * 43})

    response = client.post(
        PAGE_URL,
        {
            "csrfmiddlewaretoken": csrf_token_of(form),
            "token": "C" * 43,
            "new_password": NEW_PASSWORD,
            "new_password_confirm": NEW_PASSWORD,
        },
    )

    assert response.status_code == 400
    assert "This link is invalid or expired" in response.content.decode()
    assert "<form" not in response.content.decode()
    assert password_is(TEST_PASSWORD)


def test_posting_the_reset_page_with_a_weak_password_shows_the_policy_and_keeps_the_token(
    waiter, mailoutbox, django_capture_on_commit_callbacks
):
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)
    client = page_client()
    form = client.get(PAGE_URL, {"token": token})
    data = {"csrfmiddlewaretoken": csrf_token_of(form), "token": token}

    weak = client.post(PAGE_URL, data | {"new_password": "weak", "new_password_confirm": "weak"})
    mismatch = client.post(PAGE_URL, data | {"new_password": NEW_PASSWORD, "new_password_confirm": "Other-Pass-1!"})

    assert weak.status_code == 400
    assert "Use at least 8 characters." in weak.content.decode()
    assert mismatch.status_code == 400
    assert "The two passwords do not match." in mismatch.content.decode()
    assert password_is(TEST_PASSWORD)
    assert confirm(token).status_code == 200


def test_posting_the_reset_page_without_the_csrf_token_is_refused(
    waiter, mailoutbox, django_capture_on_commit_callbacks
):
    token = request_reset_token(django_capture_on_commit_callbacks, mailoutbox)

    response = page_client().post(
        PAGE_URL, {"token": token, "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD}
    )

    assert response.status_code == 403
    assert password_is(TEST_PASSWORD)
    assert confirm(token).status_code == 200


def test_reset_page_without_a_token_says_the_link_is_invalid(waiter):
    response = page_client().get(PAGE_URL)

    assert response.status_code == 400
    assert "This link is invalid or expired" in response.content.decode()


def test_reset_page_shares_the_confirm_throttle_of_the_api(waiter):
    ip = "198.51.100.30"
    api = anonymous(ip=ip)
    for _ in range(10):
        api.post(CONFIRM_URL, {"token": "A" * 43, "new_password": NEW_PASSWORD}, format="json")
    client = Client(HTTP_HOST=HOST, REMOTE_ADDR=ip)

    response = client.post(
        PAGE_URL, {"token": "A" * 43, "new_password": NEW_PASSWORD, "new_password_confirm": NEW_PASSWORD}
    )

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many attempts" in response.content.decode()
