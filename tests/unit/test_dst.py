"""Daylight saving: wall times in gaps and folds, rhythms through them, intervals in real time.

2026 transitions used here:
- America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
- Europe/London: 2026-03-29 01:00 GMT -> 02:00 BST; 2026-10-25 02:00 BST -> 01:00 GMT.
- Australia/Lord_Howe (half-hour shift): 2026-04-05 02:00 -> 01:30 (+11:00 -> +10:30);
  2026-10-04 02:00 -> 02:30 (+10:30 -> +11:00).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from quest.schedule import (
    CronSchedule,
    IntervalSchedule,
    fire_times,
    next_fire,
    parse_at,
)

NEW_YORK = "America/New_York"
LONDON = "Europe/London"
LORD_HOWE = "Australia/Lord_Howe"
TOKYO = "Asia/Tokyo"


def aware(text: str, zone: str) -> datetime:
    """An ISO datetime; without an offset it is a wall time in *zone* (first occurrence)."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))


def cron_fires(zone: str, expression: str, after: str, count: int) -> list[str]:
    schedule = CronSchedule(expression, ZoneInfo(zone))
    return [moment.isoformat() for moment in fire_times(schedule, aware(after, zone), count)]


CRON_DST = [
    # --- New York, spring forward: a fixed wall time in the gap runs once, when the gap ends
    (
        NEW_YORK,
        "30 2 * * *",
        "2026-03-07T12:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    (
        NEW_YORK,
        "0 2 * * *",
        "2026-03-07T12:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"],
    ),
    (
        NEW_YORK,
        "59 2 * * *",
        "2026-03-08T00:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:59:00-04:00"],
    ),
    # several wall times in one gap collapse to one fire
    (
        NEW_YORK,
        "0,15,30,45 2 * * *",
        "2026-03-07T12:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T02:15:00-04:00"],
    ),
    (
        NEW_YORK,
        "* 2 * * *",
        "2026-03-08T01:59",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00"],
    ),
    # a gap time and the gap's end both match: still one fire
    (
        NEW_YORK,
        "0 2,3 * * *",
        "2026-03-07T12:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:00:00-04:00", "2026-03-09T03:00:00-04:00"],
    ),
    # just before and after the gap nothing changes
    (
        NEW_YORK,
        "59 1 * * *",
        "2026-03-07T12:00",
        ["2026-03-08T01:59:00-05:00", "2026-03-09T01:59:00-04:00"],
    ),
    (
        NEW_YORK,
        "0 3 * * *",
        "2026-03-07T12:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T03:00:00-04:00"],
    ),
    # after the collapsed fire, the next day
    (NEW_YORK, "30 2 * * *", "2026-03-08T03:00:00-04:00", ["2026-03-09T02:30:00-04:00"]),
    # six fields: seconds inside the gap collapse too
    (
        NEW_YORK,
        "*/20 30 2 * * *",
        "2026-03-08T00:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    # --- New York, fall back: a fixed wall time in the fold runs once, at its first occurrence
    (
        NEW_YORK,
        "30 1 * * *",
        "2026-10-31T12:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    ),
    (NEW_YORK, "30 1 * * *", "2026-11-01T01:30:00-04:00", ["2026-11-02T01:30:00-05:00"]),
    (NEW_YORK, "30 1 * * *", "2026-11-01T01:10:00-05:00", ["2026-11-02T01:30:00-05:00"]),
    (
        NEW_YORK,
        "0 1 * * *",
        "2026-10-31T12:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-02T01:00:00-05:00"],
    ),
    # a fixed hour with every minute: the hour runs once, not twice
    (
        NEW_YORK,
        "* 1 * * *",
        "2026-11-01T01:57:00-04:00",
        ["2026-11-01T01:58:00-04:00", "2026-11-01T01:59:00-04:00", "2026-11-02T01:00:00-05:00"],
    ),
    # a step of hours that does not cover every hour is a set of appointments
    (
        NEW_YORK,
        "0 */2 * * *",
        "2026-11-01T00:00",
        ["2026-11-01T02:00:00-05:00", "2026-11-01T04:00:00-05:00"],
    ),
    (
        NEW_YORK,
        "30 0-4/1 * * *",
        "2026-11-01T00:00",
        ["2026-11-01T00:30:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T02:30:00-05:00"],
    ),
    # --- New York, an hour field covering every hour is a rhythm: both passes of the fold fire
    (
        NEW_YORK,
        "*/15 * * * *",
        "2026-11-01T00:50",
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:15:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:45:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:15:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T01:45:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    ),
    (
        NEW_YORK,
        "0 * * * *",
        "2026-11-01T00:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"],
    ),
    (
        NEW_YORK,
        "0 0-23 * * *",
        "2026-11-01T00:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"],
    ),
    (
        NEW_YORK,
        "0 */1 * * *",
        "2026-11-01T00:00",
        ["2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00"],
    ),
    # starting inside the fold, from either pass
    (
        NEW_YORK,
        "*/15 * * * *",
        "2026-11-01T01:20:00-04:00",
        ["2026-11-01T01:30:00-04:00", "2026-11-01T01:45:00-04:00", "2026-11-01T01:00:00-05:00"],
    ),
    (NEW_YORK, "*/15 * * * *", "2026-11-01T01:50:00-05:00", ["2026-11-01T02:00:00-05:00"]),
    (NEW_YORK, "*/15 * * * *", "2026-11-01T01:45:00-04:00", ["2026-11-01T01:00:00-05:00"]),
    (NEW_YORK, "*/15 * * * *", "2026-11-01T01:00:00-05:00", ["2026-11-01T01:15:00-05:00"]),
    # a rhythm through the gap: no clock shows 02:xx, the next quarter is 03:00 (15 real minutes)
    (
        NEW_YORK,
        "*/15 * * * *",
        "2026-03-08T01:30",
        ["2026-03-08T01:45:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:15:00-04:00"],
    ),
    (
        NEW_YORK,
        "30 * * * *",
        "2026-03-08T01:00",
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:30:00-04:00"],
    ),
    # --- London
    (
        LONDON,
        "30 1 * * *",
        "2026-03-28T12:00",
        ["2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"],
    ),
    (
        LONDON,
        "0 1 * * SUN",
        "2026-03-23T00:00",
        ["2026-03-29T02:00:00+01:00", "2026-04-05T01:00:00+01:00"],
    ),
    (
        LONDON,
        "30 1 * * *",
        "2026-10-24T12:00",
        ["2026-10-25T01:30:00+01:00", "2026-10-26T01:30:00+00:00"],
    ),
    (
        LONDON,
        "*/30 * * * *",
        "2026-10-25T00:45",
        [
            "2026-10-25T01:00:00+01:00",
            "2026-10-25T01:30:00+01:00",
            "2026-10-25T01:00:00+00:00",
            "2026-10-25T01:30:00+00:00",
            "2026-10-25T02:00:00+00:00",
        ],
    ),
    (
        LONDON,
        "@daily",
        "2026-03-28T12:00",
        ["2026-03-29T00:00:00+00:00", "2026-03-30T00:00:00+01:00"],
    ),
    # --- Lord Howe: a 30-minute gap (02:00 -> 02:30) and a 30-minute fold (02:00 -> 01:30)
    (
        LORD_HOWE,
        "15 2 * * *",
        "2026-10-03T12:00",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"],
    ),
    (
        LORD_HOWE,
        "0 2 * * *",
        "2026-10-03T12:00",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:00:00+11:00"],
    ),
    (
        LORD_HOWE,
        "30 2 * * *",
        "2026-10-03T12:00",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:30:00+11:00"],
    ),
    (
        LORD_HOWE,
        "0,10,20 2 * * *",
        "2026-10-04T00:00",
        ["2026-10-04T02:30:00+11:00", "2026-10-05T02:00:00+11:00"],
    ),
    (
        LORD_HOWE,
        "45 1 * * *",
        "2026-04-04T12:00",
        ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
    ),
    (LORD_HOWE, "15 1 * * *", "2026-04-05T01:15:00+11:00", ["2026-04-06T01:15:00+10:30"]),
    (
        LORD_HOWE,
        "30 1 * * *",
        "2026-04-04T12:00",
        ["2026-04-05T01:30:00+11:00", "2026-04-06T01:30:00+10:30"],
    ),
    (
        LORD_HOWE,
        "*/15 * * * *",
        "2026-04-05T01:00:00+11:00",
        [
            "2026-04-05T01:15:00+11:00",
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-05T02:00:00+10:30",
        ],
    ),
    (
        LORD_HOWE,
        "*/15 * * * *",
        "2026-10-04T01:30:00+10:30",
        ["2026-10-04T01:45:00+10:30", "2026-10-04T02:30:00+11:00", "2026-10-04T02:45:00+11:00"],
    ),
    # --- Tokyo has no DST: nothing special on anyone else's transition days
    (
        TOKYO,
        "30 2 * * *",
        "2026-03-07T12:00",
        ["2026-03-08T02:30:00+09:00", "2026-03-09T02:30:00+09:00"],
    ),
    (
        TOKYO,
        "30 1 * * *",
        "2026-10-31T12:00",
        ["2026-11-01T01:30:00+09:00", "2026-11-02T01:30:00+09:00"],
    ),
    (
        "UTC",
        "30 1 * * *",
        "2026-10-24T12:00",
        ["2026-10-25T01:30:00+00:00", "2026-10-26T01:30:00+00:00"],
    ),
]


