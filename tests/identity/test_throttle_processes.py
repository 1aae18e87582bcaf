"""Rate limits are shared by every process through Redis: two processes, one window."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
HITS = """
import sys, django
django.setup()
from django_tenants.utils import schema_context
from core.ratelimit import rate_limit_hit
with schema_context("acme"):
    decisions = [rate_limit_hit(scope="login", identity=sys.argv[1], rate="5/min") for _ in range(4)]
print(sum(d.allowed for d in decisions))
"""


def test_two_processes_share_one_sliding_window(tenant_a):
    identity = f"two-processes-{uuid.uuid4().hex}"
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "config.settings.test", "REDIS_URL": settings.REDIS_URL}
    processes = [
        subprocess.Popen(  # noqa: S603
            [sys.executable, "-c", HITS, identity], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    allowed = [int(process.communicate(timeout=60)[0].strip()) for process in processes]

    assert sum(allowed) == 5  # 8 requests, a limit of 5/min, whoever came first
    assert all(process.returncode == 0 for process in processes)
