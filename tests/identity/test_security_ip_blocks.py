"""Suspicious activity and IP blocks (docs/audit.md "Rules"): each rule flags what it names,
a rule in the policy's `block_on` blocks the address for the tenant at every authentication
entry point (403 ip_blocked), other addresses and other tenants are unaffected, blocks
expire, admins see and lift them, and Redis down or flushed never lifts a block."""

import itertools
import time
from datetime import timedelta
from typing import Any, cast

import pytest
from django.test import Client, TestCase
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from config.settings.base import redis_cache
from core import read_ahead
from identity import security
from identity.models import AuditEvent, IpBlock, LoginAttempt, LoginLockout, User
from identity.services.security import ip_block_lift
from rbac.catalog import AUDITOR, EMPLOYEE
from rbac.models import Role
from rbac.services import role_assign
from tenants.models import Tenant
from tenants.policy import policy_validate
from tests.concurrency import in_parallel, on_own_connection
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client
from tests.core.test_errors import assert_problem
from tests.factories import TEST_PASSWORD, UserFactory

HOST, OTHER_HOST = "acme.idp.test", "globex.idp.test"
ATTACKER, NEIGHBOUR = "203.0.113.7", "198.51.100.20"
TOKEN = "/api/v1/auth/token/"
BLOCKS = "/api/v1/security/ip-blocks/"


def set_security(tenant: Tenant, **changes: Any) -> None:
    tenant.policy = policy_validate({"security": changes}, current=tenant.policy, max_devices_per_user=3)
    tenant.save()


class CommittingClient(APIClient):
    """Runs a request's on-commit work when the request returns, as a real commit would: the
    test's own transaction never commits (blocks reach Redis on commit)."""

    def generic(self, *args: Any, **kwargs: Any) -> Any:
        with TestCase.captureOnCommitCallbacks(execute=True):
            return super().generic(*args, **kwargs)


def client_from(ip: str, host: str = HOST) -> APIClient:
    return CommittingClient(HTTP_HOST=host, REMOTE_ADDR=ip)


def login(
    ip: str,
    email: str,
    password: str = "Wrong-Passw0rd!",  # noqa: S107
    host: str = HOST,
    device_id: str = "pos-1",
) -> Any:
    return client_from(ip, host).post(
        TOKEN, {"email": email, "password": password, "device_id": device_id}, format="json"
    )


def spray(ip: str, accounts: int, host: str = HOST) -> list[int]:
    """One wrong password for each of `accounts` different emails from `ip`."""
    return [login(ip, f"victim{number}@acme.example", host=host).status_code for number in range(accounts)]


def acme(model_query: Any) -> Any:
    with schema_context("acme"):
        return model_query()


def events_of(type_: str, schema: str = "acme") -> list[AuditEvent]:
    with schema_context(schema):
        return list(AuditEvent.objects.filter(type=type_).order_by("id"))


def acme_user(email: str, role: str | None = None) -> Any:
    with schema_context("acme"):
        user = cast(User, UserFactory(email=email))
        if role:
            role_assign(user=user, role=Role.objects.get(name=role), branch=None, actor=None)
        return user


