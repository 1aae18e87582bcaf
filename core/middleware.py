import re
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase

from core.context import RequestContext, client_ip, request_context
from core.db import is_query_timeout, statement_timeout_reset, statement_timeout_set
from core.errors import ErrorCode
from core.problems import problem_response, query_timeout_response
from core.ratelimit import ratelimit_headers

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestContextMiddleware:
    """Gives every request an id (the caller's X-Request-ID if sane) and its client address,
    for logs and audit rows."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        ip = client_ip(request)
        request.request_id = request_id  # type: ignore[attr-defined]
        request.client_ip = ip  # type: ignore[attr-defined]
        context = RequestContext(request_id=request_id, ip=ip, user_agent=request.headers.get("User-Agent", "")[:512])
        token = request_context.set(context)
        try:
            response = self.get_response(request)
        finally:
            request_context.reset(token)
        response["X-Request-ID"] = request_id
        return response


class SecurityHeadersMiddleware:
    """Content-Security-Policy on every response: the strict API policy for everything that
    is not HTML, the docs policy for Swagger UI and ReDoc, the page policy (own files, plus
    inline <style> blocks carrying this response's nonce) for the admin and our pages.

    The other headers (nosniff, Referrer-Policy, COOP, HSTS, X-Frame-Options) come from
    Django's SecurityMiddleware and XFrameOptionsMiddleware, configured in settings.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy_for(request, response).replace("{nonce}", nonce)
        return response

    @staticmethod
    def policy_for(request: HttpRequest, response: HttpResponse) -> str:
        if not response.get("Content-Type", "").startswith("text/html"):
            return settings.CSP_API
        if request.path_info.startswith(settings.CSP_API_DOCS_PATHS):
            return settings.CSP_API_DOCS
        return settings.CSP_HTML


class StatementTimeoutMiddleware:
    """Raises PostgreSQL's statement timeout to DB_LONG_STATEMENT_TIMEOUT_MS for long
    operations and answers 503 `query_timeout` when a statement was cancelled.

    Long operations are the views named in DB_LONG_RUNNING_VIEWS (for their whole request)
    and streaming responses (CSV exports), whose queries run while the body streams, after
    the view has returned. The default comes back when the response is closed.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        raised = getattr(request, "statement_timeout_raised", False)
        if response.streaming and not raised:
            statement_timeout_set(settings.DB_LONG_STATEMENT_TIMEOUT_MS)
            raised = True
        if raised:
            # Run by response.close(), which the WSGI server calls after the last byte
            # (before Django's request_finished handlers may close the connection).
            response._resource_closers.append(statement_timeout_reset)  # type: ignore[attr-defined]
        return response

    def process_view(self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any) -> None:
        match = request.resolver_match
        if match is not None and match.view_name in settings.DB_LONG_RUNNING_VIEWS:
            statement_timeout_set(settings.DB_LONG_STATEMENT_TIMEOUT_MS)
            request.statement_timeout_raised = True  # type: ignore[attr-defined]

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        # DRF views answer through problem_exception_handler; this covers the others (admin).
        return query_timeout_response() if is_query_timeout(exception) else None


class BodySizeLimitMiddleware:
    """Refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE with 413 before anything reads them.

    Django checks the limit only when `request.body` is read; DRF's parsers read the stream,
    so without this a JSON body of any size would be accepted.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Django reads at most Content-Length bytes of a body, so a chunked body (which has
        # none) would be read as empty, silently: refuse it instead.
        if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            return problem_response(
                ErrorCode.INVALID_REQUEST, "Send the body with a Content-Length, not chunked.", status=411
            )
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return problem_response(ErrorCode.INVALID_REQUEST, "Content-Length is not a number.")
        if length > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return problem_response(
                ErrorCode.PAYLOAD_TOO_LARGE, f"The body may be at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
            )
        return self.get_response(request)


class RateLimitHeadersMiddleware:
    """Adds RateLimit-* headers to responses of rate-limited endpoints."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        decision = getattr(request, "ratelimit", None)
        if decision is not None:
            for name, value in ratelimit_headers(decision).items():
                response.setdefault(name, value)
        return response
