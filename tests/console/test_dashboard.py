"""The security dashboard: its numbers (console.selectors), its charts (server-drawn SVG, no
script, no inline style), and who may open it."""

import re
from datetime import timedelta

from django.utils import timezone
from django_tenants.utils import schema_context

from console import charts, selectors
from identity.models import AuditEvent, LoginAttempt, User
from sessions.models import DeviceSession
from tests.console.conftest import console_client

DASHBOARD = "/admin/security/"


def attempt(*, ip: str, days_ago: int = 0, success: bool = False) -> None:
    row = LoginAttempt.objects.create(email="x@acme.example", success=success, ip=ip)
    LoginAttempt.objects.filter(pk=row.pk).update(timestamp=timezone.now() - timedelta(days=days_ago))


def event(type_: str, *, days_ago: int = 0) -> None:
    row = AuditEvent.objects.create(type=type_)
    AuditEvent.objects.filter(pk=row.pk).update(timestamp=timezone.now() - timedelta(days=days_ago))


def session(device_type: str, *, ended: bool = False) -> None:
    DeviceSession.objects.create(
        user=User.objects.order_by("email")[0],
        device_id=f"{device_type}-{DeviceSession.objects.count()}",
        device_type=device_type,
        expires_at=timezone.now() + timedelta(days=1),
        ended_at=timezone.now() if ended else None,
    )


def test_daily_counts_cover_every_day_of_the_window_with_failed_logins_and_lockouts(cast):
    with schema_context("acme"):
        attempt(ip="203.0.113.1")
        attempt(ip="203.0.113.1", days_ago=2)
        attempt(ip="203.0.113.1", days_ago=2, success=True)
        attempt(ip="203.0.113.1", days_ago=20)  # outside the window
        event("account.locked", days_ago=2)
        days = selectors.security_daily_counts()

    assert len(days) == selectors.DASHBOARD_DAYS
    assert days[-1].day == timezone.now().date()
    assert (days[-1].failed_logins, days[-1].lockouts) == (1, 0)
    assert (days[-3].failed_logins, days[-3].lockouts) == (1, 1)
    assert sum(day.failed_logins for day in days) == 2


def test_top_failing_addresses_are_ranked_by_failures(cast):
    with schema_context("acme"):
        for _ in range(3):
            attempt(ip="198.51.100.9")
        attempt(ip="203.0.113.1")
        attempt(ip="192.0.2.1", success=True)

        assert selectors.top_failing_ips() == [("198.51.100.9", 3), ("203.0.113.1", 1)]


def test_active_sessions_are_counted_by_device_type(cast):
    with schema_context("acme"):
        session("pos")
        session("pos")
        session("tablet")
        session("phone", ended=True)

        assert selectors.active_sessions_by_device_type() == [("pos", 2), ("tablet", 1)]


def test_recent_suspicious_events_are_only_the_suspicious_types(cast):
    with schema_context("acme"):
        for type_ in ("ip.blocked", "security.flagged", "token.reused", "login.failed"):
            event(type_)

        assert sorted(e.type for e in selectors.suspicious_events_recent()) == [
            "ip.blocked",
            "security.flagged",
            "token.reused",
        ]


def test_column_chart_bars_scale_to_the_largest_value():
    chart = charts.column_chart(["a", "b"], [("failed-logins", [4, 2]), ("lockouts", [0, 1])], height=124)

    heights = {(bar.label.split(":")[0], bar.series): bar.height for bar in chart.bars}
    assert heights[("a", "failed-logins")] == 2 * heights[("b", "failed-logins")]
    assert heights[("a", "lockouts")] == 0
    assert all(bar.y + bar.height <= chart.height for bar in chart.bars)


def test_the_dashboard_draws_its_charts_without_script_or_inline_style(cast):
    with schema_context("acme"):
        attempt(ip="198.51.100.9")
        event("token.reused")
        session("pos")

    response = console_client(cast.auditor).get(DASHBOARD)

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('<svg class="console-chart"') == 3
    assert "198.51.100.9" in html and "token.reused" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # scripts only from files
    assert not re.search(r"\sstyle=|\son[a-z]+=", html)  # no inline styles or event handlers
    assert "/static/console/console.css" in html


def test_the_index_links_the_dashboard_for_those_who_may_open_it(cast):
    assert b'href="/admin/security/"' in console_client(cast.auditor).get("/admin/").content


def test_the_dashboard_needs_audit_view(cast):
    from tests.console.test_permissions import holder_of

    with schema_context("acme"):
        viewer = holder_of("users.view")
    client = console_client(viewer)

    assert client.get(DASHBOARD).status_code == 403
    assert b'href="/admin/security/"' not in client.get("/admin/").content
    employee_response = console_client(cast.employee).get(DASHBOARD)
    assert employee_response.status_code == 302


def test_no_console_page_carries_inline_script_style_or_event_handlers(cast):
    """The console is served under a CSP that allows scripts and styles from files only."""
    client = console_client(cast.admin)
    with schema_context("acme"):
        pages = [
            "/admin/",
            "/admin/security/",
            "/admin/password_change/",
            "/admin/identity/user/",
            "/admin/identity/user/add/",
            f"/admin/identity/user/{cast.employee.pk}/change/",
            "/admin/rbac/role/add/",
            "/admin/rbac/serviceclient/add/",
            "/admin/device_sessions/devicesession/",
            "/admin/identity/auditevent/",
        ]
    for page in [*pages, "/admin/login/"]:
        response = (console_client() if page == "/admin/login/" else client).get(page)
        assert response.status_code == 200, page
        html = response.content.decode()
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), page
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html), page
