"""Server-side SVG charts for the reports: stacked columns, horizontal bars, a heatmap.

Why our own ~250 lines and not a charting library: the reports need exactly three shapes,
each with a ``<title>``/``<desc>`` for screen readers, every value written as text (a chart
must read on paper and without hovering), a ``viewBox`` and no pixel sizes (laptop and
phone), and every label escaped because tenant names and intents end up in an HTML page.
pygal, the one well-kept pure-Python option, loads its tooltips' JavaScript from a CDN by
default, styles through an embedded stylesheet and has no heatmap; turning all that off
and checking it stays off is more work than these functions.

Everything here is presentation: numbers come in ready-made, nothing is computed but
positions. Colours are greys and muted blue-greys of distinct lightness so they print.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

PALETTE = ("#243b4a", "#9db3c4", "#5f7f92", "#d0d9e0", "#6b6b6b", "#b0b0b0", "#1b1b1b", "#7f9aab")
FONT = 14
WIDTH = 640
LABEL_CHARS = 30  # longer names are cut on the chart (rows and CSV keep them)
EMPTY = "No tickets in this range"
Series = tuple[str, Sequence[float]]
Format = Callable[[float], str]


def number(value: float) -> str:
    """Whole numbers as they are, others with one decimal."""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"


def _fit(text: str, chars: int) -> str:
    """A label cut to ``chars`` with an ellipsis (the bar's tooltip keeps it whole)."""
    return text if len(text) <= chars else text[:chars - 1] + "…"


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: int = FONT, weight: str = "",
          fill: str = "#1b1b1b", rotate: float = 0) -> str:
    extra = f' font-weight="{weight}"' if weight else ""
    if rotate:
        extra += f' transform="rotate({rotate} {x:.1f} {y:.1f})"'
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{extra}>'
            f'{escape(text)}</text>')


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str) -> str:
    """A bar with its value as a native tooltip too (no script needed)."""
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" fill="{fill}" '
            f'stroke="#ffffff" stroke-width="0.75">'
            f'<title>{escape(tip)}</title></rect>')


def _ink(fill: str) -> str:
    """Black or white text, whichever reads on the fill."""
    r, g, b = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "#1b1b1b" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#ffffff"


def _svg(slug: str, title: str, desc: str, width: float, height: float, body: list[str]) -> str:
    ids = f"chart-{escape(slug)}"
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" role="img" '
            f'aria-labelledby="{ids}-title {ids}-desc" font-family="system-ui, sans-serif" '
            f'style="width:100%;height:auto;min-width:{width / 28:.0f}em">'
            f'<title id="{ids}-title">{escape(title)}</title><desc id="{ids}-desc">{escape(desc)}</desc>'
            f'<rect width="100%" height="100%" fill="#ffffff"/>'
            + _text(12, 24, title, size=FONT + 3, weight="bold") + "".join(body) + "</svg>")


def _empty(slug: str, title: str) -> str:
    return _svg(slug, title, EMPTY, WIDTH, 90, [_text(12, 60, EMPTY, fill="#555555")])


