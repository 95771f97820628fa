"""Server-side SVG charts for the console, with no Django state and no JavaScript.

Hand-written rather than a charting library because the console needs two
chart shapes (stacked bars over days, plain bars over hours), wants them to
render with JavaScript off and with nothing fetched from elsewhere, and about
a hundred lines cover that. Colours come from CSS classes (``series-0``...),
so the page's stylesheet themes them; each bar carries a ``<title>`` that the
browser shows as a tooltip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Series beyond this many are summed into "other", so colours stay telling.
MAX_SERIES = 6
OTHER = "other"

WIDTH = 720
HEIGHT = 220
MARGIN_LEFT = 56
MARGIN_BOTTOM = 24
MARGIN_TOP = 8


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]


def limit_series(series: Sequence[Series], *, keep: int = MAX_SERIES) -> list[Series]:
    """The ``keep - 1`` largest series by total, then the rest summed as "other" (if any)."""
    ranked = sorted(series, key=lambda s: (-sum(s.values), s.name))
    if len(ranked) <= keep:
        return ranked
    head, tail = ranked[: keep - 1], ranked[keep - 1 :]
    length = len(tail[0].values)
    return [*head, Series(OTHER, [sum(s.values[i] for s in tail) for i in range(length)])]


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above ``value``, so axis labels read well."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1
    # value < 10 * magnitude by construction, so the last step always fits.
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def format_count(value: float) -> str:
    """1234 → "1.2k", 2000000 → "2M": short labels for axes."""
    for limit, suffix in ((1_000_000_000, "G"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= limit:
            text = f"{value / limit:.1f}".rstrip("0").rstrip(".")
            return f"{text}{suffix}"
    return f"{value:g}"


def stacked_bars(labels: Sequence[str], series: Sequence[Series], *, title: str, unit: str = "tokens") -> str:
    """An SVG of one stacked bar per label; ``series`` values align with ``labels``.

    Returns markup with every text escaped, ready to be marked safe.
    """
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(labels)} labels")
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    top = nice_ceiling(max(totals, default=0))
    plot_w, plot_h = WIDTH - MARGIN_LEFT, HEIGHT - MARGIN_BOTTOM - MARGIN_TOP
    slot = plot_w / max(len(labels), 1)
    bar_w = max(slot * 0.8, 1)
    parts = [_open(title), *_axis(top, plot_h)]
    for i, label in enumerate(labels):
        x = MARGIN_LEFT + i * slot + (slot - bar_w) / 2
        y: float = MARGIN_TOP + plot_h
        for index, s in enumerate(series):
            value = s.values[i]
            if not value:
                continue
            height = value / top * plot_h
            y -= height
            tip = f"{label} · {s.name}: {value:,} {unit}"
            parts.append(
                f'<rect class="bar series-{index}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{height:.1f}"><title>{escape(tip)}</title></rect>'
            )
    parts.extend(_x_labels(labels, slot))
    parts.append("</svg>")
    return "".join(parts)


def bars(labels: Sequence[str], values: Sequence[int], *, title: str, unit: str = "requests") -> str:
    """An SVG of one plain bar per label."""
    return stacked_bars(labels, [Series(unit, values)], title=title, unit=unit)


def _open(title: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    )


def _axis(top: float, plot_h: float) -> list[str]:
    parts = []
    for fraction in (0, 0.5, 1):
        y = MARGIN_TOP + plot_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{MARGIN_LEFT}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="axis" x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(format_count(top * fraction))}</text>"
        )
    return parts


def _x_labels(labels: Sequence[str], slot: float) -> list[str]:
    # Show about eight labels whatever the count, so they never overlap.
    every = max(1, round(len(labels) / 8))
    y = HEIGHT - 6
    return [
        f'<text class="axis" x="{MARGIN_LEFT + i * slot + slot / 2:.1f}" y="{y}" text-anchor="middle">'
        f"{escape(label)}</text>"
        for i, label in enumerate(labels)
        if i % every == 0
    ]
