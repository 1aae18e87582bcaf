"""Tenant schema: the permission catalog, roles, branches, role assignments, and the
branch-scoped grants django-guardian stores."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from guardian.models import UserObjectPermissionBase


class PermissionCode(models.Model):
    """A code roles may hold: built-in (rbac.catalog) or added by the tenant."""

    code = models.CharField(max_length=100, unique=True)
    description = models.CharField(max_length=200, blank=True)
    is_builtin = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.code


class Role(models.Model):
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=200, blank=True)
    is_system = models.BooleanField(default=False)
    permissions = models.ManyToManyField(PermissionCode, related_name="roles", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(Lower("name"), name="rbac_role_name_ci")]

    def __str__(self) -> str:
        return self.name


class Branch(models.Model):
    """A restaurant or shop branch, known to other systems by `external_id`."""

    external_id = models.CharField(max_length=64, unique=True)
    restaurant_id = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]
        verbose_name_plural = "branches"

    def __str__(self) -> str:
        return f"{self.external_id} {self.name}"


class RoleAssignment(models.Model):
    """A user holds a role tenant-wide (branch is null) or at one branch."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="role_assignments")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="assignments")
    branch = models.ForeignKey(Branch, null=True, blank=True, on_delete=models.PROTECT, related_name="assignments")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "role"], condition=Q(branch__isnull=True), name="rbac_assignment_once_tenant_wide"
            ),
            models.UniqueConstraint(
                fields=["user", "role", "branch"],
                condition=Q(branch__isnull=False),
                name="rbac_assignment_once_per_branch",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.role_id} @ {self.branch_id or 'tenant'}"


class BranchUserObjectPermission(UserObjectPermissionBase):
    """django-guardian's direct foreign-key table for permissions users hold on a branch: the
    store of branch-scoped grants (a role assigned at a branch becomes one row per code)."""

    content_object = models.ForeignKey(Branch, on_delete=models.CASCADE)

    class Meta(UserObjectPermissionBase.Meta):
        abstract = False


SCOPE_AUTHZ_CHECK = "authz:check"
SCOPE_INTROSPECT = "oauth:introspect"
SCOPE_REVOKE = "oauth:revoke"
SERVICE_CLIENT_SCOPES = (SCOPE_AUTHZ_CHECK, SCOPE_INTROSPECT, SCOPE_REVOKE)


class ServiceClient(models.Model):
    """Another back end (a branch's POS service, a reporting job) that asks the IdP for service
    tokens with the client-credentials grant and then calls the permission-check API.

    The secret is kept only as a hash (identity.hashers: salted SHA-256, fit for 32 random
    bytes); it is shown once, when the client is created. Revoking keeps the row (for the
    audit trail) and refuses the client's tokens at once (rbac.service_clients).
    """

    client_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=100)
    secret_hash = models.CharField(max_length=256)
    scopes = ArrayField(models.CharField(max_length=32), default=list)
    # With restricted_to_branches the client may only ask about `branches`; the flag (not an
    # empty set) says so, so that deleting a branch can never widen a client to all of them.
    restricted_to_branches = models.BooleanField(default=False)
    branches = models.ManyToManyField(Branch, blank=True, related_name="service_clients")
    is_active = models.BooleanField(default=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(scopes__contained_by=list(SERVICE_CLIENT_SCOPES)),
                name="rbac_serviceclient_known_scopes",
            ),
            models.CheckConstraint(
                condition=Q(is_active=True, revoked_at__isnull=True) | Q(is_active=False, revoked_at__isnull=False),
                name="rbac_serviceclient_revoked_at_iff_inactive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"
