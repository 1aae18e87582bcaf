"""The audit trail: one append-only row per security-relevant event."""

from typing import Any

from core.context import request_context
from identity.models import AuditEvent, User


def audit_record(
    *,
    type: str,
    actor: User | None = None,
    target: Any = None,
    target_type: str = "",
    target_id: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append an audit event in the current schema, with the request's address, user agent
    and id. `data` must never hold a secret."""
    if target is not None:
        target_type = target_type or target._meta.model_name
        target_id = target_id or str(target.pk)
    context = request_context.get()
    return AuditEvent.objects.create(
        type=type,
        actor_id=actor.pk if actor is not None else None,
        target_type=target_type,
        target_id=target_id,
        ip=context.ip,
        user_agent=context.user_agent,
        request_id=context.request_id,
        data=data or {},
    )
