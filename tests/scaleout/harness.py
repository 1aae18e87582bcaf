"""Web processes of the service on loopback: gunicorn with the test settings against a
database and Redis that the test names, as a deployment runs several behind a load balancer.

A web process is another process: it sees only committed rows, so the tenant it serves is
made on a connection of its own (tests/conftest.py `committed_tenant`, or `seed_tenant`
below for a database of a private server).
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from tests.factories import TEST_PASSWORD
from tests.notifications.harness import free_port

ROOT = Path(__file__).resolve().parents[2]
BASE_DOMAIN = "idp.test"  # config.settings.test
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
# A request never waits longer than this: a hung server fails the test instead of the run.
REQUEST_TIMEOUT = 20.0


def web_environment(
    *, database_url: str, redis_url: str, settings: str = "config.settings.test", **extra: str
) -> dict[str, str]:
    return os.environ | {
        "DJANGO_SETTINGS_MODULE": settings,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
        **extra,
    }


@dataclass
class WebProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(
        self, method: str, path: str, *, host: str, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        """One HTTP request on a new connection, with the tenant's Host (and a bearer token)."""
        headers = {"Host": host, **kwargs.pop("headers", {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(
            method, self.base_url + path, headers=headers, timeout=REQUEST_TIMEOUT, allow_redirects=False, **kwargs
        )

    def login(
        self, host: str, email: str, password: str = TEST_PASSWORD, device_id: str = "pos-1"
    ) -> requests.Response:
        body = {
            "email": email,
            "password": password,
            "device_id": device_id,
            "device_name": "Till",
            "device_type": "pos",
        }
        return self.request("POST", "/api/v1/auth/token/", host=host, json=body)

    def worker_pids(self) -> list[int]:
        """The gunicorn workers (children of the master)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(pid) for pid in children.read_text().split()] if children.exists() else []

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT)


def web_start(name: str, log_dir: Path, environment: dict[str, str], *, workers: int = 1) -> WebProcess:
    """gunicorn (gthread, one thread per worker) on a free loopback port; returns once it
    answers its liveness probe."""
    port = free_port()
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--worker-class",
                "gthread",
                "--threads",
                "1",
                "--graceful-timeout",
                "5",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends the master and its workers
        )
    web = WebProcess(name=name, port=port, process=process, log_path=log_path)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if web.request("GET", "/health/live/", host=BASE_DOMAIN).status_code == 200:
                return web
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            web.stop()
            raise AssertionError(f"web process {name} did not start:\n{web.log()}")
        time.sleep(0.2)


@contextmanager
def web_processes(count: int, log_dir: Path, environment: dict[str, str]) -> Iterator[list[WebProcess]]:
    """`count` web processes, all stopped at the end whatever happened."""
    started: list[WebProcess] = []
    try:
        for index in range(count):
            started.append(web_start(f"web{index + 1}", log_dir, environment))
        yield started
    finally:
        for web in started:
            web.stop()


@contextmanager
def tenant_committed(*, slug: str, policy: dict[str, Any], employees: tuple[str, ...] = ()) -> Iterator[None]:
    """Tenant `slug` of the test database with `policy`, its admin SHARED_ADMIN_EMAIL and
    `employees`, all with TEST_PASSWORD: made and dropped on connections of their own, so
    that other processes see it. The caller holds database access (django_db_blocker)."""
    from django_tenants.utils import schema_context

    from tenants.models import Plan, Tenant
    from tenants.policy import policy_validate
    from tenants.services import tenant_create
    from tests.concurrency import on_own_connection
    from tests.conftest import SHARED_ADMIN_EMAIL
    from tests.factories import UserFactory

    def create() -> Tenant:
        plan = Plan.objects.get(code="standard")
        created = tenant_create(
            slug=slug,
            name=slug.title(),
            plan=plan,
            admin_email=SHARED_ADMIN_EMAIL,
            admin_password=TEST_PASSWORD,
            policy=policy_validate(policy, max_devices_per_user=plan.max_devices_per_user),
        )
        with schema_context(slug):
            for email in employees:
                UserFactory(email=email, password=TEST_PASSWORD)
        return created.tenant

    tenant = on_own_connection(create)
    try:
        yield
    finally:
        on_own_connection(lambda: Tenant.objects.get(pk=tenant.pk).delete(force_drop=True))


SEED = """
import json, sys
import django
django.setup()
from tenants.models import Plan
from tenants.policy import policy_validate
from tenants.services import tenant_create
slug, email, password, policy = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
plan, _ = Plan.objects.get_or_create(
    code="standard", defaults={"name": "Standard", "max_users": 20, "max_devices_per_user": 3, "max_branches": 5}
)
tenant_create(
    slug=slug, name=slug.title(), plan=plan, admin_email=email, admin_password=password,
    policy=policy_validate(policy, max_devices_per_user=plan.max_devices_per_user),
)
"""


def seed_tenant(environment: dict[str, str], *, slug: str, email: str, policy: str = "{}") -> None:
    """Migrate the database of `environment` and create tenant `slug` with admin `email`
    (password TEST_PASSWORD), in processes of their own (as an operator would)."""
    for argv in (
        [sys.executable, "manage.py", "migrate_schemas", "--noinput"],
        [sys.executable, "-c", SEED, slug, email, TEST_PASSWORD, policy],
    ):
        result = subprocess.run(  # noqa: S603 (our own interpreter and arguments)
            argv, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300, check=False
        )
        assert result.returncode == 0, f"{argv[1:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
