"""Filters the templates use: instants, durations, JSON, progress, and the overview's SVG chart."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from jinja2 import Environment
from markupsafe import Markup, escape


def install_filters(env: Environment) -> None:
    env.filters.update(
        ago=ago,
        when=when,
        duration=duration,
        span=span,
        pretty=pretty,
        percent=percent,
        short=short,
    )
    env.globals.update(chart=chart)


def when(value: datetime | None) -> str:
    """An instant in UTC, to the second."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ago(value: datetime | None, now: datetime) -> str:
    """How long before or after *now*: ``5 s ago``, ``in 3 min``."""
    if value is None:
        return "—"
    seconds = (value - now).total_seconds()
    text = span(timedelta(seconds=abs(seconds)))
    if abs(seconds) < 1:
        return "now"
    return f"in {text}" if seconds > 0 else f"{text} ago"


def span(value: timedelta | None) -> str:
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min"
    if seconds < 86400 * 2:
        hours, minutes = seconds // 3600, seconds % 3600 // 60
        return f"{hours:.0f} h {minutes:.0f} min" if minutes else f"{hours:.0f} h"
    days, hours = seconds // 86400, seconds % 86400 // 3600
    return f"{days:.0f} days {hours:.0f} h" if hours and days < 7 else f"{days:.0f} days"


def duration(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return span(timedelta(milliseconds=ms))


def pretty(value: Any) -> str:
    """JSON, indented, for a <pre>."""
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, default=str, sort_keys=True)
    except ValueError:
        return repr(value)


def short(value: Any, size: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= size else text[: size - 1] + "…"


def percent(progress: dict[str, Any] | None) -> float | None:
    """A progress report's share done, 0-100, or ``None`` when its total is unknown."""
    if not progress or not progress.get("total"):
        return None
    share = 100.0 * float(progress["current"]) / float(progress["total"])
    return max(0.0, min(100.0, share))


def chart(hours: list[dict[str, Any]]) -> Markup:
    """Runs per hour (succeeded and failed, stacked bars) and their mean duration (a line)."""
    width, height, pad = 720, 160, 24
    most = max((h["runs"] for h in hours), default=0) or 1
    longest = max((h["duration"] or 0 for h in hours), default=0) or 1
    step = (width - 2 * pad) / max(len(hours), 1)
    bar = max(step - 3, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Runs per hour and mean duration over the last 24 hours">'
    ]
    points = []
    for i, hour in enumerate(hours):
        x = pad + i * step
        total_h = (height - 2 * pad) * hour["runs"] / most
        failed_h = (height - 2 * pad) * hour["failed"] / most
        label = escape(
            f"{hour['hour']:%H:00} UTC: {hour['runs']} runs, {hour['failed']} failed, "
            f"mean {duration(hour['duration'])}"
        )
        y = height - pad - total_h
        parts.append(
            f'<g><title>{label}</title><rect class="ok" x="{x:.1f}" y="{y:.1f}" '
            f'width="{bar:.1f}" height="{total_h - failed_h:.1f}"/>'
            f'<rect class="bad" x="{x:.1f}" y="{height - pad - failed_h:.1f}" '
            f'width="{bar:.1f}" height="{failed_h:.1f}"/></g>'
        )
        if hour["duration"] is not None:
            dy = height - pad - (height - 2 * pad) * hour["duration"] / longest
            points.append(f"{x + bar / 2:.1f},{dy:.1f}")
        if i % 6 == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{height - 6}" class="axis">{hour["hour"]:%H:00}</text>'
            )
    if len(points) > 1:
        parts.append(f'<polyline class="line" points="{" ".join(points)}"/>')
    parts.append(f'<text x="{pad}" y="14" class="axis">{most} runs/h</text>')
    parts.append(f'<text x="{width - pad}" y="14" class="axis end">mean {duration(longest)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
