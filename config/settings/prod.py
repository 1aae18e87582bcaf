"""Production: every secret and service comes from the environment; nothing is embedded."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import CACHES, DATABASES, IDP_KEY_ENCRYPTION_KEYS, SECRET_KEY, env_bool, env_int

DEBUG = False

if not DATABASES:
    raise ImproperlyConfigured("Set DATABASE_URL (postgres://user:password@host:5432/name).")
if not CACHES:
    raise ImproperlyConfigured("Set REDIS_URL (redis://host:6379/0).")
if not IDP_KEY_ENCRYPTION_KEYS:
    raise ImproperlyConfigured("Set IDP_KEY_ENCRYPTION_KEYS: Fernet keys that encrypt signing keys at rest.")
if SECRET_KEY.startswith("insecure-"):
    raise ImproperlyConfigured("Set SECRET_KEY to a long random value.")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("IDP_BEHIND_TLS_PROXY", True) else None
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

# Hashed, compressed copies made by collectstatic (at image build), served by WhiteNoise with
# far-future cache headers. Needs collectstatic to have run: a missing file fails loudly.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
