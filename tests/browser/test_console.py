"""The tenant console in a real browser: an admin's day (log in, create an employee, give
them a role, end a session, read the dashboard), an auditor who can look but not touch, and
an employee who cannot get in."""

import re
from datetime import timedelta

from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import Page, expect

from identity.models import AuditEvent, LoginAttempt, User
from rbac.catalog import MANAGER
from rbac.models import RoleAssignment
from sessions.models import DeviceSession, EndReason
from tests.browser.conftest import ARTIFACTS, AUDITOR_EMAIL, EMPLOYEE_EMAIL, SLUG, Console, committed, sign_in
from tests.conftest import SHARED_ADMIN_EMAIL

NEW_EMAIL = "new.waiter@shop.example"
DASHBOARD_SCREENSHOT = ARTIFACTS / "console-dashboard.png"


def _security_history() -> str:
    """A few days of failed logins, a lockout, a suspicious event, the employee's sessions on
    a till and a tablet, and the auditor's session on a till (the one the admin ends).
    Returns that session's id."""
    auditor = User.objects.get(email=AUDITOR_EMAIL)
    employee = User.objects.get(email=EMPLOYEE_EMAIL)
    for device_type in ("pos", "tablet"):
        DeviceSession.objects.create(
            user=employee,
            device_id=f"{device_type}-1",
            device_type=device_type,
            expires_at=timezone.now() + timedelta(days=1),
        )
    for days_ago, ip, count in ((0, "198.51.100.7", 4), (1, "203.0.113.9", 2), (3, "198.51.100.7", 3)):
        for _ in range(count):
            attempt = LoginAttempt.objects.create(email="guess@shop.example", success=False, ip=ip)
            LoginAttempt.objects.filter(pk=attempt.pk).update(timestamp=timezone.now() - timedelta(days=days_ago))
    AuditEvent.objects.create(type="account.locked", target_type="user", target_id=str(auditor.pk))
    AuditEvent.objects.create(type="token.reused", target_type="user", target_id=str(auditor.pk), ip="198.51.100.7")
    session = DeviceSession.objects.create(
        user=auditor,
        device_id="till-7",
        device_name="Front till",
        device_type="pos",
        expires_at=timezone.now() + timedelta(days=1),
    )
    return str(session.pk)


def test_an_admin_creates_an_employee_assigns_a_role_ends_a_session_and_reads_the_dashboard(console: Console):
    session_id = committed(_security_history)

    def admin_day(page: Page) -> str:
        sign_in(page, console, SHARED_ADMIN_EMAIL)
        expect(page.locator("#site-name")).to_contain_text("Shop console")

        # Create an employee: the generated password is shown once.
        page.goto(console.url("/admin/identity/user/add/"))
        page.fill("#id_email", NEW_EMAIL)
        page.fill("#id_full_name", "New Waiter")
        page.click("input[name=_save]")
        expect(page.locator("h1")).to_have_text("Employee created")
        password = page.locator(".console-secret-value").inner_text()

        # Give them the Manager role, tenant-wide, on their page.
        page.click("text=Continue")
        page.locator("select[name$='-role']:not([name*='__prefix__'])").last.select_option(label=MANAGER)
        page.click("input[name=_save]")
        expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

        # End the auditor's session on the till.
        page.goto(console.url("/admin/device_sessions/devicesession/?state=active"))
        page.check(f"input[name=_selected_action][value='{session_id}']")
        page.select_option("select[name=action]", "end_sessions")
        page.click("button[name=index]")
        expect(page.locator(".messagelist")).to_contain_text("Ended: 1.")

        # The dashboard, drawn by the server.
        page.goto(console.url("/admin/security/"))
        expect(page.locator("h1")).to_have_text("Security dashboard")
        expect(page.locator("svg.console-chart")).to_have_count(3)
        expect(page.locator(".console-events")).to_contain_text("token.reused")
        page.screenshot(path=str(DASHBOARD_SCREENSHOT), full_page=True)
        return password

    password = console.in_browser(admin_day)

    with schema_context(SLUG):
        employee = User.objects.get(email=NEW_EMAIL)
        admin = User.objects.get(email=SHARED_ADMIN_EMAIL)
        assert employee.check_password(password) and employee.must_change_password
        assert RoleAssignment.objects.filter(user=employee, role__name=MANAGER, branch=None).exists()
        assert DeviceSession.objects.get(pk=session_id).end_reason == EndReason.ADMIN
        for event_type in ("user.created", "role.assigned", "session.ended"):
            assert AuditEvent.objects.filter(type=event_type, actor_id=admin.pk).exists(), event_type
    assert DASHBOARD_SCREENSHOT.stat().st_size > 10_000


def test_an_auditor_reads_the_console_but_is_offered_no_change_and_refused_one(console: Console):
    def auditor_visit(page: Page) -> None:
        sign_in(page, console, AUDITOR_EMAIL)
        expect(page.locator("#site-name")).to_contain_text("Shop console")

        page.goto(console.url("/admin/identity/user/"))
        expect(page.locator("#result_list")).to_contain_text(EMPLOYEE_EMAIL)
        expect(page.locator("a.addlink")).to_have_count(0)
        expect(page.locator("select[name=action]")).to_have_count(0)

        page.click(f"text={EMPLOYEE_EMAIL}")
        expect(page.locator("h1")).to_have_text("View user")  # a page to read only
        expect(page.locator("div.readonly").first).to_have_text(EMPLOYEE_EMAIL)
        expect(page.locator("input[name=_save]")).to_have_count(0)

        refused = page.goto(console.url("/admin/identity/user/add/"))
        assert refused is not None and refused.status == 403

        page.goto(console.url("/admin/security/"))
        expect(page.locator("h1")).to_have_text("Security dashboard")

    console.in_browser(auditor_visit)

    with schema_context(SLUG):
        assert (
            not AuditEvent.objects.filter(actor_id=User.objects.get(email=AUDITOR_EMAIL).pk)
            .exclude(type__in=["login.succeeded"])
            .exists()
        )


def test_an_employee_cannot_enter_the_console(console: Console):
    def employee_visit(page: Page) -> None:
        sign_in(page, console, EMPLOYEE_EMAIL)
        expect(page.locator(".errornote")).to_contain_text("Please enter the correct")
        expect(page).to_have_url(re.compile(r"/admin/login/"))

        page.goto(console.url("/admin/identity/user/"))
        expect(page).to_have_url(re.compile(r"/admin/login/\?next="))

    console.in_browser(employee_visit)
