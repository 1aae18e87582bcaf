"""RFC 9457 problem details: one shape for every error the service returns."""

import logging
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.views import set_rollback

from core.db import is_query_timeout
from core.errors import ERROR_CATALOG, ErrorCode, ProblemError

logger = logging.getLogger("idp.errors")

PROBLEM_CONTENT_TYPE = "application/problem+json"
WWW_AUTHENTICATE = 'Bearer realm="idp"'
# How long a client should wait before trying again when the database cannot be reached
# (a restart or a failover takes seconds).
DATABASE_RETRY_AFTER_SECONDS = 5


def problem_type(code: ErrorCode) -> str:
    # A stable, non-dereferenceable identifier; docs/errors.md describes every code.
    return f"urn:idp:error:{code.value}"


def problem_response(
    code: ErrorCode,
    detail: str | None = None,
    *,
    status: int | None = None,
    errors: Mapping[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JsonResponse:
    default_status, title, user_message = ERROR_CATALOG[code]
    status = status or default_status
    body: dict[str, Any] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail or title,
        "code": code.value,
        "user_message": user_message,
    }
    if errors:
        body["errors"] = dict(errors)
    if extra:
        body.update(extra)
    response = JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    if status == 401 and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = WWW_AUTHENTICATE
    return response


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into `{"policy.lockout.threshold": ["..."]}`."""
    flat: dict[str, list[str]] = {}
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_errors(value, path))
    elif isinstance(detail, list) and any(isinstance(item, (Mapping, list)) for item in detail):
        for index, value in enumerate(detail):
            if value:
                flat.update(flatten_errors(value, f"{prefix}.{index}" if prefix else str(index)))
    elif isinstance(detail, list):
        flat[prefix or "non_field_errors"] = [str(item) for item in detail]
    else:
        flat[prefix or "non_field_errors"] = [str(detail)]
    return flat


def problem_from_exception(exc: BaseException) -> JsonResponse | None:
    """Map a known exception to a problem response; None for the unexpected ones."""
    if isinstance(exc, ProblemError):
        return problem_response(
            exc.code, exc.detail, status=exc.status, errors=exc.errors, headers=exc.headers, extra=exc.extra
        )
    if isinstance(exc, drf.ValidationError):
        return problem_response(
            ErrorCode.INVALID_REQUEST, "The request has invalid fields.", errors=flatten_errors(exc.detail)
        )
    if isinstance(exc, RequestDataTooBig):
        return problem_response(ErrorCode.PAYLOAD_TOO_LARGE, "The request body is too large.")
    if isinstance(exc, drf.ParseError):
        return problem_response(ErrorCode.INVALID_REQUEST, str(exc.detail))
    if isinstance(exc, drf.NotAuthenticated):
        return problem_response(ErrorCode.NOT_AUTHENTICATED, str(exc.detail))
    if isinstance(exc, drf.AuthenticationFailed):
        code = getattr(exc, "problem_code", ErrorCode.INVALID_TOKEN)
        return problem_response(code, str(exc.detail))
    if isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        detail = str(exc.detail) if isinstance(exc, drf.PermissionDenied) else None
        return problem_response(ErrorCode.PERMISSION_DENIED, detail)
    if isinstance(exc, (drf.NotFound, Http404)):
        return problem_response(ErrorCode.NOT_FOUND)
    if isinstance(exc, drf.MethodNotAllowed):
        return problem_response(ErrorCode.METHOD_NOT_ALLOWED, str(exc.detail))
    if isinstance(exc, drf.NotAcceptable):
        return problem_response(ErrorCode.NOT_ACCEPTABLE, str(exc.detail))
    if isinstance(exc, drf.UnsupportedMediaType):
        return problem_response(ErrorCode.UNSUPPORTED_MEDIA_TYPE, str(exc.detail))
    if isinstance(exc, drf.Throttled):
        wait = getattr(exc, "wait", None)
        headers = {"Retry-After": str(max(1, int(wait)))} if wait is not None else {}
        return problem_response(ErrorCode.THROTTLED, str(exc.detail), headers=headers)
    if isinstance(exc, SuspiciousOperation):
        return problem_response(ErrorCode.INVALID_REQUEST, "The request could not be accepted.")
    return database_problem(exc)


def database_problem(exc: BaseException | None) -> JsonResponse | None:
    """A database error as a problem: a cancelled statement is 503 query_timeout (checked
    first: it is an OperationalError too), a lost or refused connection 503
    service_unavailable; None for anything else."""
    if exc is None:
        return None
    if is_query_timeout(exc):
        return query_timeout_response()
    if isinstance(exc, (OperationalError, InterfaceError)):
        return database_unavailable(exc)
    return None


def query_timeout_response() -> JsonResponse:
    # Logged without the statement: its parameters may hold personal data.
    logger.warning("A database statement ran past its statement_timeout and was cancelled.")
    return problem_response(ErrorCode.QUERY_TIMEOUT, "A database query took too long and was cancelled.")


def database_unavailable(exc: BaseException) -> JsonResponse:
    """PostgreSQL cannot be reached (down, restarting, failing over) or dropped the
    connection: the client may retry, so 503 with Retry-After rather than a 500. Whatever the
    request was doing rolled back with the connection; nothing was half done."""
    logger.error("Database unavailable: %s", exc.__class__.__name__)
    return problem_response(
        ErrorCode.SERVICE_UNAVAILABLE,
        "The database is unavailable. Try again shortly.",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
    )


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> JsonResponse:
    """DRF's EXCEPTION_HANDLER: every error becomes problem JSON; nothing internal leaks."""
    response = problem_from_exception(exc)
    if response is None:
        logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
        response = problem_response(ErrorCode.SERVER_ERROR, "An unexpected error occurred.")
    set_rollback()
    return response
