"""Who may manage a tenant's users: permission codes, through `rbac.permissions`.

The interim flag-based class that stood here is gone; the users API declares
`HasPermission(Perm.USERS_..., anywhere=True)` per method. `IsTenantAdmin` stays importable
from here as the very object `rbac.permissions.IsTenantAdmin` (holds the Admin role
tenant-wide), so there is one mechanism.
"""

from rbac.permissions import IsTenantAdmin

__all__ = ["IsTenantAdmin"]
