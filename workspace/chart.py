"""A line chart as inline SVG, drawn on the server: no JavaScript library, nothing fetched from elsewhere.

Chosen over a vendored charting library for a handful of lines per tenant (decision 0015): it prints, it works
without JavaScript, and there is no third-party asset to keep up to date.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

# Colour-blind-safe palette (Okabe–Ito).
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 760, 240, 70, 10, 10, 40


def line_chart(days: list[date], series: list[tuple[str, dict[date, Decimal]]], *, unit: str) -> SafeString:
    """One polyline per (label, {day: amount}); days without an amount count zero."""
    values = [v for _, points in series for v in points.values()] or [Decimal(0)]
    top = max(max(values), Decimal(0))
    bottom = min(min(values), Decimal(0))
    span = (top - bottom) or Decimal(1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(days) - 1, 1)

    def y(v: Decimal) -> float:
        return TOP + float((top - v) / span) * plot_h

    parts = [
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#ccc"/>',
            LEFT,
            y(Decimal(0)),
            WIDTH - RIGHT,
            y(Decimal(0)),
        ),
        format_html(
            '<text x="{}" y="{}" text-anchor="end" font-size="11">{} {}</text>',
            LEFT - 4,
            TOP + 10,
            f"{top:,}",
            unit,
        ),
        format_html(
            '<text x="{}" y="{}" text-anchor="end" font-size="11">{}</text>', LEFT - 4, y(Decimal(0)) + 4, "0"
        ),
    ]
    ticks = sorted({0, len(days) // 2, len(days) - 1}) if days else []
    for i in ticks:
        anchor = "start" if i == 0 else "end" if i == len(days) - 1 else "middle"
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="{}" font-size="11">{}</text>',
                LEFT + i * step,
                HEIGHT - BOTTOM + 16,
                anchor,
                days[i].isoformat(),
            )
        )
    legend = []
    for n, (label, points) in enumerate(series):
        colour = COLOURS[n % len(COLOURS)]
        coords = " ".join(
            f"{LEFT + i * step:.1f},{y(points.get(day, Decimal(0))):.1f}" for i, day in enumerate(days)
        )
        total = sum(points.values(), Decimal(0))
        parts.append(
            format_html(
                '<polyline fill="none" stroke="{}" stroke-width="2" points="{}"><title>{}: {} {}</title></polyline>',
                colour,
                coords,
                label,
                f"{total:,}",
                unit,
            )
        )
        legend.append((colour, label, f"{total:,}", unit))
    svg = format_html(
        '<svg class="workspace-chart" role="img" viewBox="0 0 {} {}" width="{}" height="{}" '
        'aria-label="Posted revenue per channel per day">{}</svg>',
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        mark_safe("".join(parts)),  # noqa: S308 - every part was built with format_html
    )
    keys = format_html_join(
        " ",
        '<span class="workspace-legend"><span style="background:{}"></span>{}: {} {}</span>',
        legend,
    )
    return format_html("{}<div>{}</div>", svg, keys)
