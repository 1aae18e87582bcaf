"""Reads for tenants and plans."""

from django.db.models import Prefetch, QuerySet

from tenants.models import Domain, Plan, Tenant


def tenant_list() -> QuerySet[Tenant]:
    domains = Domain.objects.order_by("-is_primary", "domain")
    return Tenant.objects.customers().select_related("plan").prefetch_related(Prefetch("domains", queryset=domains))


def tenant_get(*, slug: str) -> Tenant | None:
    return tenant_list().filter(schema_name=slug).first()


def plan_list() -> QuerySet[Plan]:
    return Plan.objects.all()


def plan_get(*, code: str) -> Plan | None:
    return Plan.objects.filter(code=code).first()
