"""Schedules as values: parsing, next fire times, descriptions, and the APScheduler trigger."""

from __future__ import annotations

import pickle
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger

from quest.errors import InvalidDefinition, ScheduleError
from quest.schedule import (
    AtSchedule,
    CronSchedule,
    IntervalSchedule,
    Schedule,
    describe,
    fire_times,
    next_fire,
    parse_at,
    parse_interval,
    parse_timezone,
    to_trigger,
)

UTC_ZONE = ZoneInfo("UTC")
LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
PARIS = ZoneInfo("Europe/Paris")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def instant(moment: datetime | None) -> datetime | None:
    """In UTC: two times in one zone compare equal across a fold, even an hour apart."""
    return None if moment is None else moment.astimezone(UTC)


# --------------------------------------------------------------------------- timezones


@pytest.mark.parametrize(
    "name", ["UTC", "Europe/London", "America/New_York", "Australia/Lord_Howe"]
)
def test_parse_timezone(name: str) -> None:
    assert parse_timezone(name) == ZoneInfo(name)


def test_parse_timezone_strips_spaces() -> None:
    assert parse_timezone(" Asia/Tokyo ") == ZoneInfo("Asia/Tokyo")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "Mars/Olympus",
            'timezone: unknown timezone "Mars/Olympus"; '
            'use an IANA name such as "Europe/London" or "UTC"',
        ),
        (
            "europe/london",
            'timezone: unknown timezone "europe/london"; did you mean "Europe/London"?',
        ),
        ("../etc/passwd", 'unknown timezone "../etc/passwd"'),
        ("/etc/localtime", 'unknown timezone "/etc/localtime"'),
        ("", "is not a timezone"),
        ("GMT+25", 'unknown timezone "GMT+25"'),
    ],
)
def test_unknown_timezone(name: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_timezone(name)
    assert caught.value.key == "timezone"
    assert message in str(caught.value)


# --------------------------------------------------------------------------- intervals


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30 seconds", timedelta(seconds=30)),
        ("1 hour", timedelta(hours=1)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("every 5 minutes", timedelta(minutes=5)),
        ("every 1 day", timedelta(days=1)),
        ("an hour", timedelta(hours=1)),
        (300, timedelta(minutes=5)),
        (1.5, timedelta(milliseconds=1500)),
        ("90", timedelta(seconds=90)),
        (timedelta(hours=2), timedelta(hours=2)),
    ],
)
def test_parse_interval(value: Any, expected: timedelta) -> None:
    assert parse_interval(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("every fortnight-ish", "'every fortnight-ish' is not a time span"),
        ("soon", "is not a time span"),
        (0, "must be a positive time span"),
        (-5, "must be a positive time span"),
        (True, "is not a time span"),
        (None, "is not a time span"),
    ],
)
def test_invalid_interval(value: Any, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_interval(value)
    assert caught.value.key == "interval"
    assert str(caught.value).startswith("interval: ")
    assert message in str(caught.value)


def test_schedule_errors_are_definition_errors() -> None:
    with pytest.raises(InvalidDefinition):
        parse_interval("every fortnight-ish")


# --------------------------------------------------------------------------- one-off instants


@pytest.mark.parametrize(
    ("value", "zone", "expected"),
    [
        ("2026-05-01T03:00", PARIS, "2026-05-01T03:00:00+02:00"),
        ("2026-05-01 03:00", PARIS, "2026-05-01T03:00:00+02:00"),
        ("2026-05-01T03:00:30.5", PARIS, "2026-05-01T03:00:30.500000+02:00"),
        ("2026-05-01", PARIS, "2026-05-01T00:00:00+02:00"),
        ("2026-05-01T03:00Z", PARIS, "2026-05-01T05:00:00+02:00"),
        ("2026-05-01T03:00+00:00", PARIS, "2026-05-01T05:00:00+02:00"),
        ("2026-05-01T03:00-04:00", UTC_ZONE, "2026-05-01T07:00:00+00:00"),
        (datetime(2026, 5, 1, 3), LONDON, "2026-05-01T03:00:00+01:00"),
        (datetime(2026, 5, 1, 3, tzinfo=UTC), LONDON, "2026-05-01T04:00:00+01:00"),
    ],
)
def test_parse_at(value: str | datetime, zone: ZoneInfo, expected: str) -> None:
    moment = parse_at(value, zone)
    assert moment.isoformat() == expected
    assert moment.tzinfo is zone


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tomorrow", '"tomorrow" is not an ISO 8601 date and time'),
        ("2026-13-01T00:00", "is not an ISO 8601 date and time"),
        ("", "is not an ISO 8601 date and time"),
        (1_777_777_777, "is not a date and time"),
    ],
)
def test_invalid_at(value: Any, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_at(value, UTC_ZONE)
    assert caught.value.key == "at"
    assert message in str(caught.value)


# --------------------------------------------------------------------------- values


def test_schedules_are_frozen_values() -> None:
    a = CronSchedule("0  3 * * *", LONDON)
    b = CronSchedule("0 3 * * *", LONDON)
    assert a == b and hash(a) == hash(b)
    assert a.expression == "0 3 * * *"
    assert a != CronSchedule("0 3 * * *", NEW_YORK)
    assert IntervalSchedule(timedelta(hours=1), UTC_ZONE) == IntervalSchedule(
        timedelta(seconds=3600), UTC_ZONE
    )
    with pytest.raises(AttributeError):
        a.expression = "0 4 * * *"  # type: ignore[misc]


@pytest.mark.parametrize(
    "schedule",
    [
        CronSchedule("*/5 * * * *", LONDON),
        IntervalSchedule(timedelta(minutes=5), LONDON),
        AtSchedule(datetime(2026, 5, 1, 3, tzinfo=LONDON), LONDON),
    ],
)
def test_schedules_pickle(schedule: Schedule) -> None:
    copy = pickle.loads(pickle.dumps(schedule))
    assert copy == schedule
    after = utc("2026-04-01 00:00")
    assert next_fire(copy, after) == next_fire(schedule, after)


@pytest.mark.parametrize(
    ("make", "key"),
    [
        (lambda: IntervalSchedule(timedelta(0), UTC_ZONE), "interval"),
        (lambda: IntervalSchedule(timedelta(seconds=-1), UTC_ZONE), "interval"),
        (lambda: AtSchedule(datetime(2026, 5, 1), UTC_ZONE), "at"),
        (lambda: CronSchedule("61 * * * *", UTC_ZONE), "cron"),
    ],
)
def test_invalid_schedules_fail_when_made(make: Any, key: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        make()
    assert caught.value.key == key


# --------------------------------------------------------------------------- next fire


HOUR = IntervalSchedule(timedelta(hours=1), UTC_ZONE)

INTERVAL_NEXT = [
    # (after, anchor, expected)
    ("2026-01-01 00:00", None, "2026-01-01 01:00"),
    ("2026-01-01 00:00:00.5", None, "2026-01-01 01:00:00.5"),
    ("2026-01-01 00:10", "2026-01-01 00:00", "2026-01-01 01:00"),
    ("2026-01-01 01:00", "2026-01-01 00:00", "2026-01-01 02:00"),  # on the grid: strictly after
    ("2026-01-01 00:59:59.999999", "2026-01-01 00:00", "2026-01-01 01:00"),
    ("2026-01-10 05:30", "2026-01-01 00:15", "2026-01-10 06:15"),
    (
        "2026-01-01 00:00",
        "2026-01-01 00:30",
        "2026-01-01 00:30",
    ),  # an anchor ahead is the first fire
    ("2026-01-01 00:00", "2026-03-01 00:00", "2026-03-01 00:00"),
]


@pytest.mark.parametrize(("after", "anchor", "expected"), INTERVAL_NEXT)
def test_interval_next_fire(after: str, anchor: str | None, expected: str) -> None:
    got = next_fire(HOUR, utc(after), anchor=utc(anchor) if anchor else None)
    assert got == utc(expected)


def test_interval_is_exact_over_many_periods() -> None:
    schedule = IntervalSchedule(timedelta(seconds=7), UTC_ZONE)
    # 3,652 days = 315,532,800 s = 45,076,114 periods + 2 s
    anchor = utc("2026-01-01 00:00")
    assert next_fire(schedule, utc("2036-01-01 00:00"), anchor=anchor) == utc("2036-01-01 00:00:05")


def test_results_come_back_in_the_schedule_zone() -> None:
    after = datetime(2026, 6, 1, 12, tzinfo=ZoneInfo("Asia/Tokyo"))
    for schedule in (
        IntervalSchedule(timedelta(hours=1), LONDON),
        CronSchedule("0 * * * *", LONDON),
        AtSchedule(datetime(2026, 7, 1, tzinfo=UTC), LONDON),
    ):
        got = next_fire(schedule, after)
        assert got is not None and got.tzinfo is LONDON


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("2026-05-01 02:59:59", "2026-05-01 03:00"),
        ("2026-05-01 03:00", None),  # strictly after
        ("2026-05-01 04:00", None),
    ],
)
def test_at_next_fire(after: str, expected: str | None) -> None:
    schedule = AtSchedule(utc("2026-05-01 03:00"), UTC_ZONE)
    assert next_fire(schedule, utc(after)) == (utc(expected) if expected else None)


