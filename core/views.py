"""Health probes and Django's error handlers, all answering in problem JSON."""

import logging
import sys
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from core.errors import ErrorCode
from core.problems import database_problem, problem_from_exception, problem_response
from rbac.permissions import MethodPermissions

logger = logging.getLogger("idp.health")


def _check_postgresql() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> str:
    if not settings.CACHES["default"]["BACKEND"].startswith("django_redis"):
        return "not_configured"
    from django_redis import get_redis_connection

    get_redis_connection("default").ping()
    return "ok"


def _check_broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "not_configured"
    from kombu import Connection

    with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


READINESS_CHECKS = {"postgresql": _check_postgresql, "redis": _check_redis, "broker": _check_broker}

_health_response = inline_serializer(
    "Health", fields={"status": serializers.CharField(), "checks": serializers.DictField(required=False)}
)


class LivenessView(APIView):
    """Answers while the process can serve requests; touches no dependency."""

    authentication_classes: list[Any] = []
    permission_classes = [MethodPermissions]
    required_permissions = {"GET": AllowAny()}

    @extend_schema(responses={200: _health_response}, tags=["health"])
    def get(self, request: Request) -> JsonResponse:
        return JsonResponse({"status": "ok"})


class ReadinessView(APIView):
    """Answers 200 when PostgreSQL, Redis and the broker answer; 503 names the failing ones."""

    authentication_classes: list[Any] = []
    permission_classes = [MethodPermissions]
    required_permissions = {"GET": AllowAny()}

    @extend_schema(responses={200: _health_response, 503: _health_response}, tags=["health"])
    def get(self, request: Request) -> JsonResponse:
        checks: dict[str, str] = {}
        for name, check in READINESS_CHECKS.items():
            try:
                checks[name] = check() or "ok"
            except Exception as exc:  # any failure of a dependency means "not ready"
                logger.warning("Readiness check %s failed: %s", name, exc.__class__.__name__)
                checks[name] = "unavailable"
        failing = [name for name, state in checks.items() if state == "unavailable"]
        if failing:
            return problem_response(
                ErrorCode.SERVICE_UNAVAILABLE,
                f"Not ready: {', '.join(failing)} unavailable.",
                extra={"checks": checks},
            )
        return JsonResponse({"status": "ok", "checks": checks})


class PingView(APIView):
    """A trivial JSON answer through the whole middleware chain of a tenant host: the
    reference the benchmarks compare every other endpoint with."""

    authentication_classes: list[Any] = []
    permission_classes = [MethodPermissions]
    required_permissions = {"GET": AllowAny()}

    @extend_schema(responses={200: inline_serializer("Ping", fields={"ok": serializers.BooleanField()})})
    def get(self, request: Request) -> JsonResponse:
        return JsonResponse({"ok": True})


# --- Django's own error handlers (non-DRF views: admin, unmatched URLs, middleware) ---------


def bad_request(request: HttpRequest, exception: Exception) -> JsonResponse:
    return problem_from_exception(exception) or problem_response(ErrorCode.INVALID_REQUEST)


def permission_denied(request: HttpRequest, exception: Exception) -> JsonResponse:
    return problem_response(ErrorCode.PERMISSION_DENIED)


def page_not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    return problem_response(ErrorCode.NOT_FOUND, "No such endpoint or object.")


@csrf_exempt  # a 404 changes nothing; without this a POST to an unknown path got CSRF's 403 HTML page
def api_path_not_found(request: HttpRequest, *args: object, **kwargs: object) -> JsonResponse:
    return page_not_found(request, Http404())


def server_error(request: HttpRequest) -> JsonResponse:
    # Django calls this inside its `except` block, so the exception is at hand. A database
    # error met outside DRF (the tenant lookup in TenantMiddleware) is a 503, not a 500.
    return database_problem(sys.exc_info()[1]) or problem_response(
        ErrorCode.SERVER_ERROR, "An unexpected error occurred."
    )
