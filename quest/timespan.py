"""Time spans: ``"30 seconds"``, ``"1h30m"``, ``"every 5 minutes"``, or a number of seconds.

Parsing is delegated to :mod:`pytimeparse2`; this module only adds the ``every`` prefix,
plain numbers, and errors that say what would be valid.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

EXAMPLES = '"30 seconds", "5m", "1h30m", "every 5 minutes" or a number of seconds'


_BARE_UNITS = {"second", "minute", "hour", "day", "week"}


def _words(text: str) -> Any:
    from pytimeparse2 import parse

    return parse(text)


def parse_timespan(value: object, *, allow_zero: bool = False) -> timedelta:
    """*value* as a :class:`~datetime.timedelta`; :class:`ValueError` if it is not a time span."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time span; use {EXAMPLES}")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text.startswith("every "):
            text = text[len("every ") :].strip()
        if text.startswith(("a ", "an ")):
            text = "1 " + text.split(" ", 1)[1]
        elif text in _BARE_UNITS:
            text = "1 " + text
        parsed = _words(text) if text else None
        if parsed is None:
            try:
                parsed = float(text)
            except ValueError:
                raise ValueError(f"{value!r} is not a time span; use {EXAMPLES}") from None
        seconds = float(parsed.total_seconds() if isinstance(parsed, timedelta) else parsed)
    else:
        raise ValueError(f"{value!r} is not a time span; use {EXAMPLES}")
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{value!r} is not a finite time span")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{value!r} must be a positive time span, for example {EXAMPLES}")
    return timedelta(seconds=seconds)


_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def format_timespan(span: timedelta) -> str:
    """Words for *span*: ``1 hour``, ``1 hour 30 minutes``, ``0.5 seconds``."""
    total = span.total_seconds()
    if total < 60 and (total < 1 or total != int(total)):
        return f"{total:g} seconds"
    remaining = int(total)
    fraction = total - remaining
    parts = []
    for unit, size in _UNITS:
        count, remaining = divmod(remaining, size)
        amount = count + fraction if size == 1 else count
        if amount:
            parts.append(f"{amount:g} {unit}{'s' if amount != 1 else ''}")
    return " ".join(parts) or "0 seconds"
