"""Charts as inline SVG, drawn here from numbers: no JavaScript, nothing fetched.

Why inline SVG rather than a JS chart library or image files: the site must work offline and from any
static host, so nothing may come from a CDN; inline SVG keeps each mark's hover text (`<title>`: the
exact figure, the reason a cell did not run), takes the page's text colour in light and dark themes
(`currentColor`), and is part of the page's DOM, so the browser tests can count bars and dots.

Every chart function takes plain values (labels already chosen, numbers in ms) and returns one <svg>
element as a string, with every label and title escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from arena.site.html import esc

# Tableau 10: distinguishable, readable on white and on Material's dark slate.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac")
CATEGORY_COLORS = {"runs": "#59a14f", "unverified": "#bab0ac", "failed": "#e15759", "unsupported": "#edc948", "unavailable": "#4e79a7", "not run here": "#9c755f"}
WIDTH = 760
LABEL_W = 190  # left margin for row labels
FONT = 'font-family="inherit" font-size="12"'


def palette(names: Sequence[str]) -> dict[str, str]:
    """A colour per name, stable for a given set of names (so a framework has one colour site-wide)."""
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(sorted(set(names)))}


@dataclass(frozen=True)
class Bar:
    label: str
    value_ms: float
    color: str
    title: str


@dataclass(frozen=True)
class Point:
    label: str
    x: float
    y: float
    color: str
    title: str
    failed: bool = False


@dataclass(frozen=True)
class Square:
    color: str
    title: str


# ---- scales ---------------------------------------------------------------------------------------


def log_scale(lo: float, hi: float, start: float, end: float) -> tuple[Callable[[float], float], list[float]]:
    """Map [lo, hi] onto [start, end] logarithmically, with ticks at 1-2-5 steps between whole decades."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    b = max(b, a + 1)
    span = b - a

    def x(v: float) -> float:
        return start + (math.log10(v) - a) / span * (end - start)

    steps = (1,) if span > 3 else (1, 2, 5)
    ticks = [m * 10.0**e for e in range(a, b + 1) for m in steps if m * 10.0**e <= 10.0**b]
    return x, ticks


def linear_scale(hi: float, start: float, end: float) -> tuple[Callable[[float], float], list[float]]:
    """Map [0, hi] onto [start, end] with about five round ticks."""
    raw = hi / 5
    step = next(m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10) if m * 10 ** math.floor(math.log10(raw)) >= raw)
    top = math.ceil(hi / step) * step
    return (lambda v: start + v / top * (end - start)), [i * step for i in range(int(round(top / step)) + 1)]


def wide_range(values: Sequence[float]) -> bool:
    """Log scale when the largest value is over 30x the smallest: otherwise the small bars vanish."""
    return max(values) / min(values) > 30


def time_tick(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:g} s"
    return f"{ms:g} ms" if ms >= 1 else f"{ms * 1000:g} µs"


# ---- building blocks ------------------------------------------------------------------------------


