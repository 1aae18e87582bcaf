"""The console's cast in acme: its admin (Admin, from the tenant fixtures), an auditor, a
tenant-wide manager, a manager of one branch only, and an employee; and Django test clients
signed in to the console as one of them."""

from dataclasses import dataclass

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from identity.models import User
from rbac.catalog import AUDITOR, EMPLOYEE, MANAGER
from rbac.models import Branch, Role
from rbac.services import role_assign
from tests.factories import TEST_PASSWORD

ACME_HOST = "acme.idp.test"


@dataclass
class Cast:
    admin: User
    auditor: User
    manager: User
    branch_manager: User
    employee: User
    branch: Branch


def user_with_role(role_name: str, *, email: str, branch: Branch | None = None) -> User:
    """A user of the current schema holding one system role (tenant-wide or at `branch`)."""
    user = User.objects.create_user(email=email, password=TEST_PASSWORD, full_name=email.split("@")[0].title())
    role_assign(user=user, role=Role.objects.get(name=role_name), branch=branch, actor=None)
    return user


@pytest.fixture
def cast(tenant_a, tenant_a_admin) -> Cast:
    with schema_context("acme"):
        branch = Branch.objects.create(external_id="12", name="Westlands")
        return Cast(
            admin=tenant_a_admin,
            auditor=user_with_role(AUDITOR, email="auditor@acme.example"),
            manager=user_with_role(MANAGER, email="manager@acme.example"),
            branch_manager=user_with_role(MANAGER, email="branch.manager@acme.example", branch=branch),
            employee=user_with_role(EMPLOYEE, email="cook@acme.example"),
            branch=branch,
        )


def console_client(user: User | None = None, *, host: str = ACME_HOST, schema: str = "acme") -> Client:
    """A browser-like client on `host`, signed in to its console as `user` (the session is
    written in the tenant's own schema, as a login there would)."""
    client = Client(HTTP_HOST=host)
    if user is not None:
        with schema_context(schema):
            client.force_login(user, backend="identity.backends.LockoutModelBackend")
    return client
