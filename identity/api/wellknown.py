"""OpenID Connect discovery and the tenant's JWKS, on every host (each its own issuer)."""

from typing import Any

from django.http import JsonResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from identity.keys import jwks
from identity.tokens import issuer_of
from rbac.permissions import MethodPermissions
from tenants.policy import SIGNING_ALGORITHMS


class JwksView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [MethodPermissions]
    required_permissions = {"GET": AllowAny()}

    @extend_schema(responses={200: OpenApiResponse(description="JWK Set")}, tags=["discovery"])
    def get(self, request: Request) -> JsonResponse:
        response = JsonResponse(jwks())
        # Verifiers cache it; a rotated key is published long before it signs anything
        # they could not verify (the previous key stays published).
        response["Cache-Control"] = "public, max-age=300"
        return response


class OpenIdConfigurationView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [MethodPermissions]
    required_permissions = {"GET": AllowAny()}

    @extend_schema(responses={200: OpenApiResponse(description="OpenID Provider metadata")}, tags=["discovery"])
    def get(self, request: Request) -> JsonResponse:
        issuer = issuer_of(request.tenant)  # type: ignore[attr-defined]
        response = JsonResponse(
            {
                "issuer": issuer,
                "jwks_uri": f"{issuer}/.well-known/jwks.json",
                "token_endpoint": f"{issuer}/api/v1/auth/token/",
                "introspection_endpoint": f"{issuer}/api/v1/oauth/introspect/",
                "revocation_endpoint": f"{issuer}/api/v1/oauth/revoke/",
                "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "id_token_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
                "response_types_supported": ["token"],
                "subject_types_supported": ["public"],
                "claims_supported": ["iss", "aud", "sub", "tid", "sid", "did", "roles", "email", "name", "exp", "iat"],
            }
        )
        response["Cache-Control"] = "public, max-age=300"
        return response
