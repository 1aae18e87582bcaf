import re
from base64 import urlsafe_b64decode, urlsafe_b64encode
from datetime import datetime
from typing import Any

from django.db.models import Q
from rest_framework import pagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from core.errors import invalid_request

_PAGE_SIZE = re.compile(r"[0-9]{1,9}")


class PageNumberPagination(pagination.PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request: Request) -> int:
        # DRF ignores a page_size it cannot read and answers the default page; a client that
        # asked for something else is told instead (400), as for any other bad parameter.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not _PAGE_SIZE.fullmatch(raw) or int(raw) < 1:
            raise invalid_request({self.page_size_query_param: ["Must be a whole number from 1."]})
        return min(int(raw), self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        for parameter in parameters:  # page 0 answers 404 and page_size 0 400: say so
            parameter["schema"]["minimum"] = 1
        return parameters


class KeysetPagination(pagination.BasePagination):
    """Cursor pagination for append-only logs, newest first: `?cursor=` is the (timestamp, id)
    of the last row of the previous page, so a page costs an index range scan however deep
    it is, and rows written meanwhile never shift or repeat a page. Forward only: `next` is
    the link to the following page, null on the last one. A cursor that does not decode is
    400 invalid_request, never a database error.

    The queryset's model needs `timestamp` and a unique, increasing `id`.
    """

    page_size = 50
    max_page_size = 200
    cursor_query_param = "cursor"
    page_size_query_param = "page_size"

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any]:
        self.request = request
        size = self._page_size(request)
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is not None:
            timestamp, last_id = self._decode(encoded)
            queryset = queryset.filter(Q(timestamp__lt=timestamp) | Q(timestamp=timestamp, id__lt=last_id))
        rows = list(queryset.order_by("-timestamp", "-id")[: size + 1])
        self.page = rows[:size]
        self.next_cursor = self._encode(self.page[-1]) if len(rows) > size else None
        return self.page

    def _page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not _PAGE_SIZE.fullmatch(raw) or not 1 <= int(raw) <= self.max_page_size:
            raise invalid_request({"page_size": [f"Use a whole number from 1 to {self.max_page_size}."]})
        return int(raw)

    @staticmethod
    def _encode(row: Any) -> str:
        return urlsafe_b64encode(f"{row.timestamp.isoformat()}|{row.id}".encode()).decode().rstrip("=")

    def _decode(self, encoded: str) -> tuple[datetime, int]:
        try:
            text = urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
            raw_timestamp, raw_id = text.split("|")
            timestamp = datetime.fromisoformat(raw_timestamp)
            last_id = int(raw_id)
        except (ValueError, UnicodeDecodeError) as exc:
            raise invalid_request({self.cursor_query_param: ["This cursor is not valid."]}) from exc
        if timestamp.tzinfo is None or not 0 < last_id < 2**63:
            raise invalid_request({self.cursor_query_param: ["This cursor is not valid."]})
        return timestamp, last_id

    def get_paginated_response(self, data: Any) -> Response:
        next_link = None
        if self.next_cursor is not None:
            url = self.request.build_absolute_uri()
            next_link = replace_query_param(url, self.cursor_query_param, self.next_cursor)
        return Response({"next": next_link, "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["next", "results"],
            "properties": {
                "next": {"type": "string", "nullable": True, "format": "uri"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "The `next` link's cursor: the page after it.",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Rows per page, 1 to {self.max_page_size} (default {self.page_size}).",
                "schema": {"type": "integer"},
            },
        ]
