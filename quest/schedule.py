"""Schedules and their fire times: pure functions of ``(schedule, after)``.

A schedule is one of three frozen values: :class:`IntervalSchedule` (every N seconds of real time),
:class:`CronSchedule` (wall-clock times in a timezone) and :class:`AtSchedule` (one instant).
:func:`next_fire` gives the first fire time strictly after an instant; :func:`to_trigger` wraps the
same function in an APScheduler trigger, so ``quest serve`` and ``quest show`` always agree.

Cron expressions mean what they mean in crontab(5):

- Five fields (``minute hour day-of-month month day-of-week``) or six, where the extra field comes
  FIRST and is the second (``second minute hour day-of-month month day-of-week``). Five fields fire
  at second 0.
- Numbers, ranges (``1-5``), steps (``*/15``, ``1-30/2``), lists (``1,15``) and names
  (``JAN``-``DEC``, ``SUN``-``SAT``, any case). Day-of-week 0 and 7 are both Sunday, and a range
  may end on Sunday (``FRI-SUN``).
- From other schedulers (Quartz, cronsim, croniter): ``L``, ``L-3``, ``15W`` and ``LW`` in
  day-of-month; ``MON#1``, ``FRI#L`` and ``5L`` in day-of-week; ranges that wrap (``FRI-MON``,
  ``22-2/2``, the step counted across the wrap); a step from a single value (``5/15`` is
  ``5-59/15``); ``?`` in a day field, meaning ``*``. ``nW`` never crosses into another month and
  is skipped in a month without day n. ``H`` and a year field are rejected, saying what to write.
- When both day-of-month and day-of-week are restricted (neither field starts with ``*`` nor is
  ``?``), a day matching either fires, ``L``/``W``/``#`` included. Otherwise both must match, which
  means the restricted one alone decides when the other is ``*``.
- Macros: ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``, ``@daily``, ``@midnight``,
  ``@hourly``. ``@reboot`` is not a schedule (use ``run_on_start``).
- An expression that can never fire (``0 0 30 2 *``) is rejected rather than silently idle.

Wall times are read in the schedule's timezone. Daylight-saving policy:

- A wall time that does not exist (inside a spring-forward gap) fires once, at the first instant
  after the gap. Several wall times inside one gap collapse into that single fire.
- A wall time that occurs twice (inside a fall-back fold) fires once, at its first occurrence.
- Exception: when the hour field covers every hour (``*``, ``*/1``, ``0-23``), the expression is
  read as a rhythm rather than an appointment. It fires at every real instant whose wall time
  matches: twice through a fold (``*/15 * * * *`` keeps firing every 15 real minutes), and not at
  all for wall times inside a gap (which no clock shows).
- Interval schedules count real elapsed time; DST never changes their spacing.

All instants are compared in UTC; results come back in the schedule's timezone.
"""

from __future__ import annotations

import functools
import re
from bisect import bisect_left, bisect_right
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from quest.errors import ScheduleError
from quest.timespan import (
    INSTANT_RANGE,
    MAX_SPAN,
    MAX_SPAN_WORDS,
    check_instant,
    format_timespan,
    milliseconds_note,
    parse_timespan,
)

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

__all__ = [
    "AtSchedule",
    "CronSchedule",
    "CronSpec",
    "IntervalSchedule",
    "Schedule",
    "describe",
    "fire_times",
    "next_fire",
    "parse_at",
    "parse_cron",
    "parse_interval",
    "parse_timezone",
    "to_trigger",
]

_SECOND = timedelta(seconds=1)
_MICROSECOND = timedelta(microseconds=1)
_MAX_YEARS = 400  # one Gregorian cycle: every feasible day/weekday combination occurs within it
MIN_INTERVAL = timedelta(seconds=1)
"""The shortest interval: the finest grain serve schedules at, the same as a cron second."""


# --------------------------------------------------------------------------- cron expressions


@dataclass(frozen=True, slots=True)
class CronSpec:
    """A parsed, validated cron expression: the set of values each field allows.

    The day fields also keep their special forms: ``last_days`` holds offsets from the last day
    of the month (``L`` is 0, ``L-3`` is 3), ``nearest_weekdays`` the days of ``15W``,
    ``last_weekday`` is ``LW``, ``nth_weekdays`` the ``(weekday, n)`` pairs of ``MON#1`` and
    ``last_of_weekdays`` the weekdays of ``5L`` / ``FRI#L``.
    """

    expression: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]  # 0 = Sunday ... 6 = Saturday
    day_or: bool  # both day fields restricted: a day matching either fires
    last_days: tuple[int, ...] = ()
    nearest_weekdays: tuple[int, ...] = ()
    last_weekday: bool = False
    nth_weekdays: tuple[tuple[int, int], ...] = ()
    last_of_weekdays: tuple[int, ...] = ()

    @property
    def every_hour(self) -> bool:
        """Whether the hour field covers all 24 hours (a rhythm, not an appointment)."""
        return len(self.hours) == 24

    def month_days(self, year: int, month: int) -> tuple[int, ...]:
        """The days of *month* in *year* that match, in order."""
        return _month_days(self, year, month)

    def day_matches(self, year: int, month: int, day: int) -> bool:
        """Whether the date matches the day-of-month and day-of-week fields."""
        return day in _month_days(self, year, month)


def _nearest_weekday(day: int, weekday: int, length: int) -> int:
    """The weekday (Monday-Friday) nearest *day* within its month (*weekday*: 0 = Sunday)."""
    if weekday == 6:  # Saturday: the Friday before, or the Monday after on the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 0:  # Sunday: the Monday after, or the Friday before on the last day
        return day + 1 if day < length else day - 2
    return day


