"""Bar charts drawn on the server as SVG geometry: the templates turn these into inline
<svg> elements, so the dashboard needs no JavaScript and nothing from a CDN. Colours come
from classes in console/static/console/console.css (no inline styles: the console's CSP)."""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    label: str
    series: str  # the CSS class of its series
    value_x: float  # where its value is written
    value_y: float


@dataclass(frozen=True)
class AxisLabel:
    x: float
    y: float
    text: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    labels: list[AxisLabel]
    maximum: int


def _scale(value: int, maximum: int, length: float) -> float:
    return round(length * value / maximum, 1) if maximum else 0.0


def column_chart(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[int]]],
    *,
    width: int = 720,
    height: int = 220,
    label_height: int = 24,
) -> Chart:
    """Vertical bars: one group per category, one bar per series (name, values) in each."""
    maximum = max((value for _, values in series for value in values), default=0)
    plot_height = height - label_height
    group_width = width / max(len(categories), 1)
    bar_width = group_width * 0.8 / max(len(series), 1)
    bars, labels = [], []
    for index, category in enumerate(categories):
        left = index * group_width + group_width * 0.1
        for position, (name, values) in enumerate(series):
            bar_height = _scale(values[index], maximum, plot_height - 16)
            x = round(left + position * bar_width, 1)
            y = round(plot_height - bar_height, 1)
            bars.append(
                Bar(
                    x=x,
                    y=y,
                    width=round(bar_width - 1, 1),
                    height=bar_height,
                    value=values[index],
                    label=f"{category}: {values[index]} {name.replace('-', ' ')}",
                    series=name,
                    value_x=round(x + bar_width / 2, 1),
                    value_y=y - 3,
                )
            )
        labels.append(AxisLabel(x=round(left + group_width * 0.4, 1), y=height - 6, text=category))
    return Chart(width=width, height=height, bars=bars, labels=labels, maximum=maximum)


def row_chart(
    items: Sequence[tuple[str, int]], *, series: str, width: int = 480, row_height: int = 24, label_width: int = 150
) -> Chart:
    """Horizontal bars, one row per (label, value), longest for the largest value."""
    maximum = max((value for _, value in items), default=0)
    plot_width = width - label_width - 40
    bars, labels = [], []
    for index, (label, value) in enumerate(items):
        top = index * row_height
        bar_width = max(_scale(value, maximum, plot_width), 1.0)
        bars.append(
            Bar(
                x=label_width,
                y=top + 4,
                width=bar_width,
                height=row_height - 8,
                value=value,
                label=f"{label}: {value}",
                series=series,
                value_x=label_width + bar_width + 4,
                value_y=top + row_height - 8,
            )
        )
        labels.append(AxisLabel(x=label_width - 6, y=top + row_height - 8, text=label))
    return Chart(width=width, height=max(len(items), 1) * row_height, bars=bars, labels=labels, maximum=maximum)
