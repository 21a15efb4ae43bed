"""Time spans: the forms a script may write, the errors, and spans in words."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from quest.timespan import EXAMPLES, format_timespan, parse_timespan


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30 seconds", timedelta(seconds=30)),
        ("1 second", timedelta(seconds=1)),
        ("1 hour", timedelta(hours=1)),
        ("2 days", timedelta(days=2)),
        ("1 week", timedelta(weeks=1)),
        ("5m", timedelta(minutes=5)),
        ("300s", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1d2h", timedelta(days=1, hours=2)),
        ("10 min", timedelta(minutes=10)),
        ("every 5 minutes", timedelta(minutes=5)),
        ("Every 2 Hours", timedelta(hours=2)),
        ("every 1h30m", timedelta(hours=1, minutes=30)),
        ("an hour", timedelta(hours=1)),
        ("a minute", timedelta(minutes=1)),
        ("  10 min  ", timedelta(minutes=10)),
        ("90", timedelta(seconds=90)),
        ("1.5", timedelta(seconds=1.5)),
    ],
)
def test_text_forms(text: str, expected: timedelta) -> None:
    assert parse_timespan(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (300, timedelta(minutes=5)),
        (0.5, timedelta(milliseconds=500)),
        (timedelta(minutes=2), timedelta(minutes=2)),
    ],
)
def test_numbers_are_seconds_and_timedeltas_pass_through(value: Any, expected: timedelta) -> None:
    assert parse_timespan(value) == expected


@pytest.mark.parametrize(
    "value",
    ["every fortnight-ish", "", "abc", "every", "5 lightyears", True, None, [1], {"m": 5}],
)
def test_unparsable_values_say_what_would_be_valid(value: Any) -> None:
    with pytest.raises(ValueError) as caught:
        parse_timespan(value)
    assert repr(value) in str(caught.value)
    assert EXAMPLES in str(caught.value)


@pytest.mark.parametrize("value", [0, -5, "0", "-1 hour", timedelta(0), timedelta(seconds=-1)])
def test_zero_and_negative_spans_are_rejected(value: Any) -> None:
    with pytest.raises(ValueError, match="positive"):
        parse_timespan(value)


def test_zero_when_allowed() -> None:
    assert parse_timespan(0, allow_zero=True) == timedelta(0)
    assert parse_timespan("0 seconds", allow_zero=True) == timedelta(0)
    with pytest.raises(ValueError):
        parse_timespan(-1, allow_zero=True)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "nan", "inf"])
def test_non_finite_spans_are_rejected(value: Any) -> None:
    with pytest.raises(ValueError, match="finite"):
        parse_timespan(value)


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0, "0 seconds"),
        (0.5, "0.5 seconds"),
        (1, "1 second"),
        (30, "30 seconds"),
        (59.5, "59.5 seconds"),
        (60, "1 minute"),
        (90, "1 minute 30 seconds"),
        (61.5, "1 minute 1.5 seconds"),
        (3600, "1 hour"),
        (5400, "1 hour 30 minutes"),
        (7200, "2 hours"),
        (86400, "1 day"),
        (90061, "1 day 1 hour 1 minute 1 second"),
    ],
)
def test_format_timespan(seconds: float, words: str) -> None:
    assert format_timespan(timedelta(seconds=seconds)) == words


@pytest.mark.parametrize("text", ["30 seconds", "1 hour", "1h30m", "2 days", "5m", "0.5"])
def test_words_parse_back_to_the_same_span(text: str) -> None:
    span = parse_timespan(text)
    assert parse_timespan(format_timespan(span)) == span
