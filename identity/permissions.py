"""Who may manage a tenant's users.

Kept deliberately small: the RBAC work replaces it with permission codes (`users.view`,
`users.manage`, ...). Until then the tenant admin flag is the only authority.
"""

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class IsTenantAdmin(BasePermission):
    """An authenticated, active user of this tenant's schema with `is_tenant_admin`.

    The token's tenant binding (TenantJWTAuthentication) already guarantees the user belongs
    to the schema the request runs in; this only judges the user's standing there. An
    anonymous caller fails here too, and DRF turns that into 401 not_authenticated.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user is not None and user.is_authenticated and user.is_active and getattr(user, "is_tenant_admin", False)
        )
