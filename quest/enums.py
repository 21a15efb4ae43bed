"""Statuses, triggers and policies as enums."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """The state of one run in the JobLog."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    timed_out = "timed_out"
    skipped = "skipped"
    interrupted = "interrupted"
    abandoned = "abandoned"
    discarded = "discarded"
    cancelled = "cancelled"

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.queued, RunStatus.running)

    @property
    def ok(self) -> bool:
        return self is RunStatus.succeeded


class CancelOutcome(StrEnum):
    """What a cancel request found."""

    unknown = "unknown"
    """No run has that id."""
    finished = "finished"
    """The run had already ended; nothing was changed."""
    cancelled = "cancelled"
    """The run was queued: it is now ``cancelled`` and will never start."""
    requested = "requested"
    """The run is running: the serve that owns it is asked to stop it."""


class Trigger(StrEnum):
    """Why a run happened."""

    manual = "manual"
    scheduled = "scheduled"
    catch_up = "catch_up"
    enqueued = "enqueued"
    retry = "retry"

    @property
    def queued(self) -> bool:
        """Whether runs of this trigger come from the queue (enqueued, or a retry)."""
        return self in (Trigger.enqueued, Trigger.retry)


class SkipReason(StrEnum):
    """Why a fire did not run."""

    overlap = "overlap"
    paused = "paused"
    disabled = "disabled"
    missed = "missed"
    claimed = "claimed"


class CatchUp(StrEnum):
    """What to do with fire times missed while no serve was running."""

    skip = "skip"
    once = "once"


class Isolation(StrEnum):
    """Where ``quest serve`` executes a run."""

    process = "process"
    thread = "thread"


class BackoffType(StrEnum):
    fixed = "fixed"
    exponential = "exponential"
