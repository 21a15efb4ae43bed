"""Signals emitted for every run, from quest's own blinker namespace.

Receivers get the sender (the runner that emitted) and ``event``, a :class:`JobEvent`::

    from quest.signals import job_error

    @job_error.connect
    def alert(sender, event):
        print(event.name, event.error)

A receiver that raises is logged and never changes the run's outcome. Before any receiver sees an
event, the values of the sensitive inputs of the runs active in the process are scrubbed from it
(:mod:`quest.redact`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, Self, TypeVar

from blinker import NamedSignal, Namespace

from . import redact
from .enums import RunStatus, Trigger

log = logging.getLogger("quest.signals")

F = TypeVar("F", bound=Callable[..., Any])

namespace = Namespace()

job_start: NamedSignal = namespace.signal("job:start", doc="A run started.")
job_complete: NamedSignal = namespace.signal("job:complete", doc="A run succeeded.")
job_error: NamedSignal = namespace.signal(
    "job:error", doc="A run failed, timed out, was interrupted, abandoned or discarded."
)
job_skip: NamedSignal = namespace.signal(
    "job:skip", doc="A fire did not run (overlap, paused, disabled, missed)."
)
job_progress: NamedSignal = namespace.signal(
    "job:progress",
    doc="A running run reported progress (at most about once a second per run).",
)


action: NamedSignal = namespace.signal(
    "action",
    doc="Someone acted on a script or a run (run now, pause, resume, retry, cancel, discard); "
    "the receivers get an ActionEvent saying who.",
)


@dataclass(frozen=True, slots=True)
class ActionEvent:
    """Who did what to which script or run (``target``: a script name or a run id)."""

    action: str
    who: str
    target: str
    timestamp: datetime
    detail: dict[str, Any] = field(default_factory=dict)


def emit_action(sender: object, event: ActionEvent) -> None:
    """Send *event* on :data:`action`; a receiver that raises is logged and skipped."""
    for receiver in list(action.receivers_for(sender)) if action.receivers else []:
        try:
            receiver(sender, event=event)
        except Exception:
            log.exception("receiver %r of %s raised", receiver, action.name)


@dataclass(frozen=True, slots=True)
class JobEvent:
    """What a signal says about a run.

    Sensitive inputs are redacted (``***``), and :func:`emit` scrubs every rendering of their values
    from ``inputs``, ``result``, ``error``, ``traceback``, ``reason``, ``key`` and ``extra``.
    """

    name: str
    run_id: str
    trigger: Trigger
    status: RunStatus
    inputs: dict[str, Any]
    timestamp: datetime
    attempt: int = 1
    max_attempts: int = 1
    root_id: str | None = None
    key: str | None = None
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    reason: str | None = None
    retry_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    progress_current: float | None = None
    progress_total: float | None = None
    progress_message: str | None = None

    @property
    def duration(self) -> int | None:
        """Milliseconds, as in the Sails payload."""
        return self.duration_ms

    @property
    def will_retry(self) -> bool:
        return self.retry_at is not None

    @property
    def progress_percent(self) -> float | None:
        """``progress_current`` of ``progress_total`` in percent (0-100), if both are known."""
        if self.progress_current is None or not self.progress_total:
            return None
        return min(max(100.0 * self.progress_current / self.progress_total, 0.0), 100.0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["trigger"] = self.trigger.value
        data["status"] = self.status.value
        for key in ("timestamp", "scheduled_for", "started_at", "finished_at", "retry_at"):
            if data[key] is not None:
                data[key] = data[key].isoformat()
        data["duration"] = self.duration_ms
        data["will_retry"] = self.will_retry
        data["progress_percent"] = self.progress_percent
        return data


def recorded_first(receiver: F) -> F:
    """Mark *receiver* to be called before the others (quest's JobLog recorder).

    When a receiver of ``job:start`` runs, the run's JobLog row is already committed; when a
    receiver of ``job:complete`` or ``job:error`` runs, the row is already finished.
    """
    receiver.quest_first = True  # type: ignore[attr-defined]
    return receiver


Later = tuple[NamedSignal, object, JobEvent, list[Callable[..., Any]]]
"""A signal sent to its first receivers only, and what remains of it: see :func:`emit`."""


def emit(
    signal: NamedSignal,
    sender: object,
    event: JobEvent,
    *,
    between: Callable[[], None] | None = None,
    later: list[Later] | None = None,
) -> None:
    """Send *event* to every receiver; a receiver that raises is logged and skipped.

    Receivers marked :func:`recorded_first` are called first, then *between* (the runner commits
    its transaction there), then the others. With *later*, the others are not called: what they
    are owed is appended to it, for :func:`emit_later` once the caller has committed. Every
    receiver gets the event scrubbed of the sensitive values registered in this process
    (:func:`scrubbed`).
    """
    event = scrubbed(event)
    rest: list[Callable[..., Any]] = []
    for receiver in list(signal.receivers_for(sender)) if signal.receivers else []:
        if getattr(receiver, "quest_first", False):
            _call(signal, receiver, sender, event)
        else:
            rest.append(receiver)
    if later is not None:
        if rest:
            later.append((signal, sender, event, rest))
        return
    if between is not None:
        between()
    for receiver in rest:
        _call(signal, receiver, sender, event)


def emit_later(pending: list[Later]) -> None:
    """Call the receivers :func:`emit` left in *pending*, in order."""
    for signal, sender, event, receivers in pending:
        for receiver in receivers:
            _call(signal, receiver, sender, event)


_SCRUBBED_FIELDS = (
    "inputs",
    "result",
    "error",
    "error_type",
    "traceback",
    "reason",
    "key",
    "extra",
    "progress_message",
)


def scrubbed(event: JobEvent) -> JobEvent:
    """*event* with every active secret (:mod:`quest.redact`) scrubbed from what it carries."""
    if not redact.is_active():
        return event
    changes = {}
    for name in _SCRUBBED_FIELDS:
        value = getattr(event, name)
        clean = redact.scrub_value(value)
        if clean is not value:
            changes[name] = clean
    return replace(event, **changes) if changes else event


def _call(signal: NamedSignal, receiver: Any, sender: object, event: JobEvent) -> None:
    try:
        receiver(sender, event=event)
    except Exception:
        log.exception(
            "signal receiver %r for %s raised; the run is unaffected",
            receiver,
            signal.name,
            extra={"run_id": event.run_id, "script": event.name},
        )


class Subscriber:
    """A receiver of the run signals one sender (a runner) emits: subclasses define
    ``on_start``, ``on_end`` (for both ``job:complete`` and ``job:error``) and ``on_skip``."""

    def on_start(self, sender: object, event: JobEvent) -> None:
        """A run started."""

    def on_end(self, sender: object, event: JobEvent) -> None:
        """A run ended, whatever its status."""

    def on_skip(self, sender: object, event: JobEvent) -> None:
        """A fire did not run."""

    def _receivers(self) -> tuple[tuple[NamedSignal, Any], ...]:
        return (
            (job_start, self.on_start),
            (job_complete, self.on_end),
            (job_error, self.on_end),
            (job_skip, self.on_skip),
        )

    def connect(self, sender: object) -> Self:
        """Subscribe to the signals *sender* emits."""
        for signal, receiver in self._receivers():
            signal.connect(receiver, sender=sender, weak=False)
        return self

    def disconnect(self) -> None:
        for signal, receiver in self._receivers():
            signal.disconnect(receiver)
