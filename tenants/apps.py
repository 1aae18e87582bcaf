from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and plans"

    def ready(self) -> None:
        from tenants.models import Domain, Tenant

        for model in (Tenant, Domain):
            post_save.connect(_tenant_rows_changed, sender=model, dispatch_uid=f"tenants.{model.__name__}_saved")
            post_delete.connect(_tenant_rows_changed, sender=model, dispatch_uid=f"tenants.{model.__name__}_deleted")


def _tenant_rows_changed(sender: Any, **kwargs: Any) -> None:
    """Every save or delete of a tenant or a domain retires the tenant rows cached by host."""
    from tenants.tenant_rows import tenant_rows_changed

    tenant_rows_changed()
