"""Settings of the benchmark suite's server (bench/suite.py), and of nothing else: production
settings, with a URLconf that adds one bench-only path serving whoami without the session
check (the suite's "session check's own cost" row). No deployment, test or management
command uses this module."""

from config.settings.prod import *  # noqa: F403

ROOT_URLCONF = "bench.bench_urls"
