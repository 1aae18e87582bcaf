"""Chooses the tenant from the Host header (never X-Forwarded-Host)."""

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.urls import set_urlconf
from django_tenants.middleware.main import TenantMainMiddleware

from core import read_ahead
from core.errors import ErrorCode
from core.problems import problem_response
from core.tenancy import tenant_connection
from tenants.tenant_rows import tenant_for_host

HEALTH_PREFIX = "/health/"


class TenantMiddleware(TenantMainMiddleware):
    """django-tenants' host routing with the project's rules:

    - `/health/...` is answered on any host (probes arrive with pod IPs or load-balancer
      names), in the public schema, without a tenant lookup;
    - the tenant is read by host from the cache (tenants.tenant_rows), and in the same
      round trip what the request's bearer token, or the request itself, will need
      (core.read_ahead);
    - an unknown host answers 404 `tenant_not_found` as problem JSON;
    - a suspended tenant, or one whose subscription ended, answers 403 `tenant_inactive`.
    """

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        read_ahead.drop()
        tenant_connection().set_schema_to_public()
        if request.path_info.startswith(HEALTH_PREFIX):
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            set_urlconf(request.urlconf)
            return None
        try:
            hostname = self.hostname_from_request(request)
        except DisallowedHost:
            return problem_response(ErrorCode.TENANT_NOT_FOUND, "This host is not served here.")
        plan = read_ahead.planned(request, hostname)
        also_read = [read_ahead.key_in_schema(plan[0], key) for key in plan[1]] if plan else []
        tenant, values = tenant_for_host(hostname, also_read)
        if tenant is None:
            return problem_response(ErrorCode.TENANT_NOT_FOUND, "No tenant is registered for this host.")
        if tenant.is_customer and not tenant.is_usable():
            return problem_response(ErrorCode.TENANT_INACTIVE, "This tenant is suspended or its subscription ended.")
        if values is not None and plan is not None and plan[0] == tenant.schema_name:  # never another tenant's
            read_ahead.keep(dict(zip(also_read, values, strict=True)))
        read_ahead.host_resolved(hostname, tenant.schema_name)
        tenant.domain_url = hostname
        request.tenant = tenant  # type: ignore[attr-defined]
        tenant_connection().set_tenant(tenant)
        self.setup_url_routing(request)
        return None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        read_ahead.drop()  # what the authentication did not take is not for anyone else
        return response