@functools.lru_cache(maxsize=8192)
def _month_days(spec: CronSpec, year: int, month: int) -> tuple[int, ...]:
    first, length = monthrange(year, month)
    first = (first + 1) % 7  # 0 = Sunday

    def weekday_of(day: int) -> int:
        return (first + day - 1) % 7

    on_day = {day for day in spec.days if day <= length}
    on_day.update(length - offset for offset in spec.last_days if length - offset >= 1)
    on_day.update(
        _nearest_weekday(day, weekday_of(day), length)
        for day in spec.nearest_weekdays
        if day <= length
    )
    if spec.last_weekday:
        on_day.add(_nearest_weekday(length, weekday_of(length), length))
    on_weekday = {day for day in range(1, length + 1) if weekday_of(day) in spec.weekdays}
    for weekday, nth in spec.nth_weekdays:
        day = 1 + (weekday - first) % 7 + 7 * (nth - 1)
        if day <= length:
            on_weekday.add(day)
    for weekday in spec.last_of_weekdays:
        on_weekday.add(length - (weekday_of(length) - weekday) % 7)
    found = (on_day | on_weekday) if spec.day_or else (on_day & on_weekday)
    return tuple(sorted(found))


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]
    form: str


_MONTH_NAMES = {
    name: number
    for number, name in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAY_NAMES = {
    name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))
}
_SECOND_FIELD = _Field("second", 0, 59, {}, "0-59")
_MINUTE_FIELD = _Field("minute", 0, 59, {}, "0-59")
_HOUR_FIELD = _Field("hour", 0, 23, {}, "0-23")
_DOM_FIELD = _Field("day-of-month", 1, 31, {}, "1-31")
_MONTH_FIELD = _Field("month", 1, 12, _MONTH_NAMES, "1-12 or JAN-DEC")
_DOW_FIELD = _Field("day-of-week", 0, 7, _DAY_NAMES, "0-7 (0 and 7 are Sunday) or SUN-SAT")
_FIVE = (_MINUTE_FIELD, _HOUR_FIELD, _DOM_FIELD, _MONTH_FIELD, _DOW_FIELD)

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FORMS = (
    "use 5 fields (minute hour day-of-month month day-of-week), 6 fields with the second first "
    "(second minute hour day-of-month month day-of-week), or a macro such as @daily"
)
_ITEM = re.compile(r"^(?:(?P<star>\*)|(?P<low>[^-/*]+)(?:-(?P<high>[^-/*]+))?)(?:/(?P<step>.*))?$")
_LAST_DAY = re.compile(r"^L(?:-(?P<offset>\d+))?$")
_NEAREST = re.compile(r"^(?P<day>\d+)W$")
_NTH = re.compile(r"^(?P<day>[^#]+)#(?P<nth>[^#]*)$")
_LAST_OF = re.compile(r"^(?P<day>\d|[A-Z]{3})L$")
_YEARS = re.compile(r"^\d{4}(?:[-,/]\d+)*$")  # a Quartz year field: 2026, 2026-2030, 2026/2
_HASHED = re.compile(r"^H(?:\(\d+-\d+\))?(?:/\d+)?$")
_ORDINALS = ("first", "second", "third", "fourth", "fifth")


def _cron_error(message: str, expression: str) -> ScheduleError:
    return ScheduleError(f'{message} (in "{expression}")', key="cron")


def _value(text: str, spec: _Field, expression: str) -> int:
    upper = text.upper()
    if upper in spec.names:
        return spec.names[upper]
    if not (text.isascii() and text.isdigit()):
        raise _cron_error(
            f'{spec.name} field "{text}" is not a valid value; use {spec.form}', expression
        )
    number = int(text)
    if not spec.low <= number <= spec.high:
        raise _cron_error(
            f'{spec.name} field "{text}" is out of range {spec.low}-{spec.high}', expression
        )
    return number


def _unsupported(item: str, spec: _Field, expression: str) -> None:
    """Reject the forms of other cron dialects that quest does not support, saying what to write."""
    upper = item.upper()
    if _HASHED.match(upper):
        raise _cron_error(
            f'{spec.name} field "{item}": "H" (a hashed value, as in Jenkins) is not supported; '
            f"write a fixed value within {spec.form} instead",
            expression,
        )
    if upper == "?":
        raise _cron_error(
            f'{spec.name} field "{item}": "?" is only allowed in the day-of-month and day-of-week '
            'fields; write "*" for "every"',
            expression,
        )
    if ("L" in upper and spec is not _MONTH_FIELD and spec is not _DOW_FIELD) or "#" in upper:
        raise _cron_error(
            f'{spec.name} field "{item}": "L", "W" and "#" are only allowed in the day fields '
            '(day-of-month "L", "L-3", "15W", "LW"; day-of-week "MON#1", "5L", "FRI#L")',
            expression,
        )
    if upper.endswith("W") and upper[:-1].isdigit():
        raise _cron_error(
            f'{spec.name} field "{item}": "W" (nearest weekday) is only allowed in the '
            'day-of-month field, on one day such as "15W"',
            expression,
        )


