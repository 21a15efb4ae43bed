"""What a script is, said for people: its schedule in words, next fires, its declaration.

Shared by ``quest list``/``quest show`` and the dashboard.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quest.app import Quest
    from quest.definition import Script
    from quest.inputs import Input
    from quest.schedule import Schedule


def schedule_words(app: Quest, script: Script, shared: Shared | None = None) -> str:
    from quest.errors import QuestError

    block = script.quest
    if block is None:
        return "on demand"
    shared = shared or Shared(app)
    try:
        schedule = shared.schedule(script)
    except QuestError as exc:  # e.g. an `at` that only fails in the default timezone
        return f"invalid schedule: {exc}"
    words = shared.describe(schedule) if schedule is not None else "on demand"
    if not block.enabled:
        words += " (disabled)"
    elif block.environments and app.settings.env not in block.environments:
        words += f" (only in {', '.join(block.environments)})"
    return words


def next_fires(
    app: Quest, script: Script, after: datetime, count: int, shared: Shared | None = None
) -> list[datetime]:
    from quest.errors import QuestError

    try:
        return (shared or Shared(app)).upcoming(script, after, count)
    except QuestError:  # schedule_words says what is wrong
        return []


class Shared:
    """What scripts declaring the same schedule share: the schedule, its words, its next fires.

    One listing of thousands of scripts builds, describes and walks each distinct schedule once.
    """

    def __init__(self, app: Quest) -> None:
        self.settings = app.settings
        self._schedules: dict[tuple[Any, ...], Any] = {}
        self._words: dict[Schedule, str] = {}
        self._fires: dict[tuple[Schedule, datetime, int], list[datetime]] = {}

    def schedule(self, script: Script) -> Schedule | None:
        """``script.schedule(...)``; raises the same :class:`~quest.errors.QuestError`."""
        from quest.errors import QuestError

        block = script.quest
        if block is None:
            return None
        key = (block.interval, block.cron, block.at, block.timezone)
        try:
            found = self._schedules[key]
        except KeyError:
            try:
                found = script.schedule(self.settings.timezone)
            except QuestError as exc:
                found = exc
            except TypeError:  # a value that cannot be a key: nothing to share
                return script.schedule(self.settings.timezone)
            self._schedules[key] = found
        if isinstance(found, QuestError):
            raise found
        schedule: Schedule | None = found
        return schedule

    def describe(self, schedule: Schedule) -> str:
        from quest.schedule import describe

        words = self._words.get(schedule)
        if words is None:
            words = self._words[schedule] = describe(schedule)
        return words

    def upcoming(self, script: Script, after: datetime, count: int) -> list[datetime]:
        """``plan.upcoming(script, ...)``: fire times depend on the schedule alone."""
        from quest.plan import inactive_reason, upcoming

        if script.quest is None or inactive_reason(script, self.settings) is not None:
            return []
        schedule = self.schedule(script)
        if schedule is None:
            return []
        key = (schedule, after, count)
        fires = self._fires.get(key)
        if fires is None:
            fires = self._fires[key] = upcoming(script, self.settings, after, count)
        return list(fires)


def schedule_note(script: Script) -> str | None:
    """A note on how the schedule is read: a bare-number interval that looks like milliseconds."""
    block = script.quest
    return None if block is None else block.interval_note


def declaration(app: Quest, script: Script) -> dict[str, Any]:
    from quest.inputs import MISSING

    block = script.quest
    quest = (
        block.model_dump(mode="json", exclude_defaults=True, exclude={"discard_on"})
        if block
        else {}
    )
    if block is not None and block.discard_on:
        quest["discard_on"] = [f"{t.__module__}.{t.__qualname__}" for t in block.discard_on]
    given = quest.get("inputs")
    if isinstance(given, dict):
        # The values a quest block gives sensitive inputs are secrets like any other.
        quest["inputs"] = {
            key: "***" if key in script.inputs and script.inputs[key].sensitive else value
            for key, value in given.items()
        }
    return {
        "name": script.name,
        "friendly_name": script.friendly_name,
        "description": script.description,
        "path": script.path,
        "schedule": schedule_words(app, script),
        "timezone": str(script.timezone(app.settings.timezone)),
        "note": schedule_note(script),
        "quest": quest,
        "inputs": {
            key: {
                "type": spec.type_name,
                "required": spec.is_required,
                "default": None
                if spec.default is MISSING
                else ("***" if spec.sensitive else portable(spec.default)),
                "description": spec.description,
                "sensitive": spec.sensitive,
            }
            for key, spec in script.inputs.items()
        },
    }


def portable(value: Any) -> Any:
    """A default as JSON can write it: NaN and infinities as the strings the JobLog stores."""
    import math

    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def input_facts(spec: Input) -> list[str]:
    """What the help of an input says beside its description: type, required or default (a
    sensitive one's as ``***``), bounds, pattern, sensitive. The command line's ``--help`` and
    the dashboard's Run-now form show the same."""
    import json

    from quest.inputs import MISSING

    facts = [spec.type_name]
    if spec.is_required:
        facts.append("required")
    elif spec.default is not MISSING:
        try:
            shown = "***" if spec.sensitive else json.dumps(spec.default, default=str)
        except ValueError:
            shown = repr(spec.default)
        facts.append(f"default: {shown[:200]}")
    if spec.min is not None:
        facts.append(f"min {spec.min:g}")
    if spec.max is not None:
        facts.append(f"max {spec.max:g}")
    if spec.pattern:
        facts.append(f"pattern {spec.pattern}")
    if spec.sensitive:
        facts.append("sensitive")
    return facts