def svg(height: float, body: list[str], label: str) -> str:
    return (
        f'<svg class="arena-chart" viewBox="0 0 {WIDTH} {height:.0f}" role="img" aria-label="{esc(label)}" '
        f'xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def text(x: float, y: float, content: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="currentColor" {FONT} {extra}>{esc(content)}</text>'


def x_axis(scale: Callable[[float], float], ticks: list[float], top: float, bottom: float, fmt: Callable[[float], str]) -> list[str]:
    """Vertical grid lines with their labels under the plot."""
    parts = []
    for t in ticks:
        x = scale(t)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{bottom:.1f}" stroke="currentColor" stroke-opacity="0.15"/>')
        parts.append(text(x, bottom + 14, fmt(t), "middle"))
    return parts


def legend(items: Sequence[tuple[str, str]], y: float) -> tuple[list[str], float]:
    """Coloured swatches with names, wrapped over lines; returns the parts and the height used."""
    parts, x, line = [], LABEL_W, 0
    for name, color in items:
        width = 22 + 7 * len(name)
        if x + width > WIDTH:
            x, line = LABEL_W, line + 1
        parts.append(f'<rect x="{x}" y="{y + line * 18 - 9:.1f}" width="10" height="10" fill="{color}"/>')
        parts.append(text(x + 14, y + line * 18, name))
        x += width
    return parts, (line + 1) * 18


# ---- charts ---------------------------------------------------------------------------------------


def grouped_bars(groups: Sequence[tuple[str, Sequence[Bar]]], label: str) -> str:
    """Horizontal bars of median times, one group per workload; a log axis where the range is wide."""
    values = [b.value_ms for _, bars in groups for b in bars]
    if not values:
        return ""
    bar_h, gap, head = 14, 3, 20
    plot_end = WIDTH - 70  # room for the value printed after the longest bar
    log = wide_range(values)
    scale, ticks = log_scale(min(values), max(values), LABEL_W, plot_end) if log else linear_scale(max(values), LABEL_W, plot_end)
    base = LABEL_W if not log else scale(ticks[0])
    body, y = [], 8.0
    for name, bars in groups:
        body.append(text(8, y + 12, name, extra='font-weight="bold"'))
        y += head
        for bar in bars:
            end = scale(bar.value_ms)
            body.append(text(LABEL_W - 8, y + bar_h - 3, bar.label, "end"))
            body.append(
                f'<rect class="arena-bar" x="{base:.1f}" y="{y:.1f}" width="{max(end - base, 1):.1f}" height="{bar_h}" '
                f'fill="{bar.color}"><title>{esc(bar.title)}</title></rect>'
            )
            body.append(text(end + 4, y + bar_h - 3, time_tick(round_sig(bar.value_ms))))
            y += bar_h + gap
        y += gap * 2
    body += x_axis(scale, ticks, 4, y, time_tick)
    body.append(text(WIDTH - 8, y + 30, "median time per call" + (" (log scale)" if log else ""), "end"))
    return svg(y + 38, body, label)


@dataclass(frozen=True)
class Roof:
    """A roofline: attainable GFLOP/s at an intensity x is min(peak, bandwidth * x)."""

    label: str
    peak: float  # GFLOP/s
    bandwidth: float  # GB/s

    def at(self, x: float) -> float:
        return min(self.peak, self.bandwidth * x)


def scatter(points: Sequence[Point], label: str, x_label: str, y_label: str, x_fmt: Callable[[float], str] = time_tick,
            y_fmt: Callable[[float], str] = lambda t: f"{t:.0e}", roofs: Sequence[Roof] = ()) -> str:
    """Log-log scatter (time against error; intensity against GFLOP/s under `roofs`), each point named;
    failed points drawn as crosses."""
    if not points:
        return ""
    left, right, top, height = 70, WIDTH - 140, 10, 260
    xs, ys = [p.x for p in points], [p.y for p in points]
    if roofs:  # the whole roof in view: from below the points' intensities to past each knee, up to the peaks
        xs += [r.peak / r.bandwidth * 2 for r in roofs] + [min(xs) / 2]
        ys += [r.peak * 1.2 for r in roofs]
    sx, xticks = log_scale(min(xs), max(xs), left, right)
    sy, yticks = log_scale(min(ys), max(ys), top + height, top)
    body = x_axis(sx, xticks, top, top + height, x_fmt)
    for t in yticks[:: max(1, len(yticks) // 6)]:
        y = sy(t)
        body.append(f'<line x1="{left}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor" stroke-opacity="0.15"/>')
        body.append(text(left - 6, y + 4, y_fmt(t), "end"))
    for roof in roofs:
        body.append(roof_line(roof, sx, sy, min(xs), max(xs), min(ys)))
    placed: list[tuple[float, float, float]] = []
    for p in sorted(points, key=lambda p: -p.y):
        x, y = sx(p.x), sy(p.y)
        mark = (
            f'<path d="M{x - 6:.1f},{y - 6:.1f}L{x + 6:.1f},{y + 6:.1f}M{x - 6:.1f},{y + 6:.1f}L{x + 6:.1f},{y - 6:.1f}" stroke="{p.color}" stroke-width="3"/>'
            if p.failed else f'<circle cx="{x:.1f}" cy="{y:.1f}" r="6" fill="{p.color}"/>'
        )
        body.append(f'<g class="arena-point">{mark}<title>{esc(p.title)}</title></g>')
        body.append(text(x + 9, free_line(placed, x + 9, y + 4, 7 * len(p.label)), p.label))
    body.append(text((left + right) / 2, top + height + 32, x_label, "middle"))
    body.append(text(12, top + height / 2, y_label, "middle", f'transform="rotate(-90 12 {top + height / 2:.0f})"'))
    return svg(top + height + 42, body, label)


def roof_line(roof: Roof, sx: Callable[[float], float], sy: Callable[[float], float], x_lo: float, x_hi: float, y_lo: float) -> str:
    """The roof as a path: the bandwidth slope (from where it enters the plot) to the knee, then the peak."""
    start = max(x_lo, y_lo / roof.bandwidth)
    knee = roof.peak / roof.bandwidth
    corners = [(x, roof.at(x)) for x in (start, knee, x_hi) if start <= x <= x_hi]
    path = "M" + "L".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in corners)
    return (f'<g class="arena-roof"><path d="{path}" fill="none" stroke="currentColor" stroke-width="2" stroke-dasharray="6 4" stroke-opacity="0.6"/>'
            f"<title>{esc(roof.label)}</title></g>" + text(sx(corners[-1][0]) + 6, sy(roof.peak) + 4, f"{roof.peak:,.0f} GFLOP/s"))


def dot_rows(rows: Sequence[tuple[str, Sequence[Point]]], series: Sequence[tuple[str, str]], label: str, x_label: str) -> str:
    """One row per name, dots on a shared log axis (ratios ≥ 1), coloured by series, with a legend."""
    xs = [p.x for _, points in rows for p in points]
    if not xs:
        return ""
    row_h, top = 22, 10
    scale, ticks = log_scale(1.0, max(max(xs), 2.0), LABEL_W, WIDTH - 20)
    bottom = top + row_h * len(rows)
    body = x_axis(scale, ticks, top, bottom, lambda t: f"{t:g}×")
    for i, (name, points) in enumerate(rows):
        y = top + row_h * i + row_h / 2
        body.append(text(LABEL_W - 8, y + 4, name, "end"))
        body.append(f'<line x1="{LABEL_W}" x2="{WIDTH - 20}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor" stroke-opacity="0.1"/>')
        for p in points:
            body.append(f'<circle class="arena-point" cx="{scale(p.x):.1f}" cy="{y:.1f}" r="6" fill="{p.color}" fill-opacity="0.85"><title>{esc(p.title)}</title></circle>')
    body.append(text(WIDTH - 20, bottom + 30, x_label, "end"))
    keys, used = legend(series, bottom + 52)
    return svg(bottom + 44 + used, body + keys, label)


def square_matrix(rows: Sequence[str], columns: Sequence[str], cells: dict[tuple[str, str], Sequence[Square]], notes: dict[tuple[str, str], str], label: str) -> str:
    """Rows x columns; each cell a strip of squares (one per model) coloured by what happened, with a note."""
    size, pad, row_h = 16, 3, 30
    col_w = min(260, (WIDTH - LABEL_W) / max(len(columns), 1))
    top = 26
    body = [text(LABEL_W + col_w * j + 4, 16, c, extra='font-weight="bold"') for j, c in enumerate(columns)]
    for i, row in enumerate(rows):
        y = top + row_h * i
        body.append(text(LABEL_W - 8, y + size - 3, row, "end"))
        for j, column in enumerate(columns):
            x = LABEL_W + col_w * j + 4
            squares = cells.get((row, column), ())
            for k, sq in enumerate(squares):
                body.append(f'<rect class="arena-square" x="{x + k * (size + pad):.1f}" y="{y:.1f}" width="{size}" height="{size}" rx="2" fill="{sq.color}"><title>{esc(sq.title)}</title></rect>')
            if (row, column) in notes:
                body.append(text(x + len(squares) * (size + pad) + 4, y + size - 3, notes[(row, column)], extra='fill-opacity="0.8"'))
    keys, used = legend([(name, color) for name, color in CATEGORY_COLORS.items()], top + row_h * len(rows) + 10)
    return svg(top + row_h * len(rows) + used + 6, body + keys, label)


def free_line(placed: list[tuple[float, float, float]], x: float, y: float, width: float) -> float:
    """The first baseline at or below y where a label [x, x + width] overlaps none placed so far; records it."""
    while any(abs(y - py) < 13 and x < x1 and x + width > x0 for x0, x1, py in placed):
        y += 13
    placed.append((x, x + width, y))
    return y


def round_sig(v: float, digits: int = 3) -> float:
    return float(f"{v:.{digits}g}")