def _parse_item(item: str, spec: _Field, text: str, expression: str) -> set[int]:
    """The values of one list item: ``*``, ``a``, ``a-b`` (wrapping if b < a), with ``/n``."""
    _unsupported(item, spec, expression)
    match = _ITEM.match(item)
    if not item or match is None:
        _unsupported(item, spec, expression)
        raise _cron_error(
            f'{spec.name} field "{text}" is not valid; use {spec.form}, '
            'a range "a-b", a step "*/n", "a-b/n" or "a/n", or a list "a,b"',
            expression,
        )
    step = 1
    if match["step"] is not None:
        if not (match["step"].isascii() and match["step"].isdigit()) or int(match["step"]) < 1:
            raise _cron_error(
                f'{spec.name} field "{item}" has an invalid step; '
                "the step must be a whole number of at least 1",
                expression,
            )
        step = int(match["step"])
    dow = spec is _DOW_FIELD
    high_end = 6 if dow else spec.high  # the cycle a range wraps around (Sunday is 0)
    if match["star"]:
        return set(range(spec.low, spec.high + 1, step))
    _unsupported(match["low"], spec, expression)
    low = _value(match["low"], spec, expression)
    if match["high"] is None:
        if match["step"] is None:
            return {low}
        if dow and low == 7:
            low = 0
        return set(range(low, high_end + 1, step))  # "5/15": from 5 to the end of the field
    _unsupported(match["high"], spec, expression)
    high = _value(match["high"], spec, expression)
    if dow:
        if high == 0 and low > 0:
            high = 7  # FRI-SUN
        elif low == 7:
            low = 0  # SUN-TUE written 7-2
    if high >= low:
        return set(range(low, high + 1, step))
    # a range that wraps around: FRI-MON, NOV-FEB, 22-2; the step counts across the wrap
    sequence = [*range(low, high_end + 1), *range(spec.low, high + 1)]
    return set(sequence[::step])


def _parse_field(text: str, spec: _Field, expression: str) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        values.update(_parse_item(item, spec, text, expression))
    return values


@dataclass
class _DayForms:
    days: set[int] = field(default_factory=set)
    last_days: set[int] = field(default_factory=set)
    nearest: set[int] = field(default_factory=set)
    last_weekday: bool = False
    weekdays: set[int] = field(default_factory=set)
    nth: set[tuple[int, int]] = field(default_factory=set)
    last_of: set[int] = field(default_factory=set)


def _alone(text: str, spec: _Field, expression: str) -> None:
    if "?" in text and text != "?":
        raise _cron_error(
            f'{spec.name} field "{text}": "?" (no restriction) stands alone in its field; '
            'write "?" or the values without it',
            expression,
        )


def _parse_dom(text: str, forms: _DayForms, expression: str) -> None:
    _alone(text, _DOM_FIELD, expression)
    if text == "?":
        forms.days.update(range(1, 32))
        return
    for item in text.split(","):
        upper = item.upper()
        last = _LAST_DAY.match(upper)
        nearest = _NEAREST.match(upper)
        if last is not None:
            offset = int(last["offset"] or 0)
            if offset > 30:
                raise _cron_error(
                    f'day-of-month field "{item}" is out of range; "L-n" takes n from 0 to 30',
                    expression,
                )
            forms.last_days.add(offset)
        elif upper == "LW":
            forms.last_weekday = True
        elif nearest is not None:
            day = int(nearest["day"])
            if not 1 <= day <= 31:
                raise _cron_error(
                    f'day-of-month field "{item}" is out of range; "nW" takes a day from 1 to 31',
                    expression,
                )
            forms.nearest.add(day)
        elif "L" in upper or "W" in upper:
            raise _cron_error(
                f'day-of-month field "{item}" is not valid; write "L" (the last day), "L-3" '
                '(3 days before it), "15W" (the weekday nearest the 15th) or "LW" (the last '
                "weekday), each on its own (not in a range or with a step)",
                expression,
            )
        else:
            forms.days.update(_parse_item(item, _DOM_FIELD, text, expression))


def _parse_dow(text: str, forms: _DayForms, expression: str) -> None:
    _alone(text, _DOW_FIELD, expression)
    if text == "?":
        forms.weekdays.update(range(7))
        return
    for item in text.split(","):
        upper = item.upper()
        nth = _NTH.match(upper)
        last_of = _LAST_OF.match(upper)
        if nth is not None:
            weekday = _value(nth["day"], _DOW_FIELD, expression) % 7
            if nth["nth"] == "L":
                forms.last_of.add(weekday)
            elif nth["nth"] in ("1", "2", "3", "4", "5"):
                forms.nth.add((weekday, int(nth["nth"])))
            else:
                raise _cron_error(
                    f'day-of-week field "{item}" is not valid; after "#" write 1-5 (the first to '
                    'fifth such day of the month) or L (the last), as in "MON#1" or "FRI#L"',
                    expression,
                )
        elif last_of is not None:
            forms.last_of.add(_value(last_of["day"], _DOW_FIELD, expression) % 7)
        elif "#" in upper:
            raise _cron_error(
                f'day-of-week field "{item}" is not valid; write one weekday and its number, '
                'such as "MON#1" or "FRI#L" (not in a range or with a step)',
                expression,
            )
        elif upper == "L":
            raise _cron_error(
                'day-of-week field "L" on its own is ambiguous and not supported; write "SAT" '
                'for Saturday, or "5L" / "FRI#L" for the last Friday of the month',
                expression,
            )
        elif "L" in upper.replace("SAT", "").replace("JUL", "") or "W" in upper.replace("WED", ""):
            raise _cron_error(
                f'day-of-week field "{item}" is not valid; write "5L" or "FRI#L" for the last '
                'Friday of the month (on its own, not in a range or with a step); "W" belongs '
                "in the day-of-month field",
                expression,
            )
        else:
            forms.weekdays.update(
                value % 7 for value in _parse_item(item, _DOW_FIELD, text, expression)
            )


