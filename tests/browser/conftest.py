"""Browser tests: Playwright driving Debian's Chromium against the app served by a thread
server, on a tenant of their own whose rows are committed.

- Chromium: /usr/bin/chromium, installed here with apt-get when it is missing (so `make
  test` and `.ci/run` on a fresh Debian machine get it); never Playwright's own browser
  download. Headless, without the sandbox (the tests run as root).
- Hosts: Chromium maps *.idp.test to 127.0.0.1 (--host-resolver-rules), so the console is
  reached at http://shop.idp.test:<port>/ and routed by its Host like any tenant.
- Data: the server's threads use their own connections and see only committed rows, so the
  tenant and everything a test sets up are committed on another connection
  (tests.concurrency.on_own_connection) and the tenant's schema is dropped at the end.
  pytest-django's live_server is not used: it makes tests transactional, and the flush
  after each one empties the public schema's tenants that the other tests share.
- Playwright's sync API runs an event loop in the thread that drives it, and Django refuses
  database calls from such a thread; each test drives the browser in a thread of its own
  (`in_browser`) and checks the database from the test's thread afterwards.
"""

import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.test.testcases import LiveServerThread
from django_tenants.utils import schema_context
from playwright.sync_api import Page, sync_playwright

from identity.models import User
from rbac.catalog import AUDITOR, EMPLOYEE
from rbac.models import Role
from rbac.services import role_assign
from tenants.models import Plan, Tenant
from tenants.services import tenant_create
from tests.concurrency import on_own_connection
from tests.conftest import SHARED_ADMIN_EMAIL
from tests.factories import TEST_PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
SLUG = "shop"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
AUDITOR_EMAIL = "auditor@shop.example"
EMPLOYEE_EMAIL = "cook@shop.example"

T = TypeVar("T")


def chromium_executable() -> Path:
    """Debian's Chromium, installed with apt-get when missing (the machine is Debian and the
    tests run as root)."""
    if not CHROMIUM.exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        # Fixed commands, no input from anywhere: installing the browser is the point.
        subprocess.run(["/usr/bin/apt-get", "update"], check=True, env=env)
        subprocess.run(["/usr/bin/apt-get", "install", "-y", "chromium"], check=True, env=env)
    return CHROMIUM


@dataclass(frozen=True)
class Console:
    origin: str  # http://shop.idp.test:<port>

    def url(self, path: str) -> str:
        return f"{self.origin}{path}"

    def in_browser(self, steps: Callable[[Page], T]) -> T:
        """Run `steps` with a fresh page of a headless Chromium, in a thread of its own."""

        def drive() -> T:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(chromium_executable()),
                    headless=True,
                    args=["--no-sandbox", "--host-resolver-rules=MAP *.idp.test 127.0.0.1"],
                )
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 900})
                    page.set_default_timeout(15_000)
                    return steps(page)
                finally:
                    browser.close()

        return on_own_connection(drive)


def _shop_create() -> Tenant:
    plan, _ = Plan.objects.get_or_create(
        code="standard",
        defaults={"name": "Standard", "max_users": 20, "max_devices_per_user": 3, "max_branches": 5},
    )
    tenant = tenant_create(
        slug=SLUG, name="Shop", plan=plan, admin_email=SHARED_ADMIN_EMAIL, admin_password=TEST_PASSWORD
    ).tenant
    with schema_context(SLUG):
        for email, role in ((AUDITOR_EMAIL, AUDITOR), (EMPLOYEE_EMAIL, EMPLOYEE)):
            user = User.objects.create_user(email=email, password=TEST_PASSWORD, full_name=role)
            role_assign(user=user, role=Role.objects.get(name=role), branch=None, actor=None)
    return tenant


@pytest.fixture(scope="module")
def console(django_db_setup: None, django_db_blocker: Any) -> Iterator[Console]:
    """The app on a free port of 127.0.0.1, with a committed tenant `shop`."""
    chromium_executable()
    ARTIFACTS.mkdir(exist_ok=True)
    with django_db_blocker.unblock():
        tenant = on_own_connection(_shop_create)
        server = LiveServerThread("127.0.0.1", StaticFilesHandler)
        server.daemon = True
        server.start()
        server.is_ready.wait()
        try:
            if server.error:
                raise server.error
            yield Console(origin=f"http://{SLUG}.idp.test:{server.port}")
        finally:
            server.terminate()
            on_own_connection(lambda: Tenant.objects.get(pk=tenant.pk).delete(force_drop=True))


def committed(fn: Callable[[], T]) -> T:
    """Run `fn` in the shop's schema on another connection, committed for the server to see."""

    def run() -> T:
        with schema_context(SLUG):
            return fn()

    return on_own_connection(run)


def sign_in(page: Page, console: Console, email: str, password: str = TEST_PASSWORD) -> None:
    page.goto(console.url("/admin/login/"))
    page.fill("#id_username", email)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
