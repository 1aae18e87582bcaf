"""Writes for identity: user creation and audit records."""

from typing import Any

from django.db import transaction

from identity.models import AuditEvent, User, normalize_email
from identity.passwords import password_generate, password_validate


def audit_record(
    *,
    type: str,
    actor: User | None = None,
    target: Any = None,
    target_type: str = "",
    target_id: str = "",
    data: dict[str, Any] | None = None,
    request: Any = None,
) -> AuditEvent:
    """Append an audit event in the current schema. `data` must never hold a secret."""
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_id = target_id or str(target.pk)
    return AuditEvent.objects.create(
        type=type,
        actor_id=actor.pk if actor is not None else None,
        target_type=target_type,
        target_id=target_id,
        ip=getattr(request, "client_ip", None) or (request.META.get("REMOTE_ADDR") if request else None),
        user_agent=(request.headers.get("User-Agent", "")[:512] if request else ""),
        request_id=getattr(request, "request_id", "") if request else "",
        data=data or {},
    )


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
