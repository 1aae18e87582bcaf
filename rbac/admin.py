"""The console pages for roles, permission codes, branches and service clients. Every change
goes through rbac.services and rbac.service_clients (audited, no escalation)."""

from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from console.mixins import ConsoleModelAdmin, console_actor, shown_once_response
from console.sites import tenant_console
from rbac.catalog import Perm
from rbac.models import SERVICE_CLIENT_SCOPES, Branch, PermissionCode, Role, ServiceClient
from rbac.selectors import role_list
from rbac.service_clients import service_client_create, service_client_list, service_client_revoke
from rbac.services import (
    branch_create,
    branch_delete,
    branch_update,
    permission_create,
    permission_delete,
    role_create,
    role_delete,
    role_update,
)

_CREATED_SECRET_ATTR = "_console_created_client_secret"


class RoleForm(forms.ModelForm):
    permissions = forms.ModelMultipleChoiceField(
        queryset=PermissionCode.objects.all(), to_field_name="code", required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Role
        fields = ["name", "description", "permissions"]


@admin.register(Role, site=tenant_console)
class RoleAdmin(ConsoleModelAdmin):
    permission_codes: ClassVar[dict[str, str | None]] = {
        "view": Perm.ROLES_VIEW,
        "add": Perm.ROLES_CREATE,
        "change": Perm.ROLES_EDIT,
        "delete": Perm.ROLES_DELETE,
    }
    form = RoleForm
    list_display = ["name", "is_system", "codes", "description"]
    list_filter = ["is_system"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return role_list()

    @admin.display(description="permissions")
    def codes(self, role: Role) -> str:
        return ", ".join(sorted(p.code for p in role.permissions.all()))

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ["name"] if obj is not None and obj.is_system else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.is_system)

    def save_model(self, request: HttpRequest, obj: Role, form: Any, change: bool) -> None:
        data = form.cleaned_data
        codes = [permission.code for permission in data["permissions"]]
        if not change:
            obj.pk = role_create(
                name=data["name"], description=data["description"], permissions=codes, actor=console_actor(request)
            ).pk
            return
        changes: dict[str, Any] = {name: data[name] for name in ("name", "description") if name in form.changed_data}
        if "permissions" in form.changed_data:
            changes["permissions"] = codes
        role_update(role=obj, actor=console_actor(request), tenant=request.tenant, **changes)  # type: ignore[attr-defined]

    def delete_model(self, request: HttpRequest, obj: Role) -> None:
        role_delete(role=obj, actor=console_actor(request))


@admin.register(PermissionCode, site=tenant_console)
class PermissionCodeAdmin(ConsoleModelAdmin):
    permission_codes: ClassVar[dict[str, str | None]] = {
        "view": Perm.PERMISSIONS_VIEW,
        "add": Perm.PERMISSIONS_CREATE,
        "change": None,  # a code is never renamed: add another and delete this one
        "delete": Perm.PERMISSIONS_DELETE,
    }
    list_display = ["code", "description", "is_builtin", "created_at"]
    list_filter = ["is_builtin"]
    search_fields = ["code", "description"]
    fields = ["code", "description"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_delete_permission(request, obj) and not (obj is not None and obj.is_builtin)

    def save_model(self, request: HttpRequest, obj: PermissionCode, form: Any, change: bool) -> None:
        data = form.cleaned_data
        obj.pk = permission_create(code=data["code"], description=data["description"], actor=console_actor(request)).pk

    def delete_model(self, request: HttpRequest, obj: PermissionCode) -> None:
        permission_delete(permission=obj, actor=console_actor(request))


@admin.register(Branch, site=tenant_console)
class BranchAdmin(ConsoleModelAdmin):
    permission_codes: ClassVar[dict[str, str | None]] = {
        "view": Perm.BRANCHES_VIEW,
        "add": Perm.BRANCHES_CREATE,
        "change": Perm.BRANCHES_EDIT,
        "delete": Perm.BRANCHES_DELETE,
    }
    list_display = ["external_id", "name", "restaurant_id", "created_at"]
    search_fields = ["external_id", "name", "restaurant_id"]
    fields = ["external_id", "name", "restaurant_id"]

    def save_model(self, request: HttpRequest, obj: Branch, form: Any, change: bool) -> None:
        data = {name: form.cleaned_data[name] for name in ("external_id", "name", "restaurant_id")}
        if change:
            changes = {name: value for name, value in data.items() if name in form.changed_data}
            branch_update(branch=obj, actor=console_actor(request), **changes)
        else:
            obj.pk = branch_create(tenant=request.tenant, actor=console_actor(request), **data).pk  # type: ignore[attr-defined]

    def delete_model(self, request: HttpRequest, obj: Branch) -> None:
        branch_delete(branch=obj, actor=console_actor(request))


class ServiceClientForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in SERVICE_CLIENT_SCOPES], widget=forms.CheckboxSelectMultiple
    )
    branches = forms.ModelMultipleChoiceField(
        queryset=Branch.objects.all(),
        to_field_name="external_id",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None: the client may ask about every branch.",
    )

    class Meta:
        model = ServiceClient
        fields = ["name", "scopes", "branches"]


