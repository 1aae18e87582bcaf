"""The audit API: /api/v1/audit/events/ and /api/v1/audit/login-attempts/ on tenant hosts.

Both need `audit.view`. Held tenant-wide (Admin, Auditor), the whole tenant is visible; held
at some branches only (a Manager at a branch), the rows about users of those branches:
events whose target is such a user, attempts recorded against such a user.

Lists are newest first with keyset (cursor) pagination. `?format=csv` or `Accept: text/csv`
answers the same rows, all of them, as a streamed CSV download: rows are read from a
server-side cursor in chunks and written as they are read, so memory stays flat whatever
the size. Errors stay problem JSON in both cases.
"""

from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from django.db import connection
from django.db.models import QuerySet
from django.http import HttpResponseBase
from django.utils import timezone
from django_tenants.utils import tenant_context
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, renderers, serializers
from rest_framework.request import Request

from core.csv_export import csv_streaming_response
from core.pagination import KeysetPagination
from identity import audit_selectors
from identity.api.audit_serializers import (
    AuditEventQuerySerializer,
    AuditEventSerializer,
    LoginAttemptQuerySerializer,
    LoginAttemptSerializer,
    query_validated,
)
from identity.models import User
from rbac.catalog import Perm
from rbac.permissions import HasPermission, MethodPermissions
from rbac.selectors import effective_permissions

# Rows fetched from the server-side cursor at a time while a CSV streams.
CSV_CHUNK_SIZE = 2000


class CSVRenderer(renderers.BaseRenderer):
    """Lets content negotiation accept `?format=csv` and `Accept: text/csv`; the views then
    answer a streamed download themselves, so this renderer never renders a body."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        raise NotImplementedError("CSV responses are streamed by the view")


def _rows_in_schema(
    tenant: Any, queryset: QuerySet[Any], columns: Sequence[str], row: Callable[[Any], list[Any]]
) -> Iterator[Any]:
    """The rows of `queryset`, read lazily in chunks. The download is read after the view has
    returned, so the request's tenant (taken when the view runs) is set again for as long as
    it streams."""
    with tenant_context(tenant):
        for values in queryset.values_list(*columns).iterator(chunk_size=CSV_CHUNK_SIZE):
            yield row(values)


class AuditListView(generics.GenericAPIView):
    permission_classes = [MethodPermissions]
    required_permissions = {"GET": HasPermission(Perm.AUDIT_VIEW, anywhere=True)}
    renderer_classes = [renderers.JSONRenderer, CSVRenderer]
    pagination_class = KeysetPagination
    query_serializer_class: type[serializers.Serializer]
    csv_columns: Sequence[str]
    csv_filename: str

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # Only GET streams CSV; anything else (OPTIONS' metadata) is answered in JSON.
        if request.method not in ("GET", "HEAD"):
            renderer = renderers.JSONRenderer()
            return renderer, renderer.media_type
        return super().perform_content_negotiation(request, force)

    def within_branches(self) -> frozenset[str] | None:
        """The branches where the caller holds audit.view; None when held tenant-wide."""
        scope = effective_permissions(cast(User, self.request.user).pk).scope(Perm.AUDIT_VIEW)
        return None if scope.everywhere else scope.branches

    def select(self, filters: dict[str, Any]) -> QuerySet[Any]:
        raise NotImplementedError

    def csv_row(self, values: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    def get(self, request: Request) -> HttpResponseBase:
        filters = query_validated(self.query_serializer_class, request.query_params)
        queryset = self.select(filters)
        if request.accepted_renderer.format == "csv":
            stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
            return csv_streaming_response(
                header=self.csv_columns,
                rows=_rows_in_schema(connection.tenant, queryset, self.csv_columns, self.csv_row),  # type: ignore[attr-defined]
                filename=f"{self.csv_filename}-{connection.schema_name}-{stamp}.csv",  # type: ignore[attr-defined]
            )
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


CSV_RESPONSE = OpenApiResponse(description="With `?format=csv` or `Accept: text/csv`: the rows as a CSV download.")
FORMAT = OpenApiParameter(
    "format",
    OpenApiTypes.STR,
    OpenApiParameter.QUERY,
    enum=["json", "csv"],
    description="`csv`: every matching row as a streamed CSV download (the page parameters do not apply).",
)
REFUSALS = {
    400: OpenApiResponse(description="invalid_request: an unknown or malformed parameter, or a bad cursor"),
    403: OpenApiResponse(description="permission_denied: audit.view is not held anywhere"),
}


class AuditEventListView(AuditListView):
    """The tenant's audit events, newest first."""

    serializer_class = AuditEventSerializer
    query_serializer_class = AuditEventQuerySerializer
    csv_filename = "audit-events"
    csv_columns = audit_selectors.AUDIT_EVENT_EXPORT_COLUMNS

    def select(self, filters: dict[str, Any]) -> QuerySet[Any]:
        return audit_selectors.audit_event_list(
            types=filters.pop("type", ()), **filters, within_branches=self.within_branches()
        )

    def csv_row(self, values: Sequence[Any]) -> list[Any]:
        return audit_selectors.audit_event_export_cells(values)

    @extend_schema(
        parameters=[AuditEventQuerySerializer, FORMAT],
        responses={
            (200, "application/json"): AuditEventSerializer(many=True),
            (200, "text/csv"): OpenApiTypes.STR,
            **REFUSALS,
        },
        tags=["audit"],
        description="Filters: `type`, `actor`, `target_type`, `target_id`, `ip`, `since`, `until`, `outcome`. "
        + CSV_RESPONSE.description,
    )
    def get(self, request: Request) -> HttpResponseBase:
        return super().get(request)


class LoginAttemptListView(AuditListView):
    """Every login attempt in the tenant, unknown emails included, newest first."""

    serializer_class = LoginAttemptSerializer
    query_serializer_class = LoginAttemptQuerySerializer
    csv_filename = "login-attempts"
    csv_columns = audit_selectors.LOGIN_ATTEMPT_EXPORT_COLUMNS

    def select(self, filters: dict[str, Any]) -> QuerySet[Any]:
        return audit_selectors.login_attempt_list(**filters, within_branches=self.within_branches())

    def csv_row(self, values: Sequence[Any]) -> list[Any]:
        return audit_selectors.login_attempt_export_cells(values)

    @extend_schema(
        parameters=[LoginAttemptQuerySerializer, FORMAT],
        responses={
            (200, "application/json"): LoginAttemptSerializer(many=True),
            (200, "text/csv"): OpenApiTypes.STR,
            **REFUSALS,
        },
        tags=["audit"],
        description="Filters: `email`, `user`, `success`, `ip`, `since`, `until`. " + CSV_RESPONSE.description,
    )
    def get(self, request: Request) -> HttpResponseBase:
        return super().get(request)
