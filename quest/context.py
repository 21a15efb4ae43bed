"""What a running script receives next to its inputs."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from . import redact
from .clock import Clock
from .enums import Trigger
from .progress import Progress

if TYPE_CHECKING:
    from .config import Settings
    from .store import Sessions


class RunLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger bound to one run: every record carries the script name and run id.

    Its logger (``quest.script.NAME``) scrubs the secrets of the runs active in the process from
    every record (:class:`quest.redact.RedactingFilter`) before any handler sees it, the
    application's own handlers included.
    """

    def __init__(self, logger: logging.Logger, extra: Mapping[str, object] | None = None) -> None:
        super().__init__(logger, extra)
        redact.install(logger)

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        extra.update(kwargs.get("extra") or {})
        kwargs["extra"] = extra
        return msg, kwargs


Enqueue = Callable[..., str]
Report = Callable[[str, Any], None]
"""Where a run reports what happens while it runs (``kind``, payload): to the runner that records
it, directly in its own process, over the worker's channel from a worker process."""


@dataclass(frozen=True)
class Context:
    """The run's clock, logger, database session factory, identity and ``enqueue``.

    ``timezone`` is the script's (its quest block's, else the configured default): use it for
    "yesterday" and "last month" in the application's local time.
    """

    name: str
    run_id: str
    trigger: Trigger
    attempt: int
    now: datetime
    clock: Clock
    log: logging.LoggerAdapter  # type: ignore[type-arg]
    db: Sessions
    settings: Settings
    max_attempts: int = 1
    timezone: tzinfo = UTC
    scheduled_for: datetime | None = None
    key: str | None = None
    root_id: str | None = None
    _enqueue: Enqueue | None = field(default=None, repr=False)
    _report: Report | None = field(default=None, repr=False)
    extra: Mapping[str, Any] = field(default_factory=dict)
    progress: Progress = field(init=False, repr=False, compare=False)
    """``ctx.progress(current, total=None, message=None)`` and ``ctx.progress.iter(rows)``: how
    far the run has come (see :mod:`quest.progress`)."""

    def __post_init__(self) -> None:
        progress = Progress(self._report, self.log, monotonic=self.clock.monotonic)
        object.__setattr__(self, "progress", progress)

    def enqueue(
        self,
        name: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        delay: timedelta | str | float | None = None,
        key: str | None = None,
    ) -> str:
        """Queue a run of *name* (validated now); returns its run id."""
        if self._enqueue is None:
            raise RuntimeError("this context cannot enqueue runs")
        return self._enqueue(name, inputs or {}, delay=delay, key=key)

    def identity(self) -> dict[str, Any]:
        """What another process needs to give the same run a context of its own."""
        return {
            "run_id": self.run_id,
            "now": self.now,
            "trigger": self.trigger,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
            "scheduled_for": self.scheduled_for,
            "key": self.key,
            "root_id": self.root_id,
        }

    @property
    def is_retry(self) -> bool:
        return self.attempt > 1
