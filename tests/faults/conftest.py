"""Private servers the fault tests may stop: a Redis and a PostgreSQL of their own."""

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.services import PrivatePostgres, PrivateRedis


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # Not under tmp_path: as root the server runs as another user, and every pytest run that
    # starts (any checkout's) makes /tmp/pytest-of-root private to root again.
    directory = Path(tempfile.mkdtemp(prefix="idp-faults-postgres-"))
    server = PrivatePostgres(directory)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
