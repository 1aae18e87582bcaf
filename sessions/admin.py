"""The console page for device sessions: list them, end them (sessions.services.session_terminate,
with the same rules as the API: nobody ends the session of someone above them)."""

from typing import Any, ClassVar

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from console.mixins import ConsoleModelAdmin, console_actor
from console.sites import tenant_console
from rbac.catalog import Perm
from sessions.models import DeviceSession
from sessions.services import session_terminate


class SessionStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("ended", "Ended")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() == "active":
            return queryset.filter(ended_at__isnull=True, expires_at__gt=timezone.now())
        if self.value() == "ended":
            return queryset.filter(ended_at__isnull=False)
        return queryset


@admin.register(DeviceSession, site=tenant_console)
class DeviceSessionAdmin(ConsoleModelAdmin):
    permission_codes: ClassVar[dict[str, str | None]] = {"view": Perm.SESSIONS_VIEW}
    list_display = ["user", "device_name", "device_id", "device_type", "ip", "created_at", "last_active_at", "ended_at"]
    list_filter = [SessionStateFilter, "end_reason"]
    search_fields = ["user__email", "=device_id", "=ip"]
    list_select_related = ["user"]
    actions = ["end_sessions"]
    # Never the refresh token's hash.
    fields = [
        "user",
        "device_id",
        "device_name",
        "device_type",
        "ip",
        "user_agent",
        "created_at",
        "last_active_at",
        "expires_at",
        "ended_at",
        "end_reason",
    ]

    def has_end_permission(self, request: HttpRequest) -> bool:
        return self.site_allows(request, Perm.SESSIONS_DELETE)

    @admin.action(description="End the selected sessions", permissions=["end"])
    def end_sessions(self, request: HttpRequest, queryset: Any) -> None:
        self.apply_service(
            request,
            queryset.filter(ended_at__isnull=True),
            lambda session: session_terminate(session=session, actor=console_actor(request)),
            done="Ended",
        )
