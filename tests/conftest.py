"""The cast: two tenants made once per run (acme and globex, each with an admin of the same
email), a platform operator, and clients bound to a host. Each test runs in a transaction
that is rolled back, so what a test changes never reaches the next one."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from core.tenancy import tenant_connection
from identity.keys import forget_cached_keys
from identity.models import User
from tenants.models import Plan, Tenant
from tenants.services import tenant_create
from tests.factories import TEST_PASSWORD

SHARED_ADMIN_EMAIL = "admin@example.com"  # the same address in both tenants, on purpose
TENANT_SLUGS = ("acme", "globex")


def host_of(slug: str) -> str:
    return f"{slug}.{settings.IDP_BASE_DOMAIN}"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        plan, _ = Plan.objects.get_or_create(
            code="standard",
            defaults={"name": "Standard", "max_users": 20, "max_devices_per_user": 3, "max_branches": 5},
        )
        for slug in TENANT_SLUGS:
            if not Tenant.objects.filter(schema_name=slug).exists():
                tenant_create(
                    slug=slug,
                    name=slug.title(),
                    plan=plan,
                    admin_email=SHARED_ADMIN_EMAIL,
                    admin_password=TEST_PASSWORD,
                )
    yield


@pytest.fixture(autouse=True)
def _public_schema_and_clean_cache(db: None) -> Iterator[None]:
    # Requests move the connection to their tenant's schema; start and end every test in public.
    tenant_connection().set_schema_to_public()
    cache.clear()
    # Per-process caches (keys, token backends) outlive a test's rolled-back transaction.
    forget_cached_keys()
    yield
    tenant_connection().set_schema_to_public()


@pytest.fixture
def plan() -> Plan:
    return Plan.objects.get(code="standard")


@pytest.fixture
def tenant_a() -> Tenant:
    return Tenant.objects.get(schema_name="acme")


@pytest.fixture
def tenant_b() -> Tenant:
    return Tenant.objects.get(schema_name="globex")


@pytest.fixture
def operator() -> User:
    return User.objects.create_superuser(email="operator@example.com", password=TEST_PASSWORD)


def client_for_host(host: str, user: User | None = None) -> APIClient:
    client = APIClient(HTTP_HOST=host)
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def public_client() -> APIClient:
    return client_for_host(settings.IDP_BASE_DOMAIN)


@pytest.fixture
def operator_client(operator: User) -> APIClient:
    return client_for_host(settings.IDP_BASE_DOMAIN, operator)


@pytest.fixture
def tenant_a_admin(tenant_a: Tenant) -> User:
    with schema_context(tenant_a.schema_name):
        return User.objects.get(email=SHARED_ADMIN_EMAIL)


@pytest.fixture
def tenant_b_admin(tenant_b: Tenant) -> User:
    with schema_context(tenant_b.schema_name):
        return User.objects.get(email=SHARED_ADMIN_EMAIL)


def login_tokens(host: str, email: str, password: str = TEST_PASSWORD, device_id: str = "pos-1") -> dict[str, Any]:
    """Log in through the API; returns the token response body (asserts it succeeded)."""
    response = APIClient(HTTP_HOST=host).post(
        "/api/v1/auth/token/",
        {"email": email, "password": password, "device_id": device_id, "device_name": "Till", "device_type": "pos"},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def bearer_client(host: str, access: str) -> APIClient:
    return APIClient(HTTP_HOST=host, HTTP_AUTHORIZATION=f"Bearer {access}")


@pytest.fixture
def tenant_a_admin_client(tenant_a_admin: User) -> APIClient:
    """acme's admin, logged in through the real token endpoint."""
    return bearer_client("acme.idp.test", login_tokens("acme.idp.test", SHARED_ADMIN_EMAIL)["access"])


@pytest.fixture
def committed_tenant(plan: Plan) -> Iterator[Tenant]:
    """A tenant whose rows are committed (made and dropped on another connection), for tests
    where several connections race. Its admin is SHARED_ADMIN_EMAIL / TEST_PASSWORD and its
    rate limits are raised so that only the behaviour under test answers."""
    from tenants.policy import policy_validate
    from tests.concurrency import on_own_connection

    policy = policy_validate(
        {"rate_limits": {"login": "1000/min", "refresh": "1000/min"}, "sessions": {"max_sessions_per_user": 3}},
        max_devices_per_user=plan.max_devices_per_user,
    )

    def create() -> Tenant:
        return tenant_create(
            slug="racing",
            name="Racing",
            plan=plan,
            admin_email=SHARED_ADMIN_EMAIL,
            admin_password=TEST_PASSWORD,
            policy=policy,
        ).tenant

    tenant = on_own_connection(create)
    try:
        yield tenant
    finally:
        on_own_connection(lambda: Tenant.objects.get(pk=tenant.pk).delete(force_drop=True))
