"""The benchmark's Django side: seeding and timing that run inside the project, in a subprocess
started by bench/suite.py with the server's environment (same database, Redis and settings,
hence the same password-hasher costs). Each step prints one line `BENCH_RESULT=<json>`.

    python bench/seed.py main     PREFIX   the benchmark tenant: users, sessions, clients
    python bench/seed.py tenants  PREFIX N USERS   N more tenants (timed), two of them for the
                                           user-scale rows (100 and USERS users)
    python bench/seed.py hash     ROUNDS   the time of one password hash, as the server hashes

Everything is written through the project's services (tenant_create, role_assign,
session_start, token_pair_issue, service_client_create), except the users of the user-scale
tenants and the login users, which are bulk-inserted with one precomputed password hash (the
hasher's own cost would make 100,000 users take an hour).
"""

import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULT_MARK = "BENCH_RESULT="
BASE_DOMAIN = "bench.test"
PASSWORD = "Bench-Passw0rd!"  # the login users' password (a bench tenant only)
SMALL_USERS = 100
# The benchmark tenant's refresh limit: 2/min per session by default. Refresh throughput is
# measured over a few hundred sessions, so the benchmark tenant's policy raises it (printed).
REFRESH_RATE = "1000000/min"
LOGIN_USERS = 500
SESSION_USERS = 50
REFRESH_SESSIONS = 200
CHECK_USERS = 60
# A tenant in service holds its devices' used refresh tokens until they expire (a till that
# refreshes every half hour leaves 48 a day, kept for refresh_days, 7 by default). The
# refreshing sessions are seeded with that history, so PostgreSQL plans the refresh's
# statements and foreign-key checks for tables of that size. With a new tenant's near-empty
# tables it plans whole-table scans, each refresh then costs more than the last until
# autovacuum analyzes the tables: a new tenant's first minute, not the steady state the
# row is about (docs/performance.md, the fifth pass).
TOKEN_HISTORY_PER_SESSION = 48 * 7


def emit(result: Any) -> None:
    print(RESULT_MARK + json.dumps(result), flush=True)


def setup() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def bench_plan(code: str) -> Any:
    from tenants.models import Plan

    plan, _ = Plan.objects.get_or_create(
        code=code,
        defaults={"name": "Bench", "max_users": 1_000_000, "max_devices_per_user": 3, "max_branches": 50},
    )
    return plan


def timed_tenant_create(slug: str, plan: Any) -> tuple[Any, float]:
    from tenants.services import tenant_create

    began = time.perf_counter()
    created = tenant_create(
        slug=slug,
        name=f"Bench {slug}",
        plan=plan,
        admin_email=f"admin@{BASE_DOMAIN}",
        admin_password=secrets.token_urlsafe(16) + "aA1!",
    )
    return created.tenant, time.perf_counter() - began


def bulk_users(prefix: str, count: int, *, password_hash: str, employee_role: Any | None) -> list[Any]:
    """`count` active users (emails `<prefix><n>@bench.test`) in the current schema, inserted in
    batches, sharing one precomputed hash; with `employee_role`, each holds it tenant-wide."""
    from django.utils import timezone

    from identity.models import User
    from rbac.models import RoleAssignment

    now = timezone.now()
    users: list[Any] = []
    batch = 5000
    for start in range(0, count, batch):
        chunk = [
            User(
                email=f"{prefix}{n}@{BASE_DOMAIN}",
                full_name=f"User {n}",
                password=password_hash,
                is_active=True,
                email_verified_at=now,
            )
            for n in range(start, min(count, start + batch))
        ]
        User.objects.bulk_create(chunk)
        if employee_role is not None:
            RoleAssignment.objects.bulk_create(
                [RoleAssignment(user=user, role=employee_role, branch=None) for user in chunk]
            )
        users.extend(chunk)
    return users


