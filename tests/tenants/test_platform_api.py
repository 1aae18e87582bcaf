"""Platform API on the public host: tenants and plans, for platform operators only."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context, schema_exists

from identity.models import AuditEvent, User
from identity.selectors import user_role_names
from tenants import services
from tenants.models import Domain, Plan, Tenant
from tenants.policy import DEFAULT_POLICY
from tests.conftest import SHARED_ADMIN_EMAIL, client_for_host
from tests.core.test_errors import assert_problem

TENANTS_URL = "/api/v1/platform/tenants/"
PLANS_URL = "/api/v1/platform/plans/"
STRONG_PASSWORD = "Str0ng-Passw0rd!"


def tenant_body(**overrides):
    body = {
        "slug": "pizzaco",
        "name": "Pizza Co",
        "plan": "standard",
        "admin_email": "Boss@Pizza.Example ",
        "admin_password": STRONG_PASSWORD,
    }
    body.update(overrides)
    return {key: value for key, value in body.items() if value is not None}


def counts():
    return Tenant.objects.count(), Domain.objects.count()


# --- creation -------------------------------------------------------------------------


def test_operator_creates_a_tenant_with_its_schema_domain_and_first_admin(operator_client):
    response = operator_client.post(TENANTS_URL, tenant_body(), format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "pizzaco"
    assert body["name"] == "Pizza Co"
    assert body["plan"] == "standard"
    assert body["domains"] == ["pizzaco.idp.test"]
    assert body["is_active"] is True
    assert body["subscription_ends_at"] is None
    assert body["policy"] == DEFAULT_POLICY
    assert body["admin"]["email"] == "boss@pizza.example"
    assert "admin_password" not in body
    assert schema_exists("pizzaco")
    with schema_context("pizzaco"):
        admin = User.objects.get()
        assert admin.email == "boss@pizza.example"
        assert admin.is_tenant_admin and admin.is_staff and not admin.is_superuser
        assert admin.check_password(STRONG_PASSWORD)
        assert admin.must_change_password is False  # the operator chose it
        events = set(AuditEvent.objects.values_list("type", flat=True))
        assert events == {"user.created", "role.assigned", "tenant.created", "signing_key.rotated"}
        assert user_role_names(admin) == ["Admin"]
    assert AuditEvent.objects.filter(type="tenant.created", target_id="pizzaco").exists()


def test_new_tenant_is_served_on_its_own_host(operator_client):
    operator_client.post(TENANTS_URL, tenant_body(), format="json")

    response = client_for_host("pizzaco.idp.test").get("/admin/login/")

    assert response.status_code == 200


def test_new_tenant_schema_is_cloned_from_the_template_with_every_migration_recorded(operator_client):
    operator_client.post(TENANTS_URL, tenant_body(), format="json")

    with schema_context("tenant_template"):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT app, name FROM tenant_template.django_migrations ORDER BY app, name")
            template_migrations = cursor.fetchall()
            cursor.execute("SELECT app, name FROM pizzaco.django_migrations ORDER BY app, name")
            tenant_migrations = cursor.fetchall()
    assert tenant_migrations == template_migrations
    assert len(tenant_migrations) > 10


def test_tenant_without_admin_password_emails_a_temporary_one_that_must_be_changed(
    operator_client, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(TENANTS_URL, tenant_body(admin_password=None), format="json")

    assert response.status_code == 201, response.content
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["boss@pizza.example"]
    match = re.search(r"^Temporary password: (\S+)$", message.body, re.MULTILINE)
    assert match, message.body
    assert "must change" in message.body
    with schema_context("pizzaco"):
        admin = User.objects.get()
        assert admin.check_password(match.group(1))
        assert admin.must_change_password is True


def test_custom_domain_policy_and_subscription_end_are_kept(operator_client):
    ends = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    response = operator_client.post(
        TENANTS_URL,
        tenant_body(
            domain="login.pizza.example",
            policy={"lockout": {"threshold": 3}, "sessions": {"max_sessions_per_user": 2}},
            subscription_ends_at=ends.isoformat(),
        ),
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["domains"] == ["login.pizza.example", "pizzaco.idp.test"]  # primary first
    assert body["policy"]["lockout"] == {"threshold": 3, "window_minutes": 15, "duration_minutes": 15}
    assert body["policy"]["sessions"]["max_sessions_per_user"] == 2
    tenant = Tenant.objects.get(schema_name="pizzaco")
    assert tenant.subscription_ends_at == ends
    assert services.tenant_origin(tenant) == "http://login.pizza.example"
    assert client_for_host("login.pizza.example").get("/admin/login/").status_code == 200
    assert client_for_host("pizzaco.idp.test").get("/admin/login/").status_code == 200


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"slug": "acme"}, "slug"),
        ({"slug": "Pizza"}, "slug"),
        ({"slug": "pizza-co"}, "slug"),
        ({"slug": "pizza_co"}, "slug"),
        ({"slug": "1pizza"}, "slug"),
        ({"slug": "p"}, "slug"),
        ({"slug": "p" * 41}, "slug"),
        ({"slug": "public"}, "slug"),
        ({"slug": "pg_catalog"}, "slug"),
        ({"slug": "information_schema"}, "slug"),
        ({"slug": "tenant_template"}, "slug"),
        ({"slug": "www"}, "slug"),
        ({"plan": "no-such-plan"}, "plan"),
        ({"domain": "acme.idp.test"}, "domain"),
        ({"slug": "acme", "domain": "fresh.example.com"}, "slug"),
        ({"domain": "not a domain"}, "domain"),
        ({"domain": "idp.test"}, "domain"),
        ({"admin_email": "not-an-email"}, "admin_email"),
        ({"name": ""}, "name"),
        ({"policy": {"lockout": {"threshold": 0}}}, "policy.lockout.threshold"),
        ({"policy": {"tokens": {"access_minutes": 1441}}}, "policy.tokens.access_minutes"),
        ({"policy": {"password": {"min_length": 7}}}, "policy.password.min_length"),
        ({"policy": {"sessions": {"max_sessions_per_user": 4}}}, "policy.sessions.max_sessions_per_user"),
        ({"policy": {"rate_limits": {"login": "5/week"}}}, "policy.rate_limits.login"),
        ({"policy": {"lockuot": {}}}, "policy.lockuot"),
        ({"policy": "strict"}, "policy"),
        ({"slug": "pizza\n"}, "slug"),
    ],
)
def test_bad_tenant_input_answers_400_with_the_field_and_creates_nothing(operator_client, overrides, field):
    before = counts()

    response = operator_client.post(TENANTS_URL, tenant_body(**overrides), format="json")

    body = assert_problem(response, 400, "invalid_request")
    assert field in body["errors"], body["errors"]
    assert counts() == before
    assert not schema_exists("pizzaco")


def test_weak_admin_password_answers_password_policy_and_creates_nothing(operator_client):
    before = counts()

    response = operator_client.post(TENANTS_URL, tenant_body(admin_password="password"), format="json")

    body = assert_problem(response, 400, "password_policy")
    assert "admin_password" in body["errors"]
    assert counts() == before
    assert not schema_exists("pizzaco")


def test_a_failure_after_the_schema_is_cloned_leaves_no_schema_and_no_rows(plan, monkeypatch):
    def failing_admin_create(**kwargs):
        assert schema_exists("pizzaco")  # the clone happened before the failure
        raise RuntimeError("mail server exploded")

    monkeypatch.setattr(services, "tenant_admin_create", failing_admin_create)
    before = counts()

    with pytest.raises(RuntimeError):
        services.tenant_create(slug="pizzaco", name="Pizza Co", plan=plan, admin_email="boss@pizza.example")

    assert counts() == before
    assert not schema_exists("pizzaco")


# --- who may call it ---------------------------------------------------------------------


def test_anonymous_gets_401(public_client):
    assert_problem(public_client.get(TENANTS_URL), 401, "not_authenticated")
    assert_problem(public_client.post(TENANTS_URL, tenant_body(), format="json"), 401, "not_authenticated")
    assert not schema_exists("pizzaco")


def test_a_public_user_who_is_not_a_superuser_gets_403():
    staff = User.objects.create_user(email="staff@example.com", password=STRONG_PASSWORD, is_staff=True)
    client = client_for_host("idp.test", staff)

    assert_problem(client.get(TENANTS_URL), 403, "permission_denied")
    assert_problem(client.post(PLANS_URL, {"code": "x"}, format="json"), 403, "permission_denied")


def test_a_tenant_admin_gets_403_on_the_platform_api(tenant_a_admin):
    client = client_for_host("idp.test", tenant_a_admin)

    assert_problem(client.get(TENANTS_URL), 403, "permission_denied")


def test_the_platform_api_does_not_exist_on_a_tenant_host(operator, tenant_a):
    client = client_for_host("acme.idp.test", operator)

    assert_problem(client.get(TENANTS_URL), 404, "not_found")
    assert_problem(client.get(PLANS_URL), 404, "not_found")


# --- reading and updating ------------------------------------------------------------------


def test_list_shows_customer_tenants_only(operator_client):
    response = operator_client.get(TENANTS_URL)

    assert response.status_code == 200
    slugs = [tenant["slug"] for tenant in response.json()["results"]]
    assert slugs == ["acme", "globex"]


@pytest.mark.parametrize("slug", ["nope", "public", "tenant_template"])
def test_unknown_or_system_tenant_answers_404(operator_client, slug):
    assert_problem(operator_client.get(f"{TENANTS_URL}{slug}/"), 404, "not_found")
    assert_problem(operator_client.patch(f"{TENANTS_URL}{slug}/", {"name": "x"}, format="json"), 404, "not_found")


def test_patch_merges_the_policy_per_section_and_is_audited_in_both_schemas(operator_client, tenant_a):
    response = operator_client.patch(
        f"{TENANTS_URL}acme/", {"policy": {"lockout": {"threshold": 3}}, "name": "Acme Foods"}, format="json"
    )

    assert response.status_code == 200, response.content
    policy = response.json()["policy"]
    assert policy["lockout"] == {"threshold": 3, "window_minutes": 15, "duration_minutes": 15}
    assert policy["password"] == DEFAULT_POLICY["password"]
    assert response.json()["name"] == "Acme Foods"
    event = AuditEvent.objects.get(type="tenant.updated", target_id="acme")
    assert event.data["policy"]["before"]["lockout"]["threshold"] == 5
    assert event.data["policy"]["after"]["lockout"]["threshold"] == 3
    with schema_context("acme"):
        assert AuditEvent.objects.filter(type="tenant.updated").count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"policy": {"lockout": {"threshold": 101}}}, "policy.lockout.threshold"),
        ({"policy": {"lockout": {"window_minutes": 0}}}, "policy.lockout.window_minutes"),
        ({"policy": {"tokens": {"refresh_days": 366}}}, "policy.tokens.refresh_days"),
        ({"plan": "no-such-plan"}, "plan"),
        ({"is_active": "maybe"}, "is_active"),
        ({"subscription_ends_at": "tomorrow"}, "subscription_ends_at"),
    ],
)
def test_bad_patch_answers_400_and_changes_nothing(operator_client, tenant_a, body, field):
    before = Tenant.objects.values().get(pk=tenant_a.pk)

    response = operator_client.patch(f"{TENANTS_URL}acme/", body, format="json")

    assert field in assert_problem(response, 400, "invalid_request")["errors"]
    assert Tenant.objects.values().get(pk=tenant_a.pk) == before
    assert not AuditEvent.objects.filter(type="tenant.updated").exists()


def test_moving_to_a_plan_below_the_tenants_session_limit_is_refused(operator_client, tenant_a):
    Plan.objects.create(code="single", name="Single", max_users=5, max_devices_per_user=1, max_branches=1)
    operator_client.patch(f"{TENANTS_URL}acme/", {"policy": {"sessions": {"max_sessions_per_user": 3}}}, format="json")

    response = operator_client.patch(f"{TENANTS_URL}acme/", {"plan": "single"}, format="json")

    assert "policy.sessions.max_sessions_per_user" in assert_problem(response, 400, "invalid_request")["errors"]
    assert Tenant.objects.get(pk=tenant_a.pk).plan.code == "standard"


def test_suspended_tenant_answers_tenant_inactive_and_keeps_its_data(operator_client, tenant_a):
    response = operator_client.patch(f"{TENANTS_URL}acme/", {"is_active": False}, format="json")
    assert response.status_code == 200

    assert_problem(client_for_host("acme.idp.test").get("/admin/login/"), 403, "tenant_inactive")
    assert_problem(client_for_host("acme.idp.test").get("/api/docs/"), 403, "tenant_inactive")
    with schema_context("acme"):
        assert User.objects.filter(email=SHARED_ADMIN_EMAIL).exists()
    assert client_for_host("globex.idp.test").get("/admin/login/").status_code == 200

    operator_client.patch(f"{TENANTS_URL}acme/", {"is_active": True}, format="json")
    assert client_for_host("acme.idp.test").get("/admin/login/").status_code == 200


def test_tenant_whose_subscription_ended_answers_tenant_inactive(operator_client, tenant_a):
    ended = (timezone.now() - timedelta(minutes=1)).isoformat()

    operator_client.patch(f"{TENANTS_URL}acme/", {"subscription_ends_at": ended}, format="json")

    assert_problem(client_for_host("acme.idp.test").get("/admin/login/"), 403, "tenant_inactive")
    operator_client.patch(f"{TENANTS_URL}acme/", {"subscription_ends_at": None}, format="json")
    assert client_for_host("acme.idp.test").get("/admin/login/").status_code == 200


def test_tenant_suspend_service_stops_the_tenant(tenant_a):
    services.tenant_suspend(tenant=tenant_a)

    assert Tenant.objects.get(pk=tenant_a.pk).is_usable() is False
    assert_problem(client_for_host("acme.idp.test").get("/admin/login/"), 403, "tenant_inactive")


# --- plans -----------------------------------------------------------------------------------


def test_operator_creates_lists_and_updates_plans(operator_client):
    body = {"code": "pro", "name": "Pro", "max_users": 500, "max_devices_per_user": 2, "max_branches": 50}

    created = operator_client.post(PLANS_URL, body, format="json")
    updated = operator_client.patch(f"{PLANS_URL}pro/", {"max_users": 600}, format="json")
    listed = operator_client.get(PLANS_URL)

    assert created.status_code == 201
    assert created.json() == body | {"audit_retention_days": 365}
    assert updated.json()["max_users"] == 600
    assert [plan["code"] for plan in listed.json()["results"]] == ["pro", "standard"]
    assert AuditEvent.objects.filter(type="plan.updated", target_id="pro").exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "standard"}, "code"),
        ({"code": "bad code"}, "code"),
        ({"max_users": 0}, "max_users"),
        ({"max_devices_per_user": 0}, "max_devices_per_user"),
        ({"max_branches": -1}, "max_branches"),
        ({"audit_retention_days": 0}, "audit_retention_days"),
    ],
)
def test_bad_plan_answers_400_and_creates_nothing(operator_client, body, field):
    full = {"code": "pro", "name": "Pro", "max_users": 5, "max_devices_per_user": 1, "max_branches": 1} | body
    before = Plan.objects.count()

    response = operator_client.post(PLANS_URL, full, format="json")

    assert field in assert_problem(response, 400, "invalid_request")["errors"]
    assert Plan.objects.count() == before


def test_bad_plan_patch_changes_nothing(operator_client, plan):
    response = operator_client.patch(f"{PLANS_URL}standard/", {"max_users": 0}, format="json")

    assert "max_users" in assert_problem(response, 400, "invalid_request")["errors"]
    assert Plan.objects.get(pk=plan.pk).max_users == plan.max_users


def test_giving_the_default_domain_explicitly_registers_it_once(operator_client):
    response = operator_client.post(TENANTS_URL, tenant_body(domain="pizzaco.idp.test"), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["domains"] == ["pizzaco.idp.test"]
