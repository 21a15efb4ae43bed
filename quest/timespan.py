"""Time spans: ``"30 seconds"``, ``"1h30m"``, ``"2 days and 3 hours"``, or a number of seconds.

Compact forms (``"5m"``, ``"1h30m"``, ``"1:30"``) are parsed by :mod:`pytimeparse2`. This module
adds what people bring from Sails (human-interval): number words (``"twenty-five seconds"``,
``"three hundred and twenty-five seconds"``), spans joined by ``and`` or commas
(``"3 days, 4 hours and 36 seconds"``), bare units (``"month"``: 30 days, ``"year"``: 365 days),
the ``every`` prefix, plain numbers (seconds) and errors that say what would be valid.

Every span is bounded: at least :data:`MIN_SPAN` (so nothing rounds to zero) and at most
:data:`MAX_SPAN` (so ``now + span`` always fits a datetime and the database).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

EXAMPLES = (
    '"30 seconds", "5m", "1h30m", "2 days and 3 hours", "every 5 minutes" or a number of seconds'
)

MIN_SPAN = timedelta(milliseconds=1)
"""The shortest non-zero time span (a timeout, a delay, a lease); shorter ones are rejected."""
MAX_SPAN = timedelta(days=36500)
"""The longest time span: 100 years of 365 days."""
MAX_SPAN_WORDS = "100 years (36500 days)"

_DAY = 86400.0
_UNITS: dict[str, float] = {}
for _names, _size in (
    (("ms", "msec", "msecs", "millisecond", "milliseconds"), 0.001),
    (("s", "sec", "secs", "second", "seconds"), 1.0),
    (("m", "min", "mins", "minute", "minutes"), 60.0),
    (("h", "hr", "hrs", "hour", "hours"), 3600.0),
    (("d", "day", "days"), _DAY),
    (("w", "wk", "wks", "week", "weeks"), 7 * _DAY),
    (("mo", "month", "months"), 30 * _DAY),  # human-interval's month
    (("y", "yr", "yrs", "year", "years"), 365 * _DAY),  # human-interval's year
):
    for _name in _names:
        _UNITS[_name] = _size

_ONES = {
    word: value
    for value, word in enumerate(
        ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
    )
}
_TEENS = {
    word: value
    for value, word in enumerate(
        (
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ),
        10,
    )
}
_TENS = {
    word: value
    for value, word in zip(
        range(20, 100, 10),
        ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"),
        strict=True,
    )
}
_SCALES = {"thousand": 1000, "million": 1_000_000}
_NUMBER_WORDS = {*_ONES, *_TEENS, *_TENS, *_SCALES, "hundred", "and", "a", "an"}
_NUMBER = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$")
_COMPACT = re.compile(r"^((?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)([a-z]+)$")
_ALLOWED = re.compile(r"^[a-z0-9.,\s-]+$")


def _words_to_number(words: list[str]) -> float | None:
    """``["three", "hundred", "and", "twenty", "five"]`` as 325; ``None`` if not a number."""
    if words and words[0] in ("a", "an"):
        if len(words) == 1:
            return 1.0
        words = ["one", *words[1:]]  # "a hundred", "a thousand"
    total = current = 0
    previous = ""
    last_scale = 0
    for word in words:
        if word == "and":
            if previous not in ("hundred", "scale"):
                return None
        elif word in _ONES:
            if previous in ("ones", "teen"):
                return None
            current += _ONES[word]
            word = "ones"
        elif word in _TEENS or word in _TENS:
            if previous in ("ones", "teen", "tens"):
                return None
            current += _TEENS.get(word, 0) + _TENS.get(word, 0)
            word = "teen" if word in _TEENS else "tens"
        elif word == "hundred":
            if not 0 < current < 10 or previous not in ("ones",):
                return None
            current *= 100
        elif word in _SCALES:
            scale = _SCALES[word]
            if current == 0 or (last_scale and scale >= last_scale):
                return None
            total += current * scale
            current, last_scale = 0, scale
            word = "scale"
        else:
            return None
        previous = word
    if previous in ("and", ""):
        return None
    return float(total + current)


def _human(text: str) -> float | None:
    """Seconds for a human-interval style span, or ``None`` when *text* is not one."""
    if not _ALLOWED.match(text) or re.search(r"(?:^|[^a-z])-|-(?:[^a-z]|$)", text):
        return None  # a minus sign that is not a hyphen between words
    tokens = text.replace(",", " ").replace("-", " ").split()
    total = 0.0
    pending: list[str] = []
    number: float | None = None
    seen_unit = False
    for token in tokens:
        compact = _COMPACT.match(token)
        if token in _UNITS:
            if pending:
                count = _words_to_number(pending)
                if count is None:
                    return None
            else:
                count = 1.0 if number is None else number
            total += count * _UNITS[token]
            pending, number, seen_unit = [], None, True
        elif _NUMBER.match(token):
            if pending or number is not None:
                return None
            number = float(token)
        elif compact is not None and compact[2] in _UNITS:
            if pending or number is not None:
                return None
            total += float(compact[1]) * _UNITS[compact[2]]
            seen_unit = True
        elif token in _NUMBER_WORDS:
            if number is not None:
                return None
            if token == "and" and not pending:
                continue  # "2 days and 3 hours": a separator
            pending.append(token)
        else:
            return None
    if pending or number is not None or not seen_unit:
        return None
    return total


def _words(text: str) -> Any:
    from pytimeparse2 import parse

    try:
        return parse(text)
    except (ValueError, OverflowError, ArithmeticError):
        return None


def _text_seconds(value: str) -> float | None:
    text = _strip_every(value)
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    parsed = _words(text)
    if parsed is not None:
        return float(parsed.total_seconds() if isinstance(parsed, timedelta) else parsed)
    return _human(text)


def _strip_every(value: str) -> str:
    text = " ".join(value.strip().lower().split())
    if text.startswith("every "):
        text = text[len("every ") :].strip()
    return text


def _number_text(seconds: float) -> str:
    return f"{seconds:.0f}" if seconds == int(seconds) else f"{seconds:g}"


def _span_words(span: timedelta) -> str:
    milliseconds = span / timedelta(milliseconds=1)
    if milliseconds < 1000 and milliseconds == int(milliseconds):
        return f"{milliseconds:.0f} millisecond{'s' if milliseconds != 1 else ''}"
    return format_timespan(span)


def _bounds_words(minimum: timedelta) -> str:
    return f"between {_span_words(minimum)} and {MAX_SPAN_WORDS}"


def parse_timespan(
    value: object, *, allow_zero: bool = False, minimum: timedelta = MIN_SPAN
) -> timedelta:
    """*value* as a :class:`~datetime.timedelta`; :class:`ValueError` if it is not a time span.

    The result is zero (only with *allow_zero*) or between *minimum* and :data:`MAX_SPAN`; a value
    outside is rejected before it becomes a timedelta, so nothing rounds to zero or overflows.
    """
    invalid = f"{value!r} is not a time span; use {EXAMPLES}"
    if isinstance(value, timedelta):
        seconds: float | None = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(invalid)
    elif isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            if value > 0:
                raise ValueError(_too_long(value, minimum)) from None
            seconds = -1.0
    elif isinstance(value, str):
        seconds = _text_seconds(value)
    else:
        raise ValueError(invalid)
    if seconds is None:
        raise ValueError(invalid)
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"{value!r} is not a finite time span; use {EXAMPLES}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise ValueError(f"{value!r} must be a positive time span, for example {EXAMPLES}")
    if seconds > MAX_SPAN.total_seconds():
        raise ValueError(_too_long(value, minimum))
    if 0 < seconds < minimum.total_seconds():
        raise ValueError(f"{value!r} is too short; use {_bounds_words(minimum)}")
    return timedelta(seconds=seconds)


def _too_long(value: object, minimum: timedelta) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:50] + "…(cut)"
    return f"{text} is too long; use {_bounds_words(minimum)}"


def bare_number(value: object) -> float | None:
    """The number when *value* is a plain number of seconds (``60000``, ``"60000"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:
            return None
    elif isinstance(value, str):
        try:
            number = float(_strip_every(value))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def milliseconds_note(value: object) -> str | None:
    """A note when *value* is a bare number that was probably meant as milliseconds.

    Sails (human-interval) reads a bare number as milliseconds, quest as seconds. A number of at
    least 60,000 that is a multiple of 1,000 is far more likely a count of milliseconds.
    """
    number = bare_number(value)
    if number is None or number < 60_000 or number % 1000 or number > MAX_SPAN.total_seconds():
        return None
    text = _number_text(number)
    as_seconds = format_timespan(timedelta(seconds=number))
    as_milliseconds = format_timespan(timedelta(milliseconds=number))
    return (
        f"{text} is read as seconds ({as_seconds}); if you meant milliseconds "
        f'({as_milliseconds}), write "{text}ms" or "{as_milliseconds}"'
    )


_FIRST_INSTANT = datetime(1, 1, 2, tzinfo=UTC)
_LAST_INSTANT = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)
INSTANT_RANGE = "between 0001-01-02 and 9999-12-30 (UTC)"


def check_instant(moment: datetime, what: str) -> datetime:
    """*moment* if it converts to UTC and to every timezone; :class:`ValueError` otherwise.

    *what* names it in the message (``"at"``, ``"--since"``).
    """
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not _FIRST_INSTANT <= utc <= _LAST_INSTANT:
        raise ValueError(
            f"{what} {moment.isoformat()} is out of range; use an instant {INSTANT_RANGE}"
        )
    return moment


_FORMAT_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def format_timespan(span: timedelta) -> str:
    """Words for *span*: ``1 hour``, ``1 hour 30 minutes``, ``0.5 seconds``."""
    total = span.total_seconds()
    if total < 60 and (total < 1 or total != int(total)):
        return f"{total:g} seconds" if total != 1 else "1 second"
    remaining = int(total)
    fraction = round(total - remaining, 6)
    parts = []
    for unit, size in _FORMAT_UNITS:
        count, remaining = divmod(remaining, size)
        amount = count + fraction if size == 1 else count
        if amount:
            parts.append(f"{amount:g} {unit}{'s' if amount != 1 else ''}")
    return " ".join(parts) or "0 seconds"