def client_of(email: str, ip: str = NEIGHBOUR) -> APIClient:
    response = login(ip, email, TEST_PASSWORD, device_id="desk")
    assert response.status_code == 200, response.content
    return CommittingClient(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")


@pytest.fixture
def spraying_blocks(tenant_a: Tenant) -> Tenant:
    """acme blocks an address that failed logins for 3 accounts within 10 minutes."""
    set_security(tenant_a, accounts_threshold=3, accounts_window_minutes=10, block_minutes=30)
    return tenant_a


# --- the address rules, end to end ------------------------------------------------------------------


def test_failed_logins_across_accounts_block_the_address_at_every_entry_point(spraying_blocks, tenant_a_admin):
    assert spray(ATTACKER, 3) == [401, 401, 401]  # the failure that reaches the threshold still answers 401

    attacker = client_from(ATTACKER)
    refused = [
        attacker.post(TOKEN, {"email": SHARED_ADMIN_EMAIL, "password": TEST_PASSWORD, "device_id": "x"}, format="json"),
        attacker.post("/api/v1/auth/token/refresh/", {"refresh": "anything"}, format="json"),
        attacker.post("/api/v1/auth/register/", {"email": "new@acme.example", "password": "x"}, format="json"),
        attacker.post("/api/v1/auth/password-reset/", {"email": SHARED_ADMIN_EMAIL}, format="json"),
        attacker.post("/api/v1/auth/password-reset/confirm/", {"token": "t", "new_password": "p"}, format="json"),
        attacker.post("/api/v1/auth/verify-email/abc/def/"),
        attacker.post("/api/v1/oauth/token/", {"grant_type": "client_credentials"}),
        Client(HTTP_HOST=HOST, REMOTE_ADDR=ATTACKER).post(
            "/admin/login/", {"username": SHARED_ADMIN_EMAIL, "password": TEST_PASSWORD}
        ),
    ]
    for response in refused:
        assert_problem(response, 403, "ip_blocked")
        assert 29 * 60 < int(response["Retry-After"]) <= 30 * 60
    [flag] = events_of("security.flagged")
    assert flag.data == {
        "rule": "failed_logins_across_accounts",
        "ip": ATTACKER,
        "blocked": True,
        "accounts": 3,
        "threshold": 3,
        "window_minutes": 10,
    }
    assert (flag.ip, flag.target_type, flag.target_id) == (ATTACKER, "ip", ATTACKER)
    [blocked] = events_of("ip.blocked")
    block = acme(lambda: IpBlock.objects.get())
    assert (block.ip, block.reason, block.lifted_at) == (ATTACKER, "failed_logins_across_accounts", None)
    assert (blocked.target_type, blocked.target_id) == ("ipblock", str(block.pk))
    assert blocked.data["ip"] == ATTACKER and blocked.data["block_minutes"] == 30
    assert timedelta(minutes=29) < block.expires_at - timezone.now() <= timedelta(minutes=30)


def test_a_blocked_address_is_refused_before_its_attempt_is_recorded(spraying_blocks):
    spray(ATTACKER, 3)
    attempts, events, blocks = acme(
        lambda: (LoginAttempt.objects.count(), AuditEvent.objects.count(), IpBlock.objects.count())
    )

    assert_problem(login(ATTACKER, "victim9@acme.example"), 403, "ip_blocked")

    assert acme(lambda: (LoginAttempt.objects.count(), AuditEvent.objects.count(), IpBlock.objects.count())) == (
        attempts,
        events,
        blocks,
    )


def test_other_addresses_and_other_tenants_are_unaffected(spraying_blocks, tenant_a_admin, tenant_b_admin):
    spray(ATTACKER, 3)

    assert login(NEIGHBOUR, SHARED_ADMIN_EMAIL, TEST_PASSWORD).status_code == 200
    assert login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD, host=OTHER_HOST).status_code == 200
    assert events_of("ip.blocked", "globex") == []
    assert client_from(ATTACKER).get("/health/live/").status_code == 200  # not an entry point


def test_fewer_accounts_than_the_threshold_or_outside_the_window_block_nothing(spraying_blocks):
    assert spray(ATTACKER, 2) == [401, 401]
    with schema_context("acme"):
        LoginAttempt.objects.update(timestamp=timezone.now() - timedelta(minutes=11))
    assert spray(ATTACKER, 2) == [401, 401]  # 2 in the window again (the older ones no longer count)

    assert acme(lambda: IpBlock.objects.count()) == 0
    assert events_of("security.flagged") == []


