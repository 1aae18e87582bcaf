"""A tenant's security policy: its shape, defaults, bounds and per-section merging.

The shape is the contract in API.md ("Tenant policy"). A tenant stores the whole validated
policy; reading it merges the defaults underneath, so keys added in later releases get their
default without a data migration.
"""

import ipaddress
import re
from typing import Any

from rest_framework import serializers

# The suspicious-activity rules (identity.services.security), by the name their
# `security.flagged` events carry.
FAILED_LOGINS_ACROSS_ACCOUNTS = "failed_logins_across_accounts"
FAILED_LOGIN_BURST = "failed_login_burst"
REFRESH_TOKEN_REUSE = "refresh_token_reuse"
NEW_DEVICE_AFTER_LOCKOUT = "new_device_after_lockout"
SECURITY_RULES = (FAILED_LOGINS_ACROSS_ACCOUNTS, FAILED_LOGIN_BURST, REFRESH_TOKEN_REUSE, NEW_DEVICE_AFTER_LOCKOUT)

DEFAULT_POLICY: dict[str, Any] = {
    "password": {
        "min_length": 8,
        "require_upper": True,
        "require_lower": True,
        "require_digit": True,
        "require_special": True,
    },
    "lockout": {"threshold": 5, "window_minutes": 15, "duration_minutes": 15},
    "tokens": {
        "access_minutes": 30,
        "refresh_days": 7,
        "refresh_absolute_days": 30,
        "algorithm": "RS256",
        "audiences": [],
    },
    "sessions": {"max_sessions_per_user": 1, "on_limit": "terminate_oldest"},
    "rate_limits": {
        "login": "5/min",
        "registration": "10/hour",
        "password_reset": "3/min",
        "password_reset_confirm": "10/hour",
        "refresh": "2/min",
    },
    "registration": {"open": True, "default_role": "Employee", "assignable_roles": []},
    "roles": {"system_roles_editable": False},
    "extra_claims": ["employee_id", "branch_id", "restaurant_id"],
    "cors_origins": [],
    # Suspicious-activity rules (identity.services.security) and the IP block they lead to.
    "security": {
        "block_minutes": 60,
        "accounts_threshold": 10,
        "accounts_window_minutes": 10,
        "burst_threshold": 20,
        "burst_seconds": 10,
        "block_on": [FAILED_LOGINS_ACROSS_ACCOUNTS, FAILED_LOGIN_BURST],
        "exempt_networks": [],
    },
}

SIGNING_ALGORITHMS = ("RS256", "ES256", "EdDSA")
ON_LIMIT_CHOICES = ("terminate_oldest", "deny_new")
# Profile fields a tenant may put into access tokens. Never secrets, never permission lists.
CLAIMABLE_PROFILE_FIELDS = ("employee_id", "branch_id", "restaurant_id", "phone", "full_name")
RATE_PERIODS = {"sec": 1, "min": 60, "hour": 3600, "day": 86400}
_RATE_RE = re.compile(r"^([1-9][0-9]{0,6})/(sec|min|hour|day)$")
_ORIGIN_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")


def parse_rate(rate: str) -> tuple[int, int]:
    """`"5/min"` -> (5 requests, 60 seconds)."""
    match = _RATE_RE.fullmatch(rate)
    if not match:
        raise ValueError(f"Invalid rate {rate!r}")
    return int(match.group(1)), RATE_PERIODS[match.group(2)]


