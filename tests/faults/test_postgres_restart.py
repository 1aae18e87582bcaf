"""PostgreSQL restarted under running web processes: while it is down every request that
needs it is answered 503 problem JSON (no 500, no HTML), no token is issued without its
session row, no judged login attempt is lost, and the same processes serve again once it is
back (their pooled connections are health-checked and replaced).

The web processes run on a private PostgreSQL (tests/faults/services.py), migrated and
seeded by the processes an operator would run, and the test run's Redis.
"""

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import jwt
import psycopg2
import pytest
import requests
from django.conf import settings

from tests.conftest import SHARED_ADMIN_EMAIL
from tests.faults.services import PrivatePostgres
from tests.notifications.harness import wait_for
from tests.scaleout.harness import BASE_DOMAIN, WebProcess, seed_tenant, web_environment, web_processes

SLUG = "pgrestart"
HOST = f"{SLUG}.{BASE_DOMAIN}"
DATABASE = "idp_faults"
# Neither the throttle, the lockout nor an IP block (the unknown emails from one address would
# trip the failed-logins-across-accounts rule) may answer in place of the database.
POLICY = json.dumps(
    {
        "rate_limits": {"login": "100000/min"},
        "lockout": {"threshold": 100},
        "sessions": {"max_sessions_per_user": 3},
        "security": {"exempt_networks": ["127.0.0.0/8"]},
    }
)
DOWN_SECONDS = 3.0


@dataclass(frozen=True)
class Answer:
    kind: str  # "right" or "wrong" password
    status: int
    content_type: str
    body: dict


@pytest.fixture
def webs(private_postgres: PrivatePostgres, tmp_path: Path) -> Iterator[list[WebProcess]]:
    private_postgres.create_database(DATABASE)
    environment = web_environment(database_url=private_postgres.url(DATABASE), redis_url=settings.REDIS_URL)
    seed_tenant(environment, slug=SLUG, email=SHARED_ADMIN_EMAIL, policy=POLICY)
    with web_processes(2, tmp_path, environment) as started:
        yield started


def login_until(web: WebProcess, stop: threading.Event, answers: list[Answer]) -> None:
    """Log in as fast as one client can, the admin and an unknown email in turn, until `stop`.
    An answer that is not JSON is kept as its text (and fails the content-type assertion);
    a request that gets no answer at all is kept as status 0."""
    index = 0
    while not stop.is_set():
        kind = "right" if index % 2 == 0 else "wrong"
        try:
            if kind == "right":
                response = web.login(HOST, SHARED_ADMIN_EMAIL, device_id=f"till-{index % 3}")
            else:
                # An unknown email each time: its attempt is recorded all the same, and no
                # lockout can build up however many the machine manages in the run.
                response = web.login(HOST, f"nobody-{web.name}-{index}@example.com", password="Wrong-Password-1")
        except requests.RequestException as exc:
            answers.append(Answer(kind, 0, "", {"error": repr(exc)}))
        else:
            try:
                body = response.json()
            except ValueError:
                body = {"text": response.text[:500]}
            answers.append(Answer(kind, response.status_code, response.headers.get("Content-Type", ""), body))
        index += 1


def rows(postgres: PrivatePostgres, sql: str) -> list[tuple]:
    conn = psycopg2.connect(postgres.url(DATABASE))
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"SET search_path TO {SLUG}")
            cursor.execute(sql)
            return cursor.fetchall()
    finally:
        conn.close()


def test_a_postgresql_restart_is_answered_503_and_the_same_processes_recover(webs, private_postgres):
    assert all(web.login(HOST, SHARED_ADMIN_EMAIL).status_code == 200 for web in webs)
    pids = {web.name: (web.process.pid, web.worker_pids()) for web in webs}
    answers: list[Answer] = []
    stop = threading.Event()
    clients = [threading.Thread(target=login_until, args=(web, stop, answers)) for web in webs]
    for client in clients:
        client.start()
    try:
        time.sleep(0.5)
        private_postgres.stop()
        time.sleep(0.5)
        # While it is down: a login, the lookup of a host whose tenant is not cached, and
        # readiness. A host whose tenant is cached (tenants.tenant_rows) is still served.
        down = [
            webs[0].login(HOST, SHARED_ADMIN_EMAIL),
            webs[1].request("GET", "/api/v1/ping/", host=f"uncached.{BASE_DOMAIN}"),
            webs[1].request("GET", "/health/ready/", host=BASE_DOMAIN),
        ]
        served = webs[1].request("GET", "/api/v1/ping/", host=HOST)
        time.sleep(DOWN_SECONDS)
        private_postgres.start()
        wait_for(lambda: answers and answers[-1].status == 200, timeout=30, what="a login answered 200 again")
        time.sleep(0.5)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=60)

    for response in down:
        assert response.status_code == 503, response.text
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["code"] == "service_unavailable"
    assert down[0].headers["Retry-After"] == "5"
    assert served.status_code == 200, served.text
    assert live_answer(webs[0]).status_code == 200  # liveness never depended on the database

    statuses = {answer.status for answer in answers}
    assert statuses <= {200, 401, 503}, statuses
    assert 503 in statuses and 200 in statuses
    assert all(a.content_type in ("application/json", "application/problem+json") for a in answers)
    assert all(a.body["code"] == "service_unavailable" for a in answers if a.status == 503)

    # No token without its session: every session named by an issued token exists, active.
    issued = [a.body for a in answers if a.status == 200]
    session_ids = {jwt.decode(body["access"], options={"verify_signature": False})["sid"] for body in issued}
    stored = {str(sid) for (sid,) in rows(private_postgres, "SELECT id FROM device_sessions_devicesession")}
    assert session_ids <= stored
    # No judged attempt lost: each 200 and 401 answered has its committed attempt row (a 503
    # may or may not have one: the connection can drop before or after the commit).
    successes, failures = rows(
        private_postgres,
        "SELECT count(*) FILTER (WHERE success), count(*) FILTER (WHERE NOT success AND reason = 'invalid_credentials')"
        " FROM identity_loginattempt",
    )[0]
    assert successes >= len(issued) + len(webs)  # and the two logins before the restart
    assert failures >= sum(1 for a in answers if a.status == 401)
    # Served by the same processes throughout: no restart was needed.
    assert {web.name: (web.process.pid, web.worker_pids()) for web in webs} == pids
    for web in webs:
        assert "Internal Server Error" not in web.log()


def live_answer(web: WebProcess) -> requests.Response:
    return web.request("GET", "/health/live/", host=BASE_DOMAIN)
