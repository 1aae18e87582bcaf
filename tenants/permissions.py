from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from core.tenancy import current_schema


class IsPlatformOperator(BasePermission):
    """A superuser of the public schema, on the public host. A tenant's admin is never one,
    even if its flags say superuser: the check is bound to the schema the request runs in.

    The platform views list an instance of it per method in `required_permissions`."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            current_schema() == "public"
            and user is not None
            and user.is_authenticated
            and user.is_active
            and user.is_superuser
        )
