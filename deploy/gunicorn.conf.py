"""Gunicorn for the web process: `gunicorn -c deploy/gunicorn.conf.py config.wsgi`.

Every knob comes from the environment (README, "Running in production"). The defaults suit a
container with one or two CPUs: a few processes, each with threads, since a request mostly
waits on PostgreSQL and Redis.
"""

import os

# The project's typed readers (gunicorn puts the working directory on sys.path before it loads
# this file): a value that does not parse stops the start with the variable's name.
from config.env import env_bool, env_int, env_str

bind = env_str("GUNICORN_BIND", "0.0.0.0:8000")
workers = env_int("GUNICORN_WORKERS", 2)
worker_class = env_str("GUNICORN_WORKER_CLASS", "gthread")
# gunicorn turns `sync` into gthread when threads > 1, so sync keeps one thread.
threads = env_int("GUNICORN_THREADS", 4 if worker_class == "gthread" else 1)

# A worker whose main loop has not reported for this long is killed and replaced. With the
# gthread workers the main loop reports between events, not between requests, so this bounds
# a hung process, not a slow request: a streaming CSV export may run longer (verified by
# tests/deploy/test_gunicorn.py). Requests are bounded by the statement timeout instead
# (DB_STATEMENT_TIMEOUT_MS) and by the load balancer's timeout. With GUNICORN_WORKER_CLASS=sync
# it bounds every request, exports included.
timeout = env_int("GUNICORN_TIMEOUT", 30)
# Time given to in-flight requests on SIGTERM (a rolling update); below the pod's
# terminationGracePeriodSeconds.
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 25)
keepalive = env_int("GUNICORN_KEEPALIVE", 5)

# Replace each worker after this many requests (with jitter, so they do not restart together):
# a slow leak in a dependency cannot grow a worker without bound.
max_requests = env_int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = env_int("GUNICORN_MAX_REQUESTS_JITTER", 200)

# Heartbeat files in memory: the image's root filesystem is read-only.
SHARED_MEMORY = "/dev/shm"  # noqa: S108 (a tmpfs for gunicorn's own heartbeat files)
worker_tmp_dir = SHARED_MEMORY if os.path.isdir(SHARED_MEMORY) else None
# No runtime-control socket: it would need a writable home and is not used.
control_socket_disable = True

# Request line and header limits stay at gunicorn's defaults; the body limit is Django's
# (DATA_UPLOAD_MAX_MEMORY_SIZE, core.middleware.BodySizeLimitMiddleware).
accesslog = "-" if env_bool("GUNICORN_ACCESS_LOG", True) else None
errorlog = "-"
loglevel = env_str("GUNICORN_LOG_LEVEL", "info")
# The access log never shows query strings: reset and verification links carry tokens there.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms "%({x-request-id}o)s"'
