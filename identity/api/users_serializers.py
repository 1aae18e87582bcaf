"""Shapes of the users API (/api/v1/users/) and of the caller's own profile and activity.

Input serializers only check the form of what was sent; the services normalise, check
uniqueness and write.
"""

from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers

from core.serializers import StrictInputSerializer
from identity.models import LoginAttempt, User, kra_pin_validator
from identity.selectors import user_role_names
from identity.services.users import RoleGrant
from rbac.api.management_serializers import RoleAssignmentCreateSerializer

phone_validator = RegexValidator(r"^\+?[0-9][0-9 ().-]{2,30}$", "Enter a phone number: digits, spaces, +, -, ( ).")


class KraPinField(serializers.CharField):
    """A Kenyan KRA PIN: letter, nine digits, letter; case and surrounding spaces forgiven."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=11, allow_blank=True, validators=[kra_pin_validator], **kwargs)

    def to_internal_value(self, data: Any) -> str:
        return super().to_internal_value(data).upper()


class PhoneField(serializers.CharField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_length=32, allow_blank=True, validators=[phone_validator], **kwargs)


# --- users (admin) ----------------------------------------------------------------------------


_PERSON_FIELDS = [
    "id",
    "email",
    "full_name",
    "phone",
    "address",
    "picture",
    "employee_id",
    "kra_pin",
    "branch_id",
    "restaurant_id",
    "roles",
    "is_tenant_admin",
    "must_change_password",
    "email_verified_at",
    "created_at",
]


class _PersonSerializer(serializers.ModelSerializer):
    roles = serializers.SerializerMethodField()
    picture = serializers.ImageField(read_only=True, allow_null=True)

    def get_roles(self, user: User) -> list[str]:
        return user_role_names(user)


class UserSerializer(_PersonSerializer):
    """A user as a tenant admin sees it. Never carries the password or its hash."""

    class Meta:
        model = User
        fields = [*_PERSON_FIELDS, "is_active", "deactivated_at", "last_login", "updated_at"]
        read_only_fields = fields


class _UserFieldsSerializer(StrictInputSerializer):
    """The profile and employee fields an admin sets on a user."""

    email = serializers.EmailField(max_length=254)
    full_name = serializers.CharField(max_length=200)
    phone = PhoneField(required=False)
    address = serializers.CharField(max_length=500, required=False, allow_blank=True)
    employee_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    kra_pin = KraPinField(required=False)
    branch_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    restaurant_id = serializers.CharField(max_length=64, required=False, allow_blank=True)


# One role for a new employee has the shape of a role assignment (users/<id>/roles/).
RoleGrantSerializer = RoleAssignmentCreateSerializer


class UserCreateSerializer(_UserFieldsSerializer):
    """An employee to create. No password: one is generated and emailed.

    `roles`: assignments made with the creation, each `{"role": <role id>, "branch":
    <branch external_id or null>}`, under the rules of role assignment (the caller needs
    `roles.assign` where each applies and every permission of the role there; a refusal
    creates nothing). Absent or empty: the tenant's default role (policy
    `registration.default_role`, Employee unless changed)."""

    roles = serializers.ListField(child=RoleGrantSerializer(), required=False, max_length=50)

    def validate_roles(self, value: list[dict[str, Any]]) -> list[RoleGrant]:
        return [RoleGrant(role=grant["role"], branch=grant["branch"] or None) for grant in value]


class UserUpdateSerializer(_UserFieldsSerializer):
    """The same fields as a creation, each optional, and no `roles`. Access flags are not
    among them: deactivation, passwords and role assignments each have their own endpoint."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False


class UserListQuerySerializer(serializers.Serializer):
    """Filters of the user list. Unknown query parameters are ignored, as caches and
    tools add their own."""

    is_active = serializers.BooleanField(required=False, allow_null=True, default=None)
    # Blank lists the users without a branch.
    branch_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    search = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class UserSetPasswordSerializer(StrictInputSerializer):
    password = serializers.CharField(
        max_length=256, trim_whitespace=False, write_only=True, style={"input_type": "password"}
    )


class UserSetPasswordResultSerializer(serializers.Serializer):
    must_change_password = serializers.BooleanField()
    sessions_ended = serializers.IntegerField()


class UserUnlockResultSerializer(serializers.Serializer):
    was_locked = serializers.BooleanField()


# --- the caller's own profile and activity -------------------------------------------------


class ProfileSerializer(_PersonSerializer):
    """The caller's own profile. Identity, access and employee fields are shown, never
    changed here: email, roles and employee records are the tenant admin's to change."""

    class Meta:
        model = User
        fields = _PERSON_FIELDS
        read_only_fields = fields


class ProfileUpdateSerializer(StrictInputSerializer):
    """What a user may change about themselves. The read-only fields of the profile are
    accepted and ignored, so a client can send back what it read."""

    ignored_fields = frozenset(ProfileSerializer.Meta.fields)

    full_name = serializers.CharField(max_length=200, required=False)
    phone = PhoneField(required=False)
    address = serializers.CharField(max_length=500, required=False, allow_blank=True)
    # The bytes are judged by identity.pictures (413 / 415); null or an empty form field
    # removes the picture.
    picture = serializers.FileField(required=False, allow_null=True, allow_empty_file=True, use_url=False)


class LoginDeviceSerializer(serializers.Serializer):
    id = serializers.CharField(source="device_id")
    name = serializers.CharField(source="device_name")
    type = serializers.CharField(source="device_type")


class LoginActivitySerializer(serializers.ModelSerializer):
    """One of the caller's login attempts. `reason` says why a failed one failed."""

    device = LoginDeviceSerializer(source="*")

    class Meta:
        model = LoginAttempt
        fields = ["timestamp", "ip", "success", "reason", "device", "user_agent"]
        read_only_fields = fields
