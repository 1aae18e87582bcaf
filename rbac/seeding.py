from typing import Any

from rbac.catalog import BUILTIN_CODES, BUILTIN_PATTERNS, SYSTEM_ROLES


def catalog_seed(permission_model: Any, role_model: Any) -> None:
    """Create missing built-in codes and system roles. Existing rows are left as they are:
    a tenant may have edited a system role's codes where its policy allows."""
    for code in (*BUILTIN_PATTERNS, *BUILTIN_CODES):
        permission_model.objects.get_or_create(code=code, defaults={"is_builtin": True})
    for name, codes in SYSTEM_ROLES.items():
        role, created = role_model.objects.get_or_create(name=name, defaults={"is_system": True})
        if created:
            role.permissions.set(permission_model.objects.filter(code__in=codes))
