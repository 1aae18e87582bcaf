"""Writes for users: creation, updates, deactivation, passwords set by admins, unlocks."""

from typing import Any

from django.db import transaction

from identity.models import User, normalize_email
from identity.passwords import password_generate, password_validate
from identity.services.audit import audit_record


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