@admin.register(ServiceClient, site=tenant_console)
class ServiceClientAdmin(ConsoleModelAdmin):
    permission_codes: ClassVar[dict[str, str | None]] = {
        "view": Perm.SERVICE_CLIENTS_VIEW,
        "add": Perm.SERVICE_CLIENTS_CREATE,
        "change": None,  # revoke and create another
        "delete": None,  # revoking keeps the row: the action below
    }
    form = ServiceClientForm
    list_display = [
        "name",
        "client_id",
        "scope_list",
        "restricted_to_branches",
        "is_active",
        "created_at",
        "revoked_at",
    ]
    list_filter = ["is_active"]
    search_fields = ["name", "=client_id"]
    actions = ["revoke_clients"]
    readonly_fields = ["client_id", "is_active", "revoked_at", "created_at", "created_by"]

    def get_queryset(self, request: HttpRequest) -> Any:
        return service_client_list(include_revoked=True)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["name", "scopes", "branches"]
        # Never the secret's hash.
        return ["name", "client_id", "scopes", "restricted_to_branches", "branches", *self.readonly_fields[1:]]

    @admin.display(description="scopes")
    def scope_list(self, client: ServiceClient) -> str:
        return " ".join(client.scopes)

    def save_model(self, request: HttpRequest, obj: ServiceClient, form: Any, change: bool) -> None:
        data = form.cleaned_data
        branches = [branch.external_id for branch in data["branches"]] or None
        created = service_client_create(
            name=data["name"], scopes=list(data["scopes"]), branches=branches, actor=console_actor(request)
        )
        obj.pk = created.client.pk
        obj.client_id = created.client.client_id
        setattr(request, _CREATED_SECRET_ATTR, created.client_secret)

    def response_add(
        self, request: HttpRequest, obj: ServiceClient, post_url_continue: str | None = None
    ) -> HttpResponse:
        secret = getattr(request, _CREATED_SECRET_ATTR, None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return shown_once_response(
            request,
            site=self.admin_site,
            title="Service client created",
            intro=f"Give {obj.name} its id and secret; it authenticates with them at /api/v1/oauth/token/.",
            facts=[("Client id", obj.client_id)],
            label="Client secret",
            secret=secret,
            next_url=reverse("admin:rbac_serviceclient_changelist", current_app=self.admin_site.name),
        )

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return self.site_allows(request, Perm.SERVICE_CLIENTS_DELETE)

    @admin.action(description="Revoke the selected service clients", permissions=["revoke"])
    def revoke_clients(self, request: HttpRequest, queryset: Any) -> None:
        self.apply_service(
            request,
            queryset,
            lambda client: service_client_revoke(client=client, actor=console_actor(request)),
            done="Revoked",
        )