@pytest.mark.parametrize(("zone", "expression", "after", "expected"), CRON_DST)
def test_cron_across_transitions(
    zone: str, expression: str, after: str, expected: list[str]
) -> None:
    assert cron_fires(zone, expression, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("zone", "expression", "fires_in_2026"),
    [
        (NEW_YORK, "30 2 * * *", 365),  # the spring-forward day fires once, at 03:00
        (NEW_YORK, "30 1 * * *", 365),  # the fall-back day fires once, not twice
        (NEW_YORK, "0,15,30,45 2 * * *", 364 * 4 + 1),  # four gap times collapse into one fire
        (LONDON, "30 1 * * *", 365),
        (LORD_HOWE, "15 2 * * *", 365),
        (LORD_HOWE, "45 1 * * *", 365),
        (TOKYO, "30 2 * * *", 365),
        (NEW_YORK, "0 * * * *", 365 * 24),  # a rhythm: 23 hours one day, 25 another
    ],
)
def test_a_year_of_fires(zone: str, expression: str, fires_in_2026: int) -> None:
    tz = ZoneInfo(zone)
    schedule = CronSchedule(expression, tz)
    start = datetime(2026, 1, 1, tzinfo=tz) - timedelta(microseconds=1)
    end = datetime(2027, 1, 1, tzinfo=tz)
    times = [t for t in fire_times(schedule, start, fires_in_2026 + 10) if t < end]
    assert len(times) == fires_in_2026
    instants = [t.astimezone(UTC) for t in times]
    assert instants == sorted(set(instants))


