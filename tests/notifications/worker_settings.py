"""Settings of the Celery workers that the notification tests start (tests/notifications/workers.py).

The test settings, as a deployed worker would run them: tasks go to the broker (the test
run's Redis, from REDIS_URL) and email to the SMTP server in EMAIL_HOST / EMAIL_PORT (an
aiosmtpd server on loopback). The database is the test run's, from DATABASE_URL.
"""

import os

from config.settings.test import *  # noqa: F403
from config.settings.test import REDIS_URL

# test.py takes the broker from REDIS_URL, which kombu cannot read when it is the embedded
# Redis's unix:// socket; the tests pass the redis+socket:// spelling.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False
EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
NOTIFICATIONS_MAX_ATTEMPTS = 3  # the tests walk a refused email to `failed` in three attempts