def _max_days(month: int) -> int:
    return 29 if month == 2 else monthrange(2001, month)[1]


def _unrestricted(text: str) -> bool:
    return text.startswith("*") or text == "?"


@functools.lru_cache(maxsize=4096)
def parse_cron(expression: str) -> CronSpec:
    """Parse and fully validate a cron expression; raise :class:`ScheduleError` (key ``cron``)."""
    if not isinstance(expression, str):
        raise ScheduleError(f"{expression!r} is not a cron expression; {_FORMS}", key="cron")
    normalised = " ".join(expression.split())
    if not normalised:
        raise ScheduleError(f"the cron expression is empty; {_FORMS}", key="cron")
    text = normalised
    if text.startswith("@"):
        macro = text.lower()
        if macro == "@reboot":
            raise ScheduleError(
                '"@reboot" is not a schedule; use "run_on_start": true to run a script '
                "when quest serve starts",
                key="cron",
            )
        if macro == "@every" or macro.startswith("@every "):
            raise ScheduleError(
                f'"{normalised}" is not a cron macro; use "interval" for a fixed period',
                key="cron",
            )
        if macro not in _MACROS:
            raise ScheduleError(
                f'unknown cron macro "{normalised}"; use one of {", ".join(_MACROS)}', key="cron"
            )
        text = _MACROS[macro]
    parts = text.split(" ")
    if len(parts) == 5:
        seconds = {0}
    elif len(parts) == 6 and not _YEARS.match(parts[5]):
        seconds = _parse_field(parts[0], _SECOND_FIELD, normalised)
        parts = parts[1:]
    elif len(parts) in (6, 7):
        raise ScheduleError(
            f'cron expression "{normalised}" ends with a year field, which is not supported: '
            "remove the last field (if the script must only run in some years, check the year "
            f"inside the script); {_FORMS}",
            key="cron",
        )
    else:
        count = f"{len(parts)} field{'s' if len(parts) != 1 else ''}"
        raise ScheduleError(f'cron expression "{normalised}" has {count}; {_FORMS}', key="cron")
    minutes = _parse_field(parts[0], _MINUTE_FIELD, normalised)
    hours = _parse_field(parts[1], _HOUR_FIELD, normalised)
    months = _parse_field(parts[3], _MONTH_FIELD, normalised)
    forms = _DayForms()
    _parse_dom(parts[2], forms, normalised)
    _parse_dow(parts[4], forms, normalised)
    dom_text, month_text, dow_text = parts[2], parts[3], parts[4]
    day_or = not _unrestricted(dom_text) and not _unrestricted(dow_text)
    plain = not (forms.last_days or forms.nearest or forms.last_weekday)
    if (
        plain
        and not day_or
        and not any(day <= _max_days(month) for day in forms.days for month in months)
    ):
        raise _cron_error(
            f'day-of-month field "{dom_text}" never occurs in month field "{month_text}", '
            "so the schedule would never fire",
            normalised,
        )
    spec = CronSpec(
        expression=normalised,
        seconds=tuple(sorted(seconds)),
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=tuple(sorted(forms.days)),
        months=tuple(sorted(months)),
        weekdays=tuple(sorted(forms.weekdays)),
        day_or=day_or,
        last_days=tuple(sorted(forms.last_days)),
        nearest_weekdays=tuple(sorted(forms.nearest)),
        last_weekday=forms.last_weekday,
        nth_weekdays=tuple(sorted(forms.nth)),
        last_of_weekdays=tuple(sorted(forms.last_of)),
    )
    # 2000-2027 holds every calendar a month can have (each weekday start, leap or not)
    if not any(_month_days(spec, year, month) for year in range(2000, 2028) for month in months):
        raise _cron_error(
            f'day-of-month field "{dom_text}" and day-of-week field "{dow_text}" never match '
            f'a day in month field "{month_text}", so the schedule would never fire',
            normalised,
        )
    return spec


def _next_wall(spec: CronSpec, start: datetime) -> datetime | None:
    """The first naive wall time at or after *start* (whole seconds) that *spec* matches.

    Skips by month, day, hour and minute rather than stepping second by second; naive arithmetic
    is wall-clock arithmetic, which is what the fields describe. ``None`` when nothing matches
    within 400 years or before the end of the calendar (year 9999).
    """
    try:
        return _search_wall(spec, start)
    except (OverflowError, ValueError):  # ran off the end of year 9999
        return None


def _search_wall(spec: CronSpec, start: datetime) -> datetime | None:
    wall = start
    last_year = start.year + _MAX_YEARS
    months, hours, minutes, seconds = spec.months, spec.hours, spec.minutes, spec.seconds
    while wall.year <= last_year:
        if wall.month not in months:
            index = bisect_left(months, wall.month)
            if index < len(months):
                wall = datetime(wall.year, months[index], 1)
            else:
                wall = datetime(wall.year + 1, months[0], 1)
            continue
        year, month = wall.year, wall.month
        days = _month_days(spec, year, month)
        index = bisect_left(days, wall.day)
        if index == len(days):
            wall = datetime(year + 1, 1, 1) if month == 12 else datetime(year, month + 1, 1)
            continue
        day = days[index]
        if day != wall.day:
            wall = datetime(year, month, day)
        if wall.hour not in hours:
            index = bisect_right(hours, wall.hour)
            if index < len(hours):
                wall = wall.replace(hour=hours[index], minute=0, second=0)
            else:
                wall = datetime(year, month, day) + timedelta(days=1)
            continue
        if wall.minute not in minutes:
            index = bisect_right(minutes, wall.minute)
            if index < len(minutes):
                wall = wall.replace(minute=minutes[index], second=0)
            else:
                wall = wall.replace(minute=0, second=0) + timedelta(hours=1)
            continue
        if wall.second not in seconds:
            index = bisect_right(seconds, wall.second)
            if index < len(seconds):
                wall = wall.replace(second=seconds[index])
            else:
                wall = wall.replace(second=0) + timedelta(minutes=1)
            continue
        return wall
    return None