def test_an_impossible_burst_from_one_address_blocks_it_whatever_the_accounts(tenant_a):
    set_security(tenant_a, burst_threshold=4, burst_seconds=60)

    statuses = [login(ATTACKER, "one@acme.example").status_code for _ in range(4)]

    assert statuses == [401, 401, 401, 401]
    assert_problem(login(ATTACKER, "one@acme.example"), 403, "ip_blocked")
    [flag] = events_of("security.flagged")
    assert flag.data == {
        "rule": "failed_login_burst",
        "ip": ATTACKER,
        "blocked": True,
        "failures": 4,
        "threshold": 4,
        "seconds": 60,
    }


def test_a_rule_left_out_of_block_on_flags_once_and_blocks_nothing(tenant_a, tenant_a_admin):
    set_security(tenant_a, accounts_threshold=3, block_on=["failed_login_burst"])

    assert spray(ATTACKER, 5) == [401] * 5

    [flag] = events_of("security.flagged")  # flagged once, not once per failure
    assert flag.data["blocked"] is False and flag.data["rule"] == "failed_logins_across_accounts"
    assert acme(lambda: IpBlock.objects.count()) == 0
    assert login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD).status_code == 200


def test_an_address_in_an_exempt_network_is_flagged_but_never_blocked(tenant_a, tenant_a_admin):
    set_security(tenant_a, accounts_threshold=3, exempt_networks=["203.0.113.0/24"])

    spray(ATTACKER, 3)

    [flag] = events_of("security.flagged")
    assert flag.data["blocked"] is False
    assert acme(lambda: IpBlock.objects.count()) == 0
    assert login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD).status_code == 200


# --- the account rules ----------------------------------------------------------------------------


def test_refresh_token_reuse_is_flagged_and_blocks_only_when_the_policy_says_so(tenant_a, tenant_a_admin):
    tokens = login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD).json()
    refresh = "/api/v1/auth/token/refresh/"
    assert client_from(ATTACKER).post(refresh, {"refresh": tokens["refresh"]}, format="json").status_code == 200

    reused = client_from(ATTACKER).post(refresh, {"refresh": tokens["refresh"]}, format="json")

    assert_problem(reused, 401, "token_reused")
    [flag] = events_of("security.flagged")
    assert flag.data["rule"] == "refresh_token_reuse" and flag.data["blocked"] is False
    assert (flag.target_type, flag.target_id, flag.ip) == ("user", str(tenant_a_admin.pk), ATTACKER)
    assert flag.data["session_id"] == tokens["session_id"]
    assert login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD).status_code == 200


def test_refresh_token_reuse_blocks_the_address_when_listed_in_block_on(tenant_a, tenant_a_admin):
    set_security(tenant_a, block_on=["refresh_token_reuse"])
    tokens = login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD).json()
    refresh = "/api/v1/auth/token/refresh/"
    client_from(ATTACKER).post(refresh, {"refresh": tokens["refresh"]}, format="json")
    client_from(ATTACKER).post(refresh, {"refresh": tokens["refresh"]}, format="json")

    assert_problem(login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD), 403, "ip_blocked")
    assert login(NEIGHBOUR, SHARED_ADMIN_EMAIL, TEST_PASSWORD).status_code == 200


def lock_out_then_let_the_lock_expire(tenant: Tenant) -> None:
    tenant.policy = policy_validate({"lockout": {"threshold": 2}}, current=tenant.policy, max_devices_per_user=3)
    tenant.save()
    assert [login(NEIGHBOUR, SHARED_ADMIN_EMAIL).status_code for _ in range(3)] == [401, 401, 423]
    with schema_context("acme"):
        LoginLockout.objects.filter(email=SHARED_ADMIN_EMAIL).update(locked_until=timezone.now() - timedelta(seconds=1))


