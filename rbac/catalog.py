"""The permission catalog: built-in codes, ALL_PERMISSIONS, system roles, and how a held code
grants a requested one.

A code is `resource.action` (`orders.refund`). Roles may also hold the built-in patterns
`*` (ALL_PERMISSIONS: every code of its own tenant, nothing elsewhere) and `*.view` (the
Auditor's read access); `grants` also understands `resource.*`, should one be added.
"""

import re
from enum import StrEnum

ALL_PERMISSIONS = "*"

CODE_RE = re.compile(r"[a-z][a-z0-9_]{0,48}\.[a-z][a-z0-9_]{0,48}")


class Perm(StrEnum):
    USERS_VIEW = "users.view"
    USERS_CREATE = "users.create"
    USERS_EDIT = "users.edit"
    USERS_DELETE = "users.delete"
    ROLES_VIEW = "roles.view"
    ROLES_CREATE = "roles.create"
    ROLES_EDIT = "roles.edit"
    ROLES_DELETE = "roles.delete"
    ROLES_ASSIGN = "roles.assign"
    PERMISSIONS_VIEW = "permissions.view"
    PERMISSIONS_CREATE = "permissions.create"
    PERMISSIONS_DELETE = "permissions.delete"
    BRANCHES_VIEW = "branches.view"
    BRANCHES_CREATE = "branches.create"
    BRANCHES_EDIT = "branches.edit"
    BRANCHES_DELETE = "branches.delete"
    SESSIONS_VIEW = "sessions.view"
    SESSIONS_DELETE = "sessions.delete"
    AUDIT_VIEW = "audit.view"
    SERVICE_CLIENTS_VIEW = "service_clients.view"
    SERVICE_CLIENTS_CREATE = "service_clients.create"
    SERVICE_CLIENTS_DELETE = "service_clients.delete"
    ORDERS_VIEW = "orders.view"
    ORDERS_CREATE = "orders.create"
    ORDERS_EDIT = "orders.edit"
    ORDERS_DELETE = "orders.delete"
    ORDERS_REFUND = "orders.refund"
    MENU_VIEW = "menu.view"
    MENU_CREATE = "menu.create"
    MENU_EDIT = "menu.edit"
    MENU_DELETE = "menu.delete"
    REPORTS_VIEW = "reports.view"


BUILTIN_CODES: tuple[str, ...] = tuple(perm.value for perm in Perm)
BUILTIN_PATTERNS: tuple[str, ...] = (ALL_PERMISSIONS, "*.view")

ADMIN, MANAGER, EMPLOYEE, AUDITOR = "Admin", "Manager", "Employee", "Auditor"
SYSTEM_ROLES: dict[str, tuple[str, ...]] = {
    ADMIN: (ALL_PERMISSIONS,),
    MANAGER: (
        Perm.USERS_VIEW,
        Perm.USERS_CREATE,
        Perm.USERS_EDIT,
        Perm.ROLES_VIEW,
        Perm.ROLES_ASSIGN,
        Perm.BRANCHES_VIEW,
        Perm.SESSIONS_VIEW,
        Perm.SESSIONS_DELETE,
        Perm.AUDIT_VIEW,
        Perm.ORDERS_VIEW,
        Perm.ORDERS_CREATE,
        Perm.ORDERS_EDIT,
        Perm.ORDERS_REFUND,
        Perm.MENU_VIEW,
        Perm.MENU_EDIT,
        Perm.REPORTS_VIEW,
    ),
    EMPLOYEE: (Perm.ORDERS_VIEW, Perm.ORDERS_CREATE, Perm.MENU_VIEW),
    AUDITOR: (Perm.AUDIT_VIEW, "*.view"),
}


def grants(held: str, requested: str) -> bool:
    """Whether holding `held` allows the concrete code `requested`."""
    if held in (ALL_PERMISSIONS, requested):
        return True
    resource, _, action = requested.partition(".")
    return held in (f"{resource}.*", f"*.{action}")


def covers(held: str, granted: str) -> bool:
    """Whether someone holding `held` may hand out `granted` (a code or a pattern): a pattern
    is only covered by itself or by `*`, so nobody hands out more than they hold."""
    if held in (ALL_PERMISSIONS, granted):
        return True
    return CODE_RE.fullmatch(granted) is not None and grants(held, granted)
