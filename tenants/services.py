"""Writes for tenants and plans: creation (with the schema and first admin), updates,
suspension. Each is one transaction: a failure leaves no row and no schema behind."""

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django_tenants.utils import schema_context, tenant_context
from rest_framework import serializers

from core.errors import invalid_request
from core.problems import flatten_errors
from core.types import UNSET, Unset
from identity.keys import signing_key_rotate
from identity.models import User
from identity.passwords import password_validate
from identity.services.audit import audit_record
from identity.services.users import tenant_admin_create
from notifications.kinds import Kind
from notifications.services import email_kind_send
from tenants.models import Domain, Plan, Tenant
from tenants.policy import policy_validate

SLUG_RE = re.compile(r"^[a-z][a-z0-9]{1,39}$")
RESERVED_SLUGS = {"public", "information_schema", "www", "api", "admin", "static", "media", "health"}
# RFC 1123 host name: labels of letters, digits and inner hyphens.
_HOST_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
DOMAIN_RE = re.compile(rf"^{_HOST_LABEL}(\.{_HOST_LABEL})+$")


@dataclass(frozen=True)
class TenantCreated:
    tenant: Tenant
    admin: User


def default_domain(slug: str) -> str:
    return f"{slug}.{settings.IDP_BASE_DOMAIN}"


def tenant_origin(tenant: Tenant) -> str:
    """`<scheme>://<primary domain>[:port]`: the base of the tenant's links and issuer."""
    host = tenant.primary_domain_name() or default_domain(tenant.schema_name)
    port = settings.IDP_PUBLIC_PORT
    default_port = {"http": 80, "https": 443}.get(settings.IDP_PUBLIC_SCHEME)
    suffix = f":{port}" if port and port != default_port else ""
    return f"{settings.IDP_PUBLIC_SCHEME}://{host}{suffix}"


def _slug_errors(slug: str) -> list[str]:
    if slug in RESERVED_SLUGS or slug.startswith("pg_") or slug == settings.TENANT_BASE_SCHEMA:
        return ["This name is reserved."]
    if not SLUG_RE.fullmatch(slug):
        return ["Use 2-40 lower-case letters and digits, starting with a letter."]
    if Tenant.objects.filter(schema_name=slug).exists():
        return ["A tenant with this slug already exists."]
    return []


def _domain_errors(domain: str) -> list[str]:
    if len(domain) > 253 or not DOMAIN_RE.fullmatch(domain):
        return ["Enter a valid host name such as acme.example.com."]
    if domain == settings.IDP_BASE_DOMAIN:
        return ["This is the platform's own host."]
    if Domain.objects.filter(domain=domain).exists():
        return ["This domain is already in use."]
    return []


def _validated_policy(changes: Any, *, current: dict | None, plan: Plan) -> dict[str, Any]:
    try:
        return policy_validate(changes, current=current, max_devices_per_user=plan.max_devices_per_user)
    except serializers.ValidationError as exc:
        raise invalid_request(flatten_errors(exc.detail, "policy")) from exc


def _lock_tenant_registry() -> None:
    # Serialises tenant creation: the slug and domain checks below then cannot race with a
    # concurrent creation of the same name. Creations are rare; a global lock costs nothing.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('tenants.tenant_create'))")


@transaction.atomic
def tenant_create(
    *,
    slug: str,
    name: str,
    plan: Plan,
    admin_email: str,
    admin_password: str | None = None,
    admin_full_name: str = "",
    domain: str | None = None,
    policy: dict[str, Any] | None = None,
    subscription_ends_at: datetime | None = None,
    actor: User | None = None,
) -> TenantCreated:
    """Create a tenant: its row, its schema (cloned from the template), its primary domain
    and its first admin. Everything is validated before the schema is made; any failure
    rolls back all of it, schema included (PostgreSQL DDL is transactional)."""
    # The slug is a schema name: refused, never rewritten, when it is not already valid.
    # A tenant always answers on <slug>.<IDP_BASE_DOMAIN>; a custom domain is added as the
    # primary one (the issuer and the base of emailed links).
    custom_domain = domain.strip().lower() if domain else None
    if custom_domain == default_domain(slug):
        custom_domain = None
    _lock_tenant_registry()

    errors: dict[str, list[str]] = {}
    if slug_errors := _slug_errors(slug):
        errors["slug"] = slug_errors
    if custom_domain and (domain_errors := _domain_errors(custom_domain)):
        errors["domain"] = domain_errors
    elif not slug_errors and (domain_errors := _domain_errors(default_domain(slug))):
        errors["slug"] = domain_errors
    if errors:
        raise invalid_request(errors)
    full_policy = _validated_policy(policy, current=None, plan=plan)
    if admin_password is not None:
        # Checked before the schema is made, so a weak password costs no clone.
        password_validate(admin_password, rules=full_policy["password"], field="admin_password")

    tenant = Tenant(
        schema_name=slug,
        name=name,
        plan=plan,
        policy=full_policy,
        subscription_ends_at=subscription_ends_at,
    )
    tenant.save()  # creates the schema by cloning TENANT_BASE_SCHEMA
    Domain.objects.create(domain=default_domain(slug), tenant=tenant, is_primary=custom_domain is None)
    if custom_domain:
        Domain.objects.create(domain=custom_domain, tenant=tenant, is_primary=True)

    with tenant_context(tenant):
        admin, generated_password = tenant_admin_create(
            email=admin_email,
            password=admin_password,
            full_name=admin_full_name,
            password_rules=full_policy["password"],
        )
        audit_record(type="tenant.created", target=tenant, target_id=tenant.schema_name, data={"plan": plan.code})
        signing_key_rotate(algorithm=full_policy["tokens"]["algorithm"], reason="first_key")
    audit_record(
        type="tenant.created", actor=actor, target=tenant, target_id=tenant.schema_name, data={"plan": plan.code}
    )
    if generated_password is not None:
        _send_admin_welcome(tenant=tenant, admin=admin, password=generated_password)
    return TenantCreated(tenant=tenant, admin=admin)


