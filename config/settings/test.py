"""`make test`: real PostgreSQL (DATABASE_URL, else embedded) and real Redis (REDIS_URL, else
127.0.0.1:6379, else embedded). Only the password hasher is made fast."""

import os

from config.embedded import embedded_postgres_database, redis_url_for_tests

from .base import *  # noqa: F403
from .base import DATABASE_ENGINE, DATABASES, redis_cache

DEBUG = False
SECRET_KEY = "test-secret-key-not-for-production-0123456789abcdef"
IDP_BASE_DOMAIN = "idp.test"
IDP_PUBLIC_SCHEME = "http"
IDP_PUBLIC_PORT = 0

if not DATABASES:
    DATABASES = {"default": {"ENGINE": DATABASE_ENGINE, **embedded_postgres_database("postgres")}}

# A database per run (1-15 by process id): each run flushes its own between tests, so two
# runs side by side (two shells, parallel checkouts) do not wipe each other's state.
REDIS_URL = redis_url_for_tests(db=1 + os.getpid() % 15)
CACHES = {"default": redis_cache(REDIS_URL)}

# Tasks run eagerly; the tests that need a real broker (tests/notifications) pass one.
CELERY_BROKER_URL = "memory://"
CELERY_TASK_ALWAYS_EAGER = True

# No statement timeout for the test run itself: creating and dropping the test database,
# migrating and cloning schemas on a busy shared machine must not be cut off (a DROP DATABASE
# cancelled half-way leaves an invalid database behind). tests/hardening sets limits itself.
DB_STATEMENT_TIMEOUT_MS = 0

# WhiteNoise serves the apps' static files straight from their folders (no collectstatic),
# as with DEBUG in development: the docs and admin pages load their scripts in tests too.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", "identity.hashers.ClientSecretSHA256Hasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
LOGGING = {**LOGGING, "root": {"handlers": ["console"], "level": "WARNING"}}

# One test database per run, so two runs on one server (two shells, two checkouts) never
# drop each other's database.
DATABASES["default"]["TEST"] = {"NAME": f"test_idp_{os.getpid()}"}