def token_history(users: list[Any], per_user: int) -> None:
    """`per_user` used refresh tokens of each of `users` (outstanding and blacklisted), the
    oldest issued `per_user` half hours ago, in the current schema."""
    from datetime import timedelta

    from django.utils import timezone
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    from identity.tokens import jti_hash

    now, lifetime = timezone.now(), timedelta(days=7)
    for user in users:
        issued = [now - timedelta(minutes=30 * (n + 1)) for n in range(per_user)]
        tokens = OutstandingToken.objects.bulk_create(
            OutstandingToken(user=user, jti=jti_hash(secrets.token_hex(16)), created_at=at, expires_at=at + lifetime)
            for at in issued
        )
        BlacklistedToken.objects.bulk_create(
            BlacklistedToken(token=token, blacklisted_at=at + timedelta(minutes=30))
            for token, at in zip(tokens, issued, strict=True)
        )


def analyze() -> None:
    """Fresh planner statistics for the current tenant's tables after bulk inserts (autovacuum
    would get there later). Not the whole database: with 300 tenants that is 300 schemas of
    tables, which outlasted the production settings' statement timeout on a slow machine; a
    maintenance step, so it runs without that timeout."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")
        cursor.execute(
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = current_schema()"
        )
        cursor.execute("ANALYZE " + ", ".join(name for (name,) in cursor.fetchall()))


def seed_main(prefix: str) -> None:
    """The benchmark tenant: 10 branches; 60 users holding roles (the check API); 500 login
    users; 50 users with a device session and an access token (authenticated endpoint,
    introspection); 200 sessions whose refresh tokens rotate, with a week of used refresh
    tokens each (TOKEN_HISTORY_PER_SESSION); one service client with the
    `authz:check` and `oauth:introspect` scopes (client-credentials grant, check, introspection)."""
    setup()
    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django_tenants.utils import tenant_context

    from identity.models import User
    from identity.services.tokens import token_pair_issue
    from rbac.catalog import AUDITOR, EMPLOYEE, MANAGER
    from rbac.models import SCOPE_AUTHZ_CHECK, SCOPE_INTROSPECT, Branch, Role
    from rbac.service_clients import service_client_create
    from rbac.services import role_assign
    from sessions.services import Device, session_start
    from tenants.services import tenant_update

    plan = bench_plan(f"{prefix}plan")
    tenant, seconds = timed_tenant_create(f"{prefix}main", plan)
    tenant = tenant_update(tenant=tenant, policy={"rate_limits": {"refresh": REFRESH_RATE}})
    with tenant_context(tenant):
        branches = [Branch.objects.create(external_id=f"br-{n}", name=f"Branch {n}") for n in range(10)]
        roles = {name: Role.objects.get(name=name) for name in (EMPLOYEE, MANAGER, AUDITOR)}
        check_users = []
        for n in range(CHECK_USERS):
            user = User.objects.create_user(email=f"check{n}@{BASE_DOMAIN}", password=None, full_name=f"Check {n}")
            branch = branches[n % len(branches)]
            if n % 3 == 0:
                role_assign(user=user, role=roles[EMPLOYEE], branch=None, actor=None)
            elif n % 3 == 1:
                role_assign(user=user, role=roles[MANAGER], branch=branch, actor=None)
            else:
                role_assign(user=user, role=roles[AUDITOR], branch=None, actor=None)
                role_assign(user=user, role=roles[EMPLOYEE], branch=branch, actor=None)
            check_users.append({"id": str(user.pk), "kind": n % 3, "branch": branch.external_id})
        login_users = bulk_users("login", LOGIN_USERS, password_hash=make_password(PASSWORD), employee_role=None)

        def sessions_for(prefix: str, count: int) -> list[Any]:
            pairs = []
            for n in range(count):
                user = User.objects.create_user(email=f"{prefix}{n}@{BASE_DOMAIN}", password=None)
                with transaction.atomic():
                    session = session_start(
                        user=user,
                        device=Device(f"till-{n}", f"Till {n}", "pos"),
                        ip="127.0.0.1",
                        user_agent="bench",
                        policy=tenant.effective_policy,
                        max_devices_per_user=plan.max_devices_per_user,
                    )
                    pairs.append(token_pair_issue(user=user, session=session))
            return pairs

        authenticated = sessions_for("session", SESSION_USERS)
        refreshing = sessions_for("refresh", REFRESH_SESSIONS)
        token_history(list(User.objects.filter(email__startswith="refresh")), TOKEN_HISTORY_PER_SESSION)
        client = service_client_create(name="bench", scopes=[SCOPE_AUTHZ_CHECK, SCOPE_INTROSPECT], actor=None)
        analyze()
    emit(
        {
            "slug": tenant.schema_name,
            "create_seconds": seconds,
            "refresh_rate": REFRESH_RATE,
            "check_users": check_users,
            "login_emails": [user.email for user in login_users],
            "access_tokens": [pair.access for pair in authenticated],
            "session_ids": [pair.session_id for pair in authenticated],
            "refresh_tokens": [pair.refresh for pair in refreshing],
            "client_id": client.client.client_id,
            "client_secret": client.client_secret,
        }
    )


def seed_tenants(prefix: str, count: int, large_users: int) -> None:
    """`count` more tenants, each creation timed; the first two get the user-scale rows'
    users (SMALL_USERS and `large_users`, each holding Employee tenant-wide, one service
    client each), after every tenant exists."""
    setup()
    from django.contrib.auth.hashers import make_password
    from django_tenants.utils import tenant_context

    from rbac.catalog import EMPLOYEE
    from rbac.models import SCOPE_AUTHZ_CHECK, Role
    from rbac.service_clients import service_client_create

    plan = bench_plan(f"{prefix}plan")
    seconds: list[float] = []
    tenants = []
    for n in range(count):
        slug = {0: f"{prefix}small", 1: f"{prefix}large"}.get(n, f"{prefix}t{n:04d}")
        tenant, took = timed_tenant_create(slug, plan)
        tenants.append(tenant)
        seconds.append(took)
    password_hash = make_password(PASSWORD)
    scale = {}
    began = time.perf_counter()
    for tenant, size in ((tenants[0], SMALL_USERS), (tenants[1], large_users)):
        with tenant_context(tenant):
            users = bulk_users("user", size, password_hash=password_hash, employee_role=Role.objects.get(name=EMPLOYEE))
            client = service_client_create(name="bench", scopes=[SCOPE_AUTHZ_CHECK], actor=None)
            analyze()
        # Spread over the whole table: the users asked about are not all the oldest rows.
        sample = users[:: max(1, size // SMALL_USERS)][:SMALL_USERS]
        scale[tenant.schema_name] = {
            "users": size,
            "user_ids": [str(user.pk) for user in sample],
            "emails": [user.email for user in sample],
            "client_id": client.client.client_id,
            "client_secret": client.client_secret,
        }
    emit(
        {
            "create_seconds": seconds,
            "slugs": [tenant.schema_name for tenant in tenants],
            "scale": scale,
            "user_seed_seconds": time.perf_counter() - began,
        }
    )


def hash_time(rounds: int) -> None:
    """Seconds (wall and CPU) of one password hash with the configured hasher: the median of
    `rounds` hashes in this one process, as a worker would hash at login."""
    setup()
    from django.contrib.auth.hashers import get_hasher

    hasher = get_hasher()
    hasher.encode(PASSWORD, hasher.salt())  # the library loaded, the memory touched once
    wall, cpu = [], []
    for _ in range(rounds):
        salt = hasher.salt()
        began_wall, began_cpu = time.perf_counter(), time.process_time()
        hasher.encode(PASSWORD, salt)
        wall.append(time.perf_counter() - began_wall)
        cpu.append(time.process_time() - began_cpu)
    params = hasher.params() if hasattr(hasher, "params") else None
    emit(
        {
            "algorithm": hasher.algorithm,
            "params": None
            if params is None
            else {
                "time_cost": params.time_cost,
                "memory_cost_kib": params.memory_cost,
                "parallelism": params.parallelism,
            },
            "wall_seconds": statistics.median(wall),
            "cpu_seconds": statistics.median(cpu),
        }
    )


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.prod")
    if command == "main":
        seed_main(args[0])
    elif command == "tenants":
        seed_tenants(args[0], int(args[1]), int(args[2]))
    elif command == "hash":
        hash_time(int(args[0]))
    else:
        raise SystemExit(f"unknown step {command!r}")
