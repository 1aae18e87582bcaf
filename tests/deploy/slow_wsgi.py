"""A WSGI app for tests/deploy/test_gunicorn.py: answers slowly, on purpose, so that the test
can see which slow requests gunicorn's worker timeout cuts off.

`/stream?seconds=N` streams one line every half second for N seconds; `/sleep?seconds=N`
answers after N seconds in one piece.
"""

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes] | list[bytes]:
    seconds = float(parse_qs(environ.get("QUERY_STRING", "")).get("seconds", ["1"])[0])
    start_response("200 OK", [("Content-Type", "text/plain")])
    if environ["PATH_INFO"] == "/stream":
        return _stream(seconds)
    time.sleep(seconds)
    return [b"done\n"]


def _stream(seconds: float) -> Iterator[bytes]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        yield b"row\n"
        time.sleep(0.5)
    yield b"done\n"
