"""Password endpoints under /api/v1/auth/: change (signed in), reset request and confirm."""

from typing import Any, cast

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from identity.models import User
from identity.services import passwords as password_services
from identity.throttles import PasswordResetConfirmThrottle, PasswordResetThrottle
from identity.tokens import IdpAccessToken
from rbac.permissions import IsAuthenticatedUser, MethodPermissions

# Longer than any policy allows, so that an over-long password is reported by the policy
# (400 password_policy with its message) rather than as a generic field error.
_PASSWORD_FIELD_MAX = 1024


def _password_field(**kwargs: Any) -> serializers.CharField:
    return serializers.CharField(
        max_length=_PASSWORD_FIELD_MAX, trim_whitespace=False, style={"input_type": "password"}, **kwargs
    )


class PasswordChangeSerializer(serializers.Serializer):
    current_password = _password_field()
    new_password = _password_field()
    logout_other_sessions = serializers.BooleanField(required=False, default=True)


class PasswordChangeResponseSerializer(serializers.Serializer):
    detail = serializers.CharField()
    other_sessions_ended = serializers.IntegerField()


class PasswordResetRequestSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)


class PasswordResetConfirmSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=512, trim_whitespace=False)
    new_password = _password_field()


class PasswordDetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


RESET_REQUESTED = "If an active account uses this email, a link to reset its password has been sent to it."


class PasswordChangeView(APIView):
    """Change the caller's password. The caller's session stays; with
    `logout_other_sessions` (default) the user's other sessions end."""

    permission_classes = [MethodPermissions]
    required_permissions = {"POST": IsAuthenticatedUser()}

    @extend_schema(request=PasswordChangeSerializer, responses={200: PasswordChangeResponseSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        serializer = PasswordChangeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ended = password_services.password_change(
            tenant=request.tenant,  # type: ignore[attr-defined]
            user=cast(User, request.user),
            session_id=cast(IdpAccessToken, request.auth).get("sid"),
            current_password=data["current_password"],
            new_password=data["new_password"],
            logout_other_sessions=data["logout_other_sessions"],
        )
        return Response({"detail": "Your password has been changed.", "other_sessions_ended": ended})


class PasswordResetRequestView(APIView):
    """Ask for a reset link by email. Always 202 with the same body: whether an account uses
    the address is never revealed."""

    authentication_classes: list[Any] = []
    permission_classes = [MethodPermissions]
    required_permissions = {"POST": AllowAny()}
    throttle_classes = [PasswordResetThrottle]

    @extend_schema(request=PasswordResetRequestSerializer, responses={202: PasswordDetailSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        serializer = PasswordResetRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        password_services.password_reset_request(
            tenant=request.tenant,  # type: ignore[attr-defined]
            email=serializer.validated_data["email"],
        )
        return Response({"detail": RESET_REQUESTED}, status=status.HTTP_202_ACCEPTED)


class PasswordResetConfirmView(APIView):
    """Set a new password with the token of an emailed reset link (single use). Every
    session of the user ends."""

    authentication_classes: list[Any] = []
    permission_classes = [MethodPermissions]
    required_permissions = {"POST": AllowAny()}  # the emailed token is the credential
    throttle_classes = [PasswordResetConfirmThrottle]

    @extend_schema(request=PasswordResetConfirmSerializer, responses={200: PasswordDetailSerializer}, tags=["auth"])
    def post(self, request: Request) -> Response:
        serializer = PasswordResetConfirmSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        password_services.password_reset_confirm(
            tenant=request.tenant,  # type: ignore[attr-defined]
            token=serializer.validated_data["token"],
            new_password=serializer.validated_data["new_password"],
        )
        return Response({"detail": "Your password has been reset. Sign in with the new password."})
