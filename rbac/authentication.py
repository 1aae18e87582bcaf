"""Service tokens (client-credentials grant) as DRF authentication, for the endpoints that
services call (the permission-check API).

Both kinds of caller send `Authorization: Bearer <jwt>`. This class takes the tokens whose
(unverified) `token_type` is "service" and verifies them fully as IdpServiceToken; any other
bearer token is left to identity.authentication.TenantJWTAuthentication, listed after it,
which verifies it as a user's access token. Either way a token is verified only by the class
of its own type, and a service token at most once a minute per process (read_token).
A verified service token counts only while its client is active
(rbac.service_clients.service_client_access, asked on every request).
"""

from dataclasses import dataclass
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.request import Request
from rest_framework_simplejwt.exceptions import TokenError

from core.errors import ErrorCode, ProblemError
from identity.tokens import IdpServiceToken, read_token, remembered_token, token_type_unverified
from rbac.permissions import Requirement
from rbac.service_clients import ServiceClientAccess, service_client_access, service_client_keys


@dataclass(frozen=True)
class ServicePrincipal:
    """request.user for a service token. Not a user: `is_active` is False so that no
    requirement written for users (rbac.permissions reads is_authenticated and is_active)
    ever admits a service, and it holds no permission codes itself."""

    client_id: str
    scopes: frozenset[str]
    access: ServiceClientAccess

    is_authenticated = True
    is_active = False
    is_anonymous = False
    pk = None

    def __str__(self) -> str:
        return f"service client {self.client_id}"


def _verified_service_token(raw: bytes) -> IdpServiceToken | None:
    """The verified service token `raw` (identity.tokens.read_token remembers it for a minute
    per process), None when it is not a service token at all (so TenantJWTAuthentication
    reads it), 401 invalid_token when it is one but not valid."""
    remembered = remembered_token(IdpServiceToken, raw)
    if remembered is not None:
        return remembered  # type: ignore[return-value]  # read_token keeps each class's own
    if token_type_unverified(raw) != IdpServiceToken.token_type:
        return None  # a user's access token, or garbage
    try:
        token: Any = read_token(IdpServiceToken, raw)
    except TokenError as exc:
        raise ProblemError(ErrorCode.INVALID_TOKEN, "The service token is invalid or expired.") from exc
    client_id = token.get("sub")
    if not isinstance(client_id, str) or not client_id:
        raise ProblemError(ErrorCode.INVALID_TOKEN, "The service token names no client.")
    return token


def service_token_reads(claims: dict[str, Any]) -> list[str] | None:
    """core.read_ahead's reader for service tokens: the keys ServiceTokenAuthentication will
    read for a token with these (unverified) claims: the client's state, the RBAC version."""
    client_id = claims.get("sub")
    return service_client_keys(client_id) if isinstance(client_id, str) and 0 < len(client_id) <= 100 else None


class ServiceTokenAuthentication(BaseAuthentication):
    www_authenticate_realm = "idp"

    def authenticate(self, request: Request) -> tuple[ServicePrincipal, IdpServiceToken] | None:
        parts = get_authorization_header(request).split()
        if len(parts) != 2 or parts[0].lower() != b"bearer":
            return None
        token = _verified_service_token(parts[1])
        if token is None:
            return None
        client_id, scope = token["sub"], token.get("scope")
        access = service_client_access(client_id, ahead=True)
        if access is None:
            raise ProblemError(ErrorCode.INVALID_TOKEN, "The service client was revoked.")
        scopes = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        return ServicePrincipal(client_id=client_id, scopes=scopes, access=access), token

    def authenticate_header(self, request: Request) -> str:
        return f'Bearer realm="{self.www_authenticate_realm}"'


class HasServiceScope(Requirement):
    """A service token carrying `scope`."""

    def __init__(self, scope: str) -> None:
        self.scope = scope

    def has_permission(self, request: Request, view: Any) -> bool:
        principal = request.user
        return isinstance(principal, ServicePrincipal) and self.scope in principal.scopes

    def __repr__(self) -> str:
        return f"HasServiceScope({self.scope!r})"


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    """OpenAPI description (registered by RbacConfig.ready)."""

    target_class = "rbac.authentication.ServiceTokenAuthentication"
    name = "serviceToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "A service token from POST /api/v1/oauth/token/ (grant_type=client_credentials) "
                "with the scope the endpoint needs."
            ),
        }