def test_the_first_login_after_a_lockout_from_a_new_device_is_flagged(tenant_a, tenant_a_admin):
    lock_out_then_let_the_lock_expire(tenant_a)

    assert login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD, device_id="unknown-tablet").status_code == 200

    [flag] = events_of("security.flagged")
    assert flag.data == {
        "rule": "new_device_after_lockout",
        "ip": ATTACKER,
        "blocked": False,
        "device_id": "unknown-tablet",
    }
    assert (flag.target_type, flag.target_id) == ("user", str(tenant_a_admin.pk))
    # Only the first success after the lock counts: the next login is ordinary again.
    assert login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD, device_id="other-tablet").status_code == 200
    assert len(events_of("security.flagged")) == 1


def test_a_login_after_a_lockout_from_a_known_device_is_not_flagged(tenant_a, tenant_a_admin):
    assert login(NEIGHBOUR, SHARED_ADMIN_EMAIL, TEST_PASSWORD, device_id="pos-1").status_code == 200
    lock_out_then_let_the_lock_expire(tenant_a)

    assert login(NEIGHBOUR, SHARED_ADMIN_EMAIL, TEST_PASSWORD, device_id="pos-1").status_code == 200

    assert events_of("security.flagged") == []


# --- expiry, lifting, Redis ---------------------------------------------------------------------------


class _Later:
    """identity.security's clock, moved past the block's end."""

    def __init__(self, seconds: float) -> None:
        self.offset = seconds

    def time(self) -> float:
        return time.time() + self.offset


def test_a_block_expires_after_its_minutes(spraying_blocks, tenant_a_admin, monkeypatch):
    spray(ATTACKER, 3)
    assert_problem(login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD), 403, "ip_blocked")

    monkeypatch.setattr(security, "time", _Later(30 * 60 + 2))

    assert login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD).status_code == 200


def test_an_expired_block_is_not_in_force_when_the_database_answers(spraying_blocks, tenant_a_admin, settings):
    spray(ATTACKER, 3)
    with schema_context("acme"):
        IpBlock.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0")}

    assert login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD).status_code == 200


def test_with_redis_down_the_database_keeps_the_block(spraying_blocks, settings):
    spray(ATTACKER, 3)
    settings.CACHES = {"default": redis_cache("redis://127.0.0.1:1/0")}

    assert_problem(login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD), 403, "ip_blocked")


def test_with_redis_flushed_the_blocks_are_reloaded_from_the_database(spraying_blocks):
    from django.core.cache import cache

    spray(ATTACKER, 3)
    cache.clear()

    assert_problem(login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD), 403, "ip_blocked")
    assert_problem(login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD), 403, "ip_blocked")  # from the reloaded copy


def test_a_blocked_address_costs_one_cache_read_per_request(spraying_blocks, monkeypatch):
    from django.core.cache import cache

    spray(ATTACKER, 3)
    login(ATTACKER, SHARED_ADMIN_EMAIL)  # the copy is loaded
    reads: list[Any] = []
    real_get_many = cache.get_many

    def counted_get_many(keys: list[str]) -> Any:
        if any(key.startswith("ip-block") for key in keys):  # not the tenant's row (tenants.tenant_rows)
            reads.append(keys)
        return real_get_many(keys)

    monkeypatch.setattr(cache, "get_many", counted_get_many)
    monkeypatch.setattr(cache, "get", lambda *a, **k: pytest.fail("a second cache read"))
    monkeypatch.setattr(read_ahead, "_host_schemas", {})  # a host this process has not served yet

    assert_problem(login(ATTACKER, SHARED_ADMIN_EMAIL), 403, "ip_blocked")

    assert len(reads) == 1


