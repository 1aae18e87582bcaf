"""CORS per tenant: django-cors-headers asks `check_request_enabled`, and this answers from the
requesting tenant's policy (`cors_origins`). The platform host and every other path get no
CORS headers at all."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from tenants.models import Tenant


def tenant_allows_origin(sender: Any, request: HttpRequest, **kwargs: Any) -> bool:
    """True when the request's Origin is on its tenant's allowlist and the path is one that
    browsers may call across origins (the API and the well-known documents)."""
    origin = request.headers.get("Origin")
    tenant = getattr(request, "tenant", None)
    if not origin or not isinstance(tenant, Tenant) or not tenant.is_customer:
        return False
    if not request.path_info.startswith(settings.CORS_TENANT_PATHS):
        return False
    # Exact match only: the policy stores origins as scheme://host[:port], already validated.
    return origin in tenant.effective_policy["cors_origins"]


def connect_signals() -> None:
    from corsheaders.signals import check_request_enabled

    check_request_enabled.connect(tenant_allows_origin, dispatch_uid="core.cors.tenant_allows_origin")
