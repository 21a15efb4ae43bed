"""Numbers a declaration may hold: every time span is checked at load, never overflowing later."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quest import InvalidDefinition, script
from quest.definition import Backoff, declaration_of, parse_block
from quest.enums import BackoffType
from quest.errors import ScheduleError
from quest.schedule import (
    MIN_INTERVAL,
    AtSchedule,
    IntervalSchedule,
    describe,
    fire_times,
    next_fire,
    parse_at,
)
from quest.timespan import MAX_SPAN

UTC_ZONE = ZoneInfo("UTC")


def block_error(block: dict[str, Any]) -> InvalidDefinition:
    with pytest.raises(InvalidDefinition) as caught:
        parse_block(block)
    return caught.value


SPAN_KEYS = [
    ({"interval": "{}"}, "quest.interval"),
    ({"lease_ttl": "{}"}, "quest.lease_ttl"),
    ({"leaseTtl": "{}"}, "quest.leaseTtl"),
    ({"timeout": "{}"}, "quest.timeout"),
    ({"jitter": "{}"}, "quest.jitter"),
    ({"backoff": {"delay": "{}"}}, "quest.backoff.delay"),
    ({"backoff": {"maxDelay": "{}"}}, "quest.backoff.maxDelay"),
    ({"catch_up": {"policy": "once", "window": "{}"}}, "quest.catch_up.window"),
    ({"retention": {"failed": {"age": "{}"}}}, "quest.retention.failed.age"),
    ({"retention": {"succeeded": {"age": "{}"}}}, "quest.retention.succeeded.age"),
    ({"rate_limit": {"max": 1, "per": "{}"}}, "quest.rate_limit.per"),
]


def _fill(template: Any, value: Any) -> Any:
    if isinstance(template, dict):
        return {key: _fill(item, value) for key, item in template.items()}
    return value if template == "{}" else template


@pytest.mark.parametrize(("template", "key"), SPAN_KEYS)
@pytest.mark.parametrize("value", [8e13, 1e300, "1e300", 10**400, "101 years"])
def test_too_long_spans_are_rejected_at_load(template: Any, key: str, value: Any) -> None:
    error = block_error(_fill(template, value))
    assert error.key == key
    assert "too long" in str(error)
    assert "100 years (36500 days)" in str(error)


@pytest.mark.parametrize(("template", "key"), SPAN_KEYS)
def test_spans_that_would_round_to_zero_are_rejected_at_load(template: Any, key: str) -> None:
    error = block_error(_fill(template, 1e-9))
    assert error.key == key
    assert "too short" in str(error)


@pytest.mark.parametrize("value", [1e-9, 0.5, "500ms", "0.999 seconds"])
def test_an_interval_is_at_least_one_second(value: Any) -> None:
    error = block_error({"interval": value})
    assert error.key == "quest.interval"
    assert "too short; use between 1 second and 100 years" in str(error)


def test_the_longest_interval_loads_and_shows() -> None:
    block = parse_block({"interval": "100 years"})
    assert block is not None and block.interval == MAX_SPAN
    schedule = block.schedule("Pacific/Kiritimati")
    assert isinstance(schedule, IntervalSchedule)
    assert describe(schedule) == "every 36500 days"
    assert len(fire_times(schedule, datetime(2026, 1, 1, tzinfo=UTC), 3)) <= 3


def test_an_interval_schedule_made_directly_is_checked_too() -> None:
    with pytest.raises(ScheduleError, match="out of range"):
        IntervalSchedule(timedelta(microseconds=1), UTC_ZONE)
    with pytest.raises(ScheduleError, match="out of range"):
        IntervalSchedule(timedelta(days=40000), UTC_ZONE)
    assert IntervalSchedule(MIN_INTERVAL, UTC_ZONE).every == MIN_INTERVAL


@pytest.mark.parametrize(
    "value",
    [
        "9999-12-31T23:59:59-05:00",
        "9999-12-31T00:00",
        "9999-12-30T23:00:00-05:00",
        "0001-01-01T00:00:00+05:00",
        "0001-01-01T00:00",
        datetime(9999, 12, 31, 23, 59, tzinfo=ZoneInfo("America/New_York")),
    ],
)
def test_an_at_outside_the_calendar_is_rejected_at_load(value: Any) -> None:
    error = block_error({"at": value})
    assert error.key == "quest.at"
    assert "out of range; use an instant between 0001-01-02 and 9999-12-30 (UTC)" in str(error)


def test_a_naive_at_near_the_end_loads_in_every_timezone() -> None:
    block = parse_block({"at": "9999-12-29T23:00"})
    assert block is not None
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12", "UTC"):
        schedule = block.schedule(zone)
        assert isinstance(schedule, AtSchedule)
        describe(schedule)
        assert next_fire(schedule, datetime(2026, 1, 1, tzinfo=UTC)) is not None


def test_parse_at_and_at_schedule_reject_overflow() -> None:
    with pytest.raises(ScheduleError, match="out of range"):
        parse_at("9999-12-31T23:59:59-23:59", UTC_ZONE)
    with pytest.raises(ScheduleError, match="out of range"):
        AtSchedule(datetime(9999, 12, 31, 20, tzinfo=UTC), UTC_ZONE)


def test_interval_fires_stop_before_the_end_of_the_calendar() -> None:
    schedule = IntervalSchedule(timedelta(days=3), ZoneInfo("Pacific/Kiritimati"))
    late = datetime(9999, 12, 29, tzinfo=UTC)
    times = fire_times(schedule, late, 5)
    assert all(t <= datetime(9999, 12, 30, 23, 59, 59, tzinfo=UTC) for t in times)
    assert len(times) <= 1


def test_exponential_backoff_never_overflows() -> None:
    backoff = Backoff(type=BackoffType.exponential, delay=timedelta(days=1))
    assert backoff.delay_for(1) == timedelta(days=1)
    assert backoff.delay_for(3) == timedelta(days=4)
    assert backoff.delay_for(10**6) == MAX_SPAN
    capped = Backoff.model_validate({"type": "exponential", "delay": 30, "maxDelay": 3600})
    assert capped.delay_for(10**6) == timedelta(hours=1)


# --------------------------------------------------------------------------- milliseconds


def test_a_bare_number_that_looks_like_milliseconds_loads_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="quest"):

        @script(quest={"interval": 60000})
        def sails_job(inputs: Any, ctx: Any) -> None:
            return None

    declaration = declaration_of(sails_job)
    assert declaration is not None and declaration.quest is not None
    block = declaration.quest
    assert block.interval == timedelta(seconds=60000)
    assert block.interval_note is not None
    assert "60000 is read as seconds (16 hours 40 minutes)" in block.interval_note
    assert '"60000ms"' in block.interval_note
    (record,) = [r for r in caplog.records if "read as seconds" in r.getMessage()]
    assert record.levelno == logging.WARNING
    where = f"{__file__}:{sails_job.__code__.co_firstlineno}: "
    assert record.getMessage().startswith(f"{where}quest.interval: 60000 is read as seconds")


@pytest.mark.parametrize("value", ["60000ms", "1 minute", 59000, 60001, "16 hours 40 minutes"])
def test_no_warning_otherwise(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="quest"):

        @script(quest={"interval": value})
        def job(inputs: Any, ctx: Any) -> None:
            return None

    declaration = declaration_of(job)
    assert declaration is not None and declaration.quest is not None
    assert declaration.quest.interval_note is None
    assert not [r for r in caplog.records if "read as seconds" in r.getMessage()]


def test_sixty_thousand_milliseconds_is_a_minute() -> None:
    block = parse_block({"interval": "60000ms"})
    assert block is not None and block.interval == timedelta(minutes=1)


# --------------------------------------------------------------------------- properties


@settings(max_examples=200, deadline=None)
@given(
    value=st.one_of(
        st.integers(min_value=-(10**25), max_value=10**25),
        st.floats(),
        st.text(max_size=20),
        st.from_regex(r"\A[0-9]{1,20}(\.[0-9]{0,12})?(e[+-]?[0-9]{1,3})? ?(ms|s|m|h|d|w|y)?\Z"),
    )
)
def test_any_interval_loads_and_shows_or_is_a_clear_error(value: Any) -> None:
    try:
        block = parse_block({"interval": value})
    except InvalidDefinition as error:
        assert error.key == "quest.interval"
        return
    assert block is not None
    schedule = block.schedule("UTC")
    assert isinstance(schedule, IntervalSchedule)
    describe(schedule)
    after = datetime(2026, 1, 1, tzinfo=UTC)
    found = next_fire(schedule, after, anchor=datetime(1970, 1, 1, tzinfo=UTC))
    assert found is not None and found > after
