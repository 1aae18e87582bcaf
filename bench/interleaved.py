"""CPU per request of one path against the ping, requests alternated one by one, in-process.

    .venv/bin/python bench/interleaved.py whoami introspect refresh [--requests 3000]

What the suite's rounds cannot give on a machine whose speed drifts within seconds: the
ping and the path called alternately, one request each, through the WSGI handler with the
production settings (no HTTP server), each one's CPU time summed (`time.process_time`).
The median of ten blocks' ratios is printed with their spread; the absolute times of the
last block beside it; then PostgreSQL's CPU per request of the path (its server process's
CPU time, read from /proc, over as many requests). Used to find and check the changes in
docs/performance.md (the second pass onwards); the targets are judged by `make bench`.

It sets up what the suite does (a fresh database and the benchmark tenant, bench/seed.py)
and drops it after.
"""

import argparse
import base64
import io
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import harness
import suite

PATHS = ("whoami", "introspect", "refresh", "client_credentials", "check")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", choices=PATHS)
    parser.add_argument("--requests", type=int, default=3000, help="pairs of requests per path")
    args = parser.parse_args()
    with suite.seeded_main_tenant() as (env, port, seeded):
        os.environ.update(env)
        sys.path.insert(0, str(harness.ROOT))
        import django

        django.setup()
        from config.wsgi import application

        calls = Calls(application, f"{suite.host_of(suite.MAIN)}:{port}", seeded)
        for name in args.paths:
            print(measure(calls.ping, getattr(calls, name), name, args.requests), flush=True)
            print(f"  {database_cpu(getattr(calls, name), args.requests)}", flush=True)
    return 0


def database_cpu(path: Callable[[], bytes], requests: int) -> str:
    """PostgreSQL's CPU per request of `path`: the CPU time of this process's server backend
    (from /proc: the server runs on this machine) over `requests` requests."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = [cursor.fetchone()[0]]

    began = harness.cpu_seconds(backend)
    for _ in range(requests):
        path()
    return f"PostgreSQL: {(harness.cpu_seconds(backend) - began) / requests * 1e6:.0f} us of CPU per request"


class Calls:
    """One request of each kind through the WSGI handler; every answer must be a 200."""

    def __init__(self, application: Any, host: str, seeded: dict[str, Any]) -> None:
        self.application, self.host = application, host
        self.access = seeded["access_tokens"]
        self.refresh_tokens = list(seeded["refresh_tokens"])
        self.basic = "Basic " + base64.b64encode(f"{seeded['client_id']}:{seeded['client_secret']}".encode()).decode()
        self.users = seeded["check_users"]
        self.count = 0
        self.service_token = json.loads(self.client_credentials())["access_token"]

    def call(self, method: str, path: str, body: bytes = b"", content_type: str = "", **headers: str) -> bytes:
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": self.host,
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": content_type,
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        } | {"HTTP_" + name.upper(): value for name, value in headers.items()}
        status: list[str] = []
        answer = b"".join(self.application(environ, lambda line, _headers, *_: status.append(line)))
        if not status[0].startswith("200"):
            raise RuntimeError(f"{path}: {status[0]} {answer[:300]!r}")
        self.count += 1
        return answer

    def ping(self) -> bytes:
        return self.call("GET", suite.PING)

    def whoami(self) -> bytes:
        return self.call("GET", suite.WHOAMI, authorization=f"Bearer {self.access[self.count % len(self.access)]}")

    def introspect(self) -> bytes:
        body = urlencode({"token": self.access[self.count % len(self.access)]}).encode()
        return self.call("POST", suite.INTROSPECT, body, "application/x-www-form-urlencoded", authorization=self.basic)

    def refresh(self) -> bytes:
        slot = self.count % len(self.refresh_tokens)
        body = json.dumps({"refresh": self.refresh_tokens[slot]}).encode()
        answer = self.call("POST", suite.REFRESH, body, "application/json")
        self.refresh_tokens[slot] = json.loads(answer)["refresh"]
        return answer

    def client_credentials(self) -> bytes:
        body = b"grant_type=client_credentials"
        form = "application/x-www-form-urlencoded"
        return self.call("POST", suite.SERVICE_TOKEN, body, form, authorization=self.basic)

    def check(self) -> bytes:
        user = self.users[self.count % 20]
        permission, where = {0: ("orders.create", False), 1: ("orders.refund", True), 2: ("reports.view", True)}[
            user["kind"]
        ]
        question = {"user": user["id"], "permission": permission} | ({"branch": user["branch"]} if where else {})
        body = json.dumps(question).encode()
        return self.call("POST", suite.CHECK, body, "application/json", authorization=f"Bearer {self.service_token}")


def measure(ping: Callable[[], bytes], path: Callable[[], bytes], name: str, requests: int) -> str:
    for _ in range(300):  # warm: caches filled, connections open
        ping(), path()
    ratios, block = [], max(1, requests // 10)
    for _ in range(10):
        floor = cost = 0.0
        for _ in range(block):
            began = time.process_time()
            ping()
            floor += time.process_time() - began
            began = time.process_time()
            path()
            cost += time.process_time() - began
        ratios.append(floor / cost)
    return (
        f"{name}: {statistics.median(ratios):.1%} of the ping's CPU per request (blocks {min(ratios):.1%} to "
        f"{max(ratios):.1%}); last block: ping {floor / block * 1e6:.0f} us, {name} {cost / block * 1e6:.0f} us"
    )


if __name__ == "__main__":
    sys.exit(main())
