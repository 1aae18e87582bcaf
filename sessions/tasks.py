"""Periodic housekeeping for device sessions, in every schema (beat: CELERY_BEAT_SCHEDULE)."""

from datetime import datetime, timedelta

from celery import shared_task
from django.db import transaction
from django.utils import timezone
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from sessions.events import session_events_publish
from sessions.models import DeviceSession, EndReason, SessionEvent
from sessions.services import sessions_end
from tenants.schemas import in_every_schema

PUBLISHED_EVENTS_KEPT = timedelta(days=7)


def sessions_cleanup_current_schema(now: datetime | None = None) -> dict[str, int]:
    """End sessions past their absolute limit, forget refresh-token records (and so their
    blacklist rows) that have expired, publish waiting events, drop old published ones."""
    now = now or timezone.now()
    with transaction.atomic():
        expired = list(
            DeviceSession.objects.select_for_update(skip_locked=True).filter(ended_at__isnull=True, expires_at__lte=now)
        )
        ended = sessions_end(expired, reason=EndReason.EXPIRED)
    tokens, _ = OutstandingToken.objects.filter(expires_at__lt=now).delete()
    published = session_events_publish()
    SessionEvent.objects.filter(published_at__lt=now - PUBLISHED_EVENTS_KEPT).delete()
    return {"ended": ended, "tokens_flushed": tokens, "events_published": published}


@shared_task(name="sessions.cleanup")
def sessions_cleanup() -> dict[str, dict[str, int]]:
    """Run the cleanup in the public schema and in every tenant's (never in the template)."""
    return in_every_schema(sessions_cleanup_current_schema, what="Session cleanup")