def test_next_fire_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_fire(HOUR, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        next_fire(HOUR, utc("2026-01-01 00:00"), anchor=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("schedule", "count", "expected"),
    [
        (HOUR, 3, ["2026-01-01 01:00", "2026-01-01 02:00", "2026-01-01 03:00"]),
        (CronSchedule("0 12 * * *", UTC_ZONE), 2, ["2026-01-01 12:00", "2026-01-02 12:00"]),
        (AtSchedule(utc("2026-02-01 00:00"), UTC_ZONE), 5, ["2026-02-01 00:00"]),
        (AtSchedule(utc("2025-02-01 00:00"), UTC_ZONE), 5, []),
        (HOUR, 0, []),
    ],
)
def test_fire_times(schedule: Schedule, count: int, expected: list[str]) -> None:
    assert fire_times(schedule, utc("2026-01-01 00:00"), count) == [utc(e) for e in expected]


def test_fire_times_with_anchor() -> None:
    times = fire_times(HOUR, utc("2026-01-01 00:00"), 2, anchor=utc("2025-12-31 23:20"))
    assert times == [utc("2026-01-01 00:20"), utc("2026-01-01 01:20")]


def test_next_fires_across_zones_are_after_the_instant_given() -> None:
    expressions = ["*/5 * * * *", "30 2 * * *", "0 0 29 2 *", "0 9 * * MON-FRI", "15 10 1 * *"]
    zones = [NEW_YORK, LONDON, ZoneInfo("Australia/Lord_Howe"), UTC_ZONE]
    schedules: list[Schedule] = [CronSchedule(e, z) for e in expressions for z in zones] * 500 + [
        IntervalSchedule(timedelta(minutes=5), UTC_ZONE)
    ] * 500
    assert len(schedules) == 10_500
    after = datetime(2026, 3, 7, 23, 59, tzinfo=NEW_YORK)
    fires = [next_fire(schedule, after) for schedule in schedules]
    assert all(fire is not None and fire > after for fire in fires)


# --------------------------------------------------------------------------- descriptions


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (IntervalSchedule(timedelta(hours=1), UTC_ZONE), "every 1 hour"),
        (IntervalSchedule(timedelta(minutes=90), UTC_ZONE), "every 1 hour 30 minutes"),
        (IntervalSchedule(timedelta(seconds=30), UTC_ZONE), "every 30 seconds"),
        (CronSchedule("0 3 * * *", UTC_ZONE), "at 03:00 AM"),
        (CronSchedule("*/15 * * * *", UTC_ZONE), "every 15 minutes"),
        (CronSchedule("@daily", UTC_ZONE), "at 12:00 AM"),
        (CronSchedule("@hourly", UTC_ZONE), "every hour"),
        (CronSchedule("0 22 * * 1-5", UTC_ZONE), "at 10:00 PM, Monday through Friday"),
        (
            CronSchedule("30 4 1,15 * 5", UTC_ZONE),
            "at 04:30 AM, on day 1 and 15 of the month, or on Friday",
        ),
        (CronSchedule("15 0 3 * * *", UTC_ZONE), "at 03:00:15 AM"),
        (
            AtSchedule(datetime(2026, 5, 1, 3, tzinfo=PARIS), PARIS),
            "once at 2026-05-01 03:00:00+02:00",
        ),
        (
            AtSchedule(datetime(2026, 5, 1, 1, tzinfo=UTC), PARIS),
            "once at 2026-05-01 03:00:00+02:00",
        ),
    ],
)
def test_describe(schedule: Schedule, expected: str) -> None:
    assert describe(schedule) == expected