def test_at_a_host_served_before_the_block_is_read_with_the_tenant(spraying_blocks, monkeypatch):
    from django.core.cache import cache

    monkeypatch.setattr(read_ahead, "_host_schemas", {})
    spray(ATTACKER, 3)
    login(ATTACKER, SHARED_ADMIN_EMAIL)  # the copy is loaded, the host is known
    client_from(ATTACKER, OTHER_HOST).get("/api/v1/ping/")  # the other host is known
    mgets: list[Any] = []
    client = cache.client.get_client(write=True)  # type: ignore[attr-defined]
    real_mget = type(client).mget

    def counted_mget(self: Any, keys: Any, *args: Any) -> Any:
        mgets.append(keys)
        return real_mget(self, keys, *args)

    monkeypatch.setattr(type(client), "mget", counted_mget)
    monkeypatch.setattr(cache, "get_many", lambda *a, **k: pytest.fail("a cache read of its own"))

    assert_problem(login(ATTACKER, SHARED_ADMIN_EMAIL), 403, "ip_blocked")
    assert_problem(login(ATTACKER, SHARED_ADMIN_EMAIL, host=OTHER_HOST), 401, "invalid_credentials")

    [acme_read, globex_read] = mgets  # one round trip each: the tenant's row and the block's keys
    for read, schema in ((acme_read, "acme"), (globex_read, "globex")):
        assert read[-2:] == [
            read_ahead.key_in_schema(schema, key) for key in (security.SYNCED_KEY, f"ip-block:{ATTACKER}")
        ]


def test_a_block_is_never_read_ahead_in_another_tenants_schema(spraying_blocks, monkeypatch):
    spray(ATTACKER, 3)
    # This process believes the host is globex's (the host moved, say): what it reads there is
    # not used at acme, which reads its own keys.
    monkeypatch.setattr(read_ahead, "_host_schemas", {HOST: "globex"})

    assert_problem(login(ATTACKER, SHARED_ADMIN_EMAIL), 403, "ip_blocked")
    assert read_ahead._host_schemas == {HOST: "acme"}  # learnt for the next request
    assert login(NEIGHBOUR, SHARED_ADMIN_EMAIL, TEST_PASSWORD).status_code == 200


def test_an_admin_lists_and_lifts_a_block_and_the_address_may_log_in_again(spraying_blocks, tenant_a_admin):
    spray(ATTACKER, 3)
    admin = client_of(SHARED_ADMIN_EMAIL)

    listed = admin.get(BLOCKS)
    assert listed.status_code == 200
    [row] = listed.json()["results"]
    assert (row["ip"], row["reason"], row["active"], row["lifted_at"]) == (
        ATTACKER,
        "failed_logins_across_accounts",
        True,
        None,
    )
    assert admin.get(f"{BLOCKS}{row['id']}/").json()["ip"] == ATTACKER

    assert admin.delete(f"{BLOCKS}{row['id']}/").status_code == 204

    # Let through again, and the failures before the lift no longer count towards a new block.
    assert spray(ATTACKER, 2) == [401, 401]
    block = acme(lambda: IpBlock.objects.get())
    assert block.lifted_at is not None and block.lifted_by_id == tenant_a_admin.pk
    [lifted] = events_of("ip.unblocked")
    assert (lifted.actor_id, lifted.data["ip"]) == (tenant_a_admin.pk, ATTACKER)
    assert admin.get(BLOCKS).json()["results"] == []
    [inactive] = admin.get(BLOCKS, {"include_inactive": "true"}).json()["results"]
    assert inactive["active"] is False and inactive["lifted_by"] == str(tenant_a_admin.pk)


def test_lifting_a_block_that_is_no_longer_in_force_changes_nothing(spraying_blocks, tenant_a_admin):
    spray(ATTACKER, 3)
    block = acme(lambda: IpBlock.objects.get())
    with schema_context("acme"):
        assert ip_block_lift(block=block, actor=tenant_a_admin) is True
        assert ip_block_lift(block=block, actor=tenant_a_admin) is False
    assert len(events_of("ip.unblocked")) == 1