@pytest.mark.parametrize(
    ("zone", "day", "fires"),
    [
        (NEW_YORK, date(2026, 3, 8), 23 * 4),
        (NEW_YORK, date(2026, 11, 1), 25 * 4),
        (LONDON, date(2026, 3, 29), 23 * 4),
        (LONDON, date(2026, 10, 25), 25 * 4),
        (LORD_HOWE, date(2026, 10, 4), 24 * 4 - 2),
        (LORD_HOWE, date(2026, 4, 5), 24 * 4 + 2),
        (TOKYO, date(2026, 3, 8), 24 * 4),
    ],
)
def test_every_fifteen_minutes_is_every_fifteen_real_minutes(
    zone: str, day: date, fires: int
) -> None:
    """``*/15 * * * *`` fires at each real instant whose wall time is a quarter hour."""
    tz = ZoneInfo(zone)
    start = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)
    end = (datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(days=1)).astimezone(UTC)
    expected = []
    moment = start
    while moment < end:  # brute force over real minutes
        if moment.astimezone(tz).minute % 15 == 0:
            expected.append(moment)
        moment += timedelta(minutes=1)
    schedule = CronSchedule("*/15 * * * *", tz)
    got = fire_times(schedule, start - timedelta(microseconds=1), len(expected))
    assert [t.astimezone(UTC) for t in got] == expected
    assert len(got) == fires
    assert all(t.tzinfo is tz for t in got)