def test_importing_is_cheap() -> None:
    code = (
        "import sys, quest.schedule; "
        "print(sorted(m for m in ('apscheduler', 'cron_descriptor') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------- APScheduler triggers


TRIGGER_CASES = [
    CronSchedule("*/15 * * * *", NEW_YORK),
    CronSchedule("30 2 * * *", NEW_YORK),
    CronSchedule("30 1 * * *", NEW_YORK),
    CronSchedule("0 12 * * MON-FRI", LONDON),
    CronSchedule("*/10 * * * * *", UTC_ZONE),
    AtSchedule(datetime(2026, 11, 1, 1, 30, tzinfo=NEW_YORK), NEW_YORK),
]
NOWS = [
    datetime(2026, 3, 7, 23, 0, tzinfo=NEW_YORK),
    datetime(2026, 10, 31, 23, 59, 59, 500_000, tzinfo=NEW_YORK),
    datetime(2026, 11, 1, 1, 20, fold=1, tzinfo=NEW_YORK),
    datetime(2026, 6, 5, 12, 0, tzinfo=LONDON),
]


@pytest.mark.parametrize("schedule", TRIGGER_CASES)
@pytest.mark.parametrize("now", NOWS)
def test_trigger_agrees_with_next_fire(schedule: Schedule, now: datetime) -> None:
    trigger = to_trigger(schedule)
    assert isinstance(trigger, BaseTrigger)
    first = trigger.get_next_fire_time(None, now)
    assert first is None or first.tzinfo is UTC
    assert instant(first) == instant(next_fire(schedule, now - timedelta(microseconds=1)))
    if first is not None:
        assert instant(trigger.get_next_fire_time(first, now)) == instant(
            next_fire(schedule, first)
        )


def test_trigger_walks_the_same_fires_as_fire_times() -> None:
    schedule = CronSchedule("*/15 * * * *", NEW_YORK)
    now = datetime(2026, 11, 1, 0, 40, tzinfo=NEW_YORK)
    trigger = to_trigger(schedule)
    walked = []
    previous = None
    for _ in range(10):
        previous = trigger.get_next_fire_time(previous, now)
        walked.append(previous)
    assert [instant(t) for t in walked] == [instant(t) for t in fire_times(schedule, now, 10)]
    assert len({t.astimezone(UTC) for t in walked if t is not None}) == 10


def test_trigger_counts_a_fire_exactly_at_now() -> None:
    now = utc("2026-01-01 12:00")
    assert to_trigger(CronSchedule("0 12 * * *", UTC_ZONE)).get_next_fire_time(None, now) == now
    assert to_trigger(AtSchedule(now, UTC_ZONE)).get_next_fire_time(None, now) == now
    assert to_trigger(AtSchedule(now, UTC_ZONE)).get_next_fire_time(now, now) is None


def test_at_in_the_past_gives_no_fire() -> None:
    trigger = to_trigger(AtSchedule(utc("2025-01-01 00:00"), UTC_ZONE))
    assert trigger.get_next_fire_time(None, utc("2026-01-01 00:00")) is None


def test_interval_trigger_without_anchor_starts_one_period_after_now() -> None:
    trigger = to_trigger(IntervalSchedule(timedelta(minutes=10), UTC_ZONE))
    now = utc("2026-01-01 12:03")
    first = trigger.get_next_fire_time(None, now)
    assert first == utc("2026-01-01 12:13")
    assert trigger.get_next_fire_time(first, utc("2026-01-01 12:13")) == utc("2026-01-01 12:23")


def test_interval_trigger_with_anchor() -> None:
    schedule = IntervalSchedule(timedelta(minutes=10), UTC_ZONE)
    trigger = to_trigger(schedule, anchor=utc("2026-01-01 00:05"))
    assert trigger.get_next_fire_time(None, utc("2026-01-01 12:03")) == utc("2026-01-01 12:05")
    assert trigger.get_next_fire_time(None, utc("2026-01-01 12:05")) == utc("2026-01-01 12:05")
    assert trigger.get_next_fire_time(utc("2026-01-01 12:05"), utc("2026-01-01 12:05")) == utc(
        "2026-01-01 12:15"
    )


def test_trigger_walks_missed_slots_like_apscheduler() -> None:
    """``Job._get_run_times`` asks with each previous fire until it passes ``now``."""
    trigger = to_trigger(CronSchedule("0 * * * *", UTC_ZONE))
    previous = utc("2026-01-01 09:00")
    now = utc("2026-01-01 12:30")
    missed = []
    moment = trigger.get_next_fire_time(previous, now)
    while moment is not None and moment <= now:
        missed.append(moment)
        moment = trigger.get_next_fire_time(moment, now)
    assert missed == [utc("2026-01-01 10:00"), utc("2026-01-01 11:00"), utc("2026-01-01 12:00")]
    assert moment == utc("2026-01-01 13:00")


@pytest.mark.parametrize(
    ("schedule", "first_slot"),
    [
        (CronSchedule("0 * * * *", UTC_ZONE), "2026-01-01 00:00"),
        (IntervalSchedule(timedelta(hours=1), UTC_ZONE), "2026-01-01 00:40"),
    ],
)
def test_trigger_jitter_stays_within_bounds_and_does_not_drift(
    schedule: Schedule, first_slot: str
) -> None:
    trigger = to_trigger(schedule, jitter=30)
    now = utc("2025-12-31 23:40")
    previous = trigger.get_next_fire_time(None, now)
    slots = []
    for _ in range(50):
        assert previous is not None
        slot = previous.replace(second=0, microsecond=0)
        assert timedelta(0) <= previous - slot <= timedelta(seconds=30)
        slots.append(slot)
        previous = trigger.get_next_fire_time(previous, now)
    assert slots == [utc(first_slot) + timedelta(hours=k) for k in range(50)]


def test_trigger_without_jitter_is_exact() -> None:
    trigger = to_trigger(CronSchedule("0 * * * *", UTC_ZONE), jitter=0)
    assert trigger.get_next_fire_time(None, utc("2026-01-01 00:10")) == utc("2026-01-01 01:00")


def test_negative_jitter_is_refused() -> None:
    with pytest.raises(ScheduleError, match="jitter"):
        to_trigger(HOUR, jitter=-1)


def test_trigger_pickles_with_its_anchor() -> None:
    trigger = to_trigger(IntervalSchedule(timedelta(minutes=10), UTC_ZONE), jitter=None)
    first = trigger.get_next_fire_time(None, utc("2026-01-01 12:03"))
    copy = pickle.loads(pickle.dumps(trigger))
    assert type(copy) is type(trigger)
    assert copy.get_next_fire_time(None, utc("2026-01-01 14:00")) == utc("2026-01-01 14:03")
    assert copy.get_next_fire_time(first, utc("2026-01-01 12:13")) == utc("2026-01-01 12:23")


def test_trigger_str_describes_the_schedule() -> None:
    trigger = to_trigger(CronSchedule("0 3 * * *", UTC_ZONE))
    assert str(trigger) == "quest[at 03:00 AM]"
    assert "CronSchedule" in repr(trigger)


def test_trigger_jitter_is_real_seconds_through_a_fold() -> None:
    schedule = CronSchedule("*/15 * * * *", NEW_YORK)
    trigger = to_trigger(schedule, jitter=60)
    now = datetime(2026, 11, 1, 0, 50, tzinfo=NEW_YORK)
    previous = trigger.get_next_fire_time(None, now)
    for expected in fire_times(schedule, now, 9):
        assert previous is not None
        slot = expected.astimezone(UTC)
        assert slot <= previous <= slot + timedelta(seconds=60)
        previous = trigger.get_next_fire_time(previous, now)
