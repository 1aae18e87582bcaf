"""Who is asking, for audit rows and logs: set once per request by RequestContextMiddleware,
read by services without passing the request through every layer."""

import ipaddress
from contextvars import ContextVar
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest


@dataclass(frozen=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""


NO_REQUEST = RequestContext()  # frozen: safe to share as the default
request_context: ContextVar[RequestContext] = ContextVar("request_context", default=NO_REQUEST)


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: REMOTE_ADDR, or with IDP_TRUSTED_PROXIES = N proxies in front,
    the N-th address from the right of X-Forwarded-For (what the outermost trusted proxy saw).
    Addresses a client put in the header itself lie further left and are never used."""
    remote = _valid_ip(request.META.get("REMOTE_ADDR", ""))
    hops = settings.IDP_TRUSTED_PROXIES
    if hops <= 0:
        return remote
    forwarded = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < hops:
        return remote
    return _valid_ip(forwarded[-hops]) or remote