INTERVALS = [
    # real elapsed time: the wall clock jumps, the gap between fires does not
    (
        NEW_YORK,
        timedelta(hours=1),
        "2026-03-08T00:30",
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:30:00-04:00", "2026-03-08T04:30:00-04:00"],
    ),
    (
        NEW_YORK,
        timedelta(hours=1),
        "2026-11-01T00:30",
        ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-01T02:30:00-05:00"],
    ),
    (
        NEW_YORK,
        timedelta(days=1),
        "2026-03-07T12:00",
        ["2026-03-08T13:00:00-04:00", "2026-03-09T13:00:00-04:00"],
    ),
    (
        LONDON,
        timedelta(minutes=30),
        "2026-03-29T00:45",
        ["2026-03-29T02:15:00+01:00", "2026-03-29T02:45:00+01:00"],
    ),
    (
        LORD_HOWE,
        timedelta(minutes=30),
        "2026-10-04T01:45",
        ["2026-10-04T02:45:00+11:00", "2026-10-04T03:15:00+11:00"],
    ),
    (
        LORD_HOWE,
        timedelta(minutes=20),
        "2026-04-05T01:40:00+11:00",
        ["2026-04-05T01:30:00+10:30", "2026-04-05T01:50:00+10:30", "2026-04-05T02:10:00+10:30"],
    ),
    (
        TOKYO,
        timedelta(hours=1),
        "2026-03-08T00:30",
        ["2026-03-08T01:30:00+09:00", "2026-03-08T02:30:00+09:00"],
    ),
]


@pytest.mark.parametrize(("zone", "every", "after", "expected"), INTERVALS)
def test_intervals_follow_real_time(
    zone: str, every: timedelta, after: str, expected: list[str]
) -> None:
    schedule = IntervalSchedule(every, ZoneInfo(zone))
    times = fire_times(schedule, aware(after, zone), len(expected))
    assert [t.isoformat() for t in times] == expected
    instants = [aware(after, zone).astimezone(UTC), *(t.astimezone(UTC) for t in times)]
    assert {b - a for a, b in pairwise(instants)} == {every}


def test_interval_anchor_keeps_its_grid_across_a_transition() -> None:
    tz = ZoneInfo(NEW_YORK)
    schedule = IntervalSchedule(timedelta(hours=6), tz)
    anchor = aware("2026-11-01T00:00:00-04:00", NEW_YORK)
    after = aware("2026-11-01T10:00:00-05:00", NEW_YORK)
    assert next_fire(schedule, after, anchor=anchor) == aware("2026-11-01T11:00:00-05:00", NEW_YORK)


@pytest.mark.parametrize(
    ("zone", "written", "expected"),
    [
        (NEW_YORK, "2026-03-08T02:30", "2026-03-08T03:00:00-04:00"),  # in the gap: the gap's end
        (
            NEW_YORK,
            "2026-11-01T01:30",
            "2026-11-01T01:30:00-04:00",
        ),  # in the fold: first occurrence
        (NEW_YORK, "2026-11-01T01:30-05:00", "2026-11-01T01:30:00-05:00"),  # explicit offset wins
        (LORD_HOWE, "2026-10-04T02:10", "2026-10-04T02:30:00+11:00"),
        (LORD_HOWE, "2026-04-05T01:40", "2026-04-05T01:40:00+11:00"),
        (TOKYO, "2026-03-08T02:30", "2026-03-08T02:30:00+09:00"),
    ],
)
def test_at_wall_times_follow_the_cron_policy(zone: str, written: str, expected: str) -> None:
    assert parse_at(written, ZoneInfo(zone)).isoformat() == expected


def test_results_keep_the_schedule_zone_and_fold() -> None:
    tz = ZoneInfo(NEW_YORK)
    first, second = fire_times(
        CronSchedule("0 * * * *", tz), aware("2026-11-01T00:30", NEW_YORK), 2
    )
    assert (first.fold, second.fold) == (0, 1)
    assert first.tzinfo is tz and second.tzinfo is tz
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)


