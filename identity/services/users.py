"""Writes for users: creation, updates, deactivation, passwords set by admins, unlocks."""

from typing import Any

from django.db import transaction
from django.db.models import Q

from core.errors import ErrorCode, ProblemError
from identity.models import User, normalize_email
from identity.passwords import password_generate, password_validate
from identity.services.audit import audit_record
from tenants.models import Tenant


@transaction.atomic
def tenant_admin_create(
    *, email: str, password: str | None, full_name: str, password_rules: dict[str, Any], actor: User | None = None
) -> tuple[User, str | None]:
    """Create a tenant's first admin in the current (tenant) schema.

    Returns the user and the generated password when none was given (to be emailed, never
    logged or returned by the API). A generated password must be changed at first login;
    an operator-chosen one need not be.
    """
    generated = None
    if password is None:
        generated = password = password_generate(password_rules)
    else:
        password_validate(password, rules=password_rules, field="admin_password")
    user = User.objects.create_user(
        email=normalize_email(email),
        password=password,
        full_name=full_name,
        is_staff=True,
        is_tenant_admin=True,
        must_change_password=generated is not None,
    )
    audit_record(type="user.created", actor=actor, target=user, data={"email": user.email, "tenant_admin": True})
    return user, generated


def user_cap_check(*, tenant: Any) -> None:
    """Refuse a new account past the plan's `max_users` (403 user_cap_reached).

    Active users and pending registrations count; deactivated users do not. The tenant's
    row is locked first, so two creations racing for the last seat cannot both win. Call
    inside the transaction that creates the user.
    """
    locked = Tenant.objects.select_for_update().select_related("plan").get(pk=tenant.pk)
    if locked.plan is None:
        return  # the platform's own schema has no plan and no cap
    counted = User.objects.filter(Q(is_active=True) | Q(deactivated_at__isnull=True, email_verified_at__isnull=True))
    if counted.count() >= locked.plan.max_users:
        raise ProblemError(ErrorCode.USER_CAP_REACHED, f"The plan allows {locked.plan.max_users} users.")
