"""The platform console (Django admin on the public host). Hidden on tenant hosts: the
public tables are on every tenant's search path, so the check is on the schema."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from core.tenancy import current_schema
from tenants import services
from tenants.models import Domain, Plan, Tenant


class PublicSchemaOnlyAdmin(admin.ModelAdmin):
    def _on_public_host(self) -> bool:
        return current_schema() == "public"

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._on_public_host() and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._on_public_host() and super().has_view_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._on_public_host() and super().has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._on_public_host() and super().has_add_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # plans and tenants are never deleted from the console


@admin.register(Plan)
class PlanAdmin(PublicSchemaOnlyAdmin):
    list_display = ["code", "name", "max_users", "max_devices_per_user", "max_branches", "audit_retention_days"]

    def save_model(self, request: HttpRequest, obj: Plan, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name != "code"}
        if change:
            services.plan_update(plan=obj, actor=request.user, **fields)  # type: ignore[arg-type]
        else:
            services.plan_create(actor=request.user, code=obj.code, **fields)  # type: ignore[arg-type]


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0
    readonly_fields = ["domain", "is_primary"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Tenant)
class TenantAdmin(PublicSchemaOnlyAdmin):
    list_display = ["schema_name", "name", "plan", "is_active", "subscription_ends_at", "created_at"]
    list_filter = ["is_active", "plan"]
    search_fields = ["schema_name", "name"]
    fields = ["schema_name", "name", "plan", "is_active", "subscription_ends_at"]
    readonly_fields = ["schema_name"]
    inlines = [DomainInline]

    def get_queryset(self, request: HttpRequest) -> Any:
        return Tenant.objects.customers()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # tenants are created through the platform API (schema, domain, admin)

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        services.tenant_update(tenant=obj, actor=request.user, **changes)  # type: ignore[arg-type]
