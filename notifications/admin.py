from typing import Any, ClassVar

from django.http import HttpRequest

from console.mixins import ConsoleModelAdmin
from console.sites import platform_console, tenant_console
from notifications.models import OutboxEmail
from rbac.catalog import Perm


class OutboxEmailAdmin(ConsoleModelAdmin):
    """Read-only: admins see what was sent and what failed (and why), never a body (it may
    hold a temporary password or a reset link). In the tenant console, for holders of
    `audit.view`: it is a record of what the IdP sent, like the audit log."""

    permission_codes: ClassVar[dict[str, str | None]] = {"view": Perm.AUDIT_VIEW}
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


for site in (tenant_console, platform_console):
    site.register(OutboxEmail, OutboxEmailAdmin)
