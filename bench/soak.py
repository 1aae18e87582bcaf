"""Soak test: mixed logins, refreshes and permission checks against gunicorn with the
production settings for several minutes, on loopback only.

    make soak                          # SOAK_SECONDS (default 180) of load
    SOAK_SECONDS=600 make soak
    .venv/bin/python bench/soak.py [--seconds N] [--workers N] [--clients N] [--rss-growth-mb N]

In one run (the harness of bench/harness.py):
1. a fresh database and Redis, `migrate_schemas`, a tenant with USERS users and a service
   client (through the project's services);
2. gunicorn (`config.settings.prod`, gthread workers) on 127.0.0.1;
3. `--clients` load processes, each owning its share of the users, each user with one device.
   Round after round every user asks `whoami` (the session check) and the permission-check
   API (a service token) once; logs in again every LOGIN_EVERY seconds (a new session on
   the same device, which ends the old one) and refreshes every REFRESH_EVERY seconds.
   The production rate limits stay on: a 429 from the login or the refresh throttle is
   counted, not an error (the old tokens stay in use); any other answer that is not 200 is
   an error, and so is a 429 anywhere else;
4. the resident memory (VmRSS in /proc) of every gunicorn worker after a warm-up, and at
   the end. A worker may grow by at most --rss-growth-mb (default RSS_GROWTH_MB);
5. a summary; the exit status says whether there were no errors and no worker grew past
   the bound. The server stops and its database is dropped.
"""

import argparse
import base64
import json
import multiprocessing as mp
import os
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import harness
from harness import BASE_DOMAIN, ROOT, Connection, database, free_port, gunicorn, redis_server, run, server_env

TENANT = f"soak{os.getpid()}"
HOST = f"{TENANT}.{BASE_DOMAIN}"
SEED_MARK = "SOAK_SEED="
USERS = 24
PASSWORD = "Soak-Password-1!"
LOGIN_EVERY = 60.0  # seconds; the login limit is 5/min per address and email
REFRESH_EVERY = 15.0  # seconds; the refresh limit is 2/min per session, so every third is refused
WARMUP_SECONDS = 15.0
RSS_GROWTH_MB = 32.0
THROTTLED_KINDS = {"login", "refresh"}  # where a 429 is the policy answering, not an error


# --- seeding (runs inside Django, in a subprocess with the server's environment) -----------------


def seed() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django_tenants.utils import tenant_context

    from identity.models import User
    from rbac.service_clients import service_client_create
    from tenants.models import Plan
    from tenants.services import tenant_create

    plan = Plan.objects.create(code=TENANT, name="Soak", max_users=1000, max_devices_per_user=3, max_branches=5)
    tenant = tenant_create(
        slug=TENANT, name="Soak", plan=plan, admin_email=f"admin@{BASE_DOMAIN}", admin_password=PASSWORD
    ).tenant
    with tenant_context(tenant):
        users = [
            str(User.objects.create_user(email=f"user{n}@{BASE_DOMAIN}", password=PASSWORD, full_name=f"User {n}").pk)
            for n in range(USERS)
        ]
        client = service_client_create(name="Soak", scopes=["authz:check"], actor=None)
    seeded = {"users": users, "client_id": client.client.client_id, "secret": client.client_secret}
    print(SEED_MARK + json.dumps(seeded))


# --- load ------------------------------------------------------------------------------------------


def request(conn: Connection, method: str, path: str, body: Any = None, token: str = "") -> tuple[int, Any]:
    headers = {"Authorization": token} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    status, raw = conn.request(harness.http_request(method, path, body, headers, host=HOST))
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw[:200]


