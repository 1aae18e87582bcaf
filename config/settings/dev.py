"""`make run`: a developer's machine. Works with nothing installed (embedded PostgreSQL,
local-memory cache, eager Celery) and uses the real services when their URLs are set."""

import os

from config.embedded import embedded_postgres_database

from .base import *  # noqa: F403
from .base import CACHES, DATABASE_CONN_MAX_AGE, DATABASE_ENGINE, DATABASES, REDIS_URL, env_bool, env_int, env_str

DEBUG = env_bool("DEBUG", True)
IDP_PUBLIC_SCHEME = env_str("IDP_PUBLIC_SCHEME", "http")
IDP_PUBLIC_PORT = env_int("IDP_PUBLIC_PORT", 8000)

if not DATABASES:
    DATABASES = {
        "default": {
            "ENGINE": DATABASE_ENGINE,
            "CONN_MAX_AGE": DATABASE_CONN_MAX_AGE,
            "CONN_HEALTH_CHECKS": True,
            **embedded_postgres_database("postgres"),
        }
    }

if not CACHES:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        }
    }

if not REDIS_URL and "CELERY_BROKER_URL" not in os.environ:
    # No broker on this machine: tasks run in the request's process, after commit.
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True

if not os.environ.get("EMAIL_HOST"):
    # No SMTP server given: emails (temporary passwords and links included) are printed by
    # the process that sends them, the web server or a worker. Development only.
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