def test_who_may_see_and_lift_blocks(spraying_blocks, tenant_a_admin, tenant_b_admin):
    spray(ATTACKER, 3)
    block_id = acme(lambda: IpBlock.objects.get().pk)
    acme_user("auditor@acme.example", AUDITOR)
    acme_user("cook@acme.example", EMPLOYEE)
    auditor, cook = client_of("auditor@acme.example"), client_of("cook@acme.example")
    other_tenant = bearer_client(
        HOST, login(NEIGHBOUR, SHARED_ADMIN_EMAIL, TEST_PASSWORD, host=OTHER_HOST).json()["access"]
    )

    assert auditor.get(BLOCKS).status_code == 200
    assert_problem(auditor.delete(f"{BLOCKS}{block_id}/"), 403, "permission_denied")
    assert_problem(cook.get(BLOCKS), 403, "permission_denied")
    assert_problem(cook.delete(f"{BLOCKS}{block_id}/"), 403, "permission_denied")
    assert_problem(APIClient(HTTP_HOST=HOST).get(BLOCKS), 401, "not_authenticated")
    assert_problem(other_tenant.delete(f"{BLOCKS}{block_id}/"), 401, "invalid_token")
    assert acme(lambda: IpBlock.objects.get().lifted_at) is None
    assert events_of("ip.unblocked") == []


@pytest.mark.parametrize("block_id", ["999999", "abc", "-1", "99999999999999999999999"])
def test_an_unknown_or_malformed_block_id_answers_404_and_changes_nothing(spraying_blocks, tenant_a_admin, block_id):
    spray(ATTACKER, 3)
    admin = client_of(SHARED_ADMIN_EMAIL)

    assert_problem(admin.delete(f"{BLOCKS}{block_id}/"), 404, "not_found")
    assert_problem(admin.get(f"{BLOCKS}{block_id}/"), 404, "not_found")
    assert acme(lambda: IpBlock.objects.get().lifted_at) is None


def test_a_bad_include_inactive_answers_400(tenant_a_admin):
    assert_problem(client_of(SHARED_ADMIN_EMAIL).get(BLOCKS, {"include_inactive": "maybe"}), 400, "invalid_request")


# --- the policy section -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("security_changes", "field"),
    [
        ({"block_minutes": 0}, "policy.security.block_minutes"),
        ({"block_minutes": 10081}, "policy.security.block_minutes"),
        ({"accounts_threshold": 1}, "policy.security.accounts_threshold"),
        ({"burst_seconds": 3601}, "policy.security.burst_seconds"),
        ({"block_on": ["everything"]}, "policy.security.block_on.0"),
        ({"block_on": ["failed_login_burst", "failed_login_burst"]}, "policy.security.block_on"),
        ({"exempt_networks": ["not-a-network"]}, "policy.security.exempt_networks.0"),
        ({"burst_treshold": 5}, "policy.security.burst_treshold"),
    ],
)
def test_a_bad_security_policy_answers_400_naming_the_field_and_changes_nothing(
    operator_client, tenant_a, security_changes, field
):
    before = Tenant.objects.get(pk=tenant_a.pk).policy

    response = operator_client.patch(
        "/api/v1/platform/tenants/acme/", {"policy": {"security": security_changes}}, format="json"
    )

    body = assert_problem(response, 400, "invalid_request")
    assert field in body["errors"]
    assert Tenant.objects.get(pk=tenant_a.pk).policy == before


def test_the_security_policy_is_merged_per_key_and_networks_are_normalised(operator_client, tenant_a):
    response = operator_client.patch(
        "/api/v1/platform/tenants/acme/",
        {"policy": {"security": {"exempt_networks": ["10.1.2.3/8"], "block_minutes": 5}}},
        format="json",
    )

    assert response.status_code == 200
    security_policy = response.json()["policy"]["security"]
    assert security_policy["exempt_networks"] == ["10.0.0.0/8"]
    assert security_policy["block_minutes"] == 5 and security_policy["accounts_threshold"] == 10


def test_tokens_issued_before_the_block_keep_working_from_the_blocked_address(spraying_blocks, tenant_a_admin):
    access = login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD).json()["access"]
    spray(ATTACKER, 3)
    assert_problem(login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD), 403, "ip_blocked")

    whoami = CommittingClient(HTTP_HOST=HOST, REMOTE_ADDR=ATTACKER, HTTP_AUTHORIZATION=f"Bearer {access}")

    assert whoami.get("/api/v1/auth/whoami/").status_code == 200


