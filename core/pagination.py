import re
from typing import Any

from rest_framework import pagination
from rest_framework.request import Request

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
