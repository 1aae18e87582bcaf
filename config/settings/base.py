"""Settings shared by every environment. Every deployment knob comes from the environment.

The environment variables are documented in README.md ("Configuration").
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import argon2_costs_check, env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env_str("SECRET_KEY", "insecure-development-key-do-not-use-in-production")
DEBUG = env_bool("DEBUG", False)

# Tenants have custom domains, so the list of hosts lives in the database (tenants.Domain):
# TenantMiddleware answers 404 `tenant_not_found` for any host that is not registered there.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"])

# --- Public URLs --------------------------------------------------------------------------
# Tenant `acme` is served at <scheme>://acme.<IDP_BASE_DOMAIN>[:<port>]; the base domain itself
# is the public (platform) host. Links in emails and token issuers are built from these,
# never from the request's Host header.
IDP_BASE_DOMAIN = env_str("IDP_BASE_DOMAIN", "localhost")
IDP_PUBLIC_SCHEME = env_str("IDP_PUBLIC_SCHEME", "https")
IDP_PUBLIC_PORT = env_int("IDP_PUBLIC_PORT", 0)  # 0: the scheme's default port
# How many reverse proxies in front of the app append to X-Forwarded-For. 0 trusts none and
# takes REMOTE_ADDR as the client.
IDP_TRUSTED_PROXIES = env_int("IDP_TRUSTED_PROXIES", 0)

# --- Applications --------------------------------------------------------------------------
SHARED_APPS = [
    # tenants first: its migrate_schemas (and migrate) override django_tenants' commands,
    # and Django takes a command from the first app in INSTALLED_APPS that has it.
    "tenants",
    # The admin consoles (tenant and platform). Before django_tenants: its templates replace
    # django-tenants' admin app list, which carries inline styles a strict CSP refuses.
    "console",
    "django_tenants",
    "core",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "identity",  # platform operators are users of the public schema
    "sessions.apps.DeviceSessionsConfig",  # ... and log in with device sessions too
    "rest_framework_simplejwt.token_blacklist",
    "notifications",  # operators' email (password reset on the public host) goes through the outbox too
]
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "guardian",
    "identity",
    "rbac",
    "sessions.apps.DeviceSessionsConfig",
    "rest_framework_simplejwt.token_blacklist",
    "notifications",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
# New tenants are cloned from an always-migrated template schema instead of replaying every
# migration (see docs/decisions.md, "Tenant provisioning").
TENANT_BASE_SCHEMA = "tenant_template"
TENANT_CREATION_FAKES_MIGRATIONS = True
# migrate_schemas leaves out the schemas that already record every migration (one query over
# all of them first), whichever executor runs the rest.
GET_EXECUTOR_FUNCTION = "tenants.migration_executor.get_executor"
TENANT_MULTIPROCESSING_MAX_PROCESSES = env_int("TENANT_MIGRATION_PROCESSES", 2)
TENANT_MULTIPROCESSING_CHUNKS = env_int("TENANT_MIGRATION_CHUNKS", 2)
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
# SET search_path once per connection and tenant switch, not before every query (the backend
# forgets it on set_tenant, rollback and savepoint rollback, where PostgreSQL does too).
TENANT_LIMIT_SET_CALLS = True

# Outermost first. The security headers wrap everything, so that even the early refusals
# (413, 411, 404 `tenant_not_found`) carry them; CORS comes after the tenant is known, since
# the allowlist is the tenant's.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.SecurityHeadersMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.RequestContextMiddleware",
    "core.middleware.RateLimitHeadersMiddleware",
    "core.middleware.BodySizeLimitMiddleware",
    "tenants.middleware.TenantMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # After the tenant (blocks are per tenant) and CORS (a browser may read the refusal).
    "identity.security.IpBlockMiddleware",
    "core.middleware.StatementTimeoutMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "config.urls_tenant"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database --------------------------------------------------------------------------
DATABASE_ENGINE = "core.postgresql_backend"  # django-tenants' backend; see its docstring
DATABASE_CONN_MAX_AGE = env_int("DATABASE_CONN_MAX_AGE", 60)


def database_from_url(url: str) -> dict:
    config = dict(dj_database_url.parse(url, engine=DATABASE_ENGINE, conn_max_age=DATABASE_CONN_MAX_AGE))
    config["CONN_HEALTH_CHECKS"] = True
    return config


# Every SQL statement is cut off after this many milliseconds (0: no limit), so one slow query
# cannot hold a worker thread and a connection; the request answers 503 `query_timeout`.
# core.db sets it on each new connection with SET (not the `options` startup parameter,
# which PgBouncer does not pass on). The migrate job runs with 0.
DB_STATEMENT_TIMEOUT_MS = env_int("DB_STATEMENT_TIMEOUT_MS", 5000)
# The limit for long operations: streaming responses (CSV exports) while they stream, and the
# views named in DB_LONG_RUNNING_VIEWS (URL names, with their namespace if any) for their
# whole request (core.middleware.StatementTimeoutMiddleware).
DB_LONG_STATEMENT_TIMEOUT_MS = env_int("DB_LONG_STATEMENT_TIMEOUT_MS", 300000)
# Tenant creation clones the template schema in one statement, which may take seconds.
DB_LONG_RUNNING_VIEWS = env_list("DB_LONG_RUNNING_VIEWS", ["platform-tenant-list"])


DATABASE_URL = env_str("DATABASE_URL", "")
DATABASES = {"default": database_from_url(DATABASE_URL)} if DATABASE_URL else {}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (Redis) --------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")


def redis_cache(url: str) -> dict:
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": url,
        # Tenant-prefixed keys: one tenant's cache entries can never be read by another.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": 1,
            "SOCKET_TIMEOUT": 1,
        },
    }


CACHES = {"default": redis_cache(REDIS_URL)} if REDIS_URL else {}

# --- Authentication --------------------------------------------------------------------------
AUTH_USER_MODEL = "identity.User"
# The admin consoles' sessions (Django sessions, not device sessions): a working day rather
# than Django's two weeks, for a session that can create users and end others' sessions.
SESSION_COOKIE_AGE = env_int("CONSOLE_SESSION_SECONDS", 8 * 3600)
AUTHENTICATION_BACKENDS = [
    "identity.backends.LockoutModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# django-guardian would create an "AnonymousUser" row in every schema; anonymous callers
# never hold object permissions here.
ANONYMOUS_USER_NAME = None
# People's passwords: argon2id with the deployment's costs (identity.hashers, where the
# defaults are explained): by default Django's memory and passes (t=2, m=100 MiB) in one lane.
# Never below OWASP's minimum (t=2, m=19 MiB, p=1): a weaker setting stops the start-up.
# Django's Argon2 and PBKDF2 stay to verify older hashes, which are rehashed with the first
# entry at the next login.
IDP_ARGON2_TIME_COST = env_int("IDP_ARGON2_TIME_COST", 2)
IDP_ARGON2_MEMORY_COST_KIB = env_int("IDP_ARGON2_MEMORY_COST_KIB", 102400)
IDP_ARGON2_PARALLELISM = env_int("IDP_ARGON2_PARALLELISM", 1)
argon2_costs_check(
    time_cost=IDP_ARGON2_TIME_COST, memory_cost_kib=IDP_ARGON2_MEMORY_COST_KIB, parallelism=IDP_ARGON2_PARALLELISM
)
# How many of those hashes one process computes at a time (its threads wait their turn): with
# one process per core, one each keeps a core per hash and a process's hashing memory at one
# hash's (identity.hashers).
IDP_ARGON2_CONCURRENCY = env_int("IDP_ARGON2_CONCURRENCY", 1)
if IDP_ARGON2_CONCURRENCY < 1:
    raise ImproperlyConfigured("IDP_ARGON2_CONCURRENCY must be at least 1")
PASSWORD_HASHERS = [
    "identity.hashers.TunedArgon2idHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    # Service-client secrets only (random 32 bytes; see its docstring). Never first: the
    # first entry is the default for people's passwords.
    "identity.hashers.ClientSecretSHA256Hasher",
]
# The tenant's password policy is enforced by identity.passwords; Django's own validators
# stay empty so that there is exactly one set of rules.
AUTH_PASSWORD_VALIDATORS: list[dict] = []
# Email uniqueness is case-insensitive (a UniqueConstraint on Lower("email")), which the
# check for a plain unique=True does not see.
SILENCED_SYSTEM_CHECKS = ["auth.W004"]

# --- Tokens --------------------------------------------------------------------------
# Each tenant signs with its own keys (identity.keys, identity.tokens); these settings only
# name the claims simplejwt's classes read and write.
SIMPLE_JWT = {
    "AUTH_HEADER_TYPES": ("Bearer",),
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "sub",
    "TOKEN_TYPE_CLAIM": "token_type",
    "JTI_CLAIM": "jti",
    "ALGORITHM": "RS256",
    "SIGNING_KEY": None,
    "UPDATE_LAST_LOGIN": False,
}
# Fernet keys (comma-separated, newest first) that encrypt the signing keys at rest.
# Generate one with: python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"
IDP_KEY_ENCRYPTION_KEYS = env_list("IDP_KEY_ENCRYPTION_KEYS", [])

# --- Internationalisation --------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` gathers the admin's and the API docs' files here (the image does
# it at build time); WhiteNoise serves them from the web process with far-future caching
# for the hashed names (production settings), so no separate file server or CDN is needed.
STATIC_ROOT = BASE_DIR / "staticfiles"
MEDIA_URL = "media/"
MEDIA_ROOT = BASE_DIR / "media"

# Requests larger than this are refused with 413 `payload_too_large` (pictures are 2 MB).
DATA_UPLOAD_MAX_MEMORY_SIZE = 3 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 3 * 1024 * 1024

# --- Security headers (docs/hardening.md) ---------------------------------------------------
# Django's SecurityMiddleware sends these on every response; production adds HSTS.
SECURE_CONTENT_TYPE_NOSNIFF = True
# Not no-referrer: browsers then send `Origin: null` on same-origin form posts, which fails
# the admin's CSRF check. The token-carrying pages narrow it further (identity templates).
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy per kind of response (core.middleware.SecurityHeadersMiddleware).
# `{nonce}` is replaced by a fresh value per response, exposed to templates as
# `request.csp_nonce` for the few inline <style> blocks of our own pages.
CSP_API = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
CSP_HTML = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Swagger UI and ReDoc (drf-spectacular with the sidecar, served from 'self'): scripts come
# only from files (Swagger's initialiser through SpectacularSwaggerSplitView), but both
# libraries set inline styles at run time and ReDoc renders in a blob: worker.
CSP_API_DOCS = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; worker-src 'self' blob:; form-action 'none'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
CSP_API_DOCS_PATHS = ("/api/docs/", "/api/redoc/")

# --- CORS (django-cors-headers, per tenant: core.cors) ----------------------------------------
# No global allowlist: core.cors allows an origin only if it is in the requesting tenant's
# policy `cors_origins`, only on a tenant host and only under CORS_TENANT_PATHS. The regex
# below matches no path, so the package enables CORS through that check alone.
CORS_URLS_REGEX = r"^$"
CORS_TENANT_PATHS = ("/api/v1/", "/.well-known/")
CORS_ALLOWED_ORIGINS: list[str] = []
# Bearer tokens in the Authorization header, never cookies: credentialed requests are not allowed.
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
CORS_ALLOW_HEADERS = ("accept", "authorization", "content-type", "x-request-id")
CORS_EXPOSE_HEADERS = ("X-Request-ID", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
CORS_PREFLIGHT_MAX_AGE = 600

# --- REST framework and OpenAPI --------------------------------------------------------------
REST_FRAMEWORK = {
    # Bearer tokens only: no cookie-authenticated API, so no CSRF surface.
    "DEFAULT_AUTHENTICATION_CLASSES": ["identity.authentication.TenantJWTAuthentication"],
    # Every view declares what each HTTP method requires (`required_permissions`); one that
    # forgets is a configuration error (rbac.checks, ImproperlyConfigured), not an open door.
    "DEFAULT_PERMISSION_CLASSES": ["rbac.permissions.MethodPermissions"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "core.problems.problem_exception_handler",
    # Documents every operation's problem responses beside its successes (core/openapi.py).
    "DEFAULT_SCHEMA_CLASS": "core.openapi.ProblemAutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Multi-tenant identity provider",
    "DESCRIPTION": "Tenants, identity, RBAC and device sessions for restaurant and retail groups.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Celery --------------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "memory://")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# The audit retention of the public schema (platform operators), which has no plan.
AUDIT_PLATFORM_RETENTION_DAYS = 365

CELERY_BEAT_SCHEDULE = {
    "sessions-cleanup": {"task": "sessions.cleanup", "schedule": 300.0},
    "notifications-outbox-resend": {"task": "notifications.outbox_resend", "schedule": 60.0},
    "audit-retention": {"task": "audit.retention", "schedule": 3600.0},
}
# An email that failed this many times is marked failed (and shown to admins).
NOTIFICATIONS_MAX_ATTEMPTS = env_int("NOTIFICATIONS_MAX_ATTEMPTS", 5)

# --- Email --------------------------------------------------------------------------
# Always SMTP outside `make run` (config/settings/dev.py): the console backend would write
# temporary passwords and reset links into the logs. Without EMAIL_HOST, a local MTA.
EMAIL_HOST = env_str("EMAIL_HOST", "") or "localhost"
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    # Django's SMTP backend refuses the pair only when it sends: every email would fail.
    raise ImproperlyConfigured("Set EMAIL_USE_TLS (STARTTLS, usually port 587) or EMAIL_USE_SSL (465), not both.")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "no-reply@localhost")
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"

# --- Logging: structured enough to grep, never a secret ---------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django logs every 4xx/5xx with the request; our problem handler logs what matters.
        "django.request": {"level": "ERROR"},
    },
}
