"""The console pages for users (the tenant's employees; the platform's operators), login
attempts and audit events. Every change to an employee goes through identity.services.users
and rbac.services (audited, with the delegation rules); console.mixins refuses the rest."""

from collections.abc import Sequence
from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html

from console.mixins import (
    CSV_CHANGE_LIST_TEMPLATE,
    ROUTED_THROUGH_SERVICES,
    ConsoleModelAdmin,
    ConsolePermissionsMixin,
    CsvExportMixin,
    console_actor,
    shown_once_response,
)
from console.sites import OPERATOR, platform_console, tenant_console
from identity.audit_selectors import (
    AUDIT_EVENT_EXPORT_COLUMNS,
    LOGIN_ATTEMPT_EXPORT_COLUMNS,
    audit_event_export_cells,
    login_attempt_export_cells,
)
from identity.models import AuditEvent, IpBlock, LoginAttempt, User
from identity.passwords import password_generate
from identity.services.security import ip_block_lift
from identity.services.users import RoleGrant, user_admin_unlock, user_create, user_deactivate, user_update
from rbac.catalog import Perm
from rbac.models import Branch, Role, RoleAssignment
from rbac.services import role_assign, role_unassign

PROFILE_FIELDS = ["email", "full_name", "phone", "address", "employee_id", "kra_pin", "branch_id", "restaurant_id"]
_CREATED_PASSWORD_ATTR = "_console_created_password"


def _branch_choices() -> list[tuple[str, str]]:
    return [("", "No branch"), *((b.external_id, str(b)) for b in Branch.objects.all())]


class EmployeeForm(forms.ModelForm):
    """Profile and employee fields; the branch is picked from the tenant's branches."""

    branch_id = forms.ChoiceField(required=False, label="Branch")

    class Meta:
        model = User
        fields = PROFILE_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = _branch_choices()
        current = self.instance.branch_id
        if current and current not in dict(choices):
            choices.append((current, f"{current} (no such branch)"))
        self.fields["branch_id"].choices = choices  # type: ignore[attr-defined]


