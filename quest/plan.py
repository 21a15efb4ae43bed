"""Which scripts serve schedules, and their fire times: the one place both serve and show use.

Interval schedules are anchored at the Unix epoch, so every serve process on every host agrees
on the slots ("every 30 seconds" fires at :00 and :30 of each minute, "1 hour" at the top of each
UTC hour) and a slot claimed by one process is the very slot the others would have run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import Settings
    from .definition import Script
    from .schedule import Schedule

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Planned:
    """A script that serve schedules, with its APScheduler trigger."""

    script: Script
    schedule: Schedule
    trigger: Any

    @property
    def name(self) -> str:
        return self.script.name

    def next_after(self, previous: datetime | None, now: datetime) -> datetime | None:
        """The slot after *previous* (or the first at or after *now* when there is none)."""
        found: datetime | None = self.trigger.get_next_fire_time(previous, now)
        return found


def plan(script: Script, settings: Settings) -> Planned | None:
    """The plan for *script*, or ``None`` when serve does not schedule it."""
    from .schedule import IntervalSchedule, to_trigger

    if inactive_reason(script, settings) is not None:
        return None
    schedule = script.schedule(settings.timezone)
    if schedule is None:
        return None
    anchor = EPOCH if isinstance(schedule, IntervalSchedule) else None
    return Planned(script, schedule, to_trigger(schedule, anchor=anchor))


def inactive_reason(script: Script, settings: Settings) -> str | None:
    """Why serve does not schedule *script*, in words (on demand scripts give ``None`` too)."""
    block = script.quest
    if block is None:
        return None
    if not block.enabled:
        return "enabled is false"
    if block.environments and settings.env not in block.environments:
        wanted = ", ".join(block.environments)
        return f"runs only in {wanted}; QUEST_ENV is {settings.env}"
    return None


def upcoming(script: Script, settings: Settings, after: datetime, count: int) -> list[datetime]:
    """The next *count* slots of *script* strictly after *after*, in its timezone."""
    planned = plan(script, settings)
    if planned is None:
        return []
    zone = planned.schedule.timezone
    times: list[datetime] = []
    previous: datetime | None = after
    while len(times) < count:
        found = planned.next_after(previous, after)
        if found is None:
            break
        times.append(found.astimezone(zone))
        previous = found
    return times
