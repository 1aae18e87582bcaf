"""Benchmark: what the per-request session check costs an authenticated endpoint.

    make bench            # both benchmarks; this one about 2 minutes on 2 cores
    make bench QUICK=1    # shorter runs
    .venv/bin/python bench/session_check.py [--quick] [--workers N] [--clients N]

The endpoint is GET /api/v1/auth/whoami/ (a user's access token; the answer is built from
the token and the user row). Every authenticated request asks whether the token's device
session is still active (sessions.state.session_is_active: one Redis read when warm) and
keeps its `last_active_at` current (session_touch: one Redis set-if-absent, a database
write at most once a minute). The same view is also served WITHOUT those two steps at
/bench/whoami-no-session-check/, by the benchmark's own settings and URLconf
(bench/bench_settings.py, bench/bench_urls.py; production URLconfs never include it), so
the two differ in the session check alone.

In one run (the harness of bench/harness.py, shared with bench/authz_check.py):
1. a fresh database and Redis, `migrate_schemas`, a tenant with 20 users, each with a
   device session and an access token (through the project's services);
2. gunicorn (gthread workers, `bench.bench_settings` = production settings plus the bench
   path) on 127.0.0.1;
3. latency on an idle server: one keep-alive connection, requests one at a time, WITH and
   WITHOUT interleaved (and the ping, for scale), so both see the same conditions. The
   figure judged is the ratio of the medians: target WITH <= 1.25 x WITHOUT (the check adds
   at most 25%);
4. throughput under load: short rounds measuring both back to back (the order
   alternating), from separate processes over keep-alive connections; the cost per request
   under load is WITHOUT's requests/s over WITH's (median of the rounds' ratios), printed
   beside the latency figure;
5. a table of both figures and their ratios, JSON and Markdown under bench/results/; the
   server stops and its database is dropped.

Every response is checked (200 and the session id in the answer); a run with errors fails.
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

TENANT = f"sessbench{os.getpid()}"
HOST = f"{TENANT}.{BASE_DOMAIN}"
SEED_MARK = "BENCH_SEED="
SETTINGS = "bench.bench_settings"
USERS = 20

WITH_CHECK = "/api/v1/auth/whoami/"
WITHOUT_CHECK = "/bench/whoami-no-session-check/"
TARGET = 1.25  # WITH's median latency at most 1.25 x WITHOUT's


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
        return Plan(2, 2, 7, 1000, workers, clients)
    return Plan(4, 3, 15, 3000, workers, clients)


def http_request(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> bytes:
    return harness.http_request(method, path, body, headers, host=HOST)


# --- seeding (runs inside Django, in a subprocess with the server's environment) -----------------


def seed() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.db import transaction
    from django_tenants.utils import tenant_context

    from identity.models import User
    from identity.services.tokens import token_pair_issue
    from sessions.services import Device, session_start
    from tenants.models import Plan as TenantPlan
    from tenants.services import tenant_create

    plan = TenantPlan.objects.create(code=TENANT, name="Bench", max_users=1000, max_devices_per_user=3, max_branches=5)
    tenant = tenant_create(
        slug=TENANT,
        name="Bench",
        plan=plan,
        admin_email=f"admin@{BASE_DOMAIN}",
        admin_password=secrets.token_urlsafe(16) + "aA1!",
    ).tenant
    tokens = []
    with tenant_context(tenant):
        policy = tenant.effective_policy
        for n in range(USERS):
            user = User.objects.create_user(email=f"user{n}@{BASE_DOMAIN}", password=None, full_name=f"User {n}")
            with transaction.atomic():
                session = session_start(
                    user=user,
                    device=Device(f"till-{n}", f"Till {n}", "pos"),
                    ip="127.0.0.1",
                    user_agent="bench",
                    policy=policy,
                    max_devices_per_user=plan.max_devices_per_user,
                )
                tokens.append(token_pair_issue(user=user, session=session).access)
    print(SEED_MARK + json.dumps({"tokens": tokens}))


def workloads(tokens: list[str]) -> tuple[Workload, Workload, Workload]:
    """The ping, and whoami with and without the session check: the same tokens, in the
    same order, and the same answer (the session id is in it)."""

    def requests(path: str) -> tuple[bytes, ...]:
        return tuple(http_request("GET", path, headers={"Authorization": f"Bearer {token}"}) for token in tokens)

    return (
        Workload("ping", (http_request("GET", PING),), b'"ok": true'),
        Workload("with_check", requests(WITH_CHECK), b'"session_id"'),
        Workload("without_check", requests(WITHOUT_CHECK), b'"session_id"'),
    )


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class Report:
    started_at: str
    plan: dict[str, Any]
    environment: dict[str, Any]
    with_rps: list[float] = field(default_factory=list)
    without_rps: list[float] = field(default_factory=list)
    errors: int = 0
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def latency_ratio(self) -> float:
        """WITH's median latency over WITHOUT's, on an idle server: the figure judged."""
        return self.latency_ms["with_check"]["median"] / self.latency_ms["without_check"]["median"]

    @property
    def added_ms(self) -> float:
        return self.latency_ms["with_check"]["median"] - self.latency_ms["without_check"]["median"]

    @property
    def round_ratios(self) -> list[float]:
        """Per round, the cost of a request WITH over WITHOUT under load (requests/s inverted)."""
        return [without / with_ for with_, without in zip(self.with_rps, self.without_rps, strict=True)]

    @property
    def load_ratio(self) -> float:
        return statistics.median(self.round_ratios)

    @property
    def passed(self) -> bool:
        return self.errors == 0 and self.latency_ratio <= TARGET


def table(report: Report) -> str:
    lat = report.latency_ms
    ok = {True: "PASS", False: "FAIL"}

    def latency(name: str) -> str:
        return f"{lat[name]['median']:.2f} / {lat[name]['p95']:.2f} ms"

    rows = [
        ("latency ping (median / p95), for scale", latency("ping"), "", ""),
        ("latency whoami WITH the session check (median / p95)", latency("with_check"), "", ""),
        ("latency whoami WITHOUT it (median / p95)", latency("without_check"), "", ""),
        ("latency WITH / WITHOUT (medians)", f"{report.latency_ratio:.3f}x (+{report.added_ms:.3f} ms)",
         f"<= {TARGET:.2f}x", ok[report.latency_ratio <= TARGET]),
        ("throughput WITH (mean of rounds)", f"{statistics.fmean(report.with_rps):,.0f} req/s", "", ""),
        ("throughput WITHOUT (mean of rounds)", f"{statistics.fmean(report.without_rps):,.0f} req/s", "", ""),
        ("cost per request under load, WITH / WITHOUT (median of rounds)", f"{report.load_ratio:.3f}x",
         f"(<= {TARGET:.2f}x)", "" if report.load_ratio <= TARGET else "over"),
        ("errors", str(report.errors), "0", ok[report.errors == 0]),
    ]  # fmt: skip
    return markdown_table(rows)


def write_results(report: Report) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = harness.results_stamp(report.started_at)
    data = asdict(report) | {
        "latency_ratio": report.latency_ratio,
        "added_ms": report.added_ms,
        "round_ratios": report.round_ratios,
        "load_ratio": report.load_ratio,
        "target": {"latency_ratio_max": TARGET},
        "passed": report.passed,
    }
    json_path = RESULTS / f"session_check-{stamp}.json"
    md_path = RESULTS / f"session_check-{stamp}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    env = report.environment
    md_path.write_text(
        f"# Session-check benchmark, {report.started_at}\n\n"
        f"{table(report)}\n\n"
        f"- Endpoint: GET {WITH_CHECK} (with the check) and GET {WITHOUT_CHECK} (the same view, "
        "authenticated without the session check; bench settings only)\n"
        f"- Server: gunicorn, {report.plan['workers']} gthread workers, `{SETTINGS}` (production settings "
        "plus the bench path), on 127.0.0.1\n"
        f"- Latency: one connection, {report.plan['latency_pairs']} requests of each kind, interleaved\n"
        f"- Load: {report.plan['clients']} processes, one keep-alive connection each; "
        f"{report.plan['rounds']} rounds of {report.plan['phase_seconds']} s per variant, alternating\n"
        f"- Machine: {env['cpus']} CPUs, Python {env['python']}, {env['database']}, {env['redis']}\n"
        f"- Throughput per round (req/s): with {[round(x) for x in report.with_rps]}, "
        f"without {[round(x) for x in report.without_rps]}; cost ratios {[round(x, 3) for x in report.round_ratios]}\n"
    )
    return json_path, md_path


def measure(port: int, plan: Plan, ping: Workload, with_check: Workload, without: Workload, report: Report) -> None:
    step: Callable[[str], None] = lambda text: print(f"  {text}", flush=True)  # noqa: E731
    step(f"warming up ({plan.warmup_seconds} s per variant)")
    for workload in (ping, with_check, without):
        throughput(port, workload, plan.warmup_seconds, plan.clients)
    step(f"latency: {plan.latency_pairs} x (ping, with, without), one connection, idle server")
    timings = latencies(port, [ping, with_check, without], plan.latency_pairs)
    report.latency_ms = {name: summary(values) for name, values in timings.items()}
    step(f"latency with / without: {report.latency_ratio:.3f}x")
    for index in range(plan.rounds):
        pair = [(with_check, report.with_rps), (without, report.without_rps)]
        for workload, into in pair if index % 2 == 0 else pair[::-1]:  # alternate the order: drift cancels
            rps, count, errors = throughput(port, workload, plan.phase_seconds, plan.clients)
            report.errors += errors
            into.append(rps)
            step(f"round {index + 1}/{plan.rounds}: {workload.name:13} {rps:8,.0f} req/s ({count} requests)")
        step(f"round {index + 1}/{plan.rounds}: cost with / without {report.round_ratios[-1]:.3f}x")


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
        env = server_env(database_url, redis_url, port, settings_module=SETTINGS)
        print(f"database: {database_where}; redis: {redis_where}; tenant host {HOST}", flush=True)
        print("migrating ...", flush=True)
        # System checks are CI's business (make lint, the tests); the benchmark measures speed.
        run([sys.executable, "manage.py", "migrate_schemas", "--noinput", "--skip-checks"], env)
        print("seeding ...", flush=True)
        output = run([sys.executable, str(Path(__file__).resolve()), "--seed"], env | {"BENCH_TENANT": TENANT})
        seeded = json.loads(next(line for line in output.splitlines() if line.startswith(SEED_MARK))[len(SEED_MARK) :])
        print(f"starting gunicorn on 127.0.0.1:{port} ({plan.workers} workers, {SETTINGS}) ...", flush=True)
        stack.enter_context(gunicorn(env, port, plan.workers, host=HOST))
        ping, with_check, without = workloads(seeded["tokens"])
        measure(port, plan, ping, with_check, without, report)
    print()
    print(table(report))
    json_path, md_path = write_results(report)
    print(f"\nwritten: {json_path.relative_to(ROOT)}, {md_path.relative_to(ROOT)}")
    verdict = "target met" if report.passed else "TARGET MISSED"
    added = report.latency_ratio - 1
    print(f"total time {time.monotonic() - started:.0f} s; the session check adds {added:+.1%} latency; {verdict}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    if "--seed" in sys.argv:
        TENANT = os.environ["BENCH_TENANT"]
        HOST = f"{TENANT}.{BASE_DOMAIN}"
        seed()
    else:
        sys.exit(main())
