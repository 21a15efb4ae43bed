"""Cron forms from Quartz, cronsim, croniter and Healthchecks: L, W, #, wrapping ranges,
single-value steps and ``?`` — their fire times, their words, and what stays unsupported."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quest.errors import ScheduleError
from quest.schedule import CronSchedule, describe, fire_times, next_fire, parse_cron

UTC_ZONE = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")


def fires(expression: str, after: str, count: int, zone: ZoneInfo = UTC_ZONE) -> list[str]:
    schedule = CronSchedule(expression, zone)
    start = datetime.fromisoformat(after)
    start = start if start.tzinfo else start.replace(tzinfo=zone)
    return [t.isoformat() for t in fire_times(schedule, start, count)]


def days(*values: str) -> list[str]:
    """Midnight UTC on each date, as fire_times gives them."""
    return [f"{value}T00:00:00+00:00" for value in values]


# (expression, after, expected fires). 2026-01-01 is a Thursday; 2028 is a leap year.
TABLE = [
    # the checks from the issue
    ("0 0 L * *", "2028-02-01", days("2028-02-29", "2028-03-31", "2028-04-30")),
    # L: the last day of the month
    ("0 0 L * *", "2026-01-31T00:00", days("2026-02-28", "2026-03-31", "2026-04-30")),
    ("0 0 L 2 *", "2026-01-01", days("2026-02-28", "2027-02-28", "2028-02-29")),
    ("0 0 1,L * *", "2026-01-01", days("2026-01-31", "2026-02-01", "2026-02-28")),
    # L-n: n days before the last day; a month too short for it is skipped
    ("0 0 L-3 * *", "2028-02-01", days("2028-02-26", "2028-03-28", "2028-04-27")),
    ("0 0 L-0 * *", "2026-04-01", days("2026-04-30", "2026-05-31")),
    ("0 0 L-30 * *", "2025-12-31", days("2026-01-01", "2026-03-01", "2026-05-01")),
    # W: the weekday nearest the day, never crossing into another month
    ("0 0 15W * *", "2026-02-01", days("2026-02-16", "2026-03-16", "2026-04-15")),
    ("0 0 1W * *", "2026-07-31", days("2026-08-03", "2026-09-01", "2026-10-01", "2026-11-02")),
    ("0 0 31W * *", "2026-05-01", days("2026-05-29", "2026-07-31", "2026-08-31", "2026-10-30")),
    ("0 0 30W * *", "2026-01-01", days("2026-01-30", "2026-03-30", "2026-04-30")),
    ("0 0 1W,15W * *", "2026-02-01", days("2026-02-02", "2026-02-16", "2026-03-02")),
    # LW: the last weekday of the month
    ("0 0 LW * *", "2026-05-01", days("2026-05-29", "2026-06-30", "2026-07-31", "2026-08-31")),
    ("0 0 LW * *", "2026-10-01", days("2026-10-30", "2026-11-30", "2026-12-31")),
    # #: the nth weekday of the month; months without a fifth are skipped
    ("0 0 * * MON#1", "2026-01-01", days("2026-01-05", "2026-02-02", "2026-03-02")),
    ("0 0 * * 5#3", "2026-01-01", days("2026-01-16", "2026-02-20", "2026-03-20")),
    ("0 0 * * 5#5", "2026-01-01", days("2026-01-30", "2026-05-29", "2026-07-31")),
    ("0 0 * * 0#1", "2026-01-01", days("2026-01-04", "2026-02-01", "2026-03-01")),
    ("0 0 * * 7#1", "2026-01-01", days("2026-01-04", "2026-02-01", "2026-03-01")),
    ("0 0 * * mon#2,fri#4", "2026-01-01", days("2026-01-12", "2026-01-23", "2026-02-09")),
    # FRI#L, 5L, FRIL: the last such weekday of the month
    ("0 0 * * FRI#L", "2026-01-01", days("2026-01-30", "2026-02-27", "2026-03-27")),
    ("0 0 * * 5L", "2026-01-01", days("2026-01-30", "2026-02-27", "2026-03-27")),
    ("0 0 * * FRIL", "2026-01-01", days("2026-01-30", "2026-02-27", "2026-03-27")),
    ("0 0 * * 0L", "2026-01-01", days("2026-01-25", "2026-02-22", "2026-03-29")),
    ("0 0 * * 7L", "2026-01-01", days("2026-01-25", "2026-02-22", "2026-03-29")),
    # ranges that wrap around the end of their field
    (
        "0 0 * * FRI-MON",
        "2026-01-01",
        days("2026-01-02", "2026-01-03", "2026-01-04", "2026-01-05", "2026-01-09"),
    ),
    ("0 0 * * 6-1", "2026-01-01", days("2026-01-03", "2026-01-04", "2026-01-05", "2026-01-10")),
    ("0 0 * * 7-2", "2026-01-01", days("2026-01-04", "2026-01-05", "2026-01-06", "2026-01-11")),
    (
        "0 0 1 NOV-FEB *",
        "2026-01-01",
        days("2026-02-01", "2026-11-01", "2026-12-01", "2027-01-01", "2027-02-01"),
    ),
    ("0 0 25-5 * *", "2026-02-27", days("2026-02-28", "2026-03-01", "2026-03-02")),
    (
        "0 22-2 * * *",
        "2026-01-01T21:00",
        [
            f"2026-01-{d}:00:00+00:00"
            for d in ("01T22", "01T23", "02T00", "02T01", "02T02", "02T22")
        ],
    ),
    (
        "50-10 * * * *",
        "2026-01-01T00:08",
        [f"2026-01-01T00:{m:02d}:00+00:00" for m in (9, 10, 50, 51)],
    ),
    # ...with a step, counted from the start of the range across the wrap
    ("0 0 * * FRI-MON/2", "2026-01-01", days("2026-01-02", "2026-01-04", "2026-01-09")),
    (
        "0 22-2/2 * * *",
        "2026-01-01T03:00",
        [f"2026-01-{d}:00:00+00:00" for d in ("01T22", "02T00", "02T02", "02T22")],
    ),
    ("0 0 1 NOV-FEB/2 *", "2026-01-01", days("2026-11-01", "2027-01-01", "2027-11-01")),
    (
        "50-10/5 * * * *",
        "2026-01-01T00:00",
        [f"2026-01-01T00:{m:02d}:00+00:00" for m in (5, 10, 50, 55)],
    ),
    # a step from a single value runs to the end of the field
    (
        "5/15 * * * *",
        "2026-01-01T00:00",
        [f"2026-01-01T00:{m:02d}:00+00:00" for m in (5, 20, 35, 50)]
        + ["2026-01-01T01:05:00+00:00"],
    ),
    (
        "0 20/2 * * *",
        "2026-01-01T00:00",
        [f"2026-01-{d}:00:00+00:00" for d in ("01T20", "01T22", "02T20")],
    ),
    ("0 0 * * 1/2", "2026-01-01", days("2026-01-02", "2026-01-05", "2026-01-07", "2026-01-09")),
    ("0 0 * * 5/1", "2026-01-01", days("2026-01-02", "2026-01-03", "2026-01-09")),
    ("0 0 28/2 * *", "2026-01-01", days("2026-01-28", "2026-01-30", "2026-02-28")),
    ("10/20 0 0 1 * *", "2026-01-01", [f"2026-01-01T00:00:{s}+00:00" for s in (10, 30, 50)]),
    # ?: no restriction, in either day field
    ("0 0 ? * MON", "2026-01-01", days("2026-01-05", "2026-01-12")),
    ("0 0 15 * ?", "2026-01-01", days("2026-01-15", "2026-02-15")),
    ("0 0 ? * ?", "2026-01-01", days("2026-01-02", "2026-01-03")),
    # both day fields restricted: a day matching either fires (crontab(5)), for L, W and # too
    (
        "0 0 L * FRI",
        "2026-01-01",
        days("2026-01-02", "2026-01-09", "2026-01-16", "2026-01-23", "2026-01-30", "2026-01-31"),
    ),
    ("0 0 15 * MON#1", "2026-01-01", days("2026-01-05", "2026-01-15", "2026-02-02")),
    ("0 0 LW * SUN#L", "2026-01-01", days("2026-01-25", "2026-01-30", "2026-02-22")),
    ("0 0 1W * 5L", "2026-03-01", days("2026-03-02", "2026-03-27", "2026-04-01", "2026-04-24")),
    # one day field unrestricted: the other decides, with months restricting both
    ("0 0 L FEB,APR *", "2026-01-01", days("2026-02-28", "2026-04-30", "2027-02-28")),
    ("0 0 * JAN MON#1", "2026-01-01", days("2026-01-05", "2027-01-04", "2028-01-03")),
    # (a field starting with "*" counts as unrestricted, as in crontab(5): both must match)
    ("0 0 */10 * FRI#L", "2026-01-01", days("2026-07-31", "2027-12-31", "2028-03-31")),
    # a leap-day-only expression still fires, every few years
    ("0 0 * 2 MON#5", "2026-01-01", days("2044-02-29", "2072-02-29")),
    # macros and six fields combine with the new forms
    ("30 15 10 L * *", "2026-01-01", ["2026-01-31T10:15:30+00:00", "2026-02-28T10:15:30+00:00"]),
]


@pytest.mark.parametrize(("expression", "after", "expected"), TABLE)
def test_fire_times(expression: str, after: str, expected: list[str]) -> None:
    assert fires(expression, after, len(expected)) == expected


def test_first_monday_in_berlin_keeps_nine_oclock_across_the_dst_change() -> None:
    assert fires("0 9 * * MON#1", "2026-03-01T00:00", 2, BERLIN) == [
        "2026-03-02T09:00:00+01:00",
        "2026-04-06T09:00:00+02:00",
    ]


# --------------------------------------------------------------------------- a reference


def _reference_day(text: str, dow_text: str, on: date) -> bool:
    """The day fields read straight from the documented meaning, one date at a time."""
    length = calendar.monthrange(on.year, on.month)[1]
    weekday = on.isoweekday() % 7

    def dom_item(item: str) -> bool:
        if item == "L":
            return on.day == length
        if item.startswith("L-"):
            return on.day == length - int(item[2:])
        if item == "LW":
            last = date(on.year, on.month, length)
            while last.isoweekday() > 5:
                last -= timedelta(days=1)
            return on == last
        if item.endswith("W"):
            target = int(item[:-1])
            if target > length:
                return False
            candidates = [
                date(on.year, on.month, d)
                for d in range(max(1, target - 2), min(length, target + 2) + 1)
                if date(on.year, on.month, d).isoweekday() <= 5
            ]
            best = min(candidates, key=lambda d: (abs(d.day - target), d.day))
            return on == best
        return on.day == int(item)

    def dow_item(item: str) -> bool:
        if "#" in item:
            number, nth = item.split("#")
            if int(number) % 7 != weekday:
                return False
            if nth == "L":
                return on.day + 7 > length
            return (on.day - 1) // 7 + 1 == int(nth)
        if item.endswith("L"):
            return int(item[:-1]) % 7 == weekday and on.day + 7 > length
        return int(item) % 7 == weekday

    dom_any = text in ("*", "?")
    dow_any = dow_text in ("*", "?")
    dom = dom_any or any(dom_item(i) for i in text.split(","))
    dow = dow_any or any(dow_item(i) for i in dow_text.split(","))
    return (dom or dow) if not dom_any and not dow_any else (dom and dow)


DAY_FORMS = ["*", "?", "L", "L-1", "L-5", "LW", "1W", "15W", "31W", "29W", "1,L", "L,15W", "13"]
WEEKDAY_FORMS = ["*", "?", "1#1", "5#5", "0#2", "5L", "0L", "6#L", "2", "1#3,4L"]


@pytest.mark.parametrize("dom", DAY_FORMS)
@pytest.mark.parametrize("dow", WEEKDAY_FORMS)
def test_day_fields_agree_with_a_day_by_day_reading(dom: str, dow: str) -> None:
    schedule = CronSchedule(f"0 12 {dom} * {dow}", UTC_ZONE)
    start = date(2027, 12, 20)
    expected = [
        start + timedelta(days=n)
        for n in range(1, 800)
        if _reference_day(dom, dow, start + timedelta(days=n))
    ]
    after = datetime(2027, 12, 20, 12, tzinfo=UTC)
    got = [t.date() for t in fire_times(schedule, after, len(expected))]
    assert got == expected


# --------------------------------------------------------------------------- words


WORDS = [
    ("0 9 * * MON#1", "at 09:00 AM, on the first Monday of the month"),
    ("0 0 L * *", "at 12:00 AM, on the last day of the month"),
    ("0 0 L-3 * *", "at 12:00 AM, 3 days before the last day of the month"),
    ("0 0 L-1 * *", "at 12:00 AM, 1 day before the last day of the month"),
    ("0 0 15W * *", "at 12:00 AM, on the weekday nearest day 15 of the month"),
    ("0 0 LW * *", "at 12:00 AM, on the last weekday of the month"),
    ("0 0 * * 5#3", "at 12:00 AM, on the third Friday of the month"),
    ("0 0 * * FRI#L", "at 12:00 AM, on the last Friday of the month"),
    ("0 0 * * 5L", "at 12:00 AM, on the last Friday of the month"),
    ("0 0 * * 7L", "at 12:00 AM, on the last Sunday of the month"),
    ("0 0 * * FRI-MON", "at 12:00 AM, Friday through Monday"),
    ("0 0 1 NOV-FEB *", "at 12:00 AM, on day 1 of the month, November through February"),
    ("5/15 * * * *", "every 15 minutes, starting at 5 minutes past the hour"),
    ("0 0 ? * MON", "at 12:00 AM, only on Monday"),
    ("0 0 1 * ?", "at 12:00 AM, on day 1 of the month"),
    ("0 0 * * FRI-MON/2", "at 12:00 AM, only on Sunday and Friday"),
    ("0 22-2/2 * * *", "at 12:00 AM, 02:00 AM and 10:00 PM"),
    ("0 0 1,L * *", "at 12:00 AM, on day 1 of the month and on the last day of the month"),
    (
        "0 0 * * MON#1,FRI#L",
        "at 12:00 AM, on the first Monday of the month and on the last Friday of the month",
    ),
    ("0 0 L * FRI", "at 12:00 AM, on the last day of the month, or only on Friday"),
    ("0 9 L 1-3 *", "at 09:00 AM, on the last day of the month, January through March"),
    ("0 9 * JAN MON#1", "at 09:00 AM, on the first Monday of the month, only in January"),
    ("30 0 0 L * *", "at 12:00:30 AM, on the last day of the month"),
    # crontab(5)'s AND when one day field starts with "*" (cron-descriptor alone says "or")
    ("0 0 */2 * MON", "at 12:00 AM, every 2 days, and only on Monday"),
    ("0 0 */10 * FRI#L", "at 12:00 AM, every 10 days, and on the last Friday of the month"),
    ("0 0 1 * MON", "at 12:00 AM, on day 1 of the month, or on Monday"),
    # a day field covering every day leaves the other alone (AND) or every day (OR)
    ("0 0 *,L * MON", "at 12:00 AM, only on Monday"),
    ("0 0 1-31,L * MON#1", "at 12:00 AM"),
    # lists cron-descriptor misreads are given as their values
    (
        "0 0 ? * 1,3-5/2,FRI#L",
        "at 12:00 AM, only on Monday, Wednesday, and Friday and on the last Friday of the month",
    ),
    ("0 0 * 3-1/3 *", "at 12:00 AM, only in March, June, September, and December"),
    ("50,31-30 * * * *", "every minute"),
]


@pytest.mark.parametrize(("expression", "words"), WORDS)
def test_words(expression: str, words: str) -> None:
    assert describe(CronSchedule(expression, UTC_ZONE)) == words


_ITEMS = st.sampled_from(
    ["*", "?", "1", "L", "L-3", "LW", "15W", "*/3", "5/10", "25-5", "25-5/3", "1-31", "31"]
)
_WEEKDAY_ITEMS = st.sampled_from(
    ["*", "?", "MON", "FRI-MON", "FRI-MON/2", "1-5", "MON#1", "5L", "FRI#L", "7", "*/2", "0-6"]
)


@settings(max_examples=150, deadline=None)
@given(
    minute=st.sampled_from(["0", "*/5", "50-10", "50-10/5", "5/15", "*,3", "1,2,3"]),
    hour=st.sampled_from(["*", "9", "22-2", "22-2/2", "*/6,1", "9-17"]),
    dom=st.lists(_ITEMS, min_size=1, max_size=3).map(",".join),
    month=st.sampled_from(["*", "NOV-FEB", "NOV-FEB/2", "1,*/4", "6"]),
    dow=st.lists(_WEEKDAY_ITEMS, min_size=1, max_size=3).map(",".join),
)
def test_every_valid_expression_has_words(
    minute: str, hour: str, dom: str, month: str, dow: str
) -> None:
    try:
        schedule = CronSchedule(f"{minute} {hour} {dom} {month} {dow}", UTC_ZONE)
    except ScheduleError:
        return  # "?" in a list, or never firing
    words = describe(schedule)
    assert not words.startswith("cron ")
    assert "*" not in words and "?" not in words and "At " not in words


# --------------------------------------------------------------------------- unsupported


UNSUPPORTED = [
    ("H * * * *", 'minute field "H": "H" (a hashed value, as in Jenkins) is not supported'),
    ("H(0-29)/10 * * * *", '"H" (a hashed value, as in Jenkins) is not supported'),
    ("0 H * * *", "write a fixed value within 0-23 instead"),
    ("0 0 * * * 2026", "ends with a year field, which is not supported: remove the last field"),
    ("0 0 0 * * * 2026-2030", "ends with a year field, which is not supported"),
    ("0 0 0 * * ? *", "ends with a year field"),
    ("0 0 * * L", 'day-of-week field "L" on its own is ambiguous and not supported; write "SAT"'),
    ("0 0 * * 1#6", 'after "#" write 1-5'),
    ("0 0 * * 1#0", 'after "#" write 1-5'),
    ("0 0 * * 8#1", 'day-of-week field "8" is out of range 0-7'),
    ("0 0 * * MON#1-FRI#1", 'write one weekday and its number, such as "MON#1"'),
    ("0 0 * * 5L-2", 'write "5L" or "FRI#L" for the last Friday'),
    ("0 0 * * 1W", '"W" belongs in the day-of-month field'),
    ("0 0 L/2 * *", 'write "L" (the last day), "L-3"'),
    ("0 0 1-5W * *", "each on its own (not in a range or with a step)"),
    ("0 0 L-31 * *", '"L-n" takes n from 0 to 30'),
    ("0 0 0W * *", '"nW" takes a day from 1 to 31'),
    ("0 0 32W * *", '"nW" takes a day from 1 to 31'),
    ("L * * * *", '"L", "W" and "#" are only allowed in the day fields'),
    ("0 0 * L *", 'month field "L" is not a valid value'),
    ("0 L * * *", '"L", "W" and "#" are only allowed in the day fields'),
    ("1#2 * * * *", '"L", "W" and "#" are only allowed in the day fields'),
    ("? * * * *", '"?" is only allowed in the day-of-month and day-of-week fields; write "*"'),
    ("0 ? * * *", '"?" is only allowed in the day-of-month'),
    ("0 0 ?,1 * *", '"?" (no restriction) stands alone in its field'),
    ("0 0 30W 2 *", "never match a day in month field"),
    ("0 0 L-30 FEB *", "so the schedule would never fire"),
    ("0 0 * FEB 1#5,2#5,3#5,4#5,5#5,6#5,0#5 ", None),  # feasible: the leap Februaries
]


@pytest.mark.parametrize(("expression", "message"), UNSUPPORTED)
def test_unsupported_forms_say_what_to_write(expression: str, message: str | None) -> None:
    if message is None:
        parse_cron(expression)
        return
    with pytest.raises(ScheduleError) as caught:
        parse_cron(expression)
    assert caught.value.key == "cron"
    assert message in str(caught.value)


# --------------------------------------------------------------------------- properties

_MINUTE = st.sampled_from(["*", "0", "*/7", "5/15", "50-10", "50-10/5", "0,30", "59"])
_HOUR = st.sampled_from(["*", "0", "22-2", "22-2/2", "9-17", "*/5", "2", "3"])
_DOM = st.sampled_from(["*", "?", "1", "L", "L-3", "L-30", "LW", "15W", "31W", "1,L", "29", "25-5"])
_MONTH = st.sampled_from(["*", "2", "NOV-FEB", "FEB", "3,10", "*/5", "4/3"])
_DOW = st.sampled_from(["*", "?", "MON#1", "5#5", "FRI#L", "0L", "FRI-MON", "1/2", "SUN", "6-1/2"])
_ZONES = st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"])
_AFTER = st.datetimes(
    min_value=datetime(1, 1, 3), max_value=datetime(9999, 12, 29), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(minute=_MINUTE, hour=_HOUR, dom=_DOM, month=_MONTH, dow=_DOW, zone=_ZONES, after=_AFTER)
def test_next_fire_is_after_or_none_and_never_raises(
    minute: str, hour: str, dom: str, month: str, dow: str, zone: str, after: datetime
) -> None:
    expression = f"{minute} {hour} {dom} {month} {dow}"
    try:
        schedule = CronSchedule(expression, ZoneInfo(zone))
    except ScheduleError:
        return  # can never fire: rejected at load, which is its own test
    found = next_fire(schedule, after)
    assert found is None or found > after
    if found is not None:
        describe(schedule)


def _plain_items(low: int, high: int) -> st.SearchStrategy[str]:
    value = st.integers(min_value=low, max_value=high)
    step = st.integers(min_value=1, max_value=high - low + 1)
    return st.one_of(
        st.just("*"),
        value.map(str),
        st.tuples(value, value).map(lambda pair: f"{pair[0]}-{pair[1]}"),
        st.tuples(value, value, step).map(lambda t: f"{t[0]}-{t[1]}/{t[2]}"),
        st.tuples(value, step).map(lambda pair: f"{pair[0]}/{pair[1]}"),
        step.map(lambda n: f"*/{n}"),
    )


def _field(
    low: int, high: int, extra: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[str]:
    item = _plain_items(low, high) if extra is None else st.one_of(_plain_items(low, high), extra)
    return st.lists(item, min_size=1, max_size=3).map(",".join)


_DOM_EXTRA = st.one_of(
    st.just("L"),
    st.just("LW"),
    st.integers(min_value=0, max_value=30).map(lambda n: f"L-{n}"),
    st.integers(min_value=1, max_value=31).map(lambda n: f"{n}W"),
)
_DOW_EXTRA = st.one_of(
    st.tuples(st.integers(0, 7), st.sampled_from(["1", "2", "3", "4", "5", "L"])).map(
        lambda pair: f"{pair[0]}#{pair[1]}"
    ),
    st.integers(0, 7).map(lambda n: f"{n}L"),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    second=st.one_of(st.none(), _field(0, 59)),
    minute=_field(0, 59),
    hour=_field(0, 23),
    dom=st.one_of(st.just("?"), _field(1, 31, _DOM_EXTRA)),
    month=_field(1, 12),
    dow=st.one_of(st.just("?"), _field(0, 7, _DOW_EXTRA)),
    zone=_ZONES,
    after=_AFTER,
)
def test_random_expressions_parse_or_fail_cleanly_and_fire_after(
    second: str | None,
    minute: str,
    hour: str,
    dom: str,
    month: str,
    dow: str,
    zone: str,
    after: datetime,
) -> None:
    expression = f"{second + ' ' if second else ''}{minute} {hour} {dom} {month} {dow}"
    try:
        schedule = CronSchedule(expression, ZoneInfo(zone))
    except ScheduleError as error:
        assert "never" in str(error)  # every generated form is valid; only infeasible ones fail
        return
    found = next_fire(schedule, after)
    assert found is None or found > after
    assert describe(schedule)
