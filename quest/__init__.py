"""quest: run an application's background scripts, declared, scheduled, validated and recorded.

Scripts write ``from quest import script, Input``. Names are loaded on first use so that the
command line starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Quest
    from .clock import Clock, SystemClock
    from .context import Context
    from .definition import Script, script
    from .enums import CatchUp, RunStatus, SkipReason, Trigger
    from .errors import (
        Discard,
        InvalidDefinition,
        InvalidInputs,
        QuestError,
        ScheduleError,
        ScriptNotFound,
    )
    from .inputs import Input, Inputs
    from .runner import RunOutcome, RunRequest
    from .signals import JobEvent, job_complete, job_error, job_progress, job_skip, job_start

__version__ = "0.1.0"

_EXPORTS = {
    # declaring scripts
    "script": "definition",
    "Script": "definition",
    "Input": "inputs",
    "Inputs": "inputs",
    "Context": "context",
    "Discard": "errors",
    # running
    "Quest": "app",
    "RunOutcome": "runner",
    "RunRequest": "runner",
    "RunStatus": "enums",
    "Trigger": "enums",
    "SkipReason": "enums",
    "CatchUp": "enums",
    "Clock": "clock",
    "SystemClock": "clock",
    # signals
    "JobEvent": "signals",
    "job_start": "signals",
    "job_complete": "signals",
    "job_error": "signals",
    "job_skip": "signals",
    "job_progress": "signals",
    # errors
    "QuestError": "errors",
    "InvalidDefinition": "errors",
    "InvalidInputs": "errors",
    "ScheduleError": "errors",
    "ScriptNotFound": "errors",
}

__all__ = [  # noqa: RUF022 - grouped by concept
    # declaring scripts
    "Context",
    "Discard",
    "Input",
    "Inputs",
    "Script",
    "script",
    # running
    "CatchUp",
    "Clock",
    "Quest",
    "RunOutcome",
    "RunRequest",
    "RunStatus",
    "SkipReason",
    "SystemClock",
    "Trigger",
    "enqueue",
    # signals
    "JobEvent",
    "job_complete",
    "job_error",
    "job_progress",
    "job_skip",
    "job_start",
    # errors
    "InvalidDefinition",
    "InvalidInputs",
    "QuestError",
    "ScheduleError",
    "ScriptNotFound",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'quest' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


_default: Quest | None = None


def enqueue(
    name: str,
    inputs: dict[str, Any] | None = None,
    *,
    delay: Any = None,
    key: str | None = None,
) -> str:
    """Queue a run of script *name* from a web application; returns the run id.

    Uses the project found from the working folder (``[tool.quest]``, ``QUEST_*`` variables).
    Inputs are validated now: a bad call raises and nothing is queued.
    """
    global _default
    if _default is None:
        from .app import Quest

        _default = Quest()
    return _default.enqueue(name, inputs, delay=delay, key=key)
