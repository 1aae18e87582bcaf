"""Shapes of the RBAC management API: permission codes, roles, branches, role assignments.

Input serializers check only the form of what was sent (a code's shape, lengths, types) and
refuse keys they do not know; the services look things up, apply the rules and write.
"""

from typing import Any

from rest_framework import serializers

from core.serializers import StrictInputSerializer
from rbac.catalog import BUILTIN_PATTERNS, CODE_RE
from rbac.models import Branch, PermissionCode, Role, RoleAssignment

MALFORMED_CODE = "Use resource.action in lower case (e.g. orders.refund), or a built-in pattern: " + ", ".join(
    BUILTIN_PATTERNS
)


class RoleCodeField(serializers.CharField):
    """A code a role may hold: `resource.action`, or one of the built-in patterns."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=100, trim_whitespace=False, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value not in BUILTIN_PATTERNS and not CODE_RE.fullmatch(value):
            raise serializers.ValidationError(MALFORMED_CODE)
        return value


# --- permission codes --------------------------------------------------------------------------


class PermissionCodeSerializer(serializers.ModelSerializer):
    class Meta:
        model = PermissionCode
        fields = ["code", "description", "is_builtin", "created_at"]
        read_only_fields = fields


class PermissionCodeCreateSerializer(StrictInputSerializer):
    # Not trimmed and not checked here: rbac.services.permission_create judges the shape
    # (400 with errors.code), so " orders.x" is refused rather than quietly repaired.
    code = serializers.CharField(max_length=100, trim_whitespace=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


# --- roles -----------------------------------------------------------------------------------


class RoleSerializer(serializers.ModelSerializer):
    permissions: serializers.SlugRelatedField[PermissionCode] = serializers.SlugRelatedField(
        many=True, read_only=True, slug_field="code"
    )

    class Meta:
        model = Role
        fields = ["id", "name", "description", "permissions", "is_system", "created_at", "updated_at"]
        read_only_fields = fields


class RoleCreateSerializer(StrictInputSerializer):
    name = serializers.CharField(max_length=100)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    permissions = serializers.ListField(child=RoleCodeField(), max_length=500, required=False, default=list)


class RoleUpdateSerializer(StrictInputSerializer):
    """Each field optional; `permissions`, when given, replaces the role's codes."""

    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    permissions = serializers.ListField(child=RoleCodeField(), max_length=500, required=False)


# --- branches --------------------------------------------------------------------------------


class BranchSerializer(serializers.ModelSerializer):
    class Meta:
        model = Branch
        fields = ["id", "external_id", "restaurant_id", "name", "created_at", "updated_at"]
        read_only_fields = fields


class BranchCreateSerializer(StrictInputSerializer):
    external_id = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200)
    restaurant_id = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class BranchUpdateSerializer(StrictInputSerializer):
    external_id = serializers.CharField(max_length=64, required=False)
    name = serializers.CharField(max_length=200, required=False)
    restaurant_id = serializers.CharField(max_length=64, required=False, allow_blank=True)


# --- role assignments --------------------------------------------------------------------------


class AssignedRoleSerializer(serializers.ModelSerializer):
    class Meta:
        model = Role
        fields = ["id", "name"]
        read_only_fields = fields


class RoleAssignmentSerializer(serializers.ModelSerializer):
    """A role the user holds: tenant-wide (`branch` null) or at the branch with that external id."""

    role = AssignedRoleSerializer(read_only=True)
    branch: serializers.SlugRelatedField[Branch] = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True, allow_null=True
    )

    class Meta:
        model = RoleAssignment
        fields = ["id", "role", "branch", "created_at"]
        read_only_fields = fields


class RoleAssignmentCreateSerializer(StrictInputSerializer):
    role = serializers.IntegerField(min_value=1, max_value=2**63 - 1, help_text="The role's id.")
    branch = serializers.CharField(
        max_length=64,
        required=False,
        allow_null=True,
        default=None,
        help_text="The branch's external_id; absent or null assigns the role tenant-wide.",
    )
