from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest

from identity.models import AuditEvent, User


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_active", "is_tenant_admin", "created_at"]
    list_filter = ["is_active", "is_tenant_admin", "is_staff"]
    search_fields = ["email", "full_name", "employee_id"]
    readonly_fields = ["created_at", "updated_at", "last_login"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name", "phone", "address", "picture"]}),
        ("Employee", {"fields": ["employee_id", "kra_pin", "branch_id", "restaurant_id"]}),
        ("Access", {"fields": ["is_active", "is_staff", "is_tenant_admin", "must_change_password"]}),
        ("Dates", {"fields": ["last_login", "created_at", "updated_at"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["timestamp", "type", "actor_id", "target_type", "target_id", "ip"]
    list_filter = ["type"]
    search_fields = ["target_id", "request_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
