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
from collections.abc import Sequence
from typing import Any

from django.core.cache import cache
from django.utils import timezone

from core import read_ahead
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
    return session_state_read(session_id)[0]


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


def session_check_keys(session_id: str, also_read: Sequence[str] = ()) -> list[str]:
    """The cache keys session_check_and_touch reads (core.read_ahead may read them ahead)."""
    return [*session_state_keys(session_id, also_read), _touch_key(session_id)]


def session_state_keys(session_id: str, also_read: Sequence[str] = ()) -> list[str]:
    """The cache keys session_state_read reads without `touch` (core.read_ahead may read them
    ahead)."""
    return [_key(session_id), *also_read]


def session_check_and_touch(session_id: str, *, also_read: Sequence[str] = ()) -> tuple[bool, list[Any]]:
    """session_is_active, and `last_active_at` kept current with at most one write per
    session per minute: the first request of each minute wins a set-if-absent marker and
    writes, the others only read. One Redis round trip when warm (asked on every
    authenticated request). An ended session is never written to: the marker it may claim
    only expires; with Redis down there is no marker and no write, so an outage does not
    turn every request into a write. Values read ahead for this request (core.read_ahead,
    in the tenant lookup's round trip) are used when there are: then a round trip is made only
    to claim the minute's marker when it was missing."""
    return session_state_read(session_id, touch=True, also_read=also_read)


def session_state_read(
    session_id: str, *, touch: bool = False, also_read: Sequence[str] = ()
) -> tuple[bool, list[Any]]:
    """Whether the session is active, and the cache values of `also_read` (None for a missing
    key), in one Redis round trip: what a request needs beside the session state (the user's
    row, identity.user_rows) rides along. With `touch`, the minute's touch marker is claimed
    in the same trip. Redis unavailable: the database answers, the values are all None and
    nothing is written."""
    unread: list[Any] = [None] * len(also_read)
    try:
        session_id = str(uuid.UUID(session_id))
    except (ValueError, TypeError, AttributeError):
        return False, unread
    try:
        raw_state, first_this_minute, values = _read(session_id, touch, also_read)
    except Exception:
        logger.warning("Session cache unavailable; checking session %s in the database", session_id)
        return _active_in_database(session_id), unread  # and no write: see session_check_and_touch
    # A missing entry: the database answers and fills it, set-if-absent.
    active = _state_fill(session_id) if raw_state is None else raw_state == ACTIVE
    if active and first_this_minute:
        _last_active_write(session_id)
    return active, values


def _read(session_id: str, touch: bool, also_read: Sequence[str]) -> tuple[Any, bool, list[Any]]:
    """(the state, whether this request claimed the touch marker, the values of also_read)."""
    if touch:
        ahead = read_ahead.take(session_check_keys(session_id, also_read))
        if ahead is not None:
            first = ahead[-1] is None and bool(cache.add(_touch_key(session_id), 1, TOUCH_INTERVAL_SECONDS))
            return ahead[0], first, ahead[1:-1]
    else:
        ahead = read_ahead.take(session_state_keys(session_id, also_read))
        if ahead is not None:
            return ahead[0], False, ahead[1:]
    client = getattr(cache, "client", None)  # django-redis: one pipeline
    if client is None or not hasattr(client, "get_client"):  # another cache: several steps
        found = cache.get_many([_key(session_id), *also_read])
        first = bool(touch and cache.add(_touch_key(session_id), 1, TOUCH_INTERVAL_SECONDS))
        return found.get(_key(session_id)), first, [found.get(key) for key in also_read]
    pipeline = client.get_client(write=True).pipeline(transaction=False)
    pipeline.get(cache.make_key(_key(session_id)))
    for key in also_read:
        pipeline.get(cache.make_key(key))
    if touch:
        pipeline.set(cache.make_key(_touch_key(session_id)), client.encode(1), nx=True, ex=TOUCH_INTERVAL_SECONDS)
    raw = pipeline.execute()
    decoded = [None if value is None else client.decode(value) for value in raw[: 1 + len(also_read)]]
    return decoded[0], bool(touch and raw[-1]), decoded[1:]
