"""Settings of the session-check benchmark's server (bench/session_check.py), and of nothing
else: production settings, with a URLconf that adds one bench-only path serving whoami
without the session check. No deployment, test or management command uses this module."""

from config.settings.prod import *  # noqa: F403

ROOT_URLCONF = "bench.bench_urls"
