"""Service clients (/api/v1/service-clients/, tenant admins) and their token endpoint
(/api/v1/oauth/token/, the client-credentials grant of RFC 6749 4.4).

Token endpoint errors keep the project's problem JSON and codes (docs/errors.md), in the
order RFC 6749 servers usually check them:
- 400 invalid_request: `grant_type` missing or not `client_credentials` (RFC 6749 would say
  unsupported_grant_type), both client authentication methods at once, or a `scope` the
  client does not hold (RFC: invalid_scope); `errors` names the field;
- 401 not_authenticated: no client authentication at all (a user's bearer token is none);
- 401 invalid_credentials: an unknown client id, a wrong secret, a revoked client or a
  malformed Basic header (RFC: invalid_client), one answer for all of them.
"""

from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ErrorCode, ProblemError, invalid_request
from core.serializers import StrictInputSerializer
from identity.models import User
from rbac import service_clients
from rbac.catalog import Perm
from rbac.models import SERVICE_CLIENT_SCOPES, ServiceClient
from rbac.permissions import HasPermission
from rbac.service_clients import BASIC_CHALLENGE, basic_credentials_decode

CLIENT_ID = OpenApiParameter("client_id", OpenApiTypes.STR, OpenApiParameter.PATH, description="The client's id.")


# --- shapes --------------------------------------------------------------------------------------


class ServiceClientSerializer(serializers.ModelSerializer):
    branches = serializers.SerializerMethodField(
        help_text="External ids of the branches the client may ask about; null when it is not restricted."
    )
    created_by = serializers.UUIDField(source="created_by_id", read_only=True, allow_null=True)

    class Meta:
        model = ServiceClient
        fields = ["client_id", "name", "scopes", "branches", "is_active", "revoked_at", "created_at", "created_by"]
        read_only_fields = fields

    def get_branches(self, client: ServiceClient) -> list[str] | None:
        if not client.restricted_to_branches:
            return None
        return sorted(branch.external_id for branch in client.branches.all())


class ServiceClientCreatedSerializer(ServiceClientSerializer):
    client_secret = serializers.CharField(help_text="Shown only in this response; store it now.")

    class Meta(ServiceClientSerializer.Meta):
        fields = [*ServiceClientSerializer.Meta.fields, "client_secret"]
        read_only_fields = fields


class ServiceClientCreateSerializer(StrictInputSerializer):
    """A new service client: its name, its scopes, and optionally the branches it may ask about."""

    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=list(SERVICE_CLIENT_SCOPES)), min_length=1, max_length=10
    )
    branches = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        allow_null=True,
        max_length=1000,
        help_text="Branch external ids the client may ask about (omit or null: every branch).",
    )


class ServiceClientListQuerySerializer(serializers.Serializer):
    include_revoked = serializers.BooleanField(required=False, default=False)


class TokenRequestSerializer(serializers.Serializer):
    """RFC 6749 4.4.2, form-encoded or JSON. Authenticate the client with HTTP Basic
    (client_secret_basic) or with client_id and client_secret here (client_secret_post)."""

    grant_type = serializers.CharField(help_text="client_credentials")
    scope = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Space-separated; default: all the client's scopes."
    )
    client_id = serializers.CharField(required=False, max_length=64, help_text="client_secret_post")
    client_secret = serializers.CharField(required=False, max_length=256, help_text="client_secret_post")

    def validate_grant_type(self, value: str) -> str:
        if value != "client_credentials":
            raise serializers.ValidationError("Unsupported grant_type: only client_credentials is served here.")
        return value


class TokenResponseSerializer(serializers.Serializer):
    access_token = serializers.CharField()
    token_type = serializers.CharField(help_text="Bearer")
    expires_in = serializers.IntegerField()
    scope = serializers.CharField()


# --- service clients -------------------------------------------------------------------------------


