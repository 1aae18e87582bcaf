"""The platform console's pages (the public host only: console.sites.platform_console):
tenants, plans and domains. Saves go through tenants.services, so they are audited (a
tenant's own audit log also records what the platform changed about it)."""

from typing import Any, ClassVar

from django.contrib import admin
from django.http import HttpRequest

from console.mixins import ConsoleModelAdmin, ConsolePermissionsMixin, console_actor
from console.sites import OPERATOR, platform_console
from tenants import services
from tenants.models import Domain, Plan, Tenant

OPERATOR_EDITS: dict[str, str | None] = {"view": OPERATOR, "add": OPERATOR, "change": OPERATOR, "delete": None}


@admin.register(Plan, site=platform_console)
class PlanAdmin(ConsoleModelAdmin):
    permission_codes: ClassVar[dict[str, str | None]] = OPERATOR_EDITS  # plans are never deleted
    list_display = ["code", "name", "max_users", "max_devices_per_user", "max_branches", "audit_retention_days"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["code"] if obj is not None else []  # tenants name their plan by code

    def save_model(self, request: HttpRequest, obj: Plan, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name != "code"}
        if change:
            services.plan_update(plan=obj, actor=console_actor(request), **fields)
        else:
            obj.pk = services.plan_create(actor=console_actor(request), code=obj.code, **fields).pk


class DomainInline(ConsolePermissionsMixin, admin.TabularInline):
    model = Domain
    extra = 0
    fields = ["domain", "is_primary"]
    permission_codes: ClassVar[dict[str, str | None]] = {"view": OPERATOR}


@admin.register(Tenant, site=platform_console)
class TenantAdmin(ConsoleModelAdmin):
    # Tenants are created through the platform API (schema, domain, first admin), and
    # suspended rather than deleted.
    permission_codes: ClassVar[dict[str, str | None]] = {"view": OPERATOR, "change": OPERATOR}
    list_display = ["schema_name", "name", "plan", "is_active", "subscription_ends_at", "created_at"]
    list_filter = ["is_active", "plan"]
    search_fields = ["schema_name", "name"]
    fields = ["schema_name", "name", "plan", "is_active", "subscription_ends_at"]
    readonly_fields = ["schema_name"]
    inlines = [DomainInline]

    def get_queryset(self, request: HttpRequest) -> Any:
        return Tenant.objects.customers().select_related("plan")

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        services.tenant_update(tenant=obj, actor=console_actor(request), **changes)


@admin.register(Domain, site=platform_console)
class DomainAdmin(ConsoleModelAdmin):
    permission_codes: ClassVar[dict[str, str | None]] = {"view": OPERATOR}
    list_display = ["domain", "tenant", "is_primary"]
    list_filter = ["is_primary"]
    search_fields = ["domain", "tenant__schema_name"]
    list_select_related = ["tenant"]
