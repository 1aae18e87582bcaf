"""Reads for identity."""

from identity.models import User


def user_role_names(user: User) -> list[str]:
    """Role names for the `roles` claim. Tenant admins hold the Admin system role."""
    return ["Admin"] if user.is_tenant_admin else []