# --------------------------------------------------------------------------- wall time -> instants


def _utc_naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _transition(tz: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first UTC instant in ``(before, after]`` whose offset differs from *before*'s."""
    offset = before.replace(tzinfo=UTC).astimezone(tz).utcoffset()
    low, high = before, after
    while high - low > _SECOND:
        middle = low + _SECOND * max(1, (high - low) // _SECOND // 2)
        if middle.replace(tzinfo=UTC).astimezone(tz).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return high


def _instants(
    wall: datetime, tz: ZoneInfo, every_hour: bool
) -> tuple[datetime | None, datetime | None]:
    """The UTC instants a matching wall time fires at: ``(primary, second occurrence)``.

    The primary instant is the wall time's only or first occurrence, or for a wall time inside a
    gap, the end of the gap (``None`` for an every-hour expression). The second occurrence exists
    only inside a fold, and only for an every-hour expression.
    """
    first = wall.replace(tzinfo=tz).utcoffset()
    second = wall.replace(tzinfo=tz, fold=1).utcoffset()
    assert first is not None and second is not None
    if first == second:
        return wall - first, None
    if first > second:  # a fold: the offset goes down, the wall time happens twice
        return wall - first, (wall - second if every_hour else None)
    if every_hour:  # a gap: no clock shows this wall time
        return None, None
    return _transition(tz, wall - second, wall - first), None


def _cron_next(spec: CronSpec, tz: ZoneInfo, after: datetime) -> datetime | None:
    """The first UTC instant (naive) strictly after *after* (naive UTC) that *spec* fires at.

    Primary instants never decrease as wall time advances (see :func:`_instants`), and a second
    occurrence always follows its own primary, so the search may stop at the first primary past
    *after*; second occurrences met before it are kept as candidates.
    """
    local = after.replace(tzinfo=UTC).astimezone(tz)
    wall = resume = local.replace(tzinfo=None, fold=0)
    if spec.every_hour and local.fold == 0:
        first = wall.replace(tzinfo=tz).utcoffset()
        second = wall.replace(tzinfo=tz, fold=1).utcoffset()
        assert first is not None and second is not None
        if first > second:  # inside a fold's first pass: earlier wall times repeat after `after`
            wall -= first - second
    if wall.microsecond:
        wall = wall.replace(microsecond=0) + _SECOND
    best: datetime | None = None
    while True:
        match = _next_wall(spec, wall)
        if match is None:
            return best
        primary, repeat = _instants(match, tz, spec.every_hour)
        if repeat is not None and repeat > after and (best is None or repeat < best):
            best = repeat
        if primary is not None and primary > after:
            return primary if best is None or primary < best else best
        wall = match + _SECOND
        if best is not None:  # later second occurrences come later still; look for a primary
            wall = max(wall, resume)


# --------------------------------------------------------------------------- schedules


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """Fire every *every* of real elapsed time; *timezone* is only for display."""

    every: timedelta
    timezone: ZoneInfo

    def __post_init__(self) -> None:
        if self.every <= timedelta(0):
            raise ScheduleError(f"the interval must be positive, not {self.every}", key="interval")
        if not MIN_INTERVAL <= self.every <= MAX_SPAN:
            raise ScheduleError(
                f"the interval {format_timespan(self.every)} is out of range; use between "
                f"{format_timespan(MIN_INTERVAL)} and {MAX_SPAN_WORDS}",
                key="interval",
            )


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """Fire at the wall times a cron expression describes, read in *timezone*."""

    expression: str
    timezone: ZoneInfo
    spec: CronSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec = parse_cron(self.expression)
        object.__setattr__(self, "expression", spec.expression)
        object.__setattr__(self, "spec", spec)


@dataclass(frozen=True, slots=True)
class AtSchedule:
    """Fire once, at the aware instant *at*."""

    at: datetime
    timezone: ZoneInfo

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ScheduleError(f"{self.at.isoformat()} has no timezone", key="at")
        try:
            check_instant(self.at, "at")
        except ValueError as error:
            raise ScheduleError(str(error), key="at") from None


Schedule = IntervalSchedule | CronSchedule | AtSchedule


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA zone *name*; raise :class:`ScheduleError` (key ``timezone``) if it is unknown."""
    if isinstance(name, ZoneInfo):
        return name
    hint = 'use an IANA name such as "Europe/London" or "UTC"'
    if not isinstance(name, str) or not name.strip():
        raise ScheduleError(f"{name!r} is not a timezone; {hint}", key="timezone")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    from zoneinfo import available_timezones

    lowered = name.strip().lower()
    for candidate in sorted(available_timezones()):
        if candidate.lower() == lowered:
            hint = f'did you mean "{candidate}"?'
            break
    raise ScheduleError(f'unknown timezone "{name}"; {hint}', key="timezone")


def parse_interval(value: object) -> timedelta:
    """A time span from 1 second to 100 years (``"1 hour"``, ``"5m"``, ``300``).

    Raise :class:`ScheduleError` (key ``interval``); a value below one second is rejected before
    it could round to zero.
    """
    try:
        return parse_timespan(value, minimum=MIN_INTERVAL)
    except ValueError as error:
        raise ScheduleError(str(error), key="interval") from None


def interval_note(value: object) -> str | None:
    """A note when an interval written as a bare number was probably meant as milliseconds."""
    return milliseconds_note(value)


def _localize(wall: datetime, tz: ZoneInfo) -> datetime:
    """*wall* (naive) in *tz*: its first occurrence in a fold, the gap's end in a gap."""
    primary, _ = _instants(wall, tz, every_hour=False)
    assert primary is not None
    return primary.replace(tzinfo=UTC).astimezone(tz)


_FIRST_WALL = datetime(1, 1, 3)
_LAST_WALL = datetime(9999, 12, 29, 23, 59, 59, 999999)


def parse_at(value: str | datetime, tz: ZoneInfo) -> datetime:
    """An ISO 8601 instant; a naive one is a wall time in *tz* (read as cron wall times are).

    Raise :class:`ScheduleError` (key ``at``). The result is aware, in *tz*.
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("z", "Z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ScheduleError(
                f'"{value}" is not an ISO 8601 date and time; write for example '
                '"2026-05-01T03:00" (in the schedule\'s timezone) or "2026-05-01T03:00+02:00"',
                key="at",
            ) from None
    else:
        raise ScheduleError(
            f"{value!r} is not a date and time; write an ISO 8601 string such as "
            '"2026-05-01T03:00"',
            key="at",
        )
    try:
        if moment.tzinfo is None or moment.utcoffset() is None:
            if not _FIRST_WALL <= moment <= _LAST_WALL:  # so it converts in every timezone
                raise ValueError
            moment = _localize(moment, tz)
        check_instant(moment, "at")
        return moment.astimezone(tz)
    except (OverflowError, ValueError):
        raise ScheduleError(
            f'"{value}" is out of range; use an instant {INSTANT_RANGE}', key="at"
        ) from None


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not {moment.isoformat()}")


def next_fire(
    schedule: Schedule, after: datetime, *, anchor: datetime | None = None
) -> datetime | None:
    """The first fire time strictly after *after* (aware), in the schedule's timezone.

    Interval: ``anchor + k * every`` for the smallest ``k >= 0`` that lands after *after*; the
    anchor defaults to *after* (giving ``after + every``), and an anchor still in the future is
    itself the first fire. At: the instant if it is after *after*, else ``None``. Cron: see the
    module docstring; ``None`` only if nothing matches within 400 years. Any schedule gives
    ``None`` rather than a time past 9999-12-30 UTC (which some timezone could not show).
    """
    _require_aware(after, "after")
    if anchor is not None:
        _require_aware(anchor, "anchor")
    try:
        found = _next_fire(schedule, after, anchor)
        if found is not None:
            check_instant(found, "")  # shown in every timezone and stored, so within the range
    except (OverflowError, ValueError):  # past the end of the calendar
        return None
    return found


def _next_fire(schedule: Schedule, after: datetime, anchor: datetime | None) -> datetime | None:
    if isinstance(schedule, IntervalSchedule):
        start = after if anchor is None else anchor
        start_utc, after_utc = start.astimezone(UTC), after.astimezone(UTC)
        if start_utc > after_utc:
            result = start_utc
        else:
            result = start_utc + schedule.every * ((after_utc - start_utc) // schedule.every + 1)
        return result.astimezone(schedule.timezone)
    if isinstance(schedule, AtSchedule):
        if schedule.at.astimezone(UTC) > after.astimezone(UTC):
            return schedule.at.astimezone(schedule.timezone)
        return None
    found = _cron_next(schedule.spec, schedule.timezone, _utc_naive(after).replace(microsecond=0))
    if found is None:
        return None
    return found.replace(tzinfo=UTC).astimezone(schedule.timezone)


def fire_times(
    schedule: Schedule, after: datetime, count: int, *, anchor: datetime | None = None
) -> list[datetime]:
    """Up to *count* successive fire times strictly after *after* (fewer if the schedule ends)."""
    if anchor is None:
        anchor = after
    times: list[datetime] = []
    moment: datetime | None = after
    while moment is not None and len(times) < count:
        moment = next_fire(schedule, moment, anchor=anchor)
        if moment is not None:
            times.append(moment)
    return times


def describe(schedule: Schedule) -> str:
    """The schedule in words.

    ``every 1 hour``, ``at 03:00 AM``, ``once at 2026-05-01 03:00:00+02:00``.
    Cron wall times are in the schedule's timezone, which is not repeated here.
    """
    if isinstance(schedule, IntervalSchedule):
        return f"every {format_timespan(schedule.every)}"
    if isinstance(schedule, AtSchedule):
        try:
            moment = schedule.at.astimezone(schedule.timezone)
        except (OverflowError, ValueError):
            moment = schedule.at
        return f"once at {moment.isoformat(sep=' ', timespec='seconds')}"
    try:
        text = _describe_cron(schedule.spec)
    except Exception:  # a description is a courtesy; the expression itself is valid
        return f"cron {schedule.expression}"
    return text[:1].lower() + text[1:] if text else f"cron {schedule.expression}"


_WEEKDAY_WORDS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


@functools.lru_cache(maxsize=4096)
def _descriptor(expression: str) -> str:
    """cron-descriptor's English words for *expression* (scripts often share an expression)."""
    return _cron_describer()(expression)


@functools.cache
def _cron_describer() -> Callable[[str], str]:
    """``get_description`` in English, reading the message catalogue once.

    ``get_description`` reads and parses its ``.mo`` file on every call, most of its cost; the
    describer below shares one catalogue and is used only if it says what ``get_description``
    says on a sample, so another cron-descriptor version falls back to the plain call.
    """
    from cron_descriptor import ExpressionDescriptor, Options, get_description

    def plain(expression: str) -> str:
        return str(get_description(expression, Options(locale_code="en_US")))

    try:
        from cron_descriptor.DescriptionTypeEnum import DescriptionTypeEnum
        from cron_descriptor.ExpressionParser import ExpressionParser
        from cron_descriptor.GetText import GetText

        options = Options(locale_code="en_US")
        catalogue = GetText(options.locale_code, options.locale_location)

        def shared(expression: str) -> str:
            descriptor = ExpressionDescriptor.__new__(ExpressionDescriptor)
            descriptor._expression = expression
            descriptor._options = options
            descriptor.get_text = catalogue
            descriptor._expression_parts = ExpressionParser(expression, options).parse()
            return str(descriptor.get_description(DescriptionTypeEnum.FULL))

        sample = "5,35 */2 1-15 JAN-MAR MON-FRI"
        if shared(sample) == plain(sample):
            return shared
    except Exception:  # another version's internals: the plain call
        pass
    return plain


def _wraps(item: str, spec: _Field) -> tuple[bool, bool]:
    """Whether *item* is a range that wraps around, and whether it has a step."""
    match = _ITEM.match(item)
    if match is None or match["high"] is None:
        return False, False
    low = spec.names.get(match["low"].upper())
    high = spec.names.get(match["high"].upper())
    try:
        low = int(match["low"]) if low is None else low
        high = int(match["high"]) if high is None else high
    except ValueError:  # "L-3": not a range
        return False, False
    if spec is _DOW_FIELD:
        low, high = low % 7, (7 if high == 0 else high)
    return high < low, match["step"] is not None


def _canonical(values: tuple[int, ...], spec: _Field, *, star: bool = True) -> str:
    """*values* as ``*`` or a list of plain values and ranges, which cron-descriptor reads well.

    Without *star* a full set stays a range (a restricted day field must stay restricted).
    """
    top = 6 if spec is _DOW_FIELD else spec.high
    if star and set(values) >= set(range(spec.low, top + 1)):
        return "*"
    runs: list[list[int]] = []
    for value in sorted(values):
        if runs and value == runs[-1][-1] + 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return ",".join(
        f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)) for run in runs
    )


