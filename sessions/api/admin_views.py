"""A user's device sessions as the people who manage them see them (tenant hosts):

    GET    /api/v1/users/<id>/sessions/        the user's active sessions (?include_ended=true adds ended ones)
    GET    /api/v1/users/<id>/sessions/<sid>/  one of them (ended ones too)
    DELETE /api/v1/users/<id>/sessions/<sid>/  end it (EndReason.ADMIN): 204

Reading needs `sessions.view`, ending `sessions.delete`, tenant-wide (the Admin role) or at
some branch (a Manager there). The reach is the users API's (identity.api.users_views): a
holder at some branches only finds the users whose `branch_id` is one of them, and every
other user is 404 not_found, as an unknown or malformed id is. Ending is decided by
sessions.services.session_terminate: never for someone who holds more than the caller
(403 privilege_escalation). Every ending is a `session.ended` audit row naming the caller.
"""

from typing import Any, cast

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.errors import ErrorCode, ProblemError
from identity import selectors as identity_selectors
from identity.api.users_views import USER_ID, UsersView
from identity.models import User
from identity.tokens import IdpAccessToken
from rbac.catalog import Perm
from rbac.permissions import HasPermission
from sessions import selectors
from sessions.api.serializers import DeviceSessionSerializer
from sessions.models import DeviceSession
from sessions.services import session_terminate

SESSION_ID = OpenApiParameter(
    "session_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The device session's id."
)
INCLUDE_ENDED = OpenApiParameter("include_ended", bool, description="Add ended sessions (with ended_at, end_reason).")
REFUSALS = {
    403: OpenApiResponse(description="permission_denied or privilege_escalation (problem details)"),
    404: OpenApiResponse(description="not_found: no such user or session, or a user outside the caller's branches"),
}

VIEW = HasPermission(Perm.SESSIONS_VIEW, anywhere=True)
DELETE = HasPermission(Perm.SESSIONS_DELETE, anywhere=True)


class UserSessionsView(UsersView):
    """The users API's reach (UsersView.within_branches), for sessions."""

    def get_serializer_class(self) -> type[DeviceSessionSerializer]:
        return DeviceSessionSerializer

    def target_user(self) -> User:
        """The user of the URL, if within the caller's reach for `sessions.view` or for the
        method's own code; else (and for a malformed id) 404 not_found."""
        method = "GET" if self.request.method in ("HEAD", "OPTIONS") else str(self.request.method)
        within = self.within_branches(Perm.SESSIONS_VIEW, self.required_permissions[method].code)
        user = identity_selectors.user_get(user_id=self.kwargs["user_id"], within_branches=within)
        if user is None:
            raise ProblemError(ErrorCode.NOT_FOUND, "No such user.")
        return user

    def target_session(self) -> DeviceSession:
        session = selectors.user_session_get(user=self.target_user(), session_id=self.kwargs["session_id"])
        if session is None:
            raise ProblemError(ErrorCode.NOT_FOUND, "No such session.")
        return session

    def get_serializer_context(self) -> dict[str, Any]:
        # `current`: the caller's own session (when they look at their own sessions here).
        token = cast(IdpAccessToken | None, self.request.auth)
        return {**super().get_serializer_context(), "current_session_id": str(token["sid"]) if token else None}


class UserSessionListView(UserSessionsView, generics.ListAPIView):
    """A user's active device sessions, newest first (paginated); `?include_ended=true` adds
    the ended ones with `ended_at` and `end_reason`."""

    required_permissions = {"GET": VIEW}

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no real request
            return DeviceSession.objects.none()
        include_ended = self.request.query_params.get("include_ended", "").lower() in ("1", "true", "yes")
        return selectors.user_session_list(user=self.target_user(), include_ended=include_ended)

    @extend_schema(parameters=[USER_ID, INCLUDE_ENDED], tags=["sessions"])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class UserSessionDetailView(UserSessionsView):
    """Read one of a user's sessions, or end it (DELETE, 204): its tokens are refused at once
    (401 session_ended). An ended session cannot be ended again: 404 not_found."""

    required_permissions = {"GET": VIEW, "DELETE": DELETE}

    @extend_schema(
        parameters=[USER_ID, SESSION_ID],
        responses={200: DeviceSessionSerializer, 404: REFUSALS[404]},
        tags=["sessions"],
    )
    def get(self, request: Request, user_id: str, session_id: str) -> Response:
        return Response(self.get_serializer(self.target_session()).data)

    @extend_schema(parameters=[USER_ID, SESSION_ID], responses={204: None, **REFUSALS}, tags=["sessions"])
    def delete(self, request: Request, user_id: str, session_id: str) -> Response:
        session = self.target_session()
        if session.ended_at is not None:
            raise ProblemError(ErrorCode.NOT_FOUND, "No such active session.")
        session_terminate(session=session, actor=cast(User, request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)
