from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from notifications.models import OutboxEmail


@admin.register(OutboxEmail)
class OutboxEmailAdmin(admin.ModelAdmin):
    """Read-only: admins see what was sent and what failed (and why), never a body (it may
    hold a temporary password or a reset link)."""

    list_display = ["id", "created_at", "kind", "to", "subject", "status", "attempts", "next_attempt_at", "sent_at"]
    list_filter = ["status", "kind"]
    search_fields = ["to", "subject"]
    date_hierarchy = "created_at"
    fields = (
        "kind",
        "to",
        "subject",
        "status",
        "attempts",
        "last_error",
        "next_attempt_at",
        "claimed_at",
        "enqueued_at",
        "created_at",
        "sent_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).defer("body", "html_body")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
