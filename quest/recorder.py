"""The JobLog recorder: an ordinary subscriber of quest's signals that writes one row per run."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import Any

from .enums import RunStatus
from .signals import JobEvent, Subscriber, recorded_first
from .store import Store

log = logging.getLogger("quest.recorder")

HOST = socket.gethostname()


class Recorder(Subscriber):
    """Writes the JobLog, in the runner's unit of work when there is one.

    Its receivers are called before any other, so the row is committed when they run; a write the
    database refuses is retried with backoff (see :meth:`Store.unit`) so no outcome is lost.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    @recorded_first
    def on_start(self, sender: object, event: JobEvent) -> None:
        if event.extra.get("claimed"):
            return
        values = _row(event, RunStatus.running)
        values.update(started_at=event.started_at, heartbeat_at=event.started_at)
        if event.extra.get("queued"):
            values.pop("created_at")
            self._write(lambda: self.store.update_run(event.run_id, values), event)
        else:
            self._write(lambda: self.store.insert_run(values), event)

    @recorded_first
    def on_end(self, sender: object, event: JobEvent) -> None:
        values = {
            "status": event.status,
            "finished_at": event.finished_at,
            "duration_ms": event.duration_ms,
            "result": event.result,
            "error": event.error,
            "traceback": event.traceback,
            "max_attempts": event.max_attempts,
        }
        if event.status is RunStatus.abandoned:
            values.pop("error")
            values.pop("traceback")
            self._write(lambda: self.store.update_run(event.run_id, values), event)
            return
        self._write(lambda: self.store.finish_run(event.run_id, values), event)

    @recorded_first
    def on_skip(self, sender: object, event: JobEvent) -> None:
        values = _row(event, RunStatus.skipped)
        values.update(finished_at=event.timestamp, reason=(event.reason or "")[:200])
        self._write(lambda: self.store.insert_run(values), event)

    def _write(self, write: Callable[[], None], event: JobEvent) -> None:
        if self.store.db.current() is not None:
            write()  # the runner's unit of work: the write joins it
            return
        with self.store.unit(durable=True, about={"run_id": event.run_id, "script": event.name}):
            write()


def _row(event: JobEvent, status: RunStatus) -> dict[str, Any]:
    """The columns a new JobLog row takes from *event*."""
    return {
        "id": event.run_id,
        "name": event.name,
        "status": status,
        "trigger": event.trigger,
        "attempt": event.attempt,
        "max_attempts": event.max_attempts,
        "root_id": event.root_id,
        "key": event.key,
        "inputs": event.inputs,
        "scheduled_for": event.scheduled_for,
        "created_at": event.started_at or event.timestamp,
        "owner_host": HOST,
        "owner_pid": os.getpid(),
    }