def _describable(
    text: str, values: tuple[int, ...], spec: _Field, *, always: bool = False, star: bool = True
) -> str:
    """*text*, or the values it stands for where cron-descriptor would misread it.

    That is a wrapping range with a step, or a list mixing ``*``, steps or wrapping ranges.
    """
    items = text.split(",")
    wraps = [_wraps(item, spec) for item in items]
    mixed = len(items) > 1 and any(
        "*" in item or "/" in item or wrap for item, (wrap, _) in zip(items, wraps, strict=True)
    )
    if always or mixed or any(wrap and step for wrap, step in wraps):
        return _canonical(values, spec, star=star)
    return text


def _join(phrases: list[str]) -> str:
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]


def _plain_text(text: str, special: str, values: tuple[int, ...], spec: _Field) -> str:
    """The plain items of a day field as cron-descriptor should read them."""
    plain = ",".join(item for item in text.split(",") if not re.search(special, item.upper()))
    if plain and plain != "?" and _describable(plain, values, spec) == plain:
        return plain
    return _canonical(values, spec, star=False)


def _day_words(spec: CronSpec, dom: str, dow: str) -> str:
    """The day fields in words, from the values they stand for ("" when every day matches)."""
    prefix = "At 12:00 AM, "
    every_day = set(spec.days) >= set(range(1, 32))
    every_weekday = set(spec.weekdays) >= set(range(7))
    if spec.day_or and (every_day or every_weekday):
        return ""
    dom_phrases: list[str] = []
    dow_phrases: list[str] = []
    if not every_day:
        if spec.days:
            text = _plain_text(dom, r"[LW]", spec.days, _DOM_FIELD)
            dom_phrases.append(_descriptor(f"0 0 {text} * *").removeprefix(prefix))
        for offset in spec.last_days:
            dom_phrases.append(
                "on the last day of the month"
                if offset == 0
                else f"{offset} day{'s' if offset != 1 else ''} before the last day of the month"
            )
        dom_phrases.extend(
            f"on the weekday nearest day {day} of the month" for day in spec.nearest_weekdays
        )
        if spec.last_weekday:
            dom_phrases.append("on the last weekday of the month")
    if not every_weekday:
        if spec.weekdays:
            text = _plain_text(dow, r"#|\dL$|^[A-Z]{3}L$", spec.weekdays, _DOW_FIELD)
            dow_phrases.append(_descriptor(f"0 0 * * {text}").removeprefix(prefix))
        dow_phrases.extend(
            f"on the {_ORDINALS[nth - 1]} {_WEEKDAY_WORDS[weekday]} of the month"
            for weekday, nth in spec.nth_weekdays
        )
        dow_phrases.extend(
            f"on the last {_WEEKDAY_WORDS[weekday]} of the month"
            for weekday in spec.last_of_weekdays
        )
    if dom_phrases and dow_phrases:
        joiner = ", or " if spec.day_or else ", and "  # either day matches / both must
        return f"{_join(dom_phrases)}{joiner}{_join(dow_phrases)}"
    return _join(dom_phrases or dow_phrases) if dom_phrases or dow_phrases else ""


