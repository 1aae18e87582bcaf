"""Tenant schema: the permission catalog, roles, branches, role assignments, and the
branch-scoped grants django-guardian stores."""

from django.conf import settings
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
