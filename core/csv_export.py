"""CSV downloads that stream: each row is written as it is produced, so an export of a year of
audit events never sits in memory. Used by the audit API and by the admin console."""

import csv
from collections.abc import Iterable, Iterator, Sequence

from django.http import StreamingHttpResponse

# A cell a spreadsheet would read as a formula (CSV injection, OWASP): an attacker controls
# user agents, names and emails that end up in an export opened by an administrator.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A file-like object whose write returns the line, for csv.writer to produce strings."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def csv_lines(*, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])


def csv_streaming_response(
    *, header: Sequence[str], rows: Iterable[Sequence[object]], filename: str
) -> StreamingHttpResponse:
    """A download of `rows` under `header`. Pass a lazy iterable (`queryset.iterator()`), not a
    list, to keep memory flat."""
    response = StreamingHttpResponse(csv_lines(header=header, rows=rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response
