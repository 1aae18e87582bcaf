"""Public schema: plans, tenants and their domains."""

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django_tenants.models import DomainMixin, TenantMixin
from django_tenants.postgresql_backend.base import _check_schema_name
from django_tenants.utils import get_creation_fakes_migrations, schema_exists

from core.tenancy import tenant_connection
from tenants.cloning import schema_clone
from tenants.migration_executor import schemas_with_unapplied
from tenants.policy import json_copy, merged_with_defaults

# Schemas that are tenants rows but not customers: the platform's own and the template that
# new tenants are cloned from.
SYSTEM_SCHEMAS = (settings.PUBLIC_SCHEMA_NAME, settings.TENANT_BASE_SCHEMA)

# Tenant.effective_policy's merges, per tenant id: (a copy of the stored policy it merged, the result).
_merged_policies: dict[Any, tuple[dict[str, Any], dict[str, Any]]] = {}


class Plan(models.Model):  # type: ignore[django-manager-missing]  # Tenant.plan's reverse manager
    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    max_users = models.PositiveIntegerField()
    max_devices_per_user = models.PositiveIntegerField(default=1)
    max_branches = models.PositiveIntegerField()
    audit_retention_days = models.PositiveIntegerField(default=365)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(max_users__gte=1), name="tenants_plan_max_users_min"),
            models.CheckConstraint(condition=Q(max_devices_per_user__gte=1), name="tenants_plan_max_devices_min"),
            models.CheckConstraint(condition=Q(audit_retention_days__gte=1), name="tenants_plan_retention_min"),
        ]

    def __str__(self) -> str:
        return self.code


class TenantQuerySet(models.QuerySet["Tenant"]):
    def customers(self) -> "TenantQuerySet":
        return self.exclude(schema_name__in=SYSTEM_SCHEMAS)


class Tenant(TenantMixin):
    """A customer organisation (a restaurant group, a retailer) with its own schema.

    `schema_name` is the tenant's slug. Suspension (`is_active=False`) and the end of the
    subscription stop logins and every tenant endpoint; the data stays.
    """

    name = models.CharField(max_length=200)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants", null=True, blank=True)
    is_active = models.BooleanField(default=True)
    subscription_ends_at = models.DateTimeField(null=True, blank=True)
    policy = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    auto_create_schema = True
    clone_mode = "DATA"  # the template carries seeded rows (system roles, catalog)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["schema_name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(plan__isnull=False) | Q(schema_name__in=SYSTEM_SCHEMAS),
                name="tenants_tenant_customer_has_plan",
            ),
        ]

    def __str__(self) -> str:
        return self.schema_name

    def create_schema(self, check_if_exists: bool = False, sync_schema: bool = True, verbosity: int = 1) -> Any:
        """django-tenants' schema creation, with the template cloned by tenants.cloning (whose
        time does not grow with the number of tenants) instead of its clone_schema()."""
        base_schema = self.get_base_schema() if get_creation_fakes_migrations() else None
        if not sync_schema or not base_schema or not schema_exists(base_schema):
            return super().create_schema(check_if_exists, sync_schema, verbosity)
        _check_schema_name(self.schema_name)
        if check_if_exists and schema_exists(self.schema_name):
            return False
        schema_clone(source=base_schema, target=self.schema_name)
        # The copied django_migrations rows record the template's migrations, and every
        # migrate_schemas migrates the template. When they name every migration on disk,
        # django-tenants' fake migrate after a clone records nothing, and the rows its
        # post_migrate makes (content types, permissions) came with the copy: it is left out,
        # since its table listings scan every schema's tables (0.07 s of a creation with one
        # tenant, 0.17 s with 300). Otherwise, as django-tenants does, the template's
        # migrations are recorded as applied here.
        if schemas_with_unapplied([self.schema_name]):
            call_command(
                "migrate_schemas",
                tenant=True,
                fake=True,
                schema_name=self.schema_name,
                interactive=False,
                verbosity=verbosity,
            )
            tenant_connection().set_schema_to_public()
        return None

    @property
    def slug(self) -> str:
        return self.schema_name

    @property
    def is_customer(self) -> bool:
        return self.schema_name not in SYSTEM_SCHEMAS

    def is_usable(self, now: Any = None) -> bool:
        """Whether the tenant may log in and be served: active and within its subscription."""
        if not self.is_active:
            return False
        return self.subscription_ends_at is None or self.subscription_ends_at > (now or timezone.now())

    @property
    def effective_policy(self) -> dict[str, Any]:
        """The stored policy over the defaults. A request asks for it several times (token
        lifetimes, claims, rate limits), and every request has an instance of its own (read
        from the cache), so the merge is kept for the process, per tenant, until `policy`
        changes. Read-only: never change the dict it returns (instances share it)."""
        memo = _merged_policies.get(self.pk)
        # Compared with a copy taken at the merge, which sees a change made in place too; an
        # unsaved tenant (pk None) is compared the same way, so it never gets another's merge.
        if memo is None or memo[0] != self.policy:
            memo = _merged_policies[self.pk] = (json_copy(self.policy), merged_with_defaults(self.policy))
        return memo[1]

    def primary_domain_name(self) -> str | None:
        domain = self.get_primary_domain()
        return domain.domain if domain else None


class Domain(DomainMixin):
    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], condition=Q(is_primary=True), name="tenants_domain_one_primary"),
        ]

    def __str__(self) -> str:
        return self.domain