def _describe_cron(spec: CronSpec) -> str:
    try:
        return _cron_words(spec, always=False)
    except Exception:  # cron-descriptor failed on the text; its values in plain form it reads
        return _cron_words(spec, always=True)


def _cron_words(spec: CronSpec, *, always: bool) -> str:
    """Words from cron-descriptor for the time and month; the day fields in our own words when
    they use ``L``, ``W`` or ``#``, or hold what cron-descriptor misreads."""
    fields = _MACROS.get(spec.expression.lower(), spec.expression).split(" ")
    second = f"{fields[0]} " if len(fields) == 6 else ""
    minute, hour, dom, month, dow = fields[-5:]
    minute = _describable(minute, spec.minutes, _MINUTE_FIELD, always=always)
    hour = _describable(hour, spec.hours, _HOUR_FIELD, always=always)
    month = _describable(month, spec.months, _MONTH_FIELD, always=always)
    if second:
        second = f"{_describable(second.strip(), spec.seconds, _SECOND_FIELD, always=always)} "
    special = bool(
        spec.last_days
        or spec.nearest_weekdays
        or spec.last_weekday
        or spec.nth_weekdays
        or spec.last_of_weekdays
    )
    plain_days = not special and (
        _describable(dom, spec.days, _DOM_FIELD) == dom
        and _describable(dow, spec.weekdays, _DOW_FIELD) == dow
    )
    both_decide = (
        not spec.day_or
        and not set(spec.days) >= set(range(1, 32))
        and not set(spec.weekdays) >= set(range(7))
    )  # cron-descriptor would say "or" where crontab(5) means "and" (`*/2 * MON`)
    if not special and not always and plain_days and not both_decide:
        return _descriptor(f"{second}{minute} {hour} {dom} {month} {dow}")
    time_words = _descriptor(f"{second}{minute} {hour} * * *")
    with_month = _descriptor(f"{second}{minute} {hour} * {month} *")
    month_words = with_month.removeprefix(time_words) if with_month.startswith(time_words) else ""
    days = _day_words(spec, dom, dow)
    return f"{time_words}{', ' + days if days else ''}{month_words}"


