"""Cache reads a request's authentication will make, done ahead in the tenant lookup's round trip.

Every request reads its tenant's row from Redis (tenants.tenant_rows) before anything else.
A request with a bearer token then reads more from Redis to authenticate: the session's
state and the user's row, or the service client's state. Those keys follow from the token's
claims, so they are read in the same `MGET` as the tenant's row, and the authentication
takes them from here instead of making a round trip of its own.

Nothing read ahead is trusted for being there: the claims that named the keys are not
verified yet. The authentication verifies the token first, then asks for the keys it would
have read anyway; it gets their values only if every one of them was read ahead for this
request, in the schema of the tenant the host resolved to. Each value is handed out once,
and whatever is left is dropped when the response leaves (TenantMiddleware), so no later
read, after a write, can see a value from before it.

An app registers a reader per token type (`register`): given the claims of a bearer token
of that type (read without verifying it, once, here), the cache keys to read in the schema
its `tid` names, or None.

A request can also name keys by itself, whatever its token (`register_for_request`; the
IP-block check of the endpoints that take credentials). Those are read in the schema that
this process last found for the request's host (`host_resolved`): the host is what is being
looked up, so a host seen for the first time, or one that moved to another tenant, reads
nothing ahead (or reads in vain), and the request reads its keys itself as before.
"""

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest

from core.jwt_unverified import claims_unverified
from core.tenancy import current_schema

Reader = Callable[[dict[str, Any]], list[str] | None]
RequestReader = Callable[[HttpRequest], list[str] | None]

_readers: dict[str, Reader] = {}
_request_readers: list[RequestReader] = []
_values: ContextVar[dict[str, Any] | None] = ContextVar("read_ahead_values", default=None)

# The schema each host last resolved to in this process (tenants.middleware tells).
_host_schemas: dict[str, str] = {}
HOSTS_MAX = 10_000  # a full memory starts over


def register(token_type: str, reader: Reader) -> None:
    """`reader` plans the reads of bearer tokens whose `token_type` claim is `token_type`."""
    _readers[token_type] = reader


def register_for_request(reader: RequestReader) -> None:
    """`reader` plans reads from the request itself (its path, its address), or None."""
    _request_readers.append(reader)


def host_resolved(hostname: str, schema: str) -> None:
    """Remember that `hostname` is served by `schema`, to plan the next request's reads."""
    if _host_schemas.get(hostname) != schema:
        if len(_host_schemas) >= HOSTS_MAX:
            _host_schemas.clear()
        _host_schemas[hostname] = schema


def key_in_schema(schema: str, key: str) -> str:
    """The Redis key of cache key `key` in `schema`, as django_tenants.cache.make_key (the
    cache's KEY_FUNCTION) makes it while `schema` is current; without switching to it."""
    return f"{schema}:{cache.key_prefix}:{cache.version}:{key}"


def planned(request: HttpRequest, hostname: str) -> tuple[str, list[str]] | None:
    """The schema and the cache keys (not yet made Redis keys) to read ahead for `request`,
    which arrived for `hostname`."""
    words = request.META.get("HTTP_AUTHORIZATION", "").split()
    by_token = planned_for_token(words[1]) if len(words) == 2 and words[0].lower() == "bearer" else None
    schema = _host_schemas.get(hostname)
    if schema is None or (by_token is not None and by_token[0] != schema):
        return by_token
    by_request = [key for reader in _request_readers for key in reader(request) or ()]
    if not by_request:
        return by_token
    return (schema, [*(by_token[1] if by_token else ()), *by_request])


def planned_for_token(raw: str) -> tuple[str, list[str]] | None:
    """The schema bearer token `raw` claims and what the reader of its type plans to read
    there, or None."""
    claims = claims_unverified(raw) or {}
    kind, schema = claims.get("token_type"), claims.get("tid")
    reader = _readers.get(kind) if isinstance(kind, str) else None
    if reader is None or not isinstance(schema, str) or not 0 < len(schema) <= 63:  # a PostgreSQL name
        return None
    keys = reader(claims)
    return (schema, keys) if keys is not None else None


def keep(values: dict[str, Any]) -> None:
    """The values read ahead for the current request, by Redis key (replacing any before)."""
    _values.set(values)


def drop() -> None:
    _values.set(None)


def take(keys: list[str]) -> list[Any] | None:
    """The values of cache `keys` in the current schema read ahead for this request (None for
    a key that was read and is missing), each handed out once; None unless all were read."""
    values = _values.get()
    if not values:
        return None
    schema = current_schema()
    redis_keys = [key_in_schema(schema, key) for key in keys]
    if not all(key in values for key in redis_keys):
        return None
    return [values.pop(key) for key in redis_keys]
