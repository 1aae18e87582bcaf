"""Ended sessions as events, for services that verify tokens offline.

Each tenant has a Redis stream `idp:<schema>:session-events`; every entry is one ended
session: `event_id`, `sid`, `sub`, `did`, `reason`, `ended_at` (ISO 8601). A consumer reads
it (XREAD, or XREADGROUP with its own group) and drops the session before its access tokens
expire. Entries are written from the SessionEvent outbox after the end commits; a consumer
may see an event twice after a retry and dedupes on `event_id`.
"""

import logging

from django.utils import timezone

from core.tenancy import current_schema
from sessions.models import SessionEvent

logger = logging.getLogger("idp.sessions")

STREAM_MAXLEN = 100_000  # about a week of churn for a large tenant; consumers read continuously


def stream_key(schema: str) -> str:
    return f"idp:{schema}:session-events"


def session_events_publish(limit: int = 500) -> int:
    """Publish unpublished events of the current schema, oldest first. Returns how many.
    Safe to run concurrently: each row is claimed with SKIP LOCKED."""
    from django.db import transaction
    from django_redis import get_redis_connection

    try:
        client = get_redis_connection("default")
    except NotImplementedError:
        return 0  # no Redis configured (make run without REDIS_URL): nothing to publish to
    published = 0
    key = stream_key(current_schema())
    with transaction.atomic():
        events = list(
            SessionEvent.objects.select_for_update(skip_locked=True).filter(published_at__isnull=True)[:limit]
        )
        if not events:
            return 0
        try:
            pipe = client.pipeline(transaction=False)
            for event in events:
                pipe.xadd(
                    key,
                    {
                        "event_id": str(event.pk),
                        "sid": str(event.session_id),
                        "sub": str(event.user_id),
                        "did": event.device_id,
                        "reason": event.reason,
                        "ended_at": event.ended_at.isoformat(),
                    },
                    maxlen=STREAM_MAXLEN,
                    approximate=True,
                )
            pipe.execute()
        except Exception:
            logger.error("Redis unavailable: %d session events wait in the outbox", len(events), exc_info=True)
            return 0
        SessionEvent.objects.filter(pk__in=[event.pk for event in events]).update(published_at=timezone.now())
        published = len(events)
    return published
