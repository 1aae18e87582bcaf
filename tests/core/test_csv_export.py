from collections.abc import Iterator
from typing import cast

from core.csv_export import csv_lines, csv_streaming_response


def test_csv_lines_quote_separators_and_neutralise_formulas():
    lines = list(csv_lines(header=["a", "b"], rows=[["x,y", "=HYPERLINK()"], [None, "-1"], ["@me", "ok"]]))

    assert lines == ["a,b\r\n", '"x,y",\'=HYPERLINK()\r\n', ",'-1\r\n", "'@me,ok\r\n"]


def test_csv_streaming_response_streams_rows_as_they_are_produced():
    produced = []

    def rows():
        for number in range(3):
            produced.append(number)
            yield [number]

    response = csv_streaming_response(header=["n"], rows=rows(), filename="numbers.csv")

    assert produced == []  # nothing produced before the body is read
    chunks = iter(cast(Iterator[bytes], response.streaming_content))  # a sync response's stream
    assert next(chunks) == b"n\r\n"
    assert next(chunks) == b"0\r\n"
    assert produced == [0]
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="numbers.csv"'
