from typing import Any

from rest_framework import serializers

from tenants.models import Plan, Tenant


class PlanSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = ["code", "name", "max_users", "max_devices_per_user", "max_branches", "audit_retention_days"]
        extra_kwargs = {
            "max_users": {"min_value": 1, "max_value": 10_000_000},
            "max_devices_per_user": {"min_value": 1, "max_value": 100},
            "max_branches": {"min_value": 0, "max_value": 1_000_000},
            "audit_retention_days": {"min_value": 1, "max_value": 3650},
        }


class PlanUpdateSerializer(PlanSerializer):
    class Meta(PlanSerializer.Meta):
        read_only_fields = ["code"]


class PlanCodeField(serializers.SlugRelatedField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(slug_field="code", queryset=Plan.objects.all(), **kwargs)


class TenantSerializer(serializers.ModelSerializer):
    """A tenant as the platform API shows it."""

    slug = serializers.CharField(source="schema_name")
    plan = serializers.CharField(source="plan.code")
    domains = serializers.SerializerMethodField()
    policy = serializers.JSONField(source="effective_policy")

    class Meta:
        model = Tenant
        fields = ["slug", "name", "domains", "plan", "is_active", "subscription_ends_at", "policy", "created_at"]

    def get_domains(self, tenant: Tenant) -> list[str]:
        return [domain.domain for domain in sorted(tenant.domains.all(), key=lambda d: (not d.is_primary, d.domain))]


class TenantCreateSerializer(serializers.Serializer):
    slug = serializers.CharField(max_length=40, trim_whitespace=False)
    name = serializers.CharField(max_length=200)
    plan = PlanCodeField()
    domain = serializers.CharField(max_length=253, required=False)
    admin_email = serializers.EmailField()
    admin_password = serializers.CharField(required=False, write_only=True, max_length=256, trim_whitespace=False)
    admin_full_name = serializers.CharField(required=False, max_length=200, default="")
    policy = serializers.JSONField(required=False)
    subscription_ends_at = serializers.DateTimeField(required=False, allow_null=True)


class TenantUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    plan = PlanCodeField(required=False)
    is_active = serializers.BooleanField(required=False)
    subscription_ends_at = serializers.DateTimeField(required=False, allow_null=True)
    policy = serializers.JSONField(required=False)