class EmployeeCreationForm(EmployeeForm):
    roles = forms.ModelMultipleChoiceField(
        queryset=Role.objects.all(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None: the tenant's default role.",
    )
    roles_at_branch = forms.BooleanField(
        required=False, label="Only at the employee's branch", help_text="Otherwise the roles apply tenant-wide."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["full_name"].required = True  # the welcome email greets them by name

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("roles_at_branch") and not cleaned.get("branch_id"):
            self.add_error("roles_at_branch", "Pick the employee's branch first.")
        return cleaned


class RoleAssignmentInline(ConsolePermissionsMixin, admin.TabularInline):
    """The employee's roles, tenant-wide (no branch) or at a branch: added with role_assign,
    removed with role_unassign (no escalation, the last admin keeps Admin). An assignment is
    never edited in place: remove it and add another."""

    model = RoleAssignment
    fields = ["role", "branch", "created_at"]
    readonly_fields = ["created_at"]
    extra = 1
    verbose_name = "role"
    verbose_name_plural = "roles"
    permission_codes: ClassVar[dict[str, str | None]] = {
        "view": Perm.ROLES_VIEW,
        "add": Perm.ROLES_ASSIGN,
        "change": None,
        "delete": Perm.ROLES_ASSIGN,
    }

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("role", "branch")


@admin.register(User, site=tenant_console)
class EmployeeAdmin(ConsoleModelAdmin):
    permission_codes: ClassVar[dict[str, str | None]] = {
        "view": Perm.USERS_VIEW,
        "add": Perm.USERS_CREATE,
        "change": Perm.USERS_EDIT,
        "delete": None,  # users are deactivated, never deleted
    }
    list_display = ["email", "full_name", "employee_id", "branch_id", "roles", "is_active", "must_change_password"]
    list_filter = ["is_active", "is_tenant_admin", "must_change_password"]
    search_fields = ["email", "full_name", "employee_id", "branch_id"]
    ordering = ["email"]
    list_per_page = 50
    actions = ["deactivate_users", "unlock_users"]
    inlines = [RoleAssignmentInline]
    status_fields = [
        "is_active",
        "is_tenant_admin",
        "must_change_password",
        "last_login",
        "deactivated_at",
        "created_at",
        "sessions",
    ]

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("role_assignments__role", "role_assignments__branch")

    @admin.display(description="roles")
    def roles(self, user: User) -> str:
        return ", ".join(
            f"{a.role.name} @ {a.branch.external_id}" if a.branch else a.role.name for a in user.role_assignments.all()
        )

    @admin.display(description="device sessions")
    def sessions(self, user: User) -> str:
        url = reverse("admin:device_sessions_devicesession_changelist", current_app=self.admin_site.name)
        return format_html('<a href="{}?user__id__exact={}">Sessions of this user</a>', url, user.pk)

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        kwargs["form"] = EmployeeForm if obj is not None else EmployeeCreationForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return [
                (None, {"fields": ["email", "full_name", "phone", "address"]}),
                ("Employee", {"fields": ["employee_id", "kra_pin", "branch_id", "restaurant_id"]}),
                ("Roles", {"fields": ["roles", "roles_at_branch"]}),
            ]
        return [
            (None, {"fields": ["email", "full_name", "phone", "address"]}),
            ("Employee", {"fields": ["employee_id", "kra_pin", "branch_id", "restaurant_id"]}),
            ("Access", {"fields": self.status_fields}),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Without users.edit Django shows every field read-only anyway.
        return self.status_fields if obj is not None else []

    def get_inlines(self, request: HttpRequest, obj: Any) -> Any:
        return self.inlines if obj is not None else []  # at creation: the roles field

    # --- writes ------------------------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            changes = {name: data[name] for name in form.changed_data if name in PROFILE_FIELDS}
            user_update(user=obj, actor=console_actor(request), **changes)
            return
        tenant = request.tenant  # type: ignore[attr-defined]
        password = password_generate(tenant.effective_policy["password"])
        branch = data["branch_id"] if data["roles_at_branch"] else None
        user = user_create(
            tenant=tenant,
            actor=console_actor(request),
            **{name: data[name] for name in PROFILE_FIELDS},
            roles=[RoleGrant(role=role.pk, branch=branch) for role in data["roles"]],
            temporary_password=password,
        )
        obj.pk = user.pk
        setattr(request, _CREATED_PASSWORD_ATTR, password)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not RoleAssignment:
            return super().save_formset(request, form, formset, change)
        formset.save(commit=False)  # sorts the forms into new and deleted objects; writes nothing
        if formset.changed_objects:  # assignments are removed and added, never edited
            raise PermissionDenied(ROUTED_THROUGH_SERVICES)
        for assignment in formset.deleted_objects:
            role_unassign(assignment=assignment, actor=console_actor(request))
        for assignment in formset.new_objects:
            role_assign(
                user=form.instance, role=assignment.role, branch=assignment.branch, actor=console_actor(request)
            )

    def response_add(self, request: HttpRequest, obj: User, post_url_continue: str | None = None) -> HttpResponse:
        password = getattr(request, _CREATED_PASSWORD_ATTR, None)
        if password is None:
            return super().response_add(request, obj, post_url_continue)
        return shown_once_response(
            request,
            site=self.admin_site,
            title="Employee created",
            intro=(
                f"{obj.email} can sign in with this temporary password and must change it at first login. "
                "It was also emailed to them."
            ),
            facts=[("Email", obj.email)],
            label="Temporary password",
            secret=password,
            next_url=reverse("admin:identity_user_change", args=[obj.pk], current_app=self.admin_site.name),
        )

    # --- actions -------------------------------------------------------------------------------

    def has_deactivate_permission(self, request: HttpRequest) -> bool:
        return self.site_allows(request, Perm.USERS_DELETE)

    def has_unlock_permission(self, request: HttpRequest) -> bool:
        return self.site_allows(request, Perm.USERS_EDIT)

    @admin.action(description="Deactivate the selected users (their sessions end)", permissions=["deactivate"])
    def deactivate_users(self, request: HttpRequest, queryset: Any) -> None:
        self.apply_service(
            request, queryset, lambda user: user_deactivate(user=user, actor=console_actor(request)), done="Deactivated"
        )

    @admin.action(description="Unlock the selected users", permissions=["unlock"])
    def unlock_users(self, request: HttpRequest, queryset: Any) -> None:
        self.apply_service(
            request, queryset, lambda user: user_admin_unlock(user=user, actor=console_actor(request)), done="Unlocked"
        )


@admin.register(User, site=platform_console)
class OperatorAdmin(ConsoleModelAdmin):
    """The platform operators, to read: they are made with `createsuperuser` and manage
    their own password through the API."""

    permission_codes: ClassVar[dict[str, str | None]] = {"view": OPERATOR}
    list_display = ["email", "full_name", "is_active", "is_superuser", "last_login", "created_at"]
    list_filter = ["is_active", "is_superuser"]
    search_fields = ["email", "full_name"]
    fields = ["email", "full_name", "is_active", "is_superuser", "last_login", "created_at"]


class EventKindFilter(admin.SimpleListFilter):
    """Events by the first part of their type (`login.failed` is a `login` event): a fixed
    list, where a filter of distinct types would scan a year of events on every page."""

    title = "kind"
    parameter_name = "kind"
    KINDS = (
        "login",
        "account",
        "session",
        "token",
        "password",
        "email",
        "user",
        "role",
        "permission",
        "branch",
        "service_client",
        "signing_key",
        "tenant",
        "ip",
        "security",
    )

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(kind, kind.replace("_", " ")) for kind in self.KINDS]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        return queryset.filter(type__startswith=f"{value}.") if value in self.KINDS else queryset


class LoginAttemptAdmin(CsvExportMixin, ConsoleModelAdmin):
    permission_codes: ClassVar[dict[str, str | None]] = {"view": Perm.AUDIT_VIEW}
    list_display = ["timestamp", "email", "success", "reason", "ip", "device_type", "device_name"]
    # Fixed filters only: a filter listing a column's distinct values would scan the table.
    list_filter = ["success", "timestamp"]
    search_fields = ["email", "=ip", "=reason", "=device_id"]
    fields = [
        "timestamp",
        "email",
        "user",
        "success",
        "reason",
        "ip",
        "user_agent",
        "device_id",
        "device_name",
        "device_type",
    ]
    csv_columns = LOGIN_ATTEMPT_EXPORT_COLUMNS

    def csv_values(self, row: tuple[Any, ...]) -> Sequence[object]:
        return login_attempt_export_cells(row)

    show_full_result_count = False  # a year of attempts: no second COUNT(*) per page
    change_list_template = CSV_CHANGE_LIST_TEMPLATE


class AuditEventAdmin(CsvExportMixin, ConsoleModelAdmin):
    permission_codes: ClassVar[dict[str, str | None]] = {"view": Perm.AUDIT_VIEW}
    list_display = ["timestamp", "type", "actor_id", "target_type", "target_id", "ip"]
    list_filter = [EventKindFilter, "timestamp"]
    search_fields = ["=type", "=target_id", "=request_id"]
    fields = ["timestamp", "type", "actor_id", "target_type", "target_id", "ip", "user_agent", "request_id", "data"]
    csv_columns = AUDIT_EVENT_EXPORT_COLUMNS

    def csv_values(self, row: tuple[Any, ...]) -> Sequence[object]:
        return audit_event_export_cells(row)

    show_full_result_count = False
    change_list_template = CSV_CHANGE_LIST_TEMPLATE


@admin.register(IpBlock, site=tenant_console)
class IpBlockAdmin(ConsoleModelAdmin):
    """Addresses the suspicious-activity rules blocked: read-only, lifted through the same
    service as `DELETE /api/v1/security/ip-blocks/<id>/` (audited as `ip.unblocked`)."""

    permission_codes: ClassVar[dict[str, str | None]] = {"view": Perm.AUDIT_VIEW}
    list_display = ["ip", "reason", "created_at", "expires_at", "in_force", "lifted_at", "lifted_by"]
    list_select_related = ["lifted_by"]  # nullable: Django's automatic select_related leaves it out
    list_filter = ["reason", "created_at"]
    search_fields = ["=ip"]
    fields = ["ip", "reason", "data", "created_at", "expires_at", "lifted_at", "lifted_by"]
    readonly_fields = ["ip", "reason", "data", "created_at", "expires_at", "lifted_at", "lifted_by"]
    actions = ["lift_blocks"]

    @admin.display(boolean=True, description="in force")
    def in_force(self, block: IpBlock) -> bool:
        return block.is_active()

    def has_lift_permission(self, request: HttpRequest) -> bool:
        return self.site_allows(request, Perm.USERS_EDIT)

    @admin.action(description="Lift the selected blocks", permissions=["lift"])
    def lift_blocks(self, request: HttpRequest, queryset: Any) -> None:
        self.apply_service(
            request,
            queryset,
            lambda block: ip_block_lift(block=block, actor=console_actor(request)),
            done="Lifted",
        )


for site in (tenant_console, platform_console):
    site.register(LoginAttempt, LoginAttemptAdmin)
    site.register(AuditEvent, AuditEventAdmin)
