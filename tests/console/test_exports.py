"""The read-only lists of login attempts and audit events, and their CSV exports: streamed,
with the list's filters and search, for holders of `audit.view` only."""

from datetime import timedelta

from django.http import StreamingHttpResponse
from django.utils import timezone
from django_tenants.utils import schema_context

from identity.audit_selectors import LOGIN_ATTEMPT_EXPORT_COLUMNS
from identity.models import AuditEvent, LoginAttempt
from tests.console.conftest import console_client

EVENTS = "/admin/identity/auditevent/"
ATTEMPTS = "/admin/identity/loginattempt/"


def csv_lines(response) -> list[str]:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content).decode().splitlines()  # type: ignore[arg-type]


def test_the_audit_export_streams_the_filtered_list_as_csv(cast):
    with schema_context("acme"):
        AuditEvent.objects.create(type="role.created", target_type="role", target_id="7", data={"after": {"n": 1}})
        AuditEvent.objects.create(type="branch.created", target_type="branch", target_id="8")

    response = console_client(cast.auditor).get(f"{EVENTS}export.csv", {"kind": "role", "q": "7"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    header, *rows = csv_lines(response)
    assert header.startswith("id,timestamp,type,actor_id,target_type,target_id")
    assert len(rows) == 1 and ",role.created," in rows[0] and '{""after"": {""n"": 1}}' in rows[0]


def test_the_login_attempt_export_keeps_the_success_filter_and_neutralises_formulas(cast):
    with schema_context("acme"):
        LoginAttempt.objects.create(
            email="x@acme.example", success=False, reason="invalid_credentials", user_agent="=cmd"
        )
        LoginAttempt.objects.create(email="y@acme.example", success=True)

    response = console_client(cast.admin).get(f"{ATTEMPTS}export.csv", {"success__exact": "0"})

    header, *rows = csv_lines(response)
    assert header == ",".join(LOGIN_ATTEMPT_EXPORT_COLUMNS)  # the API's export format
    assert len(rows) == 1 and rows[0].count("x@acme.example") == 1 and ",'=cmd," in rows[0]
    assert ",false,invalid_credentials," in rows[0]


def test_the_lists_link_their_export_with_the_current_filters(cast):
    response = console_client(cast.auditor).get(EVENTS, {"kind": "login"})

    assert response.status_code == 200
    assert b'href="/admin/identity/auditevent/export.csv?kind=login"' in response.content


def test_an_export_with_a_bad_filter_answers_with_a_message_not_an_error(cast):
    response = console_client(cast.admin).get(f"{ATTEMPTS}export.csv", {"timestamp__gte": "not a date"}, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[0][0].startswith(ATTEMPTS)


def test_odd_search_terms_do_not_break_the_lists(cast):
    client = console_client(cast.admin)

    for term in ("a:b", "::1", "'", "%", "1.2.3.4"):
        assert client.get(ATTEMPTS, {"q": term}).status_code == 200, term
        assert client.get(EVENTS, {"q": term}).status_code == 200, term
        assert client.get("/admin/device_sessions/devicesession/", {"q": term}).status_code == 200, term


def test_without_audit_view_there_is_no_list_and_no_export(cast):
    from tests.console.test_permissions import holder_of

    with schema_context("acme"):
        viewer = holder_of("users.view")
    client = console_client(viewer)

    assert client.get(EVENTS).status_code == 403
    assert client.get(f"{EVENTS}export.csv").status_code == 403
    assert client.get(f"{ATTEMPTS}export.csv").status_code == 403


def test_an_employee_is_sent_to_the_login_page_for_an_export(cast):
    response = console_client(cast.employee).get(f"{EVENTS}export.csv")

    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_the_attempt_list_filters_by_day(cast):
    with schema_context("acme"):
        old = LoginAttempt.objects.create(email="old@acme.example", success=False)
        LoginAttempt.objects.filter(pk=old.pk).update(timestamp=timezone.now() - timedelta(days=30))
        LoginAttempt.objects.create(email="new@acme.example", success=False)

    response = console_client(cast.admin).get(
        f"{ATTEMPTS}export.csv", {"timestamp__gte": (timezone.now() - timedelta(days=7)).isoformat()}
    )

    body = "\n".join(csv_lines(response))
    assert "new@acme.example" in body and "old@acme.example" not in body