def _nice_max(value: float) -> float:
    """A round axis end at or above ``value`` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def _ticks(axis_max: float, *, whole: bool) -> list[float]:
    """Gridline values from 0 to ``axis_max`` in 5, 4, 2 or 1 equal steps; counts (``whole``) get
    whole-number steps only, so an axis of 5 tickets reads 0 1 2 3 4 5, not 0 1.2 2.5 3.8 5."""
    steps = next(n for n in (5, 4, 2, 1) if not whole or float(axis_max / n).is_integer())
    return [axis_max * k / steps for k in range(steps + 1)]


def _legend(series: Sequence[Series], y: float, width: float) -> tuple[list[str], float]:
    """Swatches and names in rows that fit ``width``; returns the parts and the height used."""
    parts, x = [], 12.0
    for i, (full, _values) in enumerate(series):
        name = _fit(full, LABEL_CHARS)
        span = 22 + 8 * len(name) + 18
        if x + span > width and x > 12:
            x, y = 12.0, y + 22
        parts.append(f'<rect x="{x:.1f}" y="{y - 12:.1f}" width="14" height="14" fill="{PALETTE[i % len(PALETTE)]}" '
                     f'stroke="#1b1b1b" stroke-width="0.5"/>')
        parts.append(_text(x + 20, y, name, size=FONT - 1))
        x += span
    return parts, (y + 10)


def stacked_columns(slug: str, title: str, categories: Sequence[str], series: Sequence[Series], *,
                    x_label: str, y_label: str, fmt: Format = number) -> str:
    """Vertical columns per category (periods, tenants), stacked by series, each part's value
    inside it where it fits and the column's total on top."""
    if not categories or not series:
        return _empty(slug, title)
    left, right = 64.0, 16.0
    slot = max(44.0, min(140.0, (WIDTH - left - right) / len(categories)))
    width = max(WIDTH, left + slot * len(categories) + right)
    parts, legend_bottom = _legend(series, 50, width)
    top = legend_bottom + 22
    plot_h = 260.0
    shown = [_fit(c, LABEL_CHARS) for c in categories]
    longest = max(len(c) for c in shown)
    rotate = longest * 8 > slot - 4
    label_h = (longest * 6 + 10) if rotate else 22
    height = top + plot_h + label_h + 34
    totals = [sum(values[i] for _name, values in series) for i in range(len(categories))]
    axis_max = _nice_max(max(totals))
    scale = plot_h / axis_max
    bottom = top + plot_h
    for value in _ticks(axis_max, whole=fmt is number and all(float(v).is_integer() for _n, vs in series
                                                               for v in vs)):  # gridlines and their values
        y = bottom - value * scale
        parts.append(f'<line x1="{left:.1f}" x2="{width - right:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="#d0d0d0" stroke-width="1"/>')
        parts.append(_text(left - 6, y + 5, fmt(value), anchor="end", size=FONT - 2, fill="#555555"))
    parts.append(_text(16, top + plot_h / 2, y_label, anchor="middle", size=FONT - 1, rotate=-90))
    bar_w = min(slot - 12, 72.0)
    for i, category in enumerate(categories):
        x = left + i * slot + (slot - bar_w) / 2
        base = bottom
        for j, (name, values) in enumerate(series):
            value = values[i]
            fill = PALETTE[j % len(PALETTE)]
            h = value * scale
            parts.append(_rect(x, base - h, bar_w, h, fill, f"{category}, {name}: {fmt(value)}"))
            if value and h >= FONT + 2:
                parts.append(_text(x + bar_w / 2, base - h / 2 + 5, fmt(value), anchor="middle", size=FONT - 2,
                                   fill=_ink(fill)))
            base -= h
        parts.append(_text(x + bar_w / 2, base - 4, fmt(totals[i]), anchor="middle", size=FONT - 2, weight="bold"))
        cx = left + i * slot + slot / 2
        if rotate:
            parts.append(_text(cx + 4, bottom + 14, shown[i], anchor="end", size=FONT - 2, rotate=-45))
        else:
            parts.append(_text(cx, bottom + 18, shown[i], anchor="middle", size=FONT - 2))
    parts.append(f'<line x1="{left:.1f}" x2="{width - right:.1f}" y1="{bottom:.1f}" y2="{bottom:.1f}" '
                 f'stroke="#1b1b1b" stroke-width="1"/>')
    parts.append(_text(left + (width - left - right) / 2, height - 10, x_label, anchor="middle", size=FONT - 1))
    desc = f"{title}: {len(categories)} {x_label.lower()} by {', '.join(name for name, _v in series)}"
    return _svg(slug, title, desc, width, height, parts)


