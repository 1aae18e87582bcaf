"""Typed access to django-tenants' connection methods (the package ships no type hints)."""

from typing import Any

from django.db import connection


def tenant_connection() -> Any:
    """The default connection, which django-tenants' backend extends with schema switching."""
    return connection


def current_schema() -> str:
    return str(tenant_connection().schema_name)
