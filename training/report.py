"""report.html, saved with each model version: the metrics and the plots that explain them.

Plots are inline SVG drawn here (no plotting library, no scripts): calibration and lift by
decile for the offer-response and churn models, the open curves over the local hours per
channel, and the open rate by messages already received that week.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

WIDTH, HEIGHT, MARGIN = 420, 260, 40
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")

Series = Sequence[tuple[float, float]]


def line_chart(title: str, series: Mapping[str, Series], x_label: str, y_label: str,
               diagonal: bool = False) -> str:
    """An SVG chart of named (x, y) series on shared axes."""
    points = [p for values in series.values() for p in values]
    if not points:
        return f"<p>{html.escape(title)}: no data</p>"
    x_low, x_high = min(x for x, _ in points), max(x for x, _ in points)
    y_low, y_high = min(0.0, *(y for _, y in points)), max(y for _, y in points)
    if diagonal:
        x_low = y_low = min(x_low, y_low)
        x_high = y_high = max(x_high, y_high)
    x_span, y_span = (x_high - x_low) or 1.0, (y_high - y_low) or 1.0

    def at(x: float, y: float) -> str:
        px = MARGIN + (x - x_low) / x_span * (WIDTH - 2 * MARGIN)
        py = HEIGHT - MARGIN - (y - y_low) / y_span * (HEIGHT - 2 * MARGIN)
        return f"{px:.1f},{py:.1f}"

    parts = [f'<svg width="{WIDTH}" height="{HEIGHT}" xmlns="http://www.w3.org/2000/svg" '
             f'font-size="11" font-family="sans-serif">',
             f'<text x="{WIDTH / 2}" y="14" text-anchor="middle">{html.escape(title)}</text>',
             f'<polyline fill="none" stroke="#999" points="{at(x_low, y_low)} '
             f'{at(x_high, y_low)}"/>',
             f'<polyline fill="none" stroke="#999" points="{at(x_low, y_low)} '
             f'{at(x_low, y_high)}"/>',
             f'<text x="{WIDTH / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
             f'{html.escape(x_label)} ({x_low:.3g} to {x_high:.3g})</text>',
             f'<text x="10" y="{HEIGHT / 2}" transform="rotate(-90 10 {HEIGHT / 2})" '
             f'text-anchor="middle">{html.escape(y_label)} (to {y_high:.3g})</text>']
    if diagonal:
        parts.append(f'<polyline fill="none" stroke="#ccc" stroke-dasharray="4" '
                     f'points="{at(x_low, y_low)} {at(x_high, y_high)}"/>')
    for index, (name, values) in enumerate(series.items()):
        colour = COLOURS[index % len(COLOURS)]
        line = " ".join(at(x, y) for x, y in values)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                     f'points="{line}"/>')
        parts.append(f'<text x="{WIDTH - MARGIN}" y="{30 + 13 * index}" fill="{colour}" '
                     f'text-anchor="end">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _calibration_charts(name: str, metrics: Mapping[str, Any]) -> list[str]:
    bins = metrics.get("calibration") or []
    if not bins:
        return []
    base = metrics.get("observed_rate") or 1.0
    return [
        line_chart(f"{name}: calibration by decile", {"observed": [(p, o) for p, o, _ in bins]},
                   "mean predicted", "observed rate", diagonal=True),
        line_chart(f"{name}: lift by decile", {"lift": [
            (float(i + 1), o / base) for i, (_, o, _) in enumerate(bins)]},
            "decile of the prediction", "observed / overall rate"),
    ]


def render(version: str, metrics: Mapping[str, Any], hour_curves: Mapping[str, Sequence[float]],
           volume: Mapping[str, Mapping[int, float]]) -> str:
    charts: list[str] = []
    for name in ("offer_response", "churn"):
        if name in metrics:
            charts += _calibration_charts(name, metrics[name])
    charts.append(line_chart("share of opens by local hour", {
        channel: [(float(h), share) for h, share in enumerate(curve)]
        for channel, curve in sorted(hour_curves.items())}, "local hour", "share of opens"))
    charts.append(line_chart("open rate by messages in the previous 7 days", {
        name: [(float(k), rate) for k, rate in sorted(rates.items())]
        for name, rates in sorted(volume.items())}, "messages received", "open rate"))
    table = json.dumps({k: v for k, v in metrics.items()}, indent=2, default=float)
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>nbo models {html.escape(version)}</title></head><body>"
            f"<h1>nbo models {html.escape(version)}</h1>"
            + "".join(f"<div style='display:inline-block'>{chart}</div>" for chart in charts)
            + f"<h2>Metrics</h2><pre>{html.escape(table)}</pre></body></html>")
