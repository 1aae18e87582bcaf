"""Django's authentication backend for password logins outside the token API (the admin
console's login form): the same lockout, attempt records and constant-cost refusals as
POST /api/v1/auth/token/, never a second, weaker way in."""

from typing import Any

from django.contrib.auth.backends import ModelBackend
from django.http import HttpRequest

from core.errors import ProblemError
from core.tenancy import tenant_connection
from identity.models import User
from identity.services.login import login_credentials_check
from sessions.services import Device
from tenants.policy import DEFAULT_POLICY


class LockoutModelBackend(ModelBackend):
    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        email = username or kwargs.get("email")
        if not email or password is None:
            return None
        tenant = tenant_connection().tenant
        policy = tenant.effective_policy if hasattr(tenant, "effective_policy") else DEFAULT_POLICY
        lockout = policy["lockout"]
        try:
            user = login_credentials_check(
                email=email,
                password=password,
                device=Device("admin-console", "Admin console", "browser"),
                lockout_policy=lockout,
            )
        except ProblemError:
            return None  # the form shows one generic error for every refusal
        return user if self.user_can_authenticate(user) else None
