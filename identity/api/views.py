"""Authentication endpoints: /api/v1/auth/..."""

from typing import Any, cast

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from identity.api.serializers import (
    LoginResponseSerializer,
    LoginSerializer,
    LogoutSerializer,
    RefreshSerializer,
    TokenPairSerializer,
    WhoAmISerializer,
)
from identity.models import User
from identity.services import login as login_services
from identity.services import tokens as token_services
from identity.throttles import LoginThrottle, SessionRefreshThrottle
from identity.tokens import IdpAccessToken
from rbac.permissions import IsAuthenticatedUser, MethodPermissions
from sessions.services import Device
from sessions.state import session_is_active


def _pair_body(tokens: token_services.TokenPair) -> dict[str, Any]:
    return {
        "access": tokens.access,
        "refresh": tokens.refresh,
        "token_type": "Bearer",
        "expires_in": tokens.expires_in,
        "session_id": tokens.session_id,
    }


class TokenObtainView(APIView):
    """Log in with email and password on a device."""

    authentication_classes: list[Any] = []
    permission_classes = [MethodPermissions]
    required_permissions = {"POST": AllowAny()}
    throttle_classes = [LoginThrottle]

    @extend_schema(request=LoginSerializer, responses={200: LoginResponseSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        result = login_services.login(
            tenant=request.tenant,  # type: ignore[attr-defined]
            email=data["email"],
            password=data["password"],
            device=Device(data["device_id"], data["device_name"], data["device_type"]),
        )
        user = {
            "id": str(result.user.pk),
            "email": result.user.email,
            "full_name": result.user.full_name,
            "roles": result.tokens.roles,  # as the access token says, read once
            "must_change_password": result.user.must_change_password,
        }
        return Response(_pair_body(result.tokens) | {"user": user})


class TokenRefreshView(APIView):
    """Rotate a refresh token: a new pair; the presented token stops working."""

    authentication_classes: list[Any] = []
    permission_classes = [MethodPermissions]
    required_permissions = {"POST": AllowAny()}  # the refresh token is the credential

    @extend_schema(request=RefreshSerializer, responses={200: TokenPairSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        serializer = RefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        refresh = token_services.refresh_token_read(serializer.validated_data["refresh"])
        # Only a live session is throttled: an ended one must answer its 401 (or a disabled
        # account its 403), never 429. token_refresh gives those refusals in API.md's order.
        # The session's state is read only when the limit is reached (a Redis round trip
        # that a refresh within its limit does without).
        request._request.refresh_session_id = refresh.get("sid", "")  # type: ignore[attr-defined]
        throttle = SessionRefreshThrottle()
        if not throttle.allow_request(request, self):
            if session_is_active(str(refresh.get("sid", ""))):
                self.throttled(request, throttle.wait() or 1.0)
            del request._request.ratelimit  # type: ignore[attr-defined]  # not limited: no Retry-After
        return Response(_pair_body(token_services.token_refresh(refresh=refresh)))


class LogoutView(APIView):
    """End the caller's session; its refresh and access tokens stop working at once."""

    permission_classes = [MethodPermissions]
    required_permissions = {"POST": IsAuthenticatedUser()}

    @extend_schema(request=LogoutSerializer, responses={204: None}, tags=["auth"])
    def post(self, request: Request) -> Response:
        serializer = LogoutSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        raw_refresh = serializer.validated_data.get("refresh")
        refresh = token_services.refresh_token_read(raw_refresh) if raw_refresh else None
        access = cast(IdpAccessToken, request.auth)
        token_services.logout(user=cast(User, request.user), session_id=access["sid"], refresh=refresh)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WhoAmIView(APIView):
    permission_classes = [MethodPermissions]
    required_permissions = {"GET": IsAuthenticatedUser()}

    @extend_schema(responses={200: WhoAmISerializer}, tags=["auth"])
    def get(self, request: Request) -> Response:
        user = cast(User, request.user)
        claims = dict(cast(IdpAccessToken, request.auth).payload)
        return Response(
            {
                "id": str(user.pk),
                "email": user.email,
                "tenant": request.tenant.schema_name,  # type: ignore[attr-defined]
                "roles": claims.get("roles", []),
                "session_id": claims["sid"],
                "must_change_password": user.must_change_password,
                "claims": claims,
            }
        )
