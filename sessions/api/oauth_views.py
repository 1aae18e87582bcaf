"""OAuth endpoints for service clients on tenant hosts:

    POST /api/v1/oauth/introspect/  RFC 7662 token introspection (scope `oauth:introspect`)
    POST /api/v1/oauth/revoke/      RFC 7009 token revocation (scope `oauth:revoke`)

Client authentication is required, as at /api/v1/oauth/token/ (rbac.api.clients_views):
HTTP Basic (client_secret_basic) or `client_id` and `client_secret` in the body
(client_secret_post); bodies are form-encoded (RFC 6749) and JSON is accepted too. A bearer
token (a user's, or even a service token) is not client authentication here. Refusals, in
the order they are decided, as problem JSON:
- 401 not_authenticated: no client authentication (`WWW-Authenticate: Basic realm="idp"`);
- 401 invalid_credentials: an unknown client, a wrong secret, a revoked client or malformed
  Basic credentials (one answer for all of them);
- 400 invalid_request: both authentication methods at once;
- 403 permission_denied: the client does not hold the endpoint's scope;
- 400 invalid_request: no `token` in the body.

A client restricted to branches may introspect and revoke any token of its tenant: holding
a token is what lets a service ask about it, and the answer is the token's own content plus
"still usable", nothing about other branches.
"""

from collections.abc import Mapping
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ErrorCode, ProblemError
from core.serializers import TokenField
from rbac.api.clients_views import client_credentials
from rbac.authentication import HasServiceScope, ServicePrincipal
from rbac.models import SCOPE_INTROSPECT, SCOPE_REVOKE
from rbac.permissions import MethodPermissions
from rbac.service_clients import BASIC_CHALLENGE, service_client_verify
from sessions.selectors import token_introspect
from sessions.services import token_revoke

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 7662 4, RFC 6749 5.1
MAX_CREDENTIAL_LENGTH = 256
HINT_MAX_LENGTH = 64


class ClientCredentialsAuthentication(BaseAuthentication):
    """A service client authenticating itself with its id and secret (RFC 6749 2.3.1).
    request.user becomes a ServicePrincipal with the client's scopes, so that HasServiceScope
    judges it as it judges a service token at the check API."""

    def authenticate(self, request: Request) -> tuple[ServicePrincipal, None]:
        try:
            return self._authenticate(request), None
        except ProblemError as refusal:
            if refusal.status == 401:  # RFC 6749 5.2: answer with the scheme the client should use
                refusal.headers = {**refusal.headers, **BASIC_CHALLENGE}
            raise

    @staticmethod
    def _authenticate(request: Request) -> ServicePrincipal:
        body = request.data if isinstance(request.data, Mapping) else {}
        client_id, client_secret = client_credentials(request, body)  # 401 not_authenticated without any
        if not all(isinstance(v, str) and len(v) <= MAX_CREDENTIAL_LENGTH for v in (client_id, client_secret)):
            raise ProblemError(ErrorCode.INVALID_CREDENTIALS, "The client id or secret is not correct.")
        client = service_client_verify(client_id=client_id, client_secret=client_secret)
        return ServicePrincipal(client_id=client.client_id, scopes=frozenset(client.scopes), access=client.access)

    def authenticate_header(self, request: Request) -> str:
        return BASIC_CHALLENGE["WWW-Authenticate"]


class ClientCredentialsScheme(OpenApiAuthenticationExtension):
    target_class = ClientCredentialsAuthentication
    name = "clientSecretBasic"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "basic",
            "description": (
                "A service client's client_id and client_secret (client_secret_basic; each part "
                "form-urlencoded), or the same two as body fields (client_secret_post)."
            ),
        }


class OAuthTokenBodySerializer(serializers.Serializer):
    """RFC 7662 2.1 / RFC 7009 2.1, form-encoded or JSON."""

    token = TokenField(help_text="The token asked about (access, refresh or service token).")
    token_type_hint = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=HINT_MAX_LENGTH,
        help_text="access_token or refresh_token; optional and not needed (the token says its type).",
    )
    client_id = serializers.CharField(required=False, help_text="client_secret_post")
    client_secret = serializers.CharField(required=False, help_text="client_secret_post")


