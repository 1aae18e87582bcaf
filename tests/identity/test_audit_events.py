"""The event catalogue (API.md "Audit", docs/audit.md): every event type is produced by the
action it names, through the API as a client would act, with its actor, target and the
request's address; and no event's data holds a secret (passwords, tokens, client secrets,
reset and verification tokens), whatever the action."""

import json
import re
from collections.abc import Callable
from typing import Any

from django.core import mail
from django.core.management import call_command
from django_tenants.utils import schema_context

from identity.models import AuditEvent, IpBlock
from tenants.policy import policy_validate
from tests.conftest import SHARED_ADMIN_EMAIL
from tests.factories import TEST_PASSWORD, PlanFactory
from tests.identity.test_security_ip_blocks import CommittingClient

HOST = "acme.idp.test"
ADMIN_IP, COOK_IP, ATTACKER = "192.0.2.10", "192.0.2.20", "203.0.113.66"
COOK = "cook@acme.example"
NEW_PASSWORD, RESET_PASSWORD, WRONG_PASSWORD = "N3w-Passw0rd!x", "R3set-Passw0rd!y", "Wrong-Passw0rd!z"
SECRET_KEYS = {"password", "new_password", "current_password", "client_secret", "secret", "token", "refresh", "access"}

REQUIRED_TYPES = {
    "login.succeeded",
    "login.failed",
    "account.locked",
    "account.unlocked",
    "token.reused",
    "session.started",
    "session.ended",
    "password.changed",
    "password.reset",
    "email.verified",
    "user.created",
    "user.updated",
    "user.deactivated",
    "role.created",
    "role.updated",
    "role.deleted",
    "role.assigned",
    "role.unassigned",
    "service_client.created",
    "service_client.revoked",
    "signing_key.rotated",
    "tenant.updated",
    "ip.blocked",
    "ip.unblocked",
    "security.flagged",
    "permission.created",
    "permission.deleted",
    "branch.created",
    "branch.updated",
    "branch.deleted",
}


class Scenario:
    """Acts on acme through the API and remembers every secret it handled."""

    def __init__(self) -> None:
        self.secrets: set[str] = {TEST_PASSWORD, NEW_PASSWORD, RESET_PASSWORD, WRONG_PASSWORD}
        self.admin = self.client_of(SHARED_ADMIN_EMAIL, TEST_PASSWORD, ADMIN_IP, "desk")

    def remember(self, *values: str) -> None:
        self.secrets.update(value for value in values if value)

    def anonymous(self, ip: str) -> CommittingClient:
        return CommittingClient(HTTP_HOST=HOST, REMOTE_ADDR=ip, HTTP_USER_AGENT="pytest-audit")

    def login(self, email: str, password: str, ip: str, device_id: str) -> Any:
        body = {"email": email, "password": password, "device_id": device_id}
        return self.anonymous(ip).post("/api/v1/auth/token/", body, format="json")

    def tokens_of(self, email: str, password: str, ip: str, device_id: str) -> dict[str, Any]:
        response = self.login(email, password, ip, device_id)
        assert response.status_code == 200, response.content
        body = response.json()
        self.remember(body["access"], body["refresh"])
        return body

    def client_of(self, email: str, password: str, ip: str, device_id: str) -> CommittingClient:
        access = self.tokens_of(email, password, ip, device_id)["access"]
        return CommittingClient(HTTP_HOST=HOST, REMOTE_ADDR=ip, HTTP_AUTHORIZATION=f"Bearer {access}")

    def last_mail_match(self, pattern: str) -> str:
        match = re.search(pattern, str(mail.outbox[-1].body))
        assert match, mail.outbox[-1].body
        self.remember(match.group(1))
        return match.group(1)


def new_events(since_id: int) -> list[AuditEvent]:
    with schema_context("acme"):
        return list(AuditEvent.objects.filter(id__gt=since_id).order_by("id"))


