"""Users and employees: /api/v1/users/ on tenant hosts.

Each method requires a permission code (`users.view`, `users.create`, `users.edit`,
`users.delete`) held tenant-wide (the Admin role holds `*`) or at some branch only
(`anywhere=True`: a Manager at a branch). A branch holder's reach is the users whose
`branch_id` is one of their branches: the others are "not found" to them, exactly as an
unknown id is, so one branch's users stay invisible to another's managers. What a caller may
do to a user they can see (in their reach, never to someone above them) is decided by the
services (identity.services.users), which raise 403 permission_denied or
privilege_escalation.

Every lookup runs in the request's tenant schema, so a user of another tenant is simply not
found.
"""

from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
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
from identity.services import users as user_services
from rbac.catalog import Perm
from rbac.permissions import HasPermission, MethodPermissions
from rbac.selectors import effective_permissions

USER_ID = OpenApiParameter("user_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The user's id.")
REFUSALS = {
    403: OpenApiResponse(description="permission_denied or privilege_escalation (problem details)"),
    404: OpenApiResponse(description="not_found: no such user, or one outside the caller's branches"),
}

VIEW = HasPermission(Perm.USERS_VIEW, anywhere=True)
CREATE = HasPermission(Perm.USERS_CREATE, anywhere=True)
EDIT = HasPermission(Perm.USERS_EDIT, anywhere=True)
DELETE = HasPermission(Perm.USERS_DELETE, anywhere=True)


class UsersView(generics.GenericAPIView):
    permission_classes = [MethodPermissions]
    required_permissions: dict[str, HasPermission]
    serializer_class = UserSerializer

    @property
    def actor(self) -> User:
        return cast(User, self.request.user)  # every requirement here admits only real users

    def within_branches(self, *codes: str) -> frozenset[str] | None:
        """The branches (external ids) where the caller holds any of `codes`; None when one
        of them is held tenant-wide (the whole tenant is in reach)."""
        held = effective_permissions(self.actor.pk)
        branches: set[str] = set()
        for code in codes:
            scope = held.scope(code)
            if scope.everywhere:
                return None
            branches |= scope.branches
        return frozenset(branches)

    def get_object(self) -> User:
        """The user of the URL, if the caller may see them: in reach of `users.view` or of
        the method's own code (what they may see, and what they may act on). Others, and a
        malformed id (never sent to the database), are 404 not_found."""
        method = "GET" if self.request.method in ("HEAD", "OPTIONS") else str(self.request.method)
        code = self.required_permissions[method].code
        within = self.within_branches(Perm.USERS_VIEW, code)
        user = selectors.user_get(user_id=self.kwargs["user_id"], within_branches=within)
        if user is None:
            raise ProblemError(ErrorCode.NOT_FOUND, "No such user.")
        return user

    def user_body(self, user: User) -> dict[str, Any]:
        return cast(dict[str, Any], UserSerializer(user, context=self.get_serializer_context()).data)


@extend_schema_view(get=extend_schema(parameters=[UserListQuerySerializer], tags=["users"]))
class UserListCreateView(UsersView, generics.ListAPIView):
    """List the users in the caller's reach (filters `is_active`, `branch_id`; `search` in
    email, name and employee id), or create an employee."""

    required_permissions = {"GET": VIEW, "POST": CREATE}

    def get_queryset(self) -> QuerySet[User]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no real request
            return User.objects.none()
        query = UserListQuerySerializer(data=self.request.query_params.dict())
        query.is_valid(raise_exception=True)
        return selectors.user_list(**query.validated_data, within_branches=self.within_branches(Perm.USERS_VIEW))

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer, **REFUSALS}, tags=["users"])
    def post(self, request: Request) -> Response:
        """Create an employee: a generated password is emailed, to be changed at first login.
        A branch holder creates users of their branches only (403 permission_denied).
        `roles` are assigned under the rules of role assignment; without them the user gets
        the tenant's default role."""
        serializer = UserCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_services.user_create(
            tenant=request.tenant,  # type: ignore[attr-defined]
            actor=self.actor,
            **serializer.validated_data,
        )
        return Response(self.user_body(user), status=status.HTTP_201_CREATED)


class UserDetailView(UsersView):
    """Read, update or deactivate one user. DELETE deactivates: the row and its history stay."""

    required_permissions = {"GET": VIEW, "PATCH": EDIT, "DELETE": DELETE}

    @extend_schema(parameters=[USER_ID], responses={200: UserSerializer, 404: REFUSALS[404]}, tags=["users"])
    def get(self, request: Request, user_id: str) -> Response:
        return Response(self.user_body(self.get_object()))

    @extend_schema(
        parameters=[USER_ID], request=UserUpdateSerializer, responses={200: UserSerializer, **REFUSALS}, tags=["users"]
    )
    def patch(self, request: Request, user_id: str) -> Response:
        user = self.get_object()
        serializer = UserUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = user_services.user_update(user=user, actor=self.actor, **serializer.validated_data)
        return Response(self.user_body(user))

    @extend_schema(parameters=[USER_ID], responses={204: None, **REFUSALS}, tags=["users"])
    def delete(self, request: Request, user_id: str) -> Response:
        user_services.user_deactivate(user=self.get_object(), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


class UserSetPasswordView(UsersView):
    """Set a user's password: they must change it at next login; their sessions end."""

    required_permissions = {"POST": EDIT}

    @extend_schema(
        parameters=[USER_ID],
        request=UserSetPasswordSerializer,
        responses={200: UserSetPasswordResultSerializer, **REFUSALS},
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


class UserUnlockView(UsersView):
    """Lift a user's lockout; says whether there was one."""

    required_permissions = {"POST": EDIT}

    @extend_schema(
        parameters=[USER_ID], request=None, responses={200: UserUnlockResultSerializer, **REFUSALS}, tags=["users"]
    )
    def post(self, request: Request, user_id: str) -> Response:
        was_locked = user_services.user_admin_unlock(user=self.get_object(), actor=self.actor)
        return Response({"was_locked": was_locked})
