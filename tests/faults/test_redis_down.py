"""Redis stopped under a running web process: PostgreSQL answers what Redis cached, the
throttles fail open and say so in the log, and nothing that should be refused is allowed.

The web process runs on the test database and a private Redis (tests/faults/services.py),
which the test kills (SIGKILL, no shutdown) and starts again, empty, on the same port.
"""

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from tests.conftest import SHARED_ADMIN_EMAIL, host_of
from tests.faults.services import PrivateRedis
from tests.notifications.harness import database_url
from tests.scaleout.harness import WebProcess, tenant_committed, web_environment, web_start

SLUG = "redisdown"
HOST = host_of(SLUG)
LOGIN_LIMIT = 4
LOCKOUT_THRESHOLD = 3
POLICY = {
    "rate_limits": {"login": f"{LOGIN_LIMIT}/min", "refresh": "1000/min"},
    "lockout": {"threshold": LOCKOUT_THRESHOLD, "window_minutes": 15, "duration_minutes": 15},
    "sessions": {"max_sessions_per_user": 3},
}
EMPLOYEE = "cook@example.com"
LOCKED = "locked@example.com"
FAIL_OPEN_LOG = "Redis unavailable: rate limit login not applied (failing open)"


@pytest.fixture
def web(private_redis: PrivateRedis, tmp_path: Path, django_db_blocker: Any) -> Iterator[WebProcess]:
    """One web process on the test database and the private Redis, serving tenant SLUG."""
    environment = web_environment(database_url=database_url(settings.DATABASES["default"]), redis_url=private_redis.url)
    with django_db_blocker.unblock(), tenant_committed(slug=SLUG, policy=POLICY, employees=(EMPLOYEE, LOCKED)):
        process = web_start("web", tmp_path, environment)
        try:
            yield process
        finally:
            process.stop()


def whoami(web: WebProcess, access: str) -> tuple[int, str]:
    response = web.request("GET", "/api/v1/auth/whoami/", host=HOST, token=access)
    return response.status_code, response.json().get("code", "")


def wrong_logins(web: WebProcess, email: str, count: int) -> list[int]:
    return [web.login(HOST, email, password="Wrong-Password-1").status_code for _ in range(count)]


def test_with_redis_down_logins_lockout_and_session_checks_hold_from_postgresql(web, private_redis):
    admin = web.login(HOST, SHARED_ADMIN_EMAIL, device_id="office").json()
    kept = web.login(HOST, EMPLOYEE, device_id="till-1").json()
    ended = web.login(HOST, EMPLOYEE, device_id="till-2").json()
    for tokens in (admin, kept, ended):
        assert whoami(web, tokens["access"]) == (200, "")  # each session is now cached as active

    private_redis.stop()

    # Session checks fall back to the database: a live session still works ...
    assert whoami(web, kept["access"]) == (200, "")
    # ... and one ended during the outage is refused at once, access and refresh token alike.
    logout = web.request(
        "POST", "/api/v1/auth/logout/", host=HOST, token=ended["access"], json={"refresh": ended["refresh"]}
    )
    assert logout.status_code == 204, logout.text
    assert whoami(web, ended["access"]) == (401, "session_ended")
    refresh = web.request("POST", "/api/v1/auth/token/refresh/", host=HOST, json={"refresh": ended["refresh"]})
    assert refresh.status_code == 401, refresh.text

    # Logins work; the throttle fails open (more than LOGIN_LIMIT answers, no 429) and logs it.
    assert web.login(HOST, EMPLOYEE, device_id="till-3").status_code == 200
    email = f"guess-{uuid.uuid4().hex[:8]}@example.com"
    statuses = wrong_logins(web, email, LOGIN_LIMIT + 2)
    assert 429 not in statuses
    assert FAIL_OPEN_LOG in web.log()

    # The lockout lives in PostgreSQL: it still locks, and the right password is then refused.
    assert wrong_logins(web, LOCKED, LOCKOUT_THRESHOLD) == [401] * LOCKOUT_THRESHOLD
    locked = web.login(HOST, LOCKED)
    assert (locked.status_code, locked.json()["code"]) == (423, "account_locked")

    # Permissions are computed from the database: an employee is still no admin.
    users = web.request("GET", "/api/v1/users/", host=HOST, token=kept["access"])
    assert (users.status_code, users.json()["code"]) == (403, "permission_denied")
    assert web.request("GET", "/api/v1/users/", host=HOST, token=admin["access"]).status_code == 200

    private_redis.start()  # back, empty

    assert whoami(web, ended["access"]) == (401, "session_ended")
    assert whoami(web, kept["access"]) == (200, "")
    assert web.login(HOST, LOCKED).status_code == 423
    # Throttling is back: a fresh window, counted in Redis again.
    email = f"guess-{uuid.uuid4().hex[:8]}@example.com"
    assert wrong_logins(web, email, LOGIN_LIMIT + 1)[-1] == 429
    assert "Internal Server Error" not in web.log()