def _send_admin_welcome(*, tenant: Tenant, admin: User, password: str) -> None:
    # Queued in the public schema (the caller's), where the platform's email waits.
    email_kind_send(
        kind=Kind.TENANT_ADMIN_WELCOME,
        to=admin.email,
        tenant=tenant,
        context={"admin_url": f"{tenant_origin(tenant)}/admin/", "temporary_password": password},
    )


@transaction.atomic
def tenant_update(
    *,
    tenant: Tenant,
    actor: User | None = None,
    name: str | None = None,
    plan: Plan | None = None,
    is_active: bool | None = None,
    subscription_ends_at: datetime | Unset | None = UNSET,
    policy: dict[str, Any] | None = None,
) -> Tenant:
    """Change a tenant's name, plan, state, subscription end or policy (merged per section).

    The policy is re-validated against the (new) plan, so a plan with fewer devices per user
    cannot leave a session limit above its cap.
    """
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    before = _tenant_snapshot(tenant)
    new_plan = plan or tenant.plan
    if new_plan is None:
        raise ValueError(f"{tenant} is a system schema, not a customer tenant")
    if policy is not None or plan is not None:
        tenant.policy = _validated_policy(policy or {}, current=tenant.policy, plan=new_plan)
    if name is not None:
        tenant.name = name
    if plan is not None:
        tenant.plan = plan
    if is_active is not None:
        tenant.is_active = is_active
    if not isinstance(subscription_ends_at, Unset):
        tenant.subscription_ends_at = subscription_ends_at
    tenant.save()
    after = _tenant_snapshot(tenant)
    changed = {key: {"before": before[key], "after": after[key]} for key in after if before[key] != after[key]}
    if changed:
        audit_record(type="tenant.updated", actor=actor, target=tenant, target_id=tenant.schema_name, data=changed)
        with schema_context(tenant.schema_name):
            # The tenant's own audit log shows what the platform changed (actor is a
            # platform operator, not a user of this schema: kept in data, not actor_id).
            audit_record(
                type="tenant.updated",
                target=tenant,
                target_id=tenant.schema_name,
                data={"changes": changed, "platform_actor": str(actor.pk) if actor else None},
            )
    return tenant


def tenant_suspend(*, tenant: Tenant, actor: User | None = None) -> Tenant:
    """Stop a tenant: no logins, no refreshes, every tenant endpoint answers tenant_inactive.
    Its data stays; `tenant_update(is_active=True)` lifts it."""
    return tenant_update(tenant=tenant, actor=actor, is_active=False)


def _tenant_snapshot(tenant: Tenant) -> dict[str, Any]:
    return {
        "name": tenant.name,
        "plan": tenant.plan.code if tenant.plan else None,
        "is_active": tenant.is_active,
        "subscription_ends_at": tenant.subscription_ends_at.isoformat() if tenant.subscription_ends_at else None,
        "policy": tenant.policy,
    }


@transaction.atomic
def plan_create(*, actor: User | None = None, **fields: Any) -> Plan:
    plan = Plan.objects.create(**fields)
    audit_record(type="plan.created", actor=actor, target=plan, target_id=plan.code, data=_plan_snapshot(plan))
    return plan


@transaction.atomic
def plan_update(*, plan: Plan, actor: User | None = None, **fields: Any) -> Plan:
    """Change a plan's caps. Lowering a cap never removes anything: existing users and
    branches stay, new ones are refused; session limits take the lower of policy and plan."""
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    before = _plan_snapshot(plan)
    for key, value in fields.items():
        setattr(plan, key, value)
    plan.save()
    after = _plan_snapshot(plan)
    changed = {key: {"before": before[key], "after": after[key]} for key in after if before[key] != after[key]}
    if changed:
        audit_record(type="plan.updated", actor=actor, target=plan, target_id=plan.code, data=changed)
    return plan


def _plan_snapshot(plan: Plan) -> dict[str, Any]:
    fields = ("name", "max_users", "max_devices_per_user", "max_branches", "audit_retention_days")
    return {field: getattr(plan, field) for field in fields}


@transaction.atomic
def platform_bootstrap() -> None:
    """Make sure the system schemas' rows exist: the public tenant with the platform host
    (IDP_BASE_DOMAIN) as its primary domain, and the template tenant new tenants are cloned
    from. Idempotent; run by `migrate_schemas` after the public schema is migrated."""
    public, _ = Tenant.objects.get_or_create(schema_name=settings.PUBLIC_SCHEMA_NAME, defaults={"name": "Platform"})
    if not Domain.objects.filter(domain=settings.IDP_BASE_DOMAIN, tenant=public).exists():
        Domain.objects.create(domain=settings.IDP_BASE_DOMAIN, tenant=public, is_primary=True)
    if not Tenant.objects.filter(schema_name=settings.TENANT_BASE_SCHEMA).exists():
        # No template yet: this one is built by running every migration, once.
        Tenant(schema_name=settings.TENANT_BASE_SCHEMA, name="Template for new tenants").save()