@dataclass
class Tally:
    answers: dict[str, dict[int, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def count(self, kind: str, status: int, body: Any) -> None:
        by_status = self.answers.setdefault(kind, {})
        by_status[status] = by_status.get(status, 0) + 1
        if status != 200 and not (status == 429 and kind in THROTTLED_KINDS) and len(self.errors) < 20:
            self.errors.append(f"{kind}: {status} {str(body)[:200]}")

    def merge(self, other: "Tally") -> None:
        for kind, by_status in other.answers.items():
            mine = self.answers.setdefault(kind, {})
            for status, n in by_status.items():
                mine[status] = mine.get(status, 0) + n
        self.errors += other.errors[: max(0, 20 - len(self.errors))]

    @property
    def error_count(self) -> int:
        return sum(
            n
            for kind, by_status in self.answers.items()
            for status, n in by_status.items()
            if status != 200 and not (status == 429 and kind in THROTTLED_KINDS)
        )


def _client(port: int, index: int, emails: list[str], users: list[str], seeded: dict, until: float, queue: Any) -> None:
    """One load process: its own users, one keep-alive connection, rounds until `until`."""
    conn = Connection(port)
    tally = Tally()
    basic = "Basic " + base64.b64encode(f"{seeded['client_id']}:{seeded['secret']}".encode()).decode()
    service: dict[str, Any] = {"token": "", "renew_at": 0.0}
    sessions: dict[str, dict[str, Any]] = {}
    while time.time() < until:
        now = time.time()
        if now >= service["renew_at"]:
            status, body = request(conn, "POST", "/api/v1/oauth/token/", {"grant_type": "client_credentials"}, basic)
            tally.count("service_token", status, body)
            if status == 200:
                service = {"token": f"Bearer {body['access_token']}", "renew_at": now + body["expires_in"] / 2}
        for email, user_id in zip(emails, users, strict=True):
            held = sessions.get(email)
            now = time.time()
            if held is None or now - held["logged_in_at"] >= LOGIN_EVERY:
                login = {"email": email, "password": PASSWORD, "device_id": f"soak-{email}", "device_name": "Soak"}
                status, body = request(conn, "POST", "/api/v1/auth/token/", login | {"device_type": "pos"})
                tally.count("login", status, body)
                if status == 200:
                    held = sessions[email] = {
                        "access": body["access"], "refresh": body["refresh"], "logged_in_at": now, "refreshed_at": now,
                    }  # fmt: skip
            elif now - held["refreshed_at"] >= REFRESH_EVERY:
                status, body = request(conn, "POST", "/api/v1/auth/token/refresh/", {"refresh": held["refresh"]})
                tally.count("refresh", status, body)
                if status == 200:
                    held.update(access=body["access"], refresh=body["refresh"], refreshed_at=now)
                elif status == 429:
                    held["refreshed_at"] = now  # try again next period, with the same tokens
            if held is None:
                continue  # throttled before its first session: nothing to check with yet
            status, body = request(conn, "GET", "/api/v1/auth/whoami/", token=f"Bearer {held['access']}")
            tally.count("whoami", status, body)
            check = {"user": user_id, "permission": "users.view"}
            status, body = request(conn, "POST", "/api/v1/authz/check/", check, service["token"])
            tally.count("authz_check", status, body)
    conn.close()
    queue.put(tally)


def worker_rss_mb(master: int) -> dict[int, float]:
    """VmRSS of each of gunicorn's workers, in MB."""
    return {pid: harness.rss_bytes(pid) / 2**20 for pid in harness.worker_pids(master)}


def load(
    port: int, master: int, seeded: dict, seconds: float, clients: int
) -> tuple[Tally, dict[int, float], dict[int, float]]:
    context = mp.get_context("fork")
    queue = context.Queue()
    emails = [f"user{n}@{BASE_DOMAIN}" for n in range(USERS)]
    until = time.time() + WARMUP_SECONDS + seconds
    processes = [
        context.Process(
            target=_client,
            args=(port, i, emails[i::clients], seeded["users"][i::clients], seeded, until, queue),
        )
        for i in range(clients)
    ]
    for process in processes:
        process.start()
    time.sleep(WARMUP_SECONDS)
    before = worker_rss_mb(master)
    print(f"warm: worker RSS {fmt(before)}; load for {seconds:.0f} s ...", flush=True)
    tallies = [queue.get(timeout=seconds + WARMUP_SECONDS + 120) for _ in processes]
    after = worker_rss_mb(master)
    for process in processes:
        process.join(timeout=10)
    total = Tally()
    for tally in tallies:
        total.merge(tally)
    return total, before, after


def fmt(rss: dict[int, float]) -> str:
    return ", ".join(f"{pid}: {mb:.1f} MB" for pid, mb in sorted(rss.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS") or 180))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rss-growth-mb", type=float, default=RSS_GROWTH_MB)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, harness.interrupted)
    started = time.monotonic()
    with ExitStack() as stack:
        database_url, database_where = stack.enter_context(database())
        redis_url, redis_where = stack.enter_context(redis_server(TENANT))
        port = free_port()
        env = server_env(database_url, redis_url, port)
        print(f"database: {database_where}; redis: {redis_where}; tenant host {HOST}", flush=True)
        run([sys.executable, "manage.py", "migrate_schemas", "--noinput", "--skip-checks"], env)
        output = run([sys.executable, str(Path(__file__).resolve()), "--seed"], env | {"SOAK_TENANT": TENANT})
        seeded = json.loads(next(line for line in output.splitlines() if line.startswith(SEED_MARK))[len(SEED_MARK) :])
        print(
            f"gunicorn on 127.0.0.1:{port}, {args.workers} workers; {args.clients} clients, {USERS} users", flush=True
        )
        master = stack.enter_context(gunicorn(env, port, args.workers, host=HOST))
        tally, before, after = load(port, master, seeded, args.seconds, args.clients)

    requests = sum(n for by_status in tally.answers.values() for n in by_status.values())
    growth = {pid: after[pid] - before[pid] for pid in before if pid in after}
    elapsed = args.seconds + WARMUP_SECONDS
    print(f"\n{requests} requests in {elapsed:.0f} s ({requests / elapsed:.0f}/s)")
    for kind, by_status in sorted(tally.answers.items()):
        print(f"  {kind:14} " + ", ".join(f"{status}: {n}" for status, n in sorted(by_status.items())))
    print(f"worker RSS after warm-up: {fmt(before)}")
    print(f"worker RSS at the end:    {fmt(after)}")
    print(f"growth: {fmt(growth)} (bound {args.rss_growth_mb:.0f} MB per worker)")
    for line in tally.errors:
        print(f"  error: {line}")
    restarted = set(before) != set(after)
    if restarted:
        print("  a worker was replaced during the run (it died): failed")
    passed = tally.error_count == 0 and not restarted and all(g <= args.rss_growth_mb for g in growth.values())
    print(f"errors: {tally.error_count}; total time {time.monotonic() - started:.0f} s; {'PASS' if passed else 'FAIL'}")
    return 0 if passed else 1


if __name__ == "__main__":
    if "--seed" in sys.argv:
        TENANT = os.environ["SOAK_TENANT"]
        HOST = f"{TENANT}.{BASE_DOMAIN}"
        seed()
    else:
        sys.exit(main())
