"""State that must hold across web processes lives in Redis and PostgreSQL, never in one
process: two gunicorns on the same database and Redis, requests alternating between them."""

import itertools
import uuid

from tests.conftest import SHARED_ADMIN_EMAIL
from tests.scaleout.conftest import EMPLOYEES, POLICY

LOGIN_LIMIT = int(POLICY["rate_limits"]["login"].split("/")[0])
LOCKOUT_THRESHOLD = POLICY["lockout"]["threshold"]


def test_the_login_throttle_counts_requests_to_both_processes_against_one_limit(two_web_processes, scaleout_host):
    email = f"guess-{uuid.uuid4().hex[:8]}@example.com"
    answers = [
        (web.name, web.login(scaleout_host, email, password="Wrong-Password-1").status_code)
        for web, _ in zip(itertools.cycle(two_web_processes), range(LOGIN_LIMIT + 4), strict=False)
    ]

    statuses = [status for _, status in answers]
    assert 429 not in statuses[:LOGIN_LIMIT], answers  # the limit in total, not per process
    assert statuses[LOGIN_LIMIT:] == [429] * 4, answers
    assert {name for name, status in answers if status == 429} == {"web1", "web2"}


def test_a_lockout_made_through_one_process_is_refused_by_the_other(two_web_processes, scaleout_host):
    first, second = two_web_processes
    email = EMPLOYEES[0]
    for _ in range(LOCKOUT_THRESHOLD):
        assert first.login(scaleout_host, email, password="Wrong-Password-1").status_code == 401

    refused = second.login(scaleout_host, email)  # the right password, the other process

    assert refused.status_code == 423
    assert refused.json()["code"] == "account_locked"
    assert int(refused.headers["Retry-After"]) > 0
    assert "access" not in refused.json()


def test_a_session_ended_through_one_process_is_refused_by_the_other_at_the_next_request(
    two_web_processes, scaleout_host
):
    first, second = two_web_processes
    tokens = first.login(scaleout_host, EMPLOYEES[1]).json()
    # Both processes have answered for the session (and remembered it as active) before it ends.
    assert first.request("GET", "/api/v1/auth/whoami/", host=scaleout_host, token=tokens["access"]).status_code == 200
    assert second.request("GET", "/api/v1/auth/whoami/", host=scaleout_host, token=tokens["access"]).status_code == 200

    logout = first.request(
        "POST", "/api/v1/auth/logout/", host=scaleout_host, token=tokens["access"], json={"refresh": tokens["refresh"]}
    )
    assert logout.status_code == 204, logout.text
    refused = second.request("GET", "/api/v1/auth/whoami/", host=scaleout_host, token=tokens["access"])
    refused_refresh = second.request(
        "POST", "/api/v1/auth/token/refresh/", host=scaleout_host, json={"refresh": tokens["refresh"]}
    )

    assert (refused.status_code, refused.json()["code"]) == (401, "session_ended")
    assert refused_refresh.status_code == 401, refused_refresh.text


def test_an_admins_termination_through_one_process_is_refused_by_the_other_at_the_next_request(
    two_web_processes, scaleout_host
):
    first, second = two_web_processes
    admin = first.login(scaleout_host, SHARED_ADMIN_EMAIL, device_id="office").json()["access"]
    employee = second.login(scaleout_host, EMPLOYEES[1], device_id="till-2").json()
    whoami = second.request("GET", "/api/v1/auth/whoami/", host=scaleout_host, token=employee["access"])
    assert whoami.status_code == 200
    user_id, session_id = whoami.json()["id"], whoami.json()["session_id"]

    ended = first.request("DELETE", f"/api/v1/users/{user_id}/sessions/{session_id}/", host=scaleout_host, token=admin)
    assert ended.status_code == 204, ended.text
    refused = second.request("GET", "/api/v1/auth/whoami/", host=scaleout_host, token=employee["access"])

    assert (refused.status_code, refused.json()["code"]) == (401, "session_ended")
