"""Line charts as inline SVG, drawn on the server: no script, no library, no CDN.

    chart = line_chart(
        chart_id="activity",
        title="Reminders and recovered orders per day",
        description="...",              # what the chart shows, for screen readers
        labels=["2026-11-01", ...],     # one per point (the x axis)
        series=[Series("sent", "Reminders sent", (3, 0, 5), "#1d4ed8")],
        y_title="per day",
    )
    {{ chart }}                         # in a template: ``Markup``, every text escaped

The SVG is well-formed XML (``role="img"``, a ``<title>`` and a ``<desc>`` it is labelled
by); each series is a ``<g class="series" data-series="key">`` with one ``<polyline>`` and
one ``<circle>`` per point, each circle with its own ``<title>`` (the browser shows it on
hover, without script). Colours and fonts are attributes, not ``style``: the console's
Content-Security-Policy allows no inline styles. Values are whole numbers (counts, minor
units); ``value_label`` writes them on the y axis and in the points' titles. Readers
without images get the same numbers from the page's table, not from here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 720
HEIGHT = 260
#: room around the plot: the y labels (left), the legend (top), the x labels (bottom)
LEFT, RIGHT, TOP, BOTTOM = 78, 18, 34, 48
#: at most this many labels on the x axis (the others are left out, evenly)
MAX_X_LABELS = 8
#: intervals on the y axis, at most
MAX_Y_STEPS = 5
INK = "#18181b"
MUTED = "#71717a"
GRID = "#e4e4e7"
AXIS = "#a1a1aa"
FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif"


@dataclass(frozen=True)
class Series:
    """One line: ``key`` names it in the SVG (``data-series``), ``label`` in the legend."""

    key: str
    label: str
    values: tuple[int, ...]
    colour: str


def nice_ticks(largest: int) -> list[int]:
    """The y axis's ticks from 0: whole steps of 1, 2 or 5 times a power of ten, at most
    ``MAX_Y_STEPS`` of them, the last at or above ``largest``."""
    if largest <= 0:
        return [0, 1]
    raw = largest / MAX_Y_STEPS
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(1, int(step))
    count = math.ceil(largest / step)
    return [i * step for i in range(count + 1)]


def _num(value: float) -> str:
    """A coordinate, short (``12``, ``12.5``)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _label_every(count: int) -> int:
    return max(1, math.ceil(count / MAX_X_LABELS))


def line_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[Series],
    y_title: str,
    value_label: Callable[[int], str] = str,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """The chart as an ``<svg>`` element (see the module's doc)."""
    count = len(labels)
    for line in series:
        if len(line.values) != count:
            raise ValueError(f"series {line.key!r} has {len(line.values)} values, not {count}")
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    ticks = nice_ticks(max((v for line in series for v in line.values), default=0))
    top_value = ticks[-1]

    def x(i: int) -> float:
        return LEFT + (i * plot_w / (count - 1) if count > 1 else plot_w / 2)

    def y(value: int) -> float:
        return TOP + plot_h - (value / top_value) * plot_h

    ident = escape(chart_id)
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{ident}"'
        f' viewBox="0 0 {width} {height}" width="100%" role="img"'
        f' aria-labelledby="{ident}-title {ident}-desc" font-family="{escape(FONT)}"'
        f' font-size="11">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(description)}</desc>',
    ]
    # the y axis: grid lines and their values, and what they count
    out.append(f'<g class="y-axis" fill="{MUTED}" text-anchor="end">')
    for tick in ticks:
        at = _num(y(tick))
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{at}" y2="{at}" stroke="{GRID}"/>'
            f'<text x="{LEFT - 6}" y="{at}" dy="4">{escape(value_label(tick))}</text>'
        )
    middle = _num(TOP + plot_h / 2)
    out.append(
        f'<text x="12" y="{middle}" text-anchor="middle" transform="rotate(-90 12 {middle})">'
        f"{escape(y_title)}</text></g>"
    )
    # the x axis: its line, the days (some of them) and its title
    base = _num(TOP + plot_h)
    out.append(f'<g class="x-axis" fill="{MUTED}" text-anchor="middle">')
    out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{base}" y2="{base}" stroke="{AXIS}"/>')
    every = _label_every(count)
    label_y = _num(TOP + plot_h + 16)
    for i, label in enumerate(labels):
        if i % every == 0:
            out.append(f'<text x="{_num(x(i))}" y="{label_y}">{escape(label)}</text>')
    out.append(f'<text x="{_num(LEFT + plot_w / 2)}" y="{height - 6}">day (UTC)</text></g>')
    # the legend, above the plot
    out.append(f'<g class="legend" fill="{INK}">')
    at_x = LEFT
    for line in series:
        colour = escape(line.colour)
        out.append(
            f'<rect x="{at_x}" y="10" width="12" height="12" rx="2" fill="{colour}"/>'
            f'<text x="{at_x + 17}" y="20">{escape(line.label)}</text>'
        )
        at_x += 30 + 7 * len(line.label)
    out.append("</g>")
    # the lines, each point with its own title
    for line in series:
        colour = escape(line.colour)
        points = " ".join(f"{_num(x(i))},{_num(y(v))}" for i, v in enumerate(line.values))
        out.append(f'<g class="series" data-series="{escape(line.key)}" fill="{colour}">')
        out.append(
            f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"'
            ' stroke-linejoin="round"/>'
        )
        for i, value in enumerate(line.values):
            out.append(
                f'<circle cx="{_num(x(i))}" cy="{_num(y(value))}" r="3">'
                f"<title>{escape(labels[i])}: {escape(line.label)} {escape(value_label(value))}"
                "</title></circle>"
            )
        out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))
