"""deploy/gunicorn.conf.py, run for real on loopback: the production WSGI app boots with it,
chunked bodies are refused, and what its worker timeout does and does not bound."""

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
CONFIG = str(ROOT / "deploy" / "gunicorn.conf.py")
WORKER_TIMEOUT = 2

# The production settings with placeholders: the requests below touch neither PostgreSQL nor Redis.
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.prod",
    "DATABASE_URL": "postgres://idp@127.0.0.1:1/idp",
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "SECRET_KEY": "a-long-random-value-for-this-test-only-0123456789",
    "IDP_KEY_ENCRYPTION_KEYS": "Zm9yLXRoaXMtdGVzdC1vbmx5LWZvci10aGlzLXRlc3Qh",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn(app: str, **env: str) -> Iterator[int]:
    port = free_port()
    environment = {
        **os.environ,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "1",
        "GUNICORN_TIMEOUT": str(WORKER_TIMEOUT),
        "GUNICORN_ACCESS_LOG": "false",
        **env,
    }
    process = subprocess.Popen(  # noqa: S603 (our own gunicorn, fixed arguments)
        [GUNICORN, "-c", CONFIG, app], cwd=ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_the_production_app_boots_under_the_config_and_answers_liveness_with_security_headers():
    with gunicorn("config.wsgi", **PRODUCTION_ENV) as port:
        status, headers, body = get(port, "/health/live/", {"Host": "idp.example", "X-Forwarded-Proto": "https"})

    assert status == 200
    assert body == b'{"status": "ok"}'
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.fixture(scope="module")
def collected_static(tmp_path_factory) -> dict[str, str]:
    """The Dockerfile's collectstatic step, into a temporary STATIC_ROOT: returns the
    environment of a production process that serves from there."""
    folder = tmp_path_factory.mktemp("static")
    (folder / "static_settings.py").write_text(
        f"from config.settings.prod import *  # noqa: F403\nSTATIC_ROOT = {str(folder / 'root')!r}\n"
    )
    env = {
        **PRODUCTION_ENV,
        "DJANGO_SETTINGS_MODULE": "static_settings",
        "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)]),
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    return {**env, "STATIC_ROOT_FOR_TEST": str(folder / "root")}


def test_collectstatic_gathers_hashed_and_compressed_files_for_the_admin_and_the_api_docs(collected_static):
    root = Path(collected_static["STATIC_ROOT_FOR_TEST"])
    manifest = json.loads((root / "staticfiles.json").read_text())["paths"]

    assert "admin/css/base.css" in manifest
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in manifest
    assert (root / (manifest["admin/css/base.css"] + ".gz")).is_file()


def test_whitenoise_serves_the_hashed_static_files_with_far_future_caching(collected_static):
    manifest = json.loads((Path(collected_static["STATIC_ROOT_FOR_TEST"]) / "staticfiles.json").read_text())
    hashed = manifest["paths"]["admin/css/base.css"]

    with gunicorn("config.wsgi", **collected_static) as port:
        status, headers, _ = get(port, f"/static/{hashed}", {"Host": "any.example", "Accept-Encoding": "gzip"})

    assert status == 200
    assert headers["Content-Type"].startswith("text/css")
    assert headers["Content-Encoding"] == "gzip"
    assert "immutable" in headers["Cache-Control"]


def test_a_chunked_request_body_is_refused_with_411_before_anything_reads_it():
    with gunicorn("config.wsgi", **PRODUCTION_ENV) as port, socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /api/v1/auth/token/ HTTP/1.1\r\nHost: idp.example\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            b"2\r\n{}\r\n0\r\n\r\n"
        )
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()

    assert response.status == 411
    assert response.getheader("Content-Type") == "application/problem+json"
    assert b'"code": "invalid_request"' in body


def test_with_gthread_workers_a_streaming_response_outlives_the_worker_timeout():
    with gunicorn("tests.deploy.slow_wsgi:app") as port:
        status, _, body = get(port, f"/stream?seconds={WORKER_TIMEOUT * 2.5}")

    assert status == 200
    assert body.endswith(b"done\n")


def test_with_gthread_workers_a_slow_plain_response_is_not_cut_off_either():
    with gunicorn("tests.deploy.slow_wsgi:app") as port:
        status, _, body = get(port, f"/sleep?seconds={WORKER_TIMEOUT * 2.5}")

    assert status == 200
    assert body == b"done\n"


def test_with_sync_workers_the_worker_timeout_cuts_off_a_slow_request():
    with gunicorn("tests.deploy.slow_wsgi:app", GUNICORN_WORKER_CLASS="sync") as port:
        status, _, body = get(port, f"/sleep?seconds={WORKER_TIMEOUT * 3}")

    # gunicorn kills the worker and answers its own 500 page: the app never finished.
    assert status == 500
    assert b"done" not in body