TOKEN_REQUEST = {
    "application/x-www-form-urlencoded": OAuthTokenBodySerializer,
    "application/json": OAuthTokenBodySerializer,
}
IntrospectionResponse = inline_serializer(
    "IntrospectionResult",
    fields={
        "active": serializers.BooleanField(),
        "token_type": serializers.CharField(
            required=False, help_text="access_token, refresh_token or service_token (only when active)."
        ),
        "sub": serializers.CharField(required=False, help_text="The user's id; a service token's client id."),
        "sid": serializers.CharField(required=False, help_text="The device session (user tokens)."),
        "did": serializers.CharField(required=False, help_text="The device (user tokens)."),
        "tid": serializers.CharField(required=False),
        "iss": serializers.CharField(required=False),
        "aud": serializers.JSONField(required=False, help_text="A string, or a list of audiences."),
        "exp": serializers.IntegerField(required=False),
        "iat": serializers.IntegerField(required=False),
        "nbf": serializers.IntegerField(required=False),
        "jti": serializers.CharField(required=False),
        "scope": serializers.CharField(required=False, help_text="Service tokens: the granted scopes."),
        "client_id": serializers.CharField(required=False, help_text="Service tokens: the client."),
        "username": serializers.CharField(required=False, help_text="User tokens: the user's email."),
    },
)


class ServiceClientView(APIView):
    authentication_classes = [ClientCredentialsAuthentication]
    permission_classes = [MethodPermissions]

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # The method is judged before the client's credentials: they may be in the body,
        # and a TRACE or PUT carrying a body would otherwise be refused for its credentials
        # (400, 401) instead of its method (405).
        if request.method is None or request.method.lower() not in {m.lower() for m in self.allowed_methods}:
            self.http_method_not_allowed(request, *args, **kwargs)
        super().initial(request, *args, **kwargs)

    def token_from_body(self, request: Request) -> str:
        """The body's `token`. A body that OAuthTokenBodySerializer would accept unchanged
        (every well-behaved call) is read as it is; any other goes through the serializer,
        whose errors the client gets. On introspection, called for every token a service
        sees, the serializer (four fields deep-copied per request) cost a tenth of the call."""
        body = request.data
        if isinstance(body, Mapping) and _accepted_unchanged(body):
            return str(body["token"])
        serializer = OAuthTokenBodySerializer(data=body)
        serializer.is_valid(raise_exception=True)
        return str(serializer.validated_data["token"])


def _accepted_unchanged(body: Mapping[str, Any]) -> bool:
    def text(value: Any) -> bool:  # what a CharField takes as it is (no null, no edge blanks)
        return isinstance(value, str) and "\x00" not in value and value.strip() == value

    token, hint = body.get("token"), body.get("token_type_hint", "")
    optional = [body[name] for name in ("client_id", "client_secret") if name in body]
    return (
        text(token)
        and bool(token)
        and text(hint)
        and len(hint) <= HINT_MAX_LENGTH
        and all(text(value) and value for value in optional)
    )


class IntrospectView(ServiceClientView):
    """RFC 7662: is this token usable now, and what does it say? An active token answers
    its claims with `active: true`; every other case (expired, malformed, another tenant's,
    an ended session, a used refresh token, a deactivated user, a revoked client, unknown)
    answers exactly `{"active": false}`. Needs the `oauth:introspect` scope."""

    required_permissions = {"POST": HasServiceScope(SCOPE_INTROSPECT)}

    @extend_schema(
        request=TOKEN_REQUEST,
        responses={
            200: IntrospectionResponse,
            400: OpenApiResponse(description="invalid_request: no token"),
            401: OpenApiResponse(description="not_authenticated or invalid_credentials: client authentication"),
            403: OpenApiResponse(description="permission_denied: the client lacks the oauth:introspect scope"),
        },
        tags=["oauth"],
        examples=[OpenApiExample("An inactive token", value={"active": False}, response_only=True)],
    )
    def post(self, request: Request) -> Response:
        return Response(token_introspect(token=self.token_from_body(request)), headers=NO_STORE)


class RevokeView(ServiceClientView):
    """RFC 7009: revoke a token. 200 with an empty body whenever the client is authenticated
    and holds the `oauth:revoke` scope, whatever the token (unknown, invalid, expired, already
    revoked: nothing to do). A refresh or access token ends its device session, so every
    token of that session is refused at once; a service token changes nothing."""

    required_permissions = {"POST": HasServiceScope(SCOPE_REVOKE)}

    @extend_schema(
        request=TOKEN_REQUEST,
        responses={
            200: OpenApiResponse(description="Revoked, or nothing to revoke (empty body)"),
            400: OpenApiResponse(description="invalid_request: no token"),
            401: OpenApiResponse(description="not_authenticated or invalid_credentials: client authentication"),
            403: OpenApiResponse(description="permission_denied: the client lacks the oauth:revoke scope"),
        },
        tags=["oauth"],
    )
    def post(self, request: Request) -> Response:
        principal = request.user
        assert isinstance(principal, ServicePrincipal)  # noqa: S101  # HasServiceScope admits services only
        token_revoke(token=self.token_from_body(request), client_id=principal.client_id)
        return Response(headers=NO_STORE)
