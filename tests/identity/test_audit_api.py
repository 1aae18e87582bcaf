"""The audit API (API.md "Audit"): /api/v1/audit/events/ and /api/v1/audit/login-attempts/.

Who may read (the role matrix, a Manager for their branch only), every filter, the cursor
pagination, and the CSV export: the same rows and filters, streamed without loading the
rows into memory. Every refusal asserts its status, its code and that nothing changed."""

import csv
import io
import tracemalloc
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from django.http import StreamingHttpResponse
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from identity.models import AuditEvent, LoginAttempt, User
from rbac.catalog import AUDITOR, EMPLOYEE, MANAGER
from rbac.models import Branch, Role
from rbac.services import role_assign
from tests.conftest import SHARED_ADMIN_EMAIL, bearer_client, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import UserFactory

HOST, OTHER_HOST = "acme.idp.test", "globex.idp.test"
EVENTS, ATTEMPTS = "/api/v1/audit/events/", "/api/v1/audit/login-attempts/"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def person(schema: str, email: str, role: str | None = None, at: str | None = None, **fields: Any) -> User:
    with schema_context(schema):
        user = cast(User, UserFactory(email=email, **fields))
        if role:
            branch = Branch.objects.get(external_id=at) if at else None
            role_assign(user=user, role=Role.objects.get(name=role), branch=branch, actor=None)
        return user


def client_of(email: str, host: str = HOST) -> APIClient:
    return bearer_client(host, login_tokens(host, email, device_id="audit-desk")["access"])


def event(schema: str = "acme", at: datetime = T0, **fields: Any) -> AuditEvent:
    """An audit row at a chosen instant (timestamp is auto_now_add, so set afterwards)."""
    with schema_context(schema):
        row = AuditEvent.objects.create(**{"type": "user.updated", **fields})
        AuditEvent.objects.filter(pk=row.pk).update(timestamp=at)
        row.refresh_from_db()
        return row


def attempt(at: datetime = T0, **fields: Any) -> LoginAttempt:
    with schema_context("acme"):
        row = LoginAttempt.objects.create(**{"email": "someone@acme.example", "success": False, **fields})
        LoginAttempt.objects.filter(pk=row.pk).update(timestamp=at)
        row.refresh_from_db()
        return row


