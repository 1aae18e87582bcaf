"""Reads for device sessions."""

import uuid

from django.db.models import Q, QuerySet
from django.utils import timezone

from identity.models import User
from sessions.models import DeviceSession


def active_sessions() -> Q:
    return Q(ended_at__isnull=True, expires_at__gt=timezone.now())


def user_session_list(*, user: User, include_ended: bool = False) -> QuerySet[DeviceSession]:
    sessions = DeviceSession.objects.filter(user=user).order_by("-created_at")
    return sessions if include_ended else sessions.filter(active_sessions())


def user_session_get(*, user: User, session_id: str) -> DeviceSession | None:
    """The user's own session, or None (also for another user's or a malformed id)."""
    try:
        parsed = uuid.UUID(session_id)
    except ValueError:
        return None
    return DeviceSession.objects.filter(user=user, pk=parsed).first()
