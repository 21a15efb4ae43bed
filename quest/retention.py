"""Retention: how many finished runs the JobLog keeps, by age and by count.

Succeeded and skipped runs follow the ``succeeded`` rule (30 days, 1,000 runs per script by
default); failed, timed out, interrupted, abandoned, discarded and cancelled runs follow the
``failed`` rule (90 days, 5,000 runs). A script's quest block may set its own ``retention``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from .definition import Retention
from .enums import RunStatus

if TYPE_CHECKING:
    from .app import Quest

KEPT_AS_SUCCEEDED = (RunStatus.succeeded, RunStatus.skipped)
KEPT_AS_FAILED = (
    RunStatus.failed,
    RunStatus.timed_out,
    RunStatus.interrupted,
    RunStatus.abandoned,
    RunStatus.discarded,
    RunStatus.cancelled,
)
DEFAULT = Retention()


def prune(quest: Quest, now: datetime, *, default: Retention = DEFAULT) -> dict[str, int]:
    """Apply the retention rules to every script in the JobLog; returns rows deleted by script.

    Sensitive inputs kept for chains that no longer have a queued or running run go too, and so
    do cancel requests of runs that are no longer running and the progress of deleted runs. A
    deleted run's log lines go with it (and lines left by runs deleted some other way go too).
    """
    store = quest.store
    store.prune_secrets()
    store.prune_cancels()
    store.prune_logs()
    deleted: dict[str, int] = {}
    for name in store.names_in_log():
        script = quest.registry.scripts.get(name)
        rule = (script.block().retention if script else None) or default
        count = 0
        for statuses, keep in ((KEPT_AS_SUCCEEDED, rule.succeeded), (KEPT_AS_FAILED, rule.failed)):
            count += store.prune_runs(
                name,
                statuses,
                older_than=now - keep.age if keep.age is not None else None,
                keep=keep.count,
            )
        if count:
            deleted[name] = count
    store.prune_progress()
    return deleted