def ids(response: Any) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def csv_rows(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 200, response.content
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(cast(Iterator[bytes], response.streaming_content)).decode()
    return list(csv.DictReader(io.StringIO(text)))


def audit_counts() -> tuple[int, int]:
    with schema_context("acme"):
        return AuditEvent.objects.count(), LoginAttempt.objects.count()


@pytest.fixture
def branches(tenant_a: Any) -> None:
    with schema_context("acme"):
        for external_id in ("br-a", "br-b"):
            Branch.objects.create(external_id=external_id, name=external_id)


@pytest.fixture
def admin(tenant_a_admin: User) -> APIClient:
    return client_of(SHARED_ADMIN_EMAIL)


@pytest.fixture
def auditor(tenant_a: Any) -> APIClient:
    person("acme", "auditor@acme.example", AUDITOR)
    return client_of("auditor@acme.example")


# --- who may read ------------------------------------------------------------------------------------


def caller(name: str, request: Any) -> APIClient:
    if name == "anonymous":
        return APIClient(HTTP_HOST=HOST)
    if name == "employee":
        person("acme", "cook@acme.example", EMPLOYEE)
        return client_of("cook@acme.example")
    if name == "auditor":
        return request.getfixturevalue("auditor")
    if name == "admin":
        return request.getfixturevalue("admin")
    if name == "manager at a branch":
        request.getfixturevalue("branches")
        person("acme", "manager@acme.example", MANAGER, "br-a", branch_id="br-a")
        return client_of("manager@acme.example")
    assert name == "another tenant's auditor"
    person("globex", "auditor@globex.example", AUDITOR)
    return bearer_client(HOST, login_tokens(OTHER_HOST, "auditor@globex.example")["access"])


@pytest.mark.parametrize("path", [EVENTS, ATTEMPTS])
@pytest.mark.parametrize(
    ("who", "status", "code"),
    [
        ("anonymous", 401, "not_authenticated"),
        ("employee", 403, "permission_denied"),
        ("another tenant's auditor", 401, "invalid_token"),
        ("auditor", 200, None),
        ("admin", 200, None),
        ("manager at a branch", 200, None),
    ],
)
def test_the_role_matrix(request, tenant_a, path, who, status, code):
    client = caller(who, request)

    for response in (client.get(path), client.get(path, {"format": "csv"})):
        if code is None:
            assert response.status_code == status, response.content
        else:
            assert_problem(response, status, code)


def test_an_admin_reads_events_newest_first_with_every_field(admin, tenant_a_admin):
    older = event(at=T0, actor_id=tenant_a_admin.pk, target_type="user", target_id="u-1", ip="192.0.2.1")
    newer = event(
        at=T0 + timedelta(minutes=1),
        type="login.failed",
        target_type="user",
        target_id="u-2",
        user_agent="Till/1.0",
        request_id="req-1",
        data={"reason": "invalid_credentials"},
    )

    response = admin.get(EVENTS, {"until": "2026-03-02"})

    assert ids(response) == [newer.pk, older.pk]
    first, second = response.json()["results"]
    assert first == {
        "id": newer.pk,
        "type": "login.failed",
        "timestamp": "2026-03-01T12:01:00Z",
        "actor": None,
        "target_type": "user",
        "target_id": "u-2",
        "ip": None,
        "user_agent": "Till/1.0",
        "request_id": "req-1",
        "data": {"reason": "invalid_credentials"},
        "outcome": "failure",
    }
    assert second["actor"] == str(tenant_a_admin.pk) and second["outcome"] == "success"
    assert response.json()["next"] is None


def test_another_tenants_events_and_attempts_are_never_listed(admin, tenant_b):
    mine = event(target_id="acme-only")
    event(schema="globex", target_id="globex-only")
    with schema_context("globex"):
        LoginAttempt.objects.create(email="x@globex.example", success=False, ip="192.0.2.99")

    assert mine.pk in ids(admin.get(EVENTS))
    assert ids(admin.get(EVENTS, {"target_id": "globex-only"})) == []
    assert ids(admin.get(ATTEMPTS, {"ip": "192.0.2.99"})) == []


# --- filters ---------------------------------------------------------------------------------------


def test_event_filters_by_type_actor_target_address_time_and_outcome(admin, tenant_a_admin):
    actor = uuid.uuid4()
    failed = event(at=T0, type="login.failed", target_type="user", target_id="u-1", ip="192.0.2.1")
    locked = event(at=T0 + timedelta(hours=1), type="account.locked", target_type="user", target_id="u-1")
    created = event(
        at=T0 + timedelta(hours=2), type="user.created", actor_id=actor, target_type="user", target_id="u-2"
    )
    role = event(at=T0 + timedelta(hours=3), type="role.created", actor_id=actor, target_type="role", target_id="7")
    window = {"since": "2026-03-01", "until": "2026-03-02"}

    def found(**filters: Any) -> set[int]:
        return set(ids(admin.get(EVENTS, {**window, **filters})))

    assert found(type="login.failed") == {failed.pk}
    assert found(type="login.failed,account.locked") == {failed.pk, locked.pk}
    assert set(ids(admin.get(f"{EVENTS}?type=login.failed&type=role.created&since=2026-03-01"))) == {failed.pk, role.pk}
    assert found(type="role.*") == {role.pk}
    assert found(actor=str(actor)) == {created.pk, role.pk}
    assert found(target_id="u-1") == {failed.pk, locked.pk}
    assert found(target_type="role") == {role.pk}
    assert found(ip="192.0.2.1") == {failed.pk}
    assert found(since="2026-03-01T13:00:00Z") == {locked.pk, created.pk, role.pk}
    assert found(until="2026-03-01T13:00:00Z") == {failed.pk}  # until is exclusive
    assert found(since="2026-03-01T13:30:00", until="2026-03-01T14:30:00") == {created.pk}  # no offset: UTC
    assert found(outcome="failure") == {failed.pk, locked.pk}
    assert found(outcome="success") == {created.pk, role.pk}
    assert found(type="user.created", actor=str(actor), outcome="success") == {created.pk}


def test_login_attempt_filters_by_email_user_success_address_and_time(admin, tenant_a_admin):
    cook = person("acme", "cook@acme.example")
    ok = attempt(at=T0, email="cook@acme.example", user=cook, success=True, ip="192.0.2.1", device_id="till")
    bad = attempt(at=T0 + timedelta(hours=1), email="cook@acme.example", user=cook, reason="invalid_credentials")
    unknown = attempt(at=T0 + timedelta(hours=2), email="nobody@acme.example", ip="192.0.2.2")
    window = {"since": "2026-03-01", "until": "2026-03-02"}

    def found(**filters: Any) -> set[int]:
        return set(ids(admin.get(ATTEMPTS, {**window, **filters})))

    assert found() == {ok.pk, bad.pk, unknown.pk}
    assert found(email=" COOK@acme.example ") == {ok.pk, bad.pk}
    assert found(user=str(cook.pk)) == {ok.pk, bad.pk}
    assert found(success="true") == {ok.pk}
    assert found(success="false") == {bad.pk, unknown.pk}
    assert found(ip="192.0.2.2") == {unknown.pk}
    assert found(since="2026-03-01T12:30:00Z", until="2026-03-01T13:30:00Z") == {bad.pk}
    row = next(row for row in admin.get(ATTEMPTS, window).json()["results"] if row["id"] == ok.pk)
    assert row == {
        "id": ok.pk,
        "timestamp": "2026-03-01T12:00:00Z",
        "email": "cook@acme.example",
        "user": str(cook.pk),
        "success": True,
        "reason": "",
        "ip": "192.0.2.1",
        "user_agent": "",
        "device_id": "till",
        "device_name": "",
        "device_type": "",
    }


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (EVENTS, {"since": "yesterday"}, "since"),
        (EVENTS, {"until": "2026-13-01"}, "until"),
        (EVENTS, {"since": "2026-03-02", "until": "2026-03-01"}, "until"),
        (EVENTS, {"actor": "not-a-uuid"}, "actor"),
        (EVENTS, {"type": "Login Failed"}, "type.0"),
        (EVENTS, {"type": ",".join(f"t{n}.x" for n in range(21))}, "type"),
        (EVENTS, {"outcome": "maybe"}, "outcome"),
        (EVENTS, {"ip": "300.1.1.1"}, "ip"),
        (EVENTS, {"target_id": "x" * 65}, "target_id"),
        (EVENTS, {"actr": "x"}, "actr"),
        (EVENTS, {"cursor": "garbage"}, "cursor"),
        (EVENTS, {"cursor": "MjAyNi0wMy0wMXwx"}, "cursor"),  # "2026-03-01|1": no time zone
        (EVENTS, {"page_size": "0"}, "page_size"),
        (EVENTS, {"page_size": "201"}, "page_size"),
        (EVENTS, {"page_size": "²"}, "page_size"),  # a digit to str.isdigit, not to int()
        (ATTEMPTS, {"success": "perhaps"}, "success"),
        (ATTEMPTS, {"user": "42"}, "user"),
        (ATTEMPTS, {"until": "soon"}, "until"),
        (ATTEMPTS, {"type": "login.failed"}, "type"),
    ],
)
def test_a_bad_parameter_answers_400_naming_it_and_changes_nothing(admin, path, params, field):
    before = audit_counts()
    # A CSV export is every matching row: it takes the filters, not the page parameters.
    paging = field in ("cursor", "page_size")

    for response in [admin.get(path, params)] + ([] if paging else [admin.get(path, {**params, "format": "csv"})]):
        body = assert_problem(response, 400, "invalid_request")
        assert field in body["errors"], body

    assert audit_counts() == before