def test_after_a_lift_a_new_spray_blocks_the_address_again(spraying_blocks):
    spray(ATTACKER, 3)
    with schema_context("acme"), TestCase.captureOnCommitCallbacks(execute=True):
        ip_block_lift(block=IpBlock.objects.get(), actor=None)

    assert spray(ATTACKER, 3) == [401, 401, 401]

    assert_problem(login(ATTACKER, "victim0@acme.example"), 403, "ip_blocked")
    assert acme(lambda: IpBlock.objects.active().count()) == 1
    assert len(events_of("ip.blocked")) == 2


def test_parallel_failures_from_one_address_leave_one_block_and_one_flag(committed_tenant):
    """Failures racing past the threshold at once are decided one at a time (an advisory lock
    per address): at most one flag and one block, whatever the interleaving."""

    def configure() -> None:
        tenant = Tenant.objects.get(pk=committed_tenant.pk)
        set_security(tenant, accounts_threshold=2, accounts_window_minutes=10)

    def outcome() -> tuple[int, int]:
        with schema_context("racing"):
            return IpBlock.objects.count(), AuditEvent.objects.filter(type="security.flagged").count()

    on_own_connection(configure)
    numbers = itertools.count()  # thread-safe, unlike a generator
    statuses = in_parallel(
        lambda: login(ATTACKER, f"racer{next(numbers)}@racing.example", host="racing.idp.test").status_code, 12
    )

    assert set(statuses) <= {401, 403}, statuses
    # Failures that each committed before seeing the others may all miss the threshold; never
    # may two of them block or flag.
    blocks, flags = on_own_connection(outcome)
    assert blocks <= 1 and flags == blocks
    on_own_connection(lambda: login(ATTACKER, "late@racing.example", host="racing.idp.test"))  # sees them all
    assert on_own_connection(outcome) == (1, 1)


def test_a_lift_whose_cache_write_was_lost_still_lets_the_address_in(spraying_blocks, tenant_a_admin):
    from django.core.cache import cache

    spray(ATTACKER, 3)
    with schema_context("acme"):
        ip_block_lift(block=IpBlock.objects.get(), actor=tenant_a_admin)  # its on-commit work never runs
    with schema_context("acme"):
        assert cache.get(f"ip-block:{ATTACKER}") is not None  # the stale copy

        assert login(ATTACKER, SHARED_ADMIN_EMAIL, TEST_PASSWORD).status_code == 200

        assert cache.get(f"ip-block:{ATTACKER}") is None  # forgotten on the way


def test_behind_a_trusted_proxy_the_client_address_is_blocked_not_the_proxy(spraying_blocks, tenant_a_admin, settings):
    settings.IDP_TRUSTED_PROXIES = 1
    proxy = "10.0.0.1"

    def through_proxy(forwarded_for: str, email: str, password: str = "Wrong-Passw0rd!") -> Any:  # noqa: S107
        client = CommittingClient(HTTP_HOST=HOST, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=forwarded_for)
        return client.post(TOKEN, {"email": email, "password": password, "device_id": "pos-1"}, format="json")

    # The attacker writes a different address into the header each time; the proxy appends the real one.
    for number in range(3):
        through_proxy(f"192.0.2.{number}, {ATTACKER}", f"victim{number}@acme.example")

    assert_problem(through_proxy(f"192.0.2.50, {ATTACKER}", SHARED_ADMIN_EMAIL, TEST_PASSWORD), 403, "ip_blocked")
    assert through_proxy(NEIGHBOUR, SHARED_ADMIN_EMAIL, TEST_PASSWORD).status_code == 200
    assert acme(lambda: list(IpBlock.objects.values_list("ip", flat=True))) == [ATTACKER]
