"""The benchmark's tenant URLconf (bench/bench_settings.py only): the production tenant
URLconf, plus /bench/whoami-no-session-check/, the very same whoami view authenticated
without the per-request session check. The production URLconfs never include this module
(tests/sessions/test_admin_sessions.py asserts the path resolves in neither)."""

from collections.abc import Sequence
from typing import Any

from django.core.cache import cache
from django.urls import path

from config.urls_tenant import handler400, handler403, handler404, handler500
from config.urls_tenant import urlpatterns as tenant_urlpatterns
from core.errors import ErrorCode, ProblemError
from identity.api.views import WhoAmIView
from identity.authentication import TenantJWTAuthentication

NO_SESSION_CHECK_PATH = "bench/whoami-no-session-check/"


class NoSessionCheckAuthentication(TenantJWTAuthentication):
    """TenantJWTAuthentication with only its session check left out: the token is read and
    verified, the user loaded (its cached row read in one round trip, as the check reads it
    beside the session state) and the account checked exactly as in production. The
    benchmark measures the difference between the two and nothing else."""

    def session_check(self, session_id: object, *, also_read: Sequence[str]) -> list[Any]:
        if not isinstance(session_id, str):
            raise ProblemError(ErrorCode.SESSION_ENDED)
        found = cache.get_many(list(also_read))  # the user's cached row, as the check reads it
        return [found.get(key) for key in also_read]


urlpatterns = [
    path(
        NO_SESSION_CHECK_PATH,
        WhoAmIView.as_view(authentication_classes=[NoSessionCheckAuthentication]),
        name="bench-whoami-no-session-check",
    ),
    *tenant_urlpatterns,
]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