def bars(slug: str, title: str, labels: Sequence[str], series: Sequence[Series], *, x_label: str,
         fmt: Format = number, notes: Sequence[str] = ()) -> str:
    """Horizontal bars, one row per label (long names fit), grouped when there are several series;
    ``notes`` are a line under each row's bars (say "3 of 12")."""
    if not labels or not series:
        return _empty(slug, title)
    label_w = 8.0 * max(len(_fit(label, LABEL_CHARS)) for label in labels) + 16
    width = WIDTH + max(0.0, label_w - 160)
    parts, legend_bottom = _legend(series, 50, width) if len(series) > 1 else ([], 40.0)
    top = legend_bottom + 16
    bar_h = 22.0
    note_h = 18.0 if notes else 0.0
    row_h = bar_h * len(series) + note_h + 14
    plot_w = width - label_w - 70
    height = top + row_h * len(labels) + 40
    axis_max = _nice_max(max(max(values) for _name, values in series))
    scale = plot_w / axis_max
    x0 = label_w
    for i, label in enumerate(labels):
        y0 = top + i * row_h + 6
        parts.append(_text(x0 - 8, y0 + bar_h * len(series) / 2 + 5, _fit(label, LABEL_CHARS), anchor="end",
                           size=FONT - 1))
        for j, (name, values) in enumerate(series):
            value = values[i]
            y = y0 + j * bar_h
            parts.append(_rect(x0, y, value * scale, bar_h - 3, PALETTE[j % len(PALETTE)],
                               f"{label}, {name}: {fmt(value)}"))
            parts.append(_text(x0 + value * scale + 6, y + bar_h - 8, fmt(value), size=FONT - 2))
        if notes and notes[i]:
            parts.append(_text(x0 + 2, y0 + bar_h * len(series) + note_h - 4, notes[i], size=FONT - 3,
                               fill="#555555"))
    bottom = top + row_h * len(labels)
    parts.append(f'<line x1="{x0:.1f}" x2="{x0:.1f}" y1="{top:.1f}" y2="{bottom:.1f}" stroke="#1b1b1b"/>')
    parts.append(_text(x0 + plot_w / 2, height - 12, x_label, anchor="middle", size=FONT - 1))
    desc = f"{title}: {len(labels)} rows" + (f", {', '.join(n for n, _v in series)}" if len(series) > 1 else "")
    return _svg(slug, title, desc, width, height, parts)


def heatmap(slug: str, title: str, rows: Sequence[str], cols: Sequence[str], values: Sequence[Sequence[float]],
            *, x_label: str) -> str:
    """A grid of counts (rows × columns) shaded by size, each cell with its number: many series over
    time without a legend of fifteen colours."""
    if not rows or not cols:
        return _empty(slug, title)
    label_w = 8.0 * max(len(_fit(r, LABEL_CHARS)) for r in rows) + 16
    cell_w, cell_h = 44.0, 26.0
    longest = max(len(c) for c in cols)
    head_h = longest * 6 + 16
    top = 44 + head_h
    width = max(WIDTH, label_w + cell_w * (len(cols) + 1) + 12)
    height = top + cell_h * len(rows) + 40
    peak = max((v for row in values for v in row), default=0) or 1
    parts = []
    for j, col in enumerate([*cols, "total"]):
        cx = label_w + j * cell_w + cell_w / 2
        parts.append(_text(cx + 4, top - 6, col, anchor="start", size=FONT - 2, rotate=-45,
                           weight="bold" if j == len(cols) else ""))
    for i, row in enumerate(rows):
        y = top + i * cell_h
        parts.append(_text(label_w - 8, y + cell_h / 2 + 5, _fit(row, LABEL_CHARS), anchor="end", size=FONT - 1))
        for j, value in enumerate(values[i]):
            shade = 255 - int(200 * value / peak)
            fill = f"#{shade:02x}{shade:02x}{min(255, shade + 10):02x}"
            x = label_w + j * cell_w
            parts.append(_rect(x, y, cell_w - 2, cell_h - 2, fill, f"{row}, {cols[j]}: {number(value)}"))
            if value:
                parts.append(_text(x + cell_w / 2 - 1, y + cell_h / 2 + 4, number(value), anchor="middle",
                                   size=FONT - 2, fill=_ink(fill)))
        parts.append(_text(label_w + len(cols) * cell_w + cell_w / 2, y + cell_h / 2 + 4, number(sum(values[i])),
                           anchor="middle", size=FONT - 2, weight="bold"))
    parts.append(_text(label_w + cell_w * len(cols) / 2, height - 12, x_label, anchor="middle", size=FONT - 1))
    desc = f"{title}: {len(rows)} rows over {len(cols)} columns, each cell a count"
    return _svg(slug, title, desc, width, height, parts)
