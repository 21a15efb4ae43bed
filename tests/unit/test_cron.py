"""Cron expressions mean what crontab(5) says: parsing, matching, and errors that name the fix."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from quest.errors import ScheduleError
from quest.schedule import CronSchedule, CronSpec, fire_times, next_fire, parse_cron

UTC_ZONE = ZoneInfo("UTC")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(expression: str, after: str, count: int) -> list[str]:
    schedule = CronSchedule(expression, UTC_ZONE)
    return [
        moment.strftime("%Y-%m-%d %H:%M:%S") for moment in fire_times(schedule, utc(after), count)
    ]


# 2026-01-01 is a Thursday; 2026-01-04 a Sunday; 2026-01-05 a Monday.
CRONTAB_EXAMPLES = [
    # From crontab(5): "run five minutes after midnight, every day"
    (
        "5 0 * * *",
        "2026-01-01 00:00",
        ["2026-01-01 00:05:00", "2026-01-02 00:05:00", "2026-01-03 00:05:00"],
    ),
    # "run at 2:15pm on the first of every month"
    (
        "15 14 1 * *",
        "2026-01-01 00:00",
        ["2026-01-01 14:15:00", "2026-02-01 14:15:00", "2026-03-01 14:15:00"],
    ),
    # "run at 10 pm on weekdays"
    (
        "0 22 * * 1-5",
        "2026-01-01 00:00",
        [
            "2026-01-01 22:00:00",
            "2026-01-02 22:00:00",
            "2026-01-05 22:00:00",
            "2026-01-06 22:00:00",
        ],
    ),
    # "run 23 minutes after midn, 2am, 4am ..., everyday"
    (
        "23 0-23/2 * * *",
        "2026-01-01 00:00",
        ["2026-01-01 00:23:00", "2026-01-01 02:23:00", "2026-01-01 04:23:00"],
    ),
    ("23 0-23/2 * * *", "2026-01-01 22:30", ["2026-01-02 00:23:00"]),
    # "run at 5 after 4 every sunday"
    ("5 4 * * sun", "2026-01-01 00:00", ["2026-01-04 04:05:00", "2026-01-11 04:05:00"]),
    # every two hours
    (
        "0 */2 * * *",
        "2026-01-01 01:00",
        ["2026-01-01 02:00:00", "2026-01-01 04:00:00", "2026-01-01 06:00:00"],
    ),
    ("0 */2 * * *", "2026-01-01 23:00", ["2026-01-02 00:00:00"]),
    # midnight and noon on the first of every other month
    (
        "0 0,12 1 */2 *",
        "2025-12-31 23:00",
        [
            "2026-01-01 00:00:00",
            "2026-01-01 12:00:00",
            "2026-03-01 00:00:00",
            "2026-03-01 12:00:00",
        ],
    ),
    # 4:30 on the 1st and the 15th of each month, plus every Friday
    (
        "30 4 1,15 * 5",
        "2026-01-01 00:00",
        [
            "2026-01-01 04:30:00",  # Thursday the 1st
            "2026-01-02 04:30:00",  # Friday
            "2026-01-09 04:30:00",  # Friday
            "2026-01-15 04:30:00",  # Thursday the 15th
            "2026-01-16 04:30:00",  # Friday
            "2026-01-23 04:30:00",
            "2026-01-30 04:30:00",
            "2026-02-01 04:30:00",  # Sunday the 1st
            "2026-02-06 04:30:00",
        ],
    ),
    # "every 4th hour on the 1st and on every Monday"
    (
        "0 */4 1 * mon",
        "2026-01-01 00:00",
        [
            "2026-01-01 04:00:00",
            "2026-01-01 08:00:00",
            "2026-01-01 12:00:00",
            "2026-01-01 16:00:00",
            "2026-01-01 20:00:00",
            "2026-01-05 00:00:00",
        ],
    ),
]


@pytest.mark.parametrize(("expression", "after", "expected"), CRONTAB_EXAMPLES)
def test_crontab_examples(expression: str, after: str, expected: list[str]) -> None:
    assert fires(expression, after, len(expected)) == expected


MATCHING = [
    # day-of-week 0 and 7 are both Sunday, by number, by name and in ranges
    ("0 0 * * 0", "2026-01-01 00:00", ["2026-01-04 00:00:00", "2026-01-11 00:00:00"]),
    ("0 0 * * 7", "2026-01-01 00:00", ["2026-01-04 00:00:00", "2026-01-11 00:00:00"]),
    ("0 0 * * SUN", "2026-01-01 00:00", ["2026-01-04 00:00:00", "2026-01-11 00:00:00"]),
    ("0 0 * * 0,7", "2026-01-01 00:00", ["2026-01-04 00:00:00", "2026-01-11 00:00:00"]),
    (
        "0 0 * * 5-7",
        "2026-01-01 00:00",
        [
            "2026-01-02 00:00:00",
            "2026-01-03 00:00:00",
            "2026-01-04 00:00:00",
            "2026-01-09 00:00:00",
        ],
    ),
    (
        "0 0 * * FRI-SUN",
        "2026-01-01 00:00",
        [
            "2026-01-02 00:00:00",
            "2026-01-03 00:00:00",
            "2026-01-04 00:00:00",
            "2026-01-09 00:00:00",
        ],
    ),
    (
        "0 9 * * MON-FRI",
        "2026-01-02 10:00",
        ["2026-01-05 09:00:00", "2026-01-06 09:00:00", "2026-01-07 09:00:00"],
    ),
    # names in any case, in lists and ranges
    (
        "0 12 * jan,Jul Mon",
        "2026-01-01 00:00",
        [
            "2026-01-05 12:00:00",
            "2026-01-12 12:00:00",
            "2026-01-19 12:00:00",
            "2026-01-26 12:00:00",
            "2026-07-06 12:00:00",
        ],
    ),
    (
        "0 0 1 JAN-MAR *",
        "2026-01-01 00:00",
        ["2026-02-01 00:00:00", "2026-03-01 00:00:00", "2027-01-01 00:00:00"],
    ),
    (
        "0 0 1 feb-mar/1 *",
        "2026-01-01 00:00",
        ["2026-02-01 00:00:00", "2026-03-01 00:00:00", "2027-02-01 00:00:00"],
    ),
    # both day fields restricted: either matches
    (
        "0 0 13 * FRI",
        "2026-02-01 00:00",
        ["2026-02-06 00:00:00", "2026-02-13 00:00:00", "2026-02-20 00:00:00"],
    ),
    ("0 0 30 2 1", "2026-01-01 00:00", ["2026-02-02 00:00:00", "2026-02-09 00:00:00"]),
    # a day field starting with "*" is not "restricted": both must match (odd days that are Mondays)
    (
        "0 0 */2 * 1",
        "2026-01-01 00:00",
        ["2026-01-05 00:00:00", "2026-01-19 00:00:00", "2026-02-09 00:00:00"],
    ),
    (
        "0 0 1 * */7",
        "2026-01-01 00:00",
        ["2026-02-01 00:00:00", "2026-03-01 00:00:00", "2026-11-01 00:00:00"],
    ),
    # steps
    (
        "*/15 * * * *",
        "2026-01-01 00:00",
        [
            "2026-01-01 00:15:00",
            "2026-01-01 00:30:00",
            "2026-01-01 00:45:00",
            "2026-01-01 01:00:00",
        ],
    ),
    (
        "1-30/7 * * * *",
        "2026-01-01 00:00",
        [
            "2026-01-01 00:01:00",
            "2026-01-01 00:08:00",
            "2026-01-01 00:15:00",
            "2026-01-01 00:22:00",
            "2026-01-01 00:29:00",
            "2026-01-01 01:01:00",
        ],
    ),
    (
        "0 0 1 */5 *",
        "2026-01-01 00:00",
        ["2026-06-01 00:00:00", "2026-11-01 00:00:00", "2027-01-01 00:00:00"],
    ),
    # month ends: the 31st skips 30-day months and February
    (
        "0 0 31 * *",
        "2026-01-01 00:00",
        [
            "2026-01-31 00:00:00",
            "2026-03-31 00:00:00",
            "2026-05-31 00:00:00",
            "2026-07-31 00:00:00",
            "2026-08-31 00:00:00",
            "2026-10-31 00:00:00",
            "2026-12-31 00:00:00",
            "2027-01-31 00:00:00",
        ],
    ),
    ("0 0 30 * *", "2026-01-31 00:00", ["2026-03-30 00:00:00", "2026-04-30 00:00:00"]),
    ("59 23 31 12 *", "2026-12-31 23:59", ["2027-12-31 23:59:00"]),
    # 29 February: leap years only, and 2100 is not one
    ("0 0 29 2 *", "2026-03-01 00:00", ["2028-02-29 00:00:00", "2032-02-29 00:00:00"]),
    ("0 0 29 2 *", "2096-03-01 00:00", ["2104-02-29 00:00:00"]),
    ("0 0 29 2 MON", "2026-01-01 00:00", ["2026-02-02 00:00:00", "2026-02-09 00:00:00"]),
    ("0 0 29 2 */7", "2026-03-01 00:00", ["2032-02-29 00:00:00"]),  # a Sunday 29 February
    # six fields: the first is the second
    (
        "*/15 * * * * *",
        "2026-01-01 00:00",
        [
            "2026-01-01 00:00:15",
            "2026-01-01 00:00:30",
            "2026-01-01 00:00:45",
            "2026-01-01 00:01:00",
        ],
    ),
    ("30 0 9 * * *", "2026-01-01 00:00", ["2026-01-01 09:00:30", "2026-01-02 09:00:30"]),
    ("0 0 0 1 1 *", "2026-01-01 00:00", ["2027-01-01 00:00:00"]),
    ("59 59 23 * * *", "2026-01-01 23:59:59", ["2026-01-02 23:59:59"]),
    # macros
    ("@yearly", "2026-01-01 00:00", ["2027-01-01 00:00:00", "2028-01-01 00:00:00"]),
    ("@annually", "2026-05-05 00:00", ["2027-01-01 00:00:00"]),
    ("@monthly", "2026-01-01 00:00", ["2026-02-01 00:00:00", "2026-03-01 00:00:00"]),
    ("@weekly", "2026-01-01 00:00", ["2026-01-04 00:00:00", "2026-01-11 00:00:00"]),
    ("@daily", "2026-01-01 00:00", ["2026-01-02 00:00:00", "2026-01-03 00:00:00"]),
    ("@midnight", "2026-01-01 12:00", ["2026-01-02 00:00:00"]),
    ("@hourly", "2026-01-01 00:00", ["2026-01-01 01:00:00", "2026-01-01 02:00:00"]),
    ("@DAILY", "2026-01-01 00:00", ["2026-01-02 00:00:00"]),
]


@pytest.mark.parametrize(("expression", "after", "expected"), MATCHING)
def test_matching(expression: str, after: str, expected: list[str]) -> None:
    assert fires(expression, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("2026-01-01 00:04:59.999999", "2026-01-01 00:05:00"),  # just before a fire
        ("2026-01-01 00:05:00", "2026-01-02 00:05:00"),  # exactly on a fire: strictly after
        ("2026-01-01 00:05:00.000001", "2026-01-02 00:05:00"),
        ("2025-12-31 23:59:59", "2026-01-01 00:05:00"),
    ],
)
def test_strictly_after(after: str, expected: str) -> None:
    assert fires("5 0 * * *", after, 1) == [expected]


def test_after_in_another_zone_is_the_same_instant() -> None:
    schedule = CronSchedule("0 9 * * *", UTC_ZONE)
    after = datetime(2026, 1, 1, 18, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 09:00 UTC
    assert next_fire(schedule, after) == utc("2026-01-02 09:00")


@pytest.mark.parametrize(
    ("expression", "attribute", "values"),
    [
        ("1-30/7 * * * *", "minutes", (1, 8, 15, 22, 29)),
        ("0 */5 * * *", "hours", (0, 5, 10, 15, 20)),
        ("0 0 1,15,31 * *", "days", (1, 15, 31)),
        ("0 0 * JAN,jun,Dec *", "months", (1, 6, 12)),
        ("0 0 * * 0,7", "weekdays", (0,)),
        ("0 0 * * 7", "weekdays", (0,)),
        ("0 0 * * *", "weekdays", (0, 1, 2, 3, 4, 5, 6)),
        ("0 0 * * */2", "weekdays", (0, 2, 4, 6)),
        ("0 0 * * SAT-SUN", "weekdays", (0, 6)),
        ("* * * * *", "seconds", (0,)),
        ("5,10 * * * * *", "seconds", (5, 10)),
        ("0 */20 * * * *", "minutes", (0, 20, 40)),
        ("@hourly", "minutes", (0,)),
    ],
)
def test_parsed_fields(expression: str, attribute: str, values: tuple[int, ...]) -> None:
    assert getattr(parse_cron(expression), attribute) == values


@pytest.mark.parametrize(
    ("expression", "day_or"),
    [
        ("0 0 1 * 1", True),
        ("0 0 1,15 * MON-FRI", True),
        ("0 0 * * 1", False),
        ("0 0 1 * *", False),
        ("0 0 */2 * 1", False),
        ("0 0 1 * */2", False),
        ("0 0 * * *", False),
    ],
)
def test_day_fields_restricted_only_without_star(expression: str, day_or: bool) -> None:
    assert parse_cron(expression).day_or is day_or


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("  0   3 * *\t*  ", "0 3 * * *"),
        ("0 3 * * MON", "0 3 * * MON"),
        ("@daily", "@daily"),
    ],
)
def test_expression_whitespace_is_normalised(written: str, normalised: str) -> None:
    assert parse_cron(written).expression == normalised
    assert CronSchedule(written, UTC_ZONE).expression == normalised


ERRORS = [
    ("61 * * * *", 'minute field "61" is out of range 0-59'),
    ("1,61 * * * *", 'minute field "61" is out of range 0-59'),
    ("0-61 * * * *", 'minute field "61" is out of range 0-59'),
    ("* 24 * * *", 'hour field "24" is out of range 0-23'),
    ("* * 32 * *", 'day-of-month field "32" is out of range 1-31'),
    ("* * 0 * *", 'day-of-month field "0" is out of range 1-31'),
    ("* * * 13 *", 'month field "13" is out of range 1-12'),
    ("* * * 0 *", 'month field "0" is out of range 1-12'),
    ("* * * * 8", 'day-of-week field "8" is out of range 0-7'),
    ("60 * * * * *", 'second field "60" is out of range 0-59'),
    (
        "*/0 * * * *",
        'minute field "*/0" has an invalid step; the step must be a whole number of at least 1',
    ),
    ("*/x * * * *", 'minute field "*/x" has an invalid step'),
    ("1-5/ * * * *", 'minute field "1-5/" has an invalid step'),
    ("* * * * * * * *", 'cron expression "* * * * * * * *" has 8 fields; use 5 fields'),
    ("* * * *", "has 4 fields"),
    ("foo", 'cron expression "foo" has 1 field; use 5 fields'),
    ("", "the cron expression is empty"),
    ("   ", "the cron expression is empty"),
    ("* * * FOO *", 'month field "FOO" is not a valid value; use 1-12 or JAN-DEC'),
    (
        "* * * * FUNDAY",
        'day-of-week field "FUNDAY" is not a valid value; use 0-7 (0 and 7 are Sunday) or SUN-SAT',
    ),
    ("MON * * * *", 'minute field "MON" is not a valid value; use 0-59'),
    ("* * * * JAN", 'day-of-week field "JAN" is not a valid value'),
    ("? * * * *", '"?" is only allowed in the day-of-month and day-of-week fields'),
    ("-5 * * * *", 'minute field "-5" is not valid'),
    ("1,,2 * * * *", 'minute field "1,,2" is not valid'),
    ("0 0 30 2 *", 'day-of-month field "30" never occurs in month field "2"'),
    ("0 0 31 4,6,9,11 *", "so the schedule would never fire"),
    ("0 0 31 APR *", "never occurs"),
    ("@reboot", '"@reboot" is not a schedule; use "run_on_start": true'),
    ("@every 5m", 'use "interval"'),
    ("@fortnightly", 'unknown cron macro "@fortnightly"; use one of @yearly'),
]


@pytest.mark.parametrize(("expression", "message"), ERRORS)
def test_invalid_expressions(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_cron(expression)
    assert caught.value.key == "cron"
    assert str(caught.value).startswith("cron: ")
    assert message in str(caught.value)


def test_invalid_expression_fails_when_the_schedule_is_made() -> None:
    with pytest.raises(ScheduleError, match='minute field "61"'):
        CronSchedule("61 * * * *", UTC_ZONE)


def test_error_quotes_the_whole_expression() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_cron("0 25 * * *")
    assert str(caught.value) == 'cron: hour field "25" is out of range 0-23 (in "0 25 * * *")'


# --------------------------------------------------------------------------- against brute force


def _reference(spec: CronSpec, start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """Every instant in ``(start, end]`` (UTC, stepping by *step*) whose fields match *spec*."""
    found = []
    moment = start + step
    while moment <= end:
        dom = moment.day in spec.days
        dow = (moment.isoweekday() % 7) in spec.weekdays
        day = (dom or dow) if spec.day_or else (dom and dow)
        if (
            day
            and moment.month in spec.months
            and moment.hour in spec.hours
            and moment.minute in spec.minutes
            and moment.second in spec.seconds
        ):
            found.append(moment)
        moment += step
    return found


@pytest.mark.parametrize(
    "expression",
    [
        "*/7 */5 * * *",
        "0 0 1,15 * 5",
        "13 2-4 */3 * MON",
        "0 12 * FEB,MAR 0",
        "45 23 28-31 * *",
        "0,30 9-17 * * 1-5",
        "5 0 29 2 *",
        "*/20 0 1 * SUN-TUE",
        "17 */6 1-7 * 3",
        "0 0 * * *",
    ],
)
def test_agrees_with_brute_force_by_minute(expression: str) -> None:
    spec = parse_cron(expression)
    start = utc("2028-01-25 07:31")
    end = start + timedelta(days=40)
    expected = _reference(spec, start, end, timedelta(minutes=1))
    schedule = CronSchedule(expression, UTC_ZONE)
    got = [m for m in fire_times(schedule, start, len(expected) + 1) if m <= end]
    assert [m.astimezone(UTC) for m in got] == expected


@pytest.mark.parametrize("expression", ["*/13 * * * * *", "0,30 */7 2 * * *", "59 59 23 * * *"])
def test_agrees_with_brute_force_by_second(expression: str) -> None:
    spec = parse_cron(expression)
    start = utc("2026-02-28 22:58:30")
    end = start + timedelta(hours=3)
    expected = _reference(spec, start, end, timedelta(seconds=1))
    schedule = CronSchedule(expression, UTC_ZONE)
    got = [m for m in fire_times(schedule, start, len(expected) + 1) if m <= end]
    assert [m.astimezone(UTC) for m in got] == expected


def test_random_starts_agree_with_brute_force() -> None:
    rng = random.Random(20260308)
    expressions = ["*/9 1-3 * * *", "0 0 */3 * *", "30 12 1 * MON", "0 6 * JUN-AUG SAT,SUN"]
    for _ in range(40):
        expression = rng.choice(expressions)
        start = utc("2026-01-01 00:00") + timedelta(minutes=rng.randrange(0, 600_000))
        spec = parse_cron(expression)
        expected = _reference(spec, start, start + timedelta(days=12), timedelta(minutes=1))
        if expected:
            assert next_fire(CronSchedule(expression, UTC_ZONE), start) == expected[0]


@pytest.mark.parametrize("expression", ["*/15 * * * *", "30 2 * * *", "*/5 * * * * *"])
def test_a_fire_after_a_fractional_instant_lands_on_a_whole_second(expression: str) -> None:
    schedule = CronSchedule(expression, ZoneInfo("America/New_York"))
    after = datetime(2026, 11, 1, 5, 0, 57, 492563, tzinfo=UTC)
    fire = next_fire(schedule, after)
    assert fire is not None
    assert fire.microsecond == 0
    assert fire > after