class StrictSerializer(serializers.Serializer):
    """Refuses keys it does not know: a misspelt policy key must not be silently ignored."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["Unknown setting."] for key in unknown})
        return super().to_internal_value(data)


class PasswordPolicySerializer(StrictSerializer):
    min_length = serializers.IntegerField(min_value=8, max_value=128)
    require_upper = serializers.BooleanField()
    require_lower = serializers.BooleanField()
    require_digit = serializers.BooleanField()
    require_special = serializers.BooleanField()


class LockoutPolicySerializer(StrictSerializer):
    threshold = serializers.IntegerField(min_value=1, max_value=100)
    window_minutes = serializers.IntegerField(min_value=1, max_value=1440)
    duration_minutes = serializers.IntegerField(min_value=1, max_value=1440)


class TokenPolicySerializer(StrictSerializer):
    access_minutes = serializers.IntegerField(min_value=1, max_value=1440)
    refresh_days = serializers.IntegerField(min_value=1, max_value=365)
    refresh_absolute_days = serializers.IntegerField(min_value=1, max_value=365)
    algorithm = serializers.ChoiceField(choices=SIGNING_ALGORITHMS)
    audiences = serializers.ListField(
        child=serializers.CharField(min_length=1, max_length=200), max_length=10, allow_empty=True
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["refresh_absolute_days"] < attrs["refresh_days"]:
            raise serializers.ValidationError(
                {"refresh_absolute_days": ["Must be at least refresh_days: a session cannot outlive its limit."]}
            )
        return attrs


class SessionPolicySerializer(StrictSerializer):
    max_sessions_per_user = serializers.IntegerField(min_value=1)
    on_limit = serializers.ChoiceField(choices=ON_LIMIT_CHOICES)

    def validate_max_sessions_per_user(self, value: int) -> int:
        max_devices = self.context.get("max_devices_per_user")
        if max_devices is not None and value > max_devices:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {max_devices}, the plan's max_devices_per_user."
            )
        return value


class RateField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not _RATE_RE.fullmatch(value):
            raise serializers.ValidationError('Use "N/sec", "N/min", "N/hour" or "N/day", with N at least 1.')
        return value


class RateLimitPolicySerializer(StrictSerializer):
    login = RateField()
    registration = RateField()
    password_reset = RateField()
    password_reset_confirm = RateField()
    refresh = RateField()


class RegistrationPolicySerializer(StrictSerializer):
    open = serializers.BooleanField()
    default_role = serializers.CharField(min_length=1, max_length=100)
    assignable_roles = serializers.ListField(child=serializers.CharField(max_length=100), max_length=50)


class RolesPolicySerializer(StrictSerializer):
    system_roles_editable = serializers.BooleanField()


class OriginField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not _ORIGIN_RE.fullmatch(value):
            raise serializers.ValidationError("Use an origin such as https://pos.example.com (no path).")
        return value


class NetworkField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise serializers.ValidationError("Use an address or a network such as 203.0.113.0/24.") from exc


class SecurityPolicySerializer(StrictSerializer):
    block_minutes = serializers.IntegerField(min_value=1, max_value=10080)
    accounts_threshold = serializers.IntegerField(min_value=2, max_value=1000)
    accounts_window_minutes = serializers.IntegerField(min_value=1, max_value=1440)
    burst_threshold = serializers.IntegerField(min_value=2, max_value=1000)
    burst_seconds = serializers.IntegerField(min_value=1, max_value=3600)
    block_on = serializers.ListField(
        child=serializers.ChoiceField(choices=SECURITY_RULES), max_length=len(SECURITY_RULES)
    )
    exempt_networks = serializers.ListField(child=NetworkField(max_length=64), max_length=100)

    def validate_block_on(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("List each rule once.")
        return value


class PolicySerializer(StrictSerializer):
    password = PasswordPolicySerializer()
    lockout = LockoutPolicySerializer()
    tokens = TokenPolicySerializer()
    sessions = SessionPolicySerializer()
    rate_limits = RateLimitPolicySerializer()
    registration = RegistrationPolicySerializer()
    roles = RolesPolicySerializer()
    extra_claims = serializers.ListField(
        child=serializers.ChoiceField(choices=CLAIMABLE_PROFILE_FIELDS), max_length=len(CLAIMABLE_PROFILE_FIELDS)
    )
    cors_origins = serializers.ListField(child=OriginField(), max_length=50)
    security = SecurityPolicySerializer()

    def validate_extra_claims(self, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise serializers.ValidationError("List each claim once.")
        return value


def merge_policy(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Merge `changes` into `base` per section: a section given as an object updates only
    the keys it names; a list or scalar section is replaced. Neither argument is changed."""
    merged = json_copy(base)
    for section, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(section), dict):
            merged[section].update(json_copy(value))
        else:
            merged[section] = json_copy(value)
    return merged


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): what copy.deepcopy does for it, at a
    fraction of the cost (no memo of visited objects; JSON has no cycles)."""
    if isinstance(value, dict):
        return {key: json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_copy(item) for item in value]
    return value


def merged_with_defaults(stored: dict[str, Any] | None) -> dict[str, Any]:
    return merge_policy(DEFAULT_POLICY, stored or {})


def policy_validate(
    changes: Any, *, current: dict[str, Any] | None = None, max_devices_per_user: int | None = None
) -> dict[str, Any]:
    """Return the complete policy after applying `changes` to `current` (or the defaults).

    Raises serializers.ValidationError with field paths relative to the policy.
    """
    if changes is None:
        changes = {}
    if not isinstance(changes, dict):
        raise serializers.ValidationError(["Must be an object."])
    unknown = sorted(set(changes) - set(DEFAULT_POLICY))
    if unknown:
        raise serializers.ValidationError({key: ["Unknown setting."] for key in unknown})
    candidate = merge_policy(merged_with_defaults(current), changes)
    serializer = PolicySerializer(data=candidate, context={"max_devices_per_user": max_devices_per_user})
    serializer.is_valid(raise_exception=True)
    return _plain(serializer.validated_data)


def _plain(value: Any) -> Any:
    # validated_data holds OrderedDicts; store plain JSON types.
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