def last_id() -> int:
    with schema_context("acme"):
        return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_every_event_type_is_produced_by_its_action_and_no_event_holds_a_secret(tenant_a, tenant_a_admin, operator):
    tenant_a.policy = policy_validate(
        {
            "lockout": {"threshold": 2},
            "sessions": {"max_sessions_per_user": 3},
            "security": {"accounts_threshold": 2},
            "rate_limits": {"login": "1000/min", "refresh": "1000/min", "password_reset": "1000/min"},
        },
        current=tenant_a.policy,
        max_devices_per_user=3,
    )
    tenant_a.save()
    scenario = Scenario()
    admin = scenario.admin
    state: dict[str, Any] = {}
    operator_client = CommittingClient(HTTP_HOST="idp.test")
    operator_client.force_authenticate(operator)

    def create_cook() -> None:
        response = admin.post("/api/v1/users/", {"email": COOK, "full_name": "Kim Cook"}, format="json")
        assert response.status_code == 201, response.content
        state["cook_id"] = response.json()["id"]
        state["cook_password"] = scenario.last_mail_match(r"Temporary password: (\S+)")

    def cook_changes_password() -> None:
        cook = scenario.client_of(COOK, state["cook_password"], COOK_IP, "till-1")
        body = {"current_password": state["cook_password"], "new_password": NEW_PASSWORD}
        assert cook.post("/api/v1/auth/change-password/", body, format="json").status_code == 200

    def cook_reuses_a_refresh_token() -> None:
        refresh = scenario.tokens_of(COOK, NEW_PASSWORD, COOK_IP, "till-2")["refresh"]
        anonymous = scenario.anonymous(COOK_IP)
        assert anonymous.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json").status_code == 200
        assert anonymous.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json").status_code == 401

    def cook_is_locked_out() -> None:
        statuses = [scenario.login(COOK, WRONG_PASSWORD, COOK_IP, "till-1").status_code for _ in range(3)]
        assert statuses == [401, 401, 423]

    def admin_unlocks_the_cook() -> None:
        assert admin.post(f"/api/v1/users/{state['cook_id']}/unlock/").status_code == 200

    def cook_resets_the_password() -> None:
        assert scenario.anonymous(COOK_IP).post("/api/v1/auth/password-reset/", {"email": COOK}).status_code == 202
        token = scenario.last_mail_match(r"reset-password/\?token=(\S+)")
        body = {"token": token, "new_password": RESET_PASSWORD}
        assert scenario.anonymous(COOK_IP).post("/api/v1/auth/password-reset/confirm/", body).status_code == 200

    def cook_logs_out() -> None:
        tokens = scenario.tokens_of(COOK, RESET_PASSWORD, COOK_IP, "till-3")
        client = CommittingClient(HTTP_HOST=HOST, HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
        assert client.post("/api/v1/auth/logout/", {}, format="json").status_code == 204

    def someone_registers_and_verifies() -> None:
        body = {"email": "new@acme.example", "password": NEW_PASSWORD, "full_name": "New Person"}
        assert scenario.anonymous(COOK_IP).post("/api/v1/auth/register/", body, format="json").status_code == 201
        uid = scenario.last_mail_match(r"/verify-email/([^/\s]+)/")
        token = scenario.last_mail_match(r"/verify-email/[^/\s]+/([^/\s]+)/")
        assert scenario.anonymous(COOK_IP).post(f"/api/v1/auth/verify-email/{uid}/{token}/").status_code == 200

    def admin_edits_the_cook() -> None:
        assert (
            admin.patch(f"/api/v1/users/{state['cook_id']}/", {"phone": "+254700000001"}, format="json").status_code
            == 200
        )

    def admin_manages_codes_roles_and_branches() -> None:
        assert admin.post("/api/v1/permissions/", {"code": "orders.void"}, format="json").status_code == 201
        role = admin.post("/api/v1/roles/", {"name": "Shift", "permissions": ["orders.void"]}, format="json").json()
        assert (
            admin.patch(f"/api/v1/roles/{role['id']}/", {"permissions": ["orders.view"]}, format="json").status_code
            == 200
        )
        branch = admin.post("/api/v1/branches/", {"external_id": "b-1", "name": "One"}, format="json").json()
        assert admin.patch(f"/api/v1/branches/{branch['id']}/", {"name": "Uno"}, format="json").status_code == 200
        assigned = admin.post(
            f"/api/v1/users/{state['cook_id']}/roles/", {"role": role["id"], "branch": "b-1"}, format="json"
        )
        assert assigned.status_code == 201, assigned.content
        assert admin.delete(f"/api/v1/users/{state['cook_id']}/roles/{assigned.json()['id']}/").status_code == 204
        assert admin.delete(f"/api/v1/roles/{role['id']}/").status_code == 204
        assert admin.delete(f"/api/v1/branches/{branch['id']}/").status_code == 204
        assert admin.delete("/api/v1/permissions/orders.void/").status_code == 204

    def admin_creates_and_revokes_a_service_client() -> None:
        created = admin.post("/api/v1/service-clients/", {"name": "POS", "scopes": ["authz:check"]}, format="json")
        assert created.status_code == 201, created.content
        scenario.remember(created.json()["client_secret"])
        assert admin.delete(f"/api/v1/service-clients/{created.json()['client_id']}/").status_code == 204

    def keys_are_rotated() -> None:
        call_command("rotate_signing_key", "--tenant", "acme", stdout=open("/dev/null", "w"))  # noqa: SIM115

    def the_platform_changes_the_plan_and_suspends_the_tenant() -> None:
        PlanFactory(code="bigger")
        response = operator_client.patch("/api/v1/platform/tenants/acme/", {"plan": "bigger"}, format="json")
        assert response.status_code == 200, response.content
        response = operator_client.patch("/api/v1/platform/tenants/acme/", {"is_active": False}, format="json")
        assert response.status_code == 200, response.content
        with schema_context("acme"):
            updates = AuditEvent.objects.filter(type="tenant.updated").order_by("id")
            changes = [event.data["changes"] for event in updates]
        assert {"plan": {"before": "standard", "after": "bigger"}}.items() <= changes[0].items()
        assert changes[1]["is_active"] == {"before": True, "after": False}
        assert (
            operator_client.patch("/api/v1/platform/tenants/acme/", {"is_active": True}, format="json").status_code
            == 200
        )

    def an_address_sprays_and_is_blocked_then_lifted() -> None:
        for number in range(2):
            scenario.login(f"victim{number}@acme.example", WRONG_PASSWORD, ATTACKER, "bot")
        with schema_context("acme"):
            block_id = IpBlock.objects.get(ip=ATTACKER).pk
        assert admin.delete(f"/api/v1/security/ip-blocks/{block_id}/").status_code == 204

    def admin_deactivates_the_cook() -> None:
        assert admin.delete(f"/api/v1/users/{state['cook_id']}/").status_code == 204

    steps: list[tuple[Callable[[], None], set[str]]] = [
        (create_cook, {"user.created", "role.assigned"}),
        (cook_changes_password, {"login.succeeded", "session.started", "password.changed"}),
        (cook_reuses_a_refresh_token, {"token.reused", "session.ended", "security.flagged"}),
        (cook_is_locked_out, {"login.failed", "account.locked"}),
        (admin_unlocks_the_cook, {"account.unlocked"}),
        (cook_resets_the_password, {"password.reset"}),
        (cook_logs_out, {"session.ended"}),
        (someone_registers_and_verifies, {"user.created", "email.verified"}),
        (admin_edits_the_cook, {"user.updated"}),
        (
            admin_manages_codes_roles_and_branches,
            {
                "permission.created",
                "permission.deleted",
                "role.created",
                "role.updated",
                "role.deleted",
                "role.assigned",
                "role.unassigned",
                "branch.created",
                "branch.updated",
                "branch.deleted",
            },
        ),
        (admin_creates_and_revokes_a_service_client, {"service_client.created", "service_client.revoked"}),
        (keys_are_rotated, {"signing_key.rotated"}),
        (the_platform_changes_the_plan_and_suspends_the_tenant, {"tenant.updated"}),
        (an_address_sprays_and_is_blocked_then_lifted, {"security.flagged", "ip.blocked", "ip.unblocked"}),
        (admin_deactivates_the_cook, {"user.deactivated"}),
    ]
    seen: set[str] = set()
    for step, expected in steps:
        before = last_id()
        step()
        produced = {event.type for event in new_events(before)}
        assert expected <= produced, f"{step.__name__} produced {sorted(produced)}"
        seen |= produced
    assert seen >= REQUIRED_TYPES, sorted(REQUIRED_TYPES - seen)

    events = new_events(0)
    for event in events:
        text = json.dumps(event.data)
        leaked = [secret for secret in scenario.secrets if secret in text]
        assert not leaked, f"{event.type} holds a secret"
        assert not SECRET_KEYS & set(_keys(event.data)), f"{event.type} has a secret's field"


def _keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [*value, *(key for item in value.values() for key in _keys(item))]
    if isinstance(value, list):
        return [key for item in value for key in _keys(item)]
    return []


def test_events_carry_the_address_user_agent_and_request_id_of_their_request(tenant_a, tenant_a_admin):
    client = CommittingClient(
        HTTP_HOST=HOST, REMOTE_ADDR=ADMIN_IP, HTTP_USER_AGENT="Till/1.0", HTTP_X_REQUEST_ID="req-audit-1"
    )
    body = {"email": SHARED_ADMIN_EMAIL, "password": TEST_PASSWORD, "device_id": "till"}

    assert client.post("/api/v1/auth/token/", body, format="json").status_code == 200

    with schema_context("acme"):
        event = AuditEvent.objects.get(type="login.succeeded")
    assert (event.ip, event.user_agent, event.request_id) == (ADMIN_IP, "Till/1.0", "req-audit-1")
    assert (event.actor_id, event.target_type, event.target_id) == (
        tenant_a_admin.pk,
        "user",
        str(tenant_a_admin.pk),
    )