# --------------------------------------------------------------------------- APScheduler


def to_trigger(
    schedule: Schedule, *, anchor: datetime | None = None, jitter: float | None = None
) -> BaseTrigger:
    """An APScheduler 3 trigger whose fire times come from :func:`next_fire`.

    ``get_next_fire_time(previous_fire_time, now)``:

    - with a previous fire time, returns the first fire strictly after it, so a slot is never
      repeated and missed slots are walked one by one, as APScheduler expects;
    - without one (a job being added), returns the first fire at or after *now*, counting a fire
      exactly at *now* (the search starts one microsecond, datetime's resolution, before it).
      An interval with no *anchor* is anchored at that first *now*, so it first fires one period
      later; the trigger keeps that anchor, so jitter never makes an interval drift.

    Fire times come back in UTC, the same instants :func:`next_fire` gives: arithmetic on aware
    datetimes that share a zone is wall-clock arithmetic and ignores ``fold``, so UTC keeps
    APScheduler's own sums (jitter, wake-up delays) exact through DST folds.

    *jitter* (seconds) is added as ``BaseTrigger._apply_jitter`` does. A one-off ``at`` in the past
    gives ``None``: APScheduler then has nothing to run.
    """
    if jitter is not None and jitter < 0:
        raise ScheduleError(f"jitter must be zero or more seconds, not {jitter}", key="jitter")
    if anchor is not None:
        _require_aware(anchor, "anchor")
    trigger_class = _trigger_class()
    trigger: BaseTrigger = trigger_class(schedule, anchor, jitter)
    return trigger


@functools.cache
def _trigger_class() -> Callable[[Schedule, datetime | None, float | None], Any]:
    from apscheduler.triggers.base import BaseTrigger

    class ScheduleTrigger(BaseTrigger):  # type: ignore[misc]
        """Fires when :func:`quest.schedule.next_fire` says."""

        __slots__ = ("anchor", "jitter", "schedule")

        def __init__(
            self, schedule: Schedule, anchor: datetime | None, jitter: float | None
        ) -> None:
            self.schedule = schedule
            self.anchor = anchor
            self.jitter = jitter

        def get_next_fire_time(
            self, previous_fire_time: datetime | None, now: datetime
        ) -> datetime | None:
            unanchored = isinstance(self.schedule, IntervalSchedule) and self.anchor is None
            if previous_fire_time is not None:
                after = previous_fire_time
            elif unanchored:
                after = now  # an interval with no anchor first fires one period after it starts
            else:
                after = now - _MICROSECOND  # a fire exactly at `now` counts
            if unanchored:
                self.anchor = after
            found = next_fire(self.schedule, after, anchor=self.anchor)
            if found is None:
                return None
            result: datetime = self._apply_jitter(found.astimezone(UTC), self.jitter, now)
            return result

        def __reduce__(self) -> tuple[Any, ...]:
            return (_rebuild_trigger, (self.schedule, self.anchor, self.jitter))

        def __str__(self) -> str:
            return f"quest[{describe(self.schedule)}]"

        def __repr__(self) -> str:
            return (
                f"<ScheduleTrigger schedule={self.schedule!r} anchor={self.anchor!r} "
                f"jitter={self.jitter!r}>"
            )

    return ScheduleTrigger


def _rebuild_trigger(
    schedule: Schedule, anchor: datetime | None, jitter: float | None
) -> BaseTrigger:
    trigger: BaseTrigger = _trigger_class()(schedule, anchor, jitter)
    return trigger
