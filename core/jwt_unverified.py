"""A JWT's header or claims read WITHOUT verifying anything.

Only to choose what to do before a token is verified (which class verifies it, which key,
which cache keys to read ahead), never to decide anything: the verification reads and checks
both segments again. A plain base64 and JSON read: PyJWT's own unverified read walks every
character in Python, and a verification after it walks them all again.
"""

import base64
import binascii
import json
from typing import Any

MAX_TOKEN_BYTES = 8192


def segment_unverified(raw: str | bytes, index: int) -> dict[str, Any] | None:
    """Segment `index` of a JWT (0 the header, 1 the claims); None for anything that is not
    a JWT of reasonable size with a JSON object there."""
    if isinstance(raw, str):
        raw = raw.encode("ascii", errors="replace")
    parts = raw.split(b".") if isinstance(raw, bytes) and len(raw) <= MAX_TOKEN_BYTES else []
    if len(parts) != 3:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(parts[index] + b"=" * (-len(parts[index]) % 4)))
    except (ValueError, binascii.Error):
        return None
    return value if isinstance(value, dict) else None


def claims_unverified(raw: str | bytes) -> dict[str, Any] | None:
    return segment_unverified(raw, 1)
