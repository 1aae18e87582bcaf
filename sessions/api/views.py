"""A user's own device sessions: /api/v1/sessions/..."""

from typing import Any, cast

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from identity.models import User
from identity.tokens import IdpAccessToken
from rbac.permissions import IsAuthenticatedUser, MethodPermissions
from sessions import selectors
from sessions.api.serializers import DeviceSessionSerializer, RevokeAllSerializer
from sessions.models import DeviceSession, EndReason
from sessions.services import session_end, user_sessions_end


def _current_session_id(request: Request) -> str:
    return str(cast(IdpAccessToken, request.auth)["sid"])


class OwnSessionListView(generics.ListAPIView):
    permission_classes = [MethodPermissions]
    required_permissions = {"GET": IsAuthenticatedUser()}
    serializer_class = DeviceSessionSerializer

    def get_queryset(self) -> Any:
        include_ended = self.request.query_params.get("include_ended", "").lower() in ("1", "true", "yes")
        return selectors.user_session_list(user=cast(User, self.request.user), include_ended=include_ended)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "current_session_id": _current_session_id(self.request)}

    @extend_schema(parameters=[OpenApiParameter("include_ended", bool, description="Add ended sessions.")])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class OwnSessionDetailView(generics.GenericAPIView):
    permission_classes = [MethodPermissions]
    required_permissions = {"DELETE": IsAuthenticatedUser()}
    serializer_class = DeviceSessionSerializer

    @extend_schema(responses={204: None})
    def delete(self, request: Request, session_id: str) -> Response:
        # Another user's session is "not found", never "forbidden": ids reveal nothing.
        session = selectors.user_session_get(user=cast(User, request.user), session_id=session_id)
        if session is None or session.ended_at is not None:
            raise Http404
        session_end(session=session, reason=EndReason.LOGOUT, actor=cast(User, request.user))
        return Response(status=status.HTTP_204_NO_CONTENT)


class OwnSessionRevokeAllView(generics.GenericAPIView):
    permission_classes = [MethodPermissions]
    required_permissions = {"POST": IsAuthenticatedUser()}
    serializer_class = RevokeAllSerializer

    @extend_schema(responses={200: inline_serializer("RevokeAll", {"ended": serializers.IntegerField()})})
    def post(self, request: Request) -> Response:
        serializer = RevokeAllSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = cast(User, request.user)
        keep = None
        if serializer.validated_data["keep_current"]:
            keep = DeviceSession.objects.filter(pk=_current_session_id(request)).first()
        ended = user_sessions_end(user=user, reason=EndReason.LOGOUT, actor=user, keep=keep)
        return Response({"ended": ended})
