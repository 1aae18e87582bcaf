"""Each change that emails someone queues the right kind, in its own transaction, to the
right person, with links on the tenant's registered domain (tasks run eagerly here; see
test_delivery.py for a real worker and SMTP server)."""

import itertools
import re
from typing import Any, cast
from urllib.parse import urlparse

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from core.errors import ErrorCode, ProblemError
from identity.models import LoginLockout, User
from identity.services.users import user_create
from notifications.models import OutboxEmail
from sessions.models import DeviceSession
from tenants.models import Domain
from tests.conftest import bearer_client, login_tokens
from tests.core.test_errors import assert_problem
from tests.factories import TEST_PASSWORD, UserFactory

HOST = "acme.idp.test"
COOK = "cook@acme.example"
NEW_PASSWORD = "Fresh-Basil-42!"
_addresses = (f"10.9.{n // 250}.{n % 250 + 1}" for n in itertools.count())


def outbox(schema: str = "acme") -> list[tuple[str, str]]:
    """(kind, recipient) of every email queued in `schema`, oldest first."""
    with schema_context(schema):
        return list(OutboxEmail.objects.order_by("id").values_list("kind", "to"))


def post_login(email: str = COOK, password: str = TEST_PASSWORD, *, device_id: str = "pos-1") -> Any:
    client = APIClient(HTTP_HOST=HOST, REMOTE_ADDR=next(_addresses))
    body = {
        "email": email,
        "password": password,
        "device_id": device_id,
        "device_name": "Front till",
        "device_type": "pos",
    }
    return client.post("/api/v1/auth/token/", body, format="json")


def links_in(text: str) -> list[str]:
    return re.findall(r"https?://[^\s\"<>]+", text)


@pytest.fixture
def cook(tenant_a: Any) -> User:
    with schema_context("acme"):
        return cast(User, UserFactory(email=COOK, full_name="Cook"))


@pytest.fixture
def admin_client(tenant_a_admin_client: APIClient) -> APIClient:
    return tenant_a_admin_client


@pytest.fixture
def sent(mailoutbox: list, django_capture_on_commit_callbacks: Any) -> Any:
    """Run `action()` and commit its emails (eager tasks); returns the messages it sent."""

    def run(action: Any) -> list:
        before = len(mailoutbox)
        with django_capture_on_commit_callbacks(execute=True):
            action()
        return mailoutbox[before:]

    return run


def test_creating_an_employee_sends_the_welcome_with_the_password_to_be_changed(admin_client, sent):
    [message] = sent(lambda: admin_client.post("/api/v1/users/", {"email": COOK, "full_name": "Cook"}, format="json"))

    assert outbox()[-1] == ("employee_welcome", COOK)
    password = re.search(r"^Temporary password: (\S+)$", message.body, re.MULTILINE)
    assert password is not None
    with schema_context("acme"):
        assert User.objects.get(email=COOK).check_password(password.group(1))
    assert "must change this password at first login" in message.body
    assert message.subject == "Your Acme account"


def test_registration_sends_a_verification_link_on_the_tenants_domain(tenant_a, sent):
    Domain.objects.create(domain="login.acme.example", tenant=tenant_a, is_primary=True)
    Domain.objects.filter(domain="acme.idp.test").update(is_primary=False)
    body = {"email": "new@example.com", "password": NEW_PASSWORD, "full_name": "Mallory <script>"}

    [message] = sent(lambda: APIClient(HTTP_HOST=HOST).post("/api/v1/auth/register/", body, format="json"))

    assert outbox()[-1] == ("registration_verify", "new@example.com")
    [link] = [link for link in links_in(message.body) if "/verify-email/" in link]
    assert urlparse(link).hostname == "login.acme.example"
    assert "Mallory" not in message.body  # whoever registered typed the name; it is not emailed


def test_registering_a_taken_address_sends_the_existing_account_notice(cook, sent):
    body = {"email": COOK, "password": NEW_PASSWORD, "full_name": "Someone"}

    [message] = sent(lambda: APIClient(HTTP_HOST=HOST).post("/api/v1/auth/register/", body, format="json"))

    assert outbox()[-1] == ("registration_existing", COOK)
    assert message.subject == "Registration attempt at Acme"


def test_a_password_reset_sends_the_link_and_its_completion_a_notice(cook, sent):
    client = APIClient(HTTP_HOST=HOST)
    [link_message] = sent(lambda: client.post("/api/v1/auth/password-reset/", {"email": COOK}, format="json"))
    token = re.search(r"/reset-password/\?token=([A-Za-z0-9_-]+)", link_message.body)
    assert token is not None

    body = {"token": token.group(1), "new_password": NEW_PASSWORD}
    [notice] = sent(lambda: client.post("/api/v1/auth/password-reset/confirm/", body, format="json"))

    assert [kind for kind, _ in outbox()] == ["password_reset", "password_reset_done"]
    assert notice.subject == "Your Acme password was reset"
    assert token.group(1) not in notice.body


