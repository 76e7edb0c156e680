"""Small charts drawn on the server as inline SVG: no JavaScript, no CDN, works offline.

Every text in a chart is escaped; numbers are formatted by this module. Each chart has a ``<title>`` and an
``aria-label`` for screen readers and an ``id`` so that browser tests can find it.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Drawn at about the size the page shows them (the full width of the content area), so that a 13-unit font
# is 13 px on screen.
WIDTH = 1000
HEIGHT = 240
PAD_LEFT = 48
PAD_RIGHT = 8
PAD_BOTTOM = 26
PAD_TOP = 30
FONT = 13
PLOT_WIDTH = WIDTH - PAD_LEFT - PAD_RIGHT
COLORS = {"ok": "#3a7d44", "failed": "#ba2121", "pending": "#417690", "scheduled": "#c9a227", "in_flight": "#8e44ad"}


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 1.0
    while step * 10 < value:
        step *= 10
    for factor in (1, 2, 5, 10):
        if value <= step * factor:
            return step * factor
    return step * 10


def _frame(chart_id: str, title: str, body: list[str], top: float, labels: Sequence[str]) -> SafeString:
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    parts = [
        f'<svg id="{escape(chart_id)}" class="tq-chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" font-family="sans-serif" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        y = PAD_TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line class="tq-grid" x1="{PAD_LEFT}" x2="{WIDTH - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#ddd"/>'
            f'<text x="{PAD_LEFT - 6}" y="{y + FONT / 3:.1f}" text-anchor="end" font-size="{FONT}" fill="#666">'
            f"{escape(_number(top * fraction))}</text>"
        )
    if labels:
        step = PLOT_WIDTH / len(labels)
        every = max(len(labels) // 12, 1)
        for index in range(0, len(labels), every):
            x = PAD_LEFT + step * index + step / 2
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="middle" font-size="{FONT}" fill="#666">'
                f"{escape(labels[index])}</text>"
            )
    parts.extend(body)
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every inserted text is escaped above


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _legend(names: Sequence[str]) -> list[str]:
    parts = []
    for index, name in enumerate(names):
        x = PAD_LEFT + index * 120
        parts.append(
            f'<rect x="{x}" y="6" width="12" height="12" fill="{COLORS.get(name, "#999")}"/>'
            f'<text x="{x + 17}" y="17" font-size="{FONT}" fill="#333">{escape(name.replace("_", " "))}</text>'
        )
    return parts


def stacked_bars(chart_id: str, title: str, labels: Sequence[str], series: dict[str, Sequence[int]]) -> SafeString:
    """Bars per label, the series stacked (``{"ok": [...], "failed": [...]}``)."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    top = _nice_max(max(totals, default=0))
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    step = PLOT_WIDTH / max(len(labels), 1)
    body = []
    for index, label in enumerate(labels):
        base = 0.0
        for name, values in series.items():
            value = values[index]
            if not value:
                continue
            height = plot_h * value / top
            y = PAD_TOP + plot_h - base - height
            body.append(
                f'<rect class="tq-bar tq-{escape(name)}" x="{PAD_LEFT + step * index + 1:.1f}" y="{y:.1f}" '
                f'width="{max(step - 2, 1):.1f}" height="{height:.1f}" fill="{COLORS.get(name, "#999")}">'
                f"<title>{escape(label)}: {value} {escape(name)}</title></rect>"
            )
            base += height
    return _frame(chart_id, title, body + _legend(list(series)), top, labels)


def lines(chart_id: str, title: str, labels: Sequence[str], series: dict[str, Sequence[int | None]]) -> SafeString:
    """One polyline per series; ``None`` values are gaps."""
    top = _nice_max(max((v for values in series.values() for v in values if v is not None), default=0))
    plot_h = HEIGHT - PAD_TOP - PAD_BOTTOM
    step = PLOT_WIDTH / max(len(labels), 1)
    body = []
    for name, values in series.items():
        run: list[str] = []
        segments = []
        for index, value in enumerate(values):
            if value is None:
                if run:
                    segments.append(run)
                run = []
                continue
            run.append(f"{PAD_LEFT + step * index + step / 2:.1f},{PAD_TOP + plot_h * (1 - value / top):.1f}")
        if run:
            segments.append(run)
        for points in segments:
            if len(points) == 1:
                x, y = points[0].split(",")
                body.append(f'<circle class="tq-point tq-{escape(name)}" cx="{x}" cy="{y}" r="3" '
                            f'fill="{COLORS.get(name, "#999")}"/>')
            else:
                body.append(
                    f'<polyline class="tq-line tq-{escape(name)}" fill="none" stroke-width="2.5" '
                    f'stroke="{COLORS.get(name, "#999")}" points="{" ".join(points)}"/>'
                )
    return _frame(chart_id, title, body + _legend(list(series)), top, labels)
