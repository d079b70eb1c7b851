"""Data for the dashboard's revenue chart, drawn in the browser by Chart.js (vendored under
``workspace/static/workspace/vendor/``, served from our own static files: no CDN, nothing fetched from elsewhere).

The server only shapes the figures; ``workspace/static/workspace/dashboard-chart.js`` draws them. The same figures are
also rendered as a small table under the chart (totals per channel), so the page says what it shows without
JavaScript and when printed.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from integrations.currency import amount_at_precision

# Colour-blind-safe palette (Okabe–Ito).
COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def chart_data(
    days: list[date], series: list[tuple[str, dict[date, Decimal]]], *, unit: str
) -> dict[str, Any]:
    """One line per (label, {day: amount}); days without an amount count zero.

    Amounts travel as strings (JSON has no decimal type; the browser only draws them) and each line's total, at the
    currency's precision with thousands separators, for the table under the chart.
    """
    datasets = []
    for n, (label, points) in enumerate(series):
        datasets.append(
            {
                "label": label,
                "colour": COLOURS[n % len(COLOURS)],
                "swatch": n % len(COLOURS),  # the CSS class ws-swatch-N of the table under the chart
                "data": [str(amount_at_precision(points.get(day, Decimal(0)), unit)) for day in days],
                "total": f"{amount_at_precision(sum(points.values(), Decimal(0)), unit):,}",
            }
        )
    return {"unit": unit, "labels": [day.isoformat() for day in days], "datasets": datasets}


def chart_json(data: dict[str, Any]) -> dict[str, Any]:
    """What the browser gets (``json_script``): the chart without the Python-only totals."""
    return {
        "unit": data["unit"],
        "labels": data["labels"],
        "datasets": [{k: v for k, v in d.items() if k not in ("total", "swatch")} for d in data["datasets"]],
    }