@extend_schema_view(get=extend_schema(parameters=[ServiceClientListQuerySerializer], tags=["service-clients"]))
class ServiceClientListCreateView(generics.ListAPIView):
    """List the tenant's service clients (active ones; `?include_revoked=true` adds the
    revoked), or create one: the answer holds `client_secret`, shown this once."""

    required_permissions = {
        "GET": HasPermission(Perm.SERVICE_CLIENTS_VIEW),
        "POST": HasPermission(Perm.SERVICE_CLIENTS_CREATE),
    }
    serializer_class = ServiceClientSerializer

    def get_queryset(self) -> QuerySet[ServiceClient]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no real request
            return ServiceClient.objects.none()
        query = ServiceClientListQuerySerializer(data=self.request.query_params.dict())
        query.is_valid(raise_exception=True)
        return service_clients.service_client_list(**query.validated_data)

    @extend_schema(
        request=ServiceClientCreateSerializer, responses={201: ServiceClientCreatedSerializer}, tags=["service-clients"]
    )
    def post(self, request: Request) -> Response:
        serializer = ServiceClientCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = service_clients.service_client_create(actor=cast(User, request.user), **serializer.validated_data)
        body = ServiceClientSerializer(created.client).data | {"client_secret": created.client_secret}
        return Response(body, status=status.HTTP_201_CREATED)


class ServiceClientDetailView(APIView):
    """Read a service client (never its secret), or revoke it (DELETE): its tokens stop
    working at once. Revoking a revoked client: 404."""

    required_permissions = {
        "GET": HasPermission(Perm.SERVICE_CLIENTS_VIEW),
        "DELETE": HasPermission(Perm.SERVICE_CLIENTS_DELETE),
    }

    @extend_schema(parameters=[CLIENT_ID], responses={200: ServiceClientSerializer}, tags=["service-clients"])
    def get(self, request: Request, client_id: str) -> Response:
        client = service_clients.service_client_get(client_id=client_id)
        if client is None:
            raise ProblemError(ErrorCode.NOT_FOUND, "No such service client.")
        return Response(ServiceClientSerializer(client).data)

    @extend_schema(parameters=[CLIENT_ID], responses={204: None}, tags=["service-clients"])
    def delete(self, request: Request, client_id: str) -> Response:
        client = service_clients.service_client_get(client_id=client_id, active_only=True)
        if client is None:
            raise ProblemError(ErrorCode.NOT_FOUND, "No such active service client.")
        service_clients.service_client_revoke(client=client, actor=cast(User, request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- the client-credentials grant -------------------------------------------------------------------


def client_credentials(request: Request, body: dict[str, Any]) -> tuple[str, str]:
    """(client_id, client_secret) from HTTP Basic (client_secret_basic: each part
    form-urlencoded, RFC 6749 2.3.1) or from the body (client_secret_post)."""
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "basic":
        if "client_secret" in body:
            raise invalid_request({"client_secret": ["Authenticate the client one way: HTTP Basic or the body."]})
        credentials = basic_credentials_decode(value)
        if credentials is None:
            raise ProblemError(
                ErrorCode.INVALID_CREDENTIALS, "Malformed HTTP Basic credentials.", headers=BASIC_CHALLENGE
            )
        if body.get("client_id", credentials[0]) != credentials[0]:
            raise invalid_request({"client_id": ["It differs from the client authenticated with HTTP Basic."]})
        return credentials
    if body.get("client_id") and body.get("client_secret"):
        return body["client_id"], body["client_secret"]
    raise ProblemError(
        ErrorCode.NOT_AUTHENTICATED,
        "Authenticate the client: HTTP Basic, or client_id and client_secret in the body.",
        headers=BASIC_CHALLENGE,
    )


class ServiceTokenView(APIView):
    """The client-credentials grant: a service token (15 minutes) with the client's scopes,
    or the part of them `scope` asks for. Form-encoded (RFC 6749) or JSON. Errors: see the
    module's docstring (400 invalid_request, 401 not_authenticated / invalid_credentials)."""

    authentication_classes: list[Any] = []  # the client authenticates itself, below
    required_permissions = {"POST": AllowAny()}

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenResponseSerializer}, tags=["oauth"])
    def post(self, request: Request) -> Response:
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        client_id, client_secret = client_credentials(request, data)
        client = service_clients.service_client_verify(client_id=client_id, client_secret=client_secret)
        issued = service_clients.service_token_issue(client=client, scope=data.get("scope"))
        body = {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "scope": issued.scope,
        }
        return Response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