@pytest.mark.parametrize(
    ("zone", "transition_day"),
    [
        (NEW_YORK, date(2026, 11, 1)),
        (NEW_YORK, date(2026, 3, 8)),
        (LONDON, date(2026, 10, 25)),
        (LORD_HOWE, date(2026, 4, 5)),
        (LORD_HOWE, date(2026, 10, 4)),
    ],
)
@pytest.mark.parametrize("expression", ["*/15 * * * *", "7,29 * * * *", "*/20 * * * * *"])
def test_rhythms_from_every_start_around_a_transition(
    zone: str, transition_day: date, expression: str
) -> None:
    """From any instant near a transition, the next fire is the next real instant that matches."""
    tz = ZoneInfo(zone)
    spec_seconds = expression.count(" ") == 5
    start = datetime(transition_day.year, transition_day.month, transition_day.day, tzinfo=tz)
    start = start.astimezone(UTC)
    step = timedelta(seconds=1) if spec_seconds else timedelta(minutes=1)
    schedule = CronSchedule(expression, tz)
    matching = []
    moment = start
    while moment < start + timedelta(hours=5):
        wall = moment.astimezone(tz)
        minute_ok = (
            wall.minute % 15 == 0 if expression.startswith("*/15") else wall.minute in (7, 29)
        )
        if spec_seconds:
            minute_ok = wall.second % 20 == 0
        if minute_ok:
            matching.append(moment)
        moment += step
    probe = start + timedelta(seconds=11)
    while probe < matching[-1]:
        expected = next(m for m in matching if m > probe)
        got = next_fire(schedule, probe)
        # compare in UTC: an aware time inside a fold never equals one from another zone
        assert got is not None and got.astimezone(UTC) == expected, probe
        probe += timedelta(minutes=7, seconds=13)


# The day forms of other cron dialects pick the day; the time of day keeps the same DST policy.
# US DST starts on the second Sunday of March and ends on the first Sunday of November; the UK's
# on the last Sundays of March and October.
EXTENDED_DST = [
    # a wall time in the gap on the day "SUN#2" picks: once, when the gap ends
    (
        NEW_YORK,
        "30 2 * 3 SUN#2",
        "2026-03-01T00:00",
        ["2026-03-08T03:00:00-04:00", "2027-03-14T03:00:00-04:00"],
    ),
    # a wall time in the fold on the day "SUN#1" picks: once, at its first occurrence
    (
        NEW_YORK,
        "30 1 * 11 SUN#1",
        "2026-10-31T00:00",
        ["2026-11-01T01:30:00-04:00", "2027-11-07T01:30:00-04:00"],
    ),
    # last Sunday of March ("SUNL") in London: the gap
    (
        LONDON,
        "30 1 * MAR SUNL",
        "2026-01-01T00:00",
        ["2026-03-29T02:00:00+01:00", "2027-03-28T02:00:00+01:00"],
    ),
    # last Sunday of October ("0#L") in London: the fold
    (
        LONDON,
        "30 1 * OCT 0#L",
        "2026-01-01T00:00",
        ["2026-10-25T01:30:00+01:00", "2027-10-31T01:30:00+01:00"],
    ),
    # "L-2" of March 2026 is the 29th, the day of the gap; in 2027 it is an ordinary day
    (
        LONDON,
        "30 1 L-2 3 *",
        "2026-01-01T00:00",
        ["2026-03-29T02:00:00+01:00", "2027-03-29T01:30:00+01:00"],
    ),
    # a wrapping hour range with a step (22, 0, 2): 02:30 is in the gap
    (
        NEW_YORK,
        "30 22-2/2 * * *",
        "2026-03-07T21:00",
        [
            "2026-03-07T22:30:00-05:00",
            "2026-03-08T00:30:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T22:30:00-04:00",
        ],
    ),
    # a step from a single value (2, 14): 02:30 is in the gap
    (
        NEW_YORK,
        "30 2/12 * * *",
        "2026-03-07T15:00",
        ["2026-03-08T03:00:00-04:00", "2026-03-08T14:30:00-04:00", "2026-03-09T02:30:00-04:00"],
    ),
    # a rhythm ("*" hours) on "SUN#1" of November keeps firing through the fold, twice
    (
        NEW_YORK,
        "*/30 * ? 11 SUN#1",
        "2026-11-01T00:45",
        [
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    ),
    # ...and skips the wall times of the gap on "SUN#2" of March
    (
        NEW_YORK,
        "*/30 * ? 3 SUN#2",
        "2026-03-08T01:00",
        ["2026-03-08T01:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"],
    ),
    # Lord Howe's half-hour fold on the first Sunday of April: 01:45 happens twice, fires once
    (
        LORD_HOWE,
        "45 1 * 4 SUN#1",
        "2026-04-01T00:00",
        ["2026-04-05T01:45:00+11:00", "2027-04-04T01:45:00+11:00"],
    ),
]


@pytest.mark.parametrize(("zone", "expression", "after", "expected"), EXTENDED_DST)
def test_extended_cron_forms_keep_the_dst_policy(
    zone: str, expression: str, after: str, expected: list[str]
) -> None:
    assert cron_fires(zone, expression, after, len(expected)) == expected