# --- cursor pagination ---------------------------------------------------------------------------


def test_the_cursor_walks_every_event_once_newest_first_even_with_equal_timestamps(admin):
    made = [event(at=T0 + timedelta(seconds=number // 2), target_id=f"page-{number}") for number in range(7)]
    expected = [row.pk for row in sorted(made, key=lambda row: (row.timestamp, row.pk), reverse=True)]

    seen: list[int] = []
    response = admin.get(EVENTS, {"page_size": 3, "until": "2026-03-02"})
    while True:
        seen += ids(response)
        next_link = response.json()["next"]
        if next_link is None:
            break
        assert next_link.startswith("http://acme.idp.test/api/v1/audit/events/?")
        response = admin.get(next_link)
    assert seen == expected


def test_rows_written_while_paging_do_not_shift_the_next_page(admin):
    made = [event(at=T0 + timedelta(seconds=number), target_id=f"page-{number}") for number in range(4)]
    first = admin.get(EVENTS, {"page_size": 2, "until": "2026-03-02"})

    event(at=T0 + timedelta(seconds=10), target_id="late")  # newer than everything
    second = admin.get(first.json()["next"])

    assert ids(first) + ids(second) == [row.pk for row in reversed(made)]


def test_login_attempts_page_with_the_cursor_too(admin):
    made = [attempt(at=T0 + timedelta(seconds=number)) for number in range(3)]

    first = admin.get(ATTEMPTS, {"page_size": 2, "until": "2026-03-02"})
    second = admin.get(first.json()["next"])

    assert ids(first) + ids(second) == [row.pk for row in reversed(made)]
    assert second.json()["next"] is None


# --- branch managers ----------------------------------------------------------------------------------


def test_a_branch_manager_sees_only_what_concerns_the_users_of_their_branch(branches, tenant_a_admin):
    person("acme", "manager@acme.example", MANAGER, "br-a", branch_id="br-a")
    cook_a = person("acme", "cook.a@acme.example", branch_id="br-a")
    cook_b = person("acme", "cook.b@acme.example", branch_id="br-b")
    about_a = event(type="login.failed", target_type="user", target_id=str(cook_a.pk))
    about_b = event(type="login.failed", target_type="user", target_id=str(cook_b.pk))
    by_a_about_role = event(type="role.created", actor_id=cook_a.pk, target_type="role", target_id="3")
    about_admin = event(type="user.updated", target_type="user", target_id=str(tenant_a_admin.pk))
    tried_a = attempt(email="cook.a@acme.example", user=cook_a)
    tried_b = attempt(email="cook.b@acme.example", user=cook_b)
    tried_unknown = attempt(email="nobody@acme.example")
    manager = client_of("manager@acme.example")

    seen_events = set(ids(manager.get(EVENTS, {"until": "2026-03-02"})))
    seen_attempts = set(ids(manager.get(ATTEMPTS, {"until": "2026-03-02"})))
    exported = {int(row["id"]) for row in csv_rows(manager.get(EVENTS, {"format": "csv", "until": "2026-03-02"}))}

    assert seen_events == exported == {about_a.pk}
    assert {about_b.pk, by_a_about_role.pk, about_admin.pk}.isdisjoint(seen_events)
    assert seen_attempts == {tried_a.pk}
    assert {tried_b.pk, tried_unknown.pk}.isdisjoint(seen_attempts)


# --- CSV -------------------------------------------------------------------------------------------


def test_format_csv_and_accept_text_csv_export_the_filtered_rows(admin):
    wanted = event(type="login.failed", target_id="csv-1", user_agent='=HYPERLINK("x")', data={"reason": "locked"})
    event(type="user.updated", target_id="csv-2")
    params = {"type": "login.failed", "since": "2026-03-01", "until": "2026-03-02"}

    by_format = admin.get(EVENTS, {**params, "format": "csv"})
    by_accept = admin.get(EVENTS, params, HTTP_ACCEPT="text/csv")

    assert by_format["Content-Type"] == "text/csv; charset=utf-8"
    assert by_format["Content-Disposition"].startswith('attachment; filename="audit-events-acme-')
    assert by_format["Cache-Control"] == "no-store"
    rows = csv_rows(by_format)
    assert rows == csv_rows(by_accept)
    assert rows == [
        {
            "id": str(wanted.pk),
            "type": "login.failed",
            "timestamp": "2026-03-01T12:00:00+00:00",
            "actor_id": "",
            "target_type": "",
            "target_id": "csv-1",
            "ip": "",
            "user_agent": '\'=HYPERLINK("x")',  # a spreadsheet formula is neutralised
            "request_id": "",
            "data": '{"reason": "locked"}',
        }
    ]


def test_login_attempts_export_as_csv_with_their_filters(admin):
    wanted = attempt(email="cook@acme.example", success=True, ip="192.0.2.5", device_id="till")
    attempt(email="cook@acme.example", success=False)

    rows = csv_rows(admin.get(ATTEMPTS, {"format": "csv", "success": "true", "until": "2026-03-02"}))

    assert [row["id"] for row in rows] == [str(wanted.pk)]
    assert rows[0]["success"] == "true" and rows[0]["ip"] == "192.0.2.5" and rows[0]["device_id"] == "till"
    assert list(rows[0]) == [
        "id",
        "timestamp",
        "email",
        "user_id",
        "success",
        "reason",
        "ip",
        "user_agent",
        "device_id",
        "device_name",
        "device_type",
    ]


def test_an_unknown_format_is_refused_as_problem_json(admin):
    assert_problem(admin.get(EVENTS, {"format": "xml"}), 404, "not_found")
    assert_problem(admin.get(EVENTS, HTTP_ACCEPT="application/xml"), 406, "not_acceptable")


LARGE_EXPORT_ROWS = 20000


def test_a_large_export_streams_without_loading_the_rows_into_memory(admin):
    with schema_context("acme"):
        AuditEvent.objects.bulk_create(
            AuditEvent(
                type="login.failed", target_id=f"bulk-{n}", user_agent="x" * 200, data={"n": n, "pad": "y" * 100}
            )
            for n in range(LARGE_EXPORT_ROWS)
        )
        # What holding every row at once costs: the yardstick the export must stay far below.
        tracemalloc.start()
        loaded = list(AuditEvent.objects.filter(type="login.failed").values_list())
        _, loaded_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del loaded

    response = admin.get(EVENTS, {"format": "csv", "type": "login.failed"})
    assert isinstance(response, StreamingHttpResponse)
    tracemalloc.start()
    lines = 0
    for chunk in cast(Iterator[bytes], response.streaming_content):
        lines += chunk.count(b"\n")
    _, streamed_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    assert lines == LARGE_EXPORT_ROWS + 1  # the header and every row
    assert streamed_peak < loaded_peak / 4, (streamed_peak, loaded_peak)


@pytest.mark.parametrize("path", ["/api/v1/audit/events/", "/api/v1/audit/login-attempts/"])
def test_options_with_format_csv_describes_the_endpoint_in_json(admin, path):
    response = admin.options(f"{path}?format=csv", HTTP_ACCEPT="text/csv")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["name"]
