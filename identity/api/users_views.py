"""Users and employees: /api/v1/users/ on tenant hosts, for the tenant's admins.

Every lookup runs in the request's tenant schema, so a user of another tenant is simply not
found. The RBAC work will replace IsTenantAdmin with permission codes per method.
"""

from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import ErrorCode, ProblemError
from identity import selectors
from identity.api.users_serializers import (
    UserCreateSerializer,
    UserListQuerySerializer,
    UserSerializer,
    UserSetPasswordResultSerializer,
    UserSetPasswordSerializer,
    UserUnlockResultSerializer,
    UserUpdateSerializer,
)
from identity.models import User
from identity.permissions import IsTenantAdmin
from identity.services import login as login_services
from identity.services import users as user_services

USER_ID = OpenApiParameter("user_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The user's id.")


class TenantAdminView(generics.GenericAPIView):
    permission_classes = [IsTenantAdmin]
    serializer_class = UserSerializer

    @property
    def actor(self) -> User:
        return cast(User, self.request.user)  # IsTenantAdmin admits only real users

    def get_object(self) -> User:
        # A malformed id is "not found" too: the selector never lets it reach the database.
        user = selectors.user_get(user_id=self.kwargs["user_id"])
        if user is None:
            raise ProblemError(ErrorCode.NOT_FOUND, "No such user.")
        return user

    def user_body(self, user: User) -> dict[str, Any]:
        return cast(dict[str, Any], UserSerializer(user, context=self.get_serializer_context()).data)


@extend_schema_view(get=extend_schema(parameters=[UserListQuerySerializer], tags=["users"]))
class UserListCreateView(TenantAdminView, generics.ListAPIView):
    """List the tenant's users (filters `is_active`, `branch_id`; `search` in email, name and
    employee id), or create an employee."""

    def get_queryset(self) -> QuerySet[User]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no real request
            return User.objects.none()
        query = UserListQuerySerializer(data=self.request.query_params.dict())
        query.is_valid(raise_exception=True)
        return selectors.user_list(**query.validated_data)

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer}, tags=["users"])
    def post(self, request: Request) -> Response:
        serializer = UserCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_services.user_create(
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=self.actor,
            **serializer.validated_data,
        )
        return Response(self.user_body(user), status=status.HTTP_201_CREATED)


class UserDetailView(TenantAdminView):
    """Read, update or deactivate one user. DELETE deactivates: the row and its history stay."""

    @extend_schema(parameters=[USER_ID], responses={200: UserSerializer}, tags=["users"])
    def get(self, request: Request, user_id: str) -> Response:
        return Response(self.user_body(self.get_object()))

    @extend_schema(parameters=[USER_ID], request=UserUpdateSerializer, responses={200: UserSerializer}, tags=["users"])
    def patch(self, request: Request, user_id: str) -> Response:
        user = self.get_object()
        serializer = UserUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_services.user_update(user=user, actor=self.actor, **serializer.validated_data)
        return Response(self.user_body(user))

    @extend_schema(parameters=[USER_ID], responses={204: None}, tags=["users"])
    def delete(self, request: Request, user_id: str) -> Response:
        user_services.user_deactivate(user=self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserSetPasswordView(TenantAdminView):
    """Set a user's password: they must change it at next login; their sessions end."""

    @extend_schema(
        parameters=[USER_ID],
        request=UserSetPasswordSerializer,
        responses={200: UserSetPasswordResultSerializer},
        tags=["users"],
    )
    def post(self, request: Request, user_id: str) -> Response:
        user = self.get_object()
        serializer = UserSetPasswordSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ended = user_services.user_set_password(
            user=user,
            password=serializer.validated_data["password"],
            password_rules=request.tenant.effective_policy["password"],  # type: ignore[attr-defined]
            actor=self.actor,
        )
        return Response({"must_change_password": True, "sessions_ended": ended})


class UserUnlockView(TenantAdminView):
    """Lift a user's lockout; says whether there was one."""

    @extend_schema(parameters=[USER_ID], request=None, responses={200: UserUnlockResultSerializer}, tags=["users"])
    def post(self, request: Request, user_id: str) -> Response:
        was_locked = login_services.user_unlock(user=self.get_object(), actor=self.actor)
        return Response({"was_locked": was_locked})
