"""Is this device session still active? Asked on every authenticated request.

Redis holds the answer (tenant-prefixed keys); PostgreSQL is the truth. Ending a session
writes "ended" at once, with a short lifetime, so every process refuses its tokens from that
moment; once the end commits the marker is written again to last (a rolled-back end thus
heals by itself within PROVISIONAL_TTL_SECONDS). Readers fill a missing entry only with `add`
(set-if-absent), so a reader that saw the row just before the end can never overwrite the
"ended" marker. If Redis cannot be reached, the database answers: never "allowed" by default.
"""

import logging
import uuid

from django.core.cache import cache
from django.utils import timezone

from sessions.models import DeviceSession

logger = logging.getLogger("idp.sessions")

ACTIVE, ENDED = "active", "ended"
ACTIVE_TTL_SECONDS = 60  # bounds how long a marker missed during a Redis outage could matter
ENDED_TTL_SECONDS = 60 * 60 * 24 * 31  # longer than any access token lives
PROVISIONAL_TTL_SECONDS = 60


def _key(session_id: str) -> str:
    return f"device-session:{session_id}"


def _active_in_database(session_id: str) -> bool:
    return DeviceSession.objects.filter(id=session_id, ended_at__isnull=True, expires_at__gt=timezone.now()).exists()


def session_is_active(session_id: str) -> bool:
    try:
        session_id = str(uuid.UUID(session_id))
    except (ValueError, TypeError, AttributeError):
        return False  # not a session id at all (a signed token can still carry anything)
    try:
        state = cache.get(_key(session_id))
    except Exception:
        logger.warning("Session cache unavailable; checking session %s in the database", session_id)
        return _active_in_database(session_id)
    if state is not None:
        return state == ACTIVE
    return _state_fill(session_id)


def _state_fill(session_id: str) -> bool:
    """A session with no state in Redis: the database answers, and the answer is remembered
    set-if-absent (an ending written meanwhile wins)."""
    active = _active_in_database(session_id)
    try:
        cache.add(_key(session_id), ACTIVE if active else ENDED, ACTIVE_TTL_SECONDS if active else ENDED_TTL_SECONDS)
    except Exception:
        logger.warning("Session cache unavailable; could not remember session %s", session_id)
    return active


def session_state_mark_ended(session_id: str, ttl: int = ENDED_TTL_SECONDS) -> None:
    try:
        cache.set(_key(session_id), ENDED, ttl)
    except Exception:
        # The row is ended in the database; a stale "active" entry expires within
        # ACTIVE_TTL_SECONDS. Logged loudly: this is the window that matters.
        logger.error("Session cache unavailable; session %s ended in the database only", session_id)


TOUCH_INTERVAL_SECONDS = 60


def _touch_key(session_id: str) -> str:
    return f"device-session-touch:{session_id}"


def _last_active_write(session_id: str) -> None:
    DeviceSession.objects.filter(id=session_id, ended_at__isnull=True).update(last_active_at=timezone.now())


def session_touch(session_id: str) -> None:
    """Keep `last_active_at` current with at most one write per session per minute: the first
    request of each minute wins a set-if-absent marker and writes; the others only read."""
    try:
        first_this_minute = cache.add(_touch_key(session_id), 1, TOUCH_INTERVAL_SECONDS)
    except Exception:
        return  # no marker, no write: a Redis outage must not turn every request into a write
    if first_this_minute:
        _last_active_write(session_id)


def session_check_and_touch(session_id: str) -> bool:
    """session_is_active and then session_touch, in one Redis round trip when warm (asked on
    every authenticated request): the state is read and the minute's touch marker claimed
    together. An ended session is never written to: the marker it may claim only expires."""
    try:
        session_id = str(uuid.UUID(session_id))
    except (ValueError, TypeError, AttributeError):
        return False
    client = getattr(cache, "client", None)  # django-redis; another cache takes the two steps
    if client is None or not hasattr(client, "get_client"):
        active = session_is_active(session_id)
        if active:
            session_touch(session_id)
        return active
    try:
        pipeline = client.get_client(write=True).pipeline(transaction=False)
        pipeline.get(cache.make_key(_key(session_id)))
        pipeline.set(cache.make_key(_touch_key(session_id)), client.encode(1), nx=True, ex=TOUCH_INTERVAL_SECONDS)
        raw_state, first_this_minute = pipeline.execute()
    except Exception:
        logger.warning("Session cache unavailable; checking session %s in the database", session_id)
        return _active_in_database(session_id)  # and no write: see session_touch
    # A missing entry: the database answers and fills it, set-if-absent.
    active = _state_fill(session_id) if raw_state is None else client.decode(raw_state) == ACTIVE
    if active and first_this_minute:
        _last_active_write(session_id)
    return active
