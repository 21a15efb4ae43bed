"""Connected when quest starts: the application's own signal receivers.

quest records every run in the JobLog itself; the application adds a log line at the start and
the end of each run, and an alert to ``#ops-alerts`` when a run fails.
"""

from __future__ import annotations

import logging
from typing import Any

from quest.config import Settings
from quest.signals import JobEvent, job_complete, job_error, job_start

from .alerts import DEFAULT_CHANNEL, send_alert

log = logging.getLogger("app.jobs")


def failure_message(event: JobEvent) -> str:
    """The alert text for a failed run."""
    return f'Job "{event.name}" failed after {event.duration}ms:\n{event.error}'


class JobEventLogger:
    """Logs every run's start and end and alerts on failures, for one runner."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_start(self, sender: object, event: JobEvent) -> None:
        log.info(
            "job %s started (run %s, %s)",
            event.name,
            event.run_id,
            event.trigger.value,
            extra={"script": event.name, "run_id": event.run_id, "action": "start"},
        )

    def on_complete(self, sender: object, event: JobEvent) -> None:
        log.info(
            "job %s completed in %sms (run %s)",
            event.name,
            event.duration,
            event.run_id,
            extra={"script": event.name, "run_id": event.run_id, "action": "complete"},
        )

    def on_error(self, sender: object, event: JobEvent) -> None:
        log.error(
            "job %s %s after %sms (run %s): %s",
            event.name,
            event.status.value,
            event.duration,
            event.run_id,
            event.error,
            extra={"script": event.name, "run_id": event.run_id, "action": "error"},
        )
        send_alert(self.settings, DEFAULT_CHANNEL, failure_message(event))

    def connect(self, runner: object) -> JobEventLogger:
        """Receive the signals *runner* sends, for as long as the runner lives."""
        job_start.connect(self.on_start, sender=runner, weak=False)
        job_complete.connect(self.on_complete, sender=runner, weak=False)
        job_error.connect(self.on_error, sender=runner, weak=False)
        return self


def bootstrap(quest: Any, runner: Any) -> None:
    """Connect the application's receivers to quest's signals."""
    JobEventLogger(quest.settings).connect(runner)
