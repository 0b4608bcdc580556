"""Bar charts for the printable reports, drawn without a plotting library: :func:`layout`
turns a :class:`Chart` into shapes (rectangles, lines, text) in a box of the caller's size,
:func:`to_svg` writes them as inline SVG, and the PDF writer draws the same shapes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from html import escape
from typing import Literal

PALETTE = ("#2f6db5", "#d9822b", "#c23030", "#29a634", "#8f398f", "#7a7a7a")


@dataclass(frozen=True, slots=True)
class Series:
    """One named series of values, one per chart label (None: no bar)."""

    name: str
    values: list[float | None]
    color: str = PALETTE[0]


@dataclass(frozen=True, slots=True)
class Chart:
    """A bar chart: one group per label; several series are stacked or side by side."""

    title: str
    labels: list[str]
    series: list[Series]
    unit: str = ""
    stacked: bool = False
    y_max: float | None = None  # None: from the data


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    w: float
    h: float
    fill: str


@dataclass(frozen=True, slots=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str = "#bbbbbb"
    width: float = 0.6


@dataclass(frozen=True, slots=True)
class Text:
    x: float
    y: float  # baseline
    text: str
    size: float = 10.0
    anchor: Literal["start", "middle", "end"] = "start"
    fill: str = "#222222"
    bold: bool = False


Shape = Rect | Line | Text


@dataclass(slots=True)
class Drawing:
    """Shapes in a ``width`` x ``height`` box, y growing downwards."""

    width: float
    height: float
    shapes: list[Shape] = field(default_factory=list)


def nice_max(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``value`` (1 for 0)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power


def fmt_number(value: float) -> str:
    """Compact axis labels: 1500 -> 1.5k, 2000000 -> 2M, 0.25 -> 0.25."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _totals(chart: Chart) -> list[float]:
    n = len(chart.labels)
    if chart.stacked:
        return [sum(s.values[i] or 0.0 for s in chart.series) for i in range(n)]
    return [max((s.values[i] or 0.0 for s in chart.series), default=0.0) for i in range(n)]


def layout(chart: Chart, width: float = 720.0, height: float = 240.0) -> Drawing:
    """The chart's shapes in a ``width`` x ``height`` box."""
    d = Drawing(width, height)
    left, right, top, bottom = 52.0, 12.0, 30.0, 34.0
    pw, ph = width - left - right, height - top - bottom
    d.shapes.append(Text(left, 16, chart.title, size=12, bold=True))
    top_value = max(_totals(chart), default=0.0)
    y_max = chart.y_max if chart.y_max is not None else 4 * nice_max(top_value / 4)
    if top_value > y_max:  # a percentage above 100 (more frames than expected)
        y_max = 4 * nice_max(top_value / 4)
    for k in range(5):
        v = y_max * k / 4
        y = top + ph - ph * k / 4
        d.shapes.append(Line(left, y, left + pw, y, stroke="#dddddd" if k else "#888888"))
        d.shapes.append(Text(left - 4, y + 3.5, fmt_number(v), size=9, anchor="end"))
    if chart.unit:
        d.shapes.append(Text(left - 4, top - 6, chart.unit, size=9, anchor="end", fill="#555555"))
    n = len(chart.labels)
    if n:
        group = pw / n
        bar = group * 0.72
        every = max(1, math.ceil(n / 16))
        for i, label in enumerate(chart.labels):
            x0 = left + group * i + (group - bar) / 2
            base = top + ph
            for j, s in enumerate(chart.series):
                value = s.values[i]
                if value is None or value <= 0:
                    continue
                h = ph * min(value, y_max) / y_max
                if chart.stacked:
                    d.shapes.append(Rect(x0, base - h, bar, h, s.color))
                    base -= h
                else:
                    w = bar / len(chart.series)
                    d.shapes.append(Rect(x0 + j * w, top + ph - h, w, h, s.color))
            if i % every == 0:
                d.shapes.append(
                    Text(left + group * (i + 0.5), top + ph + 13, label, size=8.5, anchor="middle")
                )
    if len(chart.series) > 1:
        # text widths are estimated (0.55 em per character): the legend sits at the right
        widths = [9 + 4 + 0.55 * 9 * len(s.name) + 14 for s in chart.series]
        x = width - right - sum(widths) + 14
        for s, w in zip(chart.series, widths, strict=True):
            d.shapes.append(Rect(x, 8, 9, 9, s.color))
            d.shapes.append(Text(x + 13, 16, s.name, size=9))
            x += w
    return d


def to_svg(chart: Chart, width: float = 720.0, height: float = 240.0) -> str:
    """The chart as an inline ``<svg>`` element."""
    d = layout(chart, width, height)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:g}" height="{height:g}" '
        f'viewBox="0 0 {width:g} {height:g}" role="img" aria-label="{escape(chart.title)}" '
        'font-family="Helvetica, Arial, sans-serif">'
    ]
    for s in d.shapes:
        if isinstance(s, Rect):
            parts.append(
                f'<rect x="{s.x:.2f}" y="{s.y:.2f}" width="{s.w:.2f}" height="{s.h:.2f}" '
                f'fill="{s.fill}"/>'
            )
        elif isinstance(s, Line):
            parts.append(
                f'<line x1="{s.x1:.2f}" y1="{s.y1:.2f}" x2="{s.x2:.2f}" y2="{s.y2:.2f}" '
                f'stroke="{s.stroke}" stroke-width="{s.width:g}"/>'
            )
        else:
            weight = ' font-weight="bold"' if s.bold else ""
            parts.append(
                f'<text x="{s.x:.2f}" y="{s.y:.2f}" font-size="{s.size:g}" '
                f'text-anchor="{s.anchor}" fill="{s.fill}"{weight}>{escape(s.text)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
