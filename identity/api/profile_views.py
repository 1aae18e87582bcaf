"""The caller's own profile and login activity: /api/v1/auth/profile/ and activity/."""

from typing import cast

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from identity import selectors
from identity.api.users_serializers import LoginActivitySerializer, ProfileSerializer, ProfileUpdateSerializer
from identity.models import LoginAttempt, User
from identity.services import users as user_services
from rbac.permissions import IsAuthenticatedUser, MethodPermissions


class ProfileView(APIView):
    """Read or change one's own profile. The picture is sent as multipart form data.

    GET answers even while a password change is pending (the client needs the profile to
    show the change form); PATCH does not (TenantJWTAuthentication refuses it with 403
    password_change_required).
    """

    permission_classes = [MethodPermissions]
    required_permissions = {"GET": IsAuthenticatedUser(), "PATCH": IsAuthenticatedUser()}
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(responses={200: ProfileSerializer}, tags=["auth"])
    def get(self, request: Request) -> Response:
        return Response(ProfileSerializer(request.user, context={"request": request}).data)

    @extend_schema(request=ProfileUpdateSerializer, responses={200: ProfileSerializer}, tags=["auth"])
    def patch(self, request: Request) -> Response:
        serializer = ProfileUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_services.profile_update(user=cast(User, request.user), **serializer.validated_data)
        return Response(ProfileSerializer(user, context={"request": request}).data)


@extend_schema_view(get=extend_schema(tags=["auth"]))
class ActivityView(generics.ListAPIView):
    """One's own login attempts, newest first, failures included: a user can spot attempts
    on their account they did not make."""

    permission_classes = [MethodPermissions]
    required_permissions = {"GET": IsAuthenticatedUser()}
    serializer_class = LoginActivitySerializer

    def get_queryset(self) -> QuerySet[LoginAttempt]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no real user
            return LoginAttempt.objects.none()
        return selectors.login_attempts_for(user=cast(User, self.request.user))
