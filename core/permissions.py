from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class DenyAll(BasePermission):
    """The default permission: a view that declares nothing is closed, not open."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return False