def test_changing_ones_password_sends_a_notice_without_the_password(cook, sent):
    access = login_tokens(HOST, COOK)["access"]
    body = {"current_password": TEST_PASSWORD, "new_password": NEW_PASSWORD}

    [message] = sent(lambda: bearer_client(HOST, access).post("/api/v1/auth/change-password/", body, format="json"))

    assert outbox()[-1] == ("password_changed", COOK)
    assert NEW_PASSWORD not in message.body and TEST_PASSWORD not in message.body


def test_an_admin_setting_a_password_sends_a_notice_without_the_password(admin_client, cook, sent):
    url = f"/api/v1/users/{cook.pk}/set-password/"

    [message] = sent(lambda: admin_client.post(url, {"password": NEW_PASSWORD}, format="json"))

    assert outbox()[-1] == ("password_set_by_admin", COOK)
    assert NEW_PASSWORD not in message.body
    assert all(NEW_PASSWORD not in part for part, _ in message.alternatives)


def test_a_sign_in_on_a_device_never_used_before_sends_a_notice_but_not_the_first_or_a_known_one(cook, sent):
    assert sent(lambda: post_login(device_id="pos-1")) == []  # the first sign-in ever
    assert sent(lambda: post_login(device_id="pos-1")) == []  # the same device again

    [message] = sent(lambda: post_login(device_id="tablet-9"))

    assert sent(lambda: post_login(device_id="pos-1")) == []  # used before (its session ended since)
    assert outbox() == [("new_device_login", COOK)]
    assert "Front till (pos)" in message.body and message.subject == "New sign-in to your Acme account"


def test_an_account_lock_sends_one_notice_in_the_transaction_of_the_lockout(cook, sent):
    messages = sent(lambda: [post_login(password="Wrong-Passw0rd!") for _ in range(5)])
    more = sent(lambda: [post_login(password="Wrong-Passw0rd!") for _ in range(2)])  # locked: not extended

    assert [message.subject for message in messages] == ["Your Acme account is locked"]
    assert more == []
    assert outbox() == [("account_locked", COOK)]
    with schema_context("acme"):
        lockout = LoginLockout.objects.get(email=COOK)
        assert lockout.locked_until is not None and lockout.locked_until > timezone.now()
    assert "15 minutes" in messages[0].body


def test_locking_an_unknown_address_emails_nobody(tenant_a, sent):
    assert sent(lambda: [post_login("nobody@acme.example", "Wrong-Passw0rd!") for _ in range(6)]) == []
    assert outbox() == []


def test_an_admin_ending_a_session_notifies_its_user(admin_client, cook, sent):
    login_tokens(HOST, COOK, device_id="pos-7")
    with schema_context("acme"):
        session = DeviceSession.objects.get(user=cook, ended_at__isnull=True)

    [message] = sent(lambda: admin_client.delete(f"/api/v1/users/{cook.pk}/sessions/{session.pk}/"))

    assert outbox()[-1] == ("session_ended_by_admin", COOK)
    assert "Till" in message.body


def test_a_new_tenant_with_a_generated_password_emails_its_first_admin_from_the_public_schema(operator_client, sent):
    body = {"slug": "pizzaco", "name": "Pizza Co", "plan": "standard", "admin_email": "boss@pizza.example"}

    [message] = sent(lambda: operator_client.post("/api/v1/platform/tenants/", body, format="json"))

    assert outbox("public")[-1] == ("tenant_admin_welcome", "boss@pizza.example")
    assert message.subject == "Your Pizza Co administrator account"
    assert [urlparse(link).hostname for link in links_in(message.body)] == ["pizzaco.idp.test"] * 2


# --- invalid recipients are refused when the user is created ------------------------------------


@pytest.mark.parametrize("email", ["not-an-email", "ada@exa mple.com", "ada@example.com\nBcc: x@evil.example", "a@b"])
def test_an_employee_with_an_invalid_address_is_refused_with_no_user_and_no_email(admin_client, email, sent):
    with schema_context("acme"):
        users = User.objects.count()
    responses = []

    messages = sent(
        lambda: responses.append(
            admin_client.post("/api/v1/users/", {"email": email, "full_name": "Ada"}, format="json")
        )
    )

    body = assert_problem(responses[0], 400, "invalid_request")
    assert "email" in body["errors"]
    assert messages == [] and outbox() == []
    with schema_context("acme"):
        assert User.objects.count() == users


def test_the_service_refuses_an_invalid_address_too(tenant_a, tenant_a_admin):
    with schema_context("acme"), pytest.raises(ProblemError) as refused:
        user_create(tenant=tenant_a, actor=tenant_a_admin, email="ada@example.com>", full_name="Ada")

    assert refused.value.code == ErrorCode.INVALID_REQUEST
    assert outbox() == []
    with schema_context("acme"):
        assert not User.objects.filter(full_name="Ada").exists()
