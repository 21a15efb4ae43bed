"""Time spans: the forms a script may write, the errors, and spans in words."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quest.timespan import (
    EXAMPLES,
    MAX_SPAN,
    MIN_SPAN,
    bare_number,
    check_instant,
    format_timespan,
    milliseconds_note,
    parse_timespan,
)


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


# --------------------------------------------------------------------------- human-interval forms

DAY = 86400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        # number words
        ("one minute", 60),
        ("five minutes", 300),
        ("twenty-five seconds", 25),
        ("twenty five seconds", 25),
        ("three hundred and twenty-five seconds", 325),
        ("three hundred twenty-five seconds", 325),
        ("one hundred seconds", 100),
        ("a hundred seconds", 100),
        ("two thousand and five seconds", 2005),
        ("one thousand two hundred seconds", 1200),
        ("twelve hours", 12 * 3600),
        ("ninety minutes", 5400),
        ("zero minutes and ten seconds", 10),
        # spans joined by "and" or commas
        ("2 days and 3 hours", 2 * DAY + 3 * 3600),
        ("3 minutes and 30 seconds", 210),
        ("3 days, 4 hours and 36 seconds", 3 * DAY + 4 * 3600 + 36),
        ("1 hour, 30 minutes", 5400),
        ("one hour and thirty minutes", 5400),
        ("5m and 30s", 330),
        ("every 2 days and 3 hours", 2 * DAY + 3 * 3600),
        # bare units, with human-interval's month (30 days) and year (365 days)
        ("month", 30 * DAY),
        ("year", 365 * DAY),
        ("week", 7 * DAY),
        ("day", DAY),
        ("every month", 30 * DAY),
        ("2 months", 60 * DAY),
        ("1 year", 365 * DAY),
        ("day and 3 hours", DAY + 3 * 3600),
        # milliseconds
        ("60000ms", 60),
        ("60000 ms", 60),
        ("1500 milliseconds", 1.5),
        ("every 250ms", 0.25),
    ],
)
def test_human_interval_forms(text: str, seconds: float) -> None:
    assert parse_timespan(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "text",
    [
        "five",  # a number with no unit
        "and",
        "five five minutes",
        "twenty twenty minutes",
        "hundred seconds",
        "one and two minutes",
        "one thousand thousand seconds",
        "2 3 minutes",
        "fortnight",
        "5 minutes-ish",
        "two dozen minutes",
    ],
)
def test_what_is_not_a_span_in_words(text: str) -> None:
    with pytest.raises(ValueError, match="is not a time span"):
        parse_timespan(text)


@pytest.mark.parametrize("value", ["-5 minutes", "-1", -0.5, "one minute and -5 seconds"])
def test_negative_spans_in_any_form(value: Any) -> None:
    with pytest.raises(ValueError, match=r"positive|not a time span"):
        parse_timespan(value)


# --------------------------------------------------------------------------- bounds


@pytest.mark.parametrize(
    "value", [8e13, 1e300, "1e300", 10**400, "200 years", "36501 days", MAX_SPAN + MIN_SPAN]
)
def test_spans_longer_than_100_years_are_rejected(value: Any) -> None:
    with pytest.raises(ValueError) as caught:
        parse_timespan(value)
    assert "too long" in str(caught.value)
    assert "between 1 millisecond and 100 years (36500 days)" in str(caught.value)


def test_a_huge_value_is_cut_in_the_message() -> None:
    with pytest.raises(ValueError) as caught:
        parse_timespan(10**400)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize("value", [1e-9, "0.0001", "0.5ms", timedelta(microseconds=1)])
def test_spans_that_would_round_to_nothing_are_rejected(value: Any) -> None:
    with pytest.raises(ValueError, match="too short; use between 1 millisecond"):
        parse_timespan(value)


def test_the_limits_themselves_are_accepted() -> None:
    assert parse_timespan("100 years") == MAX_SPAN
    assert parse_timespan("1ms") == MIN_SPAN
    assert parse_timespan(0.5, minimum=timedelta(seconds=0.5)) == timedelta(seconds=0.5)
    with pytest.raises(ValueError, match="too short; use between 1 second"):
        parse_timespan(0.5, minimum=timedelta(seconds=1))


# --------------------------------------------------------------------------- milliseconds note


@pytest.mark.parametrize(
    ("value", "words", "meant"),
    [
        (60000, "16 hours 40 minutes", "1 minute"),
        ("60000", "16 hours 40 minutes", "1 minute"),
        (3_600_000, "41 days 16 hours", "1 hour"),
        (90000.0, "1 day 1 hour", "1 minute 30 seconds"),
    ],
)
def test_a_bare_number_that_looks_like_milliseconds(value: Any, words: str, meant: str) -> None:
    note = milliseconds_note(value)
    assert note is not None
    text = f"{bare_number(value):.0f}"
    assert note.startswith(f"{text} is read as seconds ({words})")
    assert f'write "{text}ms" or "{meant}"' in note


@pytest.mark.parametrize(
    "value", [59000, 60500, 3600, "60000ms", "1000 minutes", True, None, 61000.5, 10**400]
)
def test_no_note_for_other_values(value: Any) -> None:
    assert milliseconds_note(value) is None


# --------------------------------------------------------------------------- instants


@pytest.mark.parametrize(
    "text",
    ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "9999-12-31T00:00:00+00:00"],
)
def test_instants_outside_the_calendar_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="between 0001-01-02 and 9999-12-30"):
        check_instant(datetime.fromisoformat(text), "--since")


def test_instants_inside_are_kept() -> None:
    moment = datetime.fromisoformat("9999-12-30T12:00:00-05:00")
    assert check_instant(moment, "at") is moment


# --------------------------------------------------------------------------- properties

_UNIT_WORDS = st.sampled_from(
    [
        "ms",
        "s",
        "sec",
        "seconds",
        "m",
        "min",
        "minutes",
        "h",
        "hours",
        "day",
        "weeks",
        "month",
        "years",
        "fortnight",
        "and",
        ",",
        "every",
        "a",
        "an",
        "twenty",
        "five",
        "hundred",
        "-",
        "e",
    ]
)
_NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e-3),
)
_TEXT = st.one_of(
    st.text(max_size=30),
    st.lists(st.one_of(_UNIT_WORDS, _NUMBERS.map(str)), max_size=6).map(" ".join),
)


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(_NUMBERS, _TEXT, st.timedeltas()))
def test_any_value_is_a_bounded_span_or_a_value_error(value: Any) -> None:
    try:
        span = parse_timespan(value)
    except ValueError:
        return
    assert MIN_SPAN <= span <= MAX_SPAN


@settings(max_examples=200, deadline=None)
@given(value=st.one_of(_NUMBERS, _TEXT))
def test_any_interval_is_within_range_or_a_schedule_error(value: Any) -> None:
    from quest.errors import ScheduleError
    from quest.schedule import MIN_INTERVAL, parse_interval

    try:
        span = parse_interval(value)
    except ScheduleError as error:
        assert error.key == "interval"
        return
    assert MIN_INTERVAL <= span <= MAX_SPAN
