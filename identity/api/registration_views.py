"""Self-registration and email verification: /api/v1/auth/register/, verify-email/."""

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from identity.services.registration import email_verify, registration_open_check, user_register
from identity.throttles import RegistrationThrottle
from rbac.permissions import MethodPermissions

# One body for every accepted registration, whether or not the address was taken.
REGISTRATION_ACCEPTED = {"detail": "Check your email to finish signing up."}
EMAIL_VERIFIED = {"detail": "Your email is confirmed. You can sign in now."}

phone_validator = RegexValidator(r"^\+?[0-9][0-9 ()./-]{2,31}$", "Enter a phone number such as +254 712 345678.")


class RegisterSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(
        max_length=256, trim_whitespace=False, write_only=True, style={"input_type": "password"}
    )
    full_name = serializers.CharField(max_length=200)
    phone = serializers.CharField(
        max_length=32, required=False, allow_blank=True, default="", validators=[phone_validator]
    )
    roles = serializers.ListField(
        child=serializers.CharField(max_length=100),
        max_length=20,
        required=False,
        default=list,
        help_text=(
            "Names of roles to hold besides the tenant's default role; each must be one the "
            "tenant lets registrants choose (else 403 permission_denied)."
        ),
    )


class RegistrationDetailSerializer(serializers.Serializer):
    detail = serializers.CharField()


class RegisterView(APIView):
    """Register an account; it stays inactive until the emailed link is followed. It holds
    the tenant's default role, and the roles asked for in `roles` where the tenant lets
    registrants choose them.

    The answer is the same whether or not the address already has an account (the inbox
    owner learns it from the email instead).
    """

    authentication_classes: list[Any] = []
    permission_classes = [MethodPermissions]
    required_permissions = {"POST": AllowAny()}  # anyone may register where the tenant's policy allows
    throttle_classes = [RegistrationThrottle]

    @extend_schema(
        request=RegisterSerializer,
        responses={
            201: RegistrationDetailSerializer,
            400: OpenApiResponse(description="invalid_request or password_policy (problem details)"),
            403: OpenApiResponse(
                description="permission_denied (registration closed, or a role registrants may not choose) "
                "or user_cap_reached"
            ),
            429: OpenApiResponse(description="throttled"),
        },
        tags=["auth"],
    )
    def post(self, request: Request) -> Response:
        tenant = request.tenant  # type: ignore[attr-defined]
        # Before validating the body: a closed tenant answers the same to every request.
        registration_open_check(tenant=tenant)
        serializer = RegisterSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user_register(tenant=tenant, **serializer.validated_data)
        return Response(REGISTRATION_ACCEPTED, status=status.HTTP_201_CREATED)


class VerifyEmailView(APIView):
    """Follow a verification link through the API: activates the pending account.

    For API clients. The emailed link opens a page at the same path without /api/v1/auth/,
    which activates only when its button is pressed (GET there never activates).
    """

    authentication_classes: list[Any] = []
    permission_classes = [MethodPermissions]
    # The signed, single-use token in the path is the credential (identity.verification).
    required_permissions = {"GET": AllowAny(), "POST": AllowAny()}

    def _verify(self, request: Request, uidb64: str, token: str) -> Response:
        email_verify(tenant=request.tenant, uidb64=uidb64, token=token)  # type: ignore[attr-defined]
        return Response(EMAIL_VERIFIED)

    _schema = extend_schema(
        request=None,
        responses={
            200: RegistrationDetailSerializer,
            400: OpenApiResponse(description="invalid_token: bad, used, superseded or expired link"),
        },
        tags=["auth"],
    )

    @_schema
    def get(self, request: Request, uidb64: str, token: str) -> Response:
        return self._verify(request, uidb64, token)

    @_schema
    def post(self, request: Request, uidb64: str, token: str) -> Response:
        return self._verify(request, uidb64, token)
