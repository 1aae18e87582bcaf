import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.context import RequestContext, client_ip, request_context
from core.errors import ErrorCode
from core.problems import problem_response
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


class BodySizeLimitMiddleware:
    """Refuses bodies over DATA_UPLOAD_MAX_MEMORY_SIZE with 413 before anything reads them.

    Django checks the limit only when `request.body` is read; DRF's parsers read the stream,
    so without this a JSON body of any size would be accepted.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
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
