"""How the commands show a run's progress: as JSON, as a line of text, as a live bar."""

from __future__ import annotations

import logging
import sys
import threading
from datetime import datetime
from typing import Any

import click

BAR_WIDTH = 20


def number(value: float) -> str:
    """*value* as a count: ``12`` rather than ``12.0``, at most two decimals otherwise."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def percent(progress: dict[str, Any] | None) -> float | None:
    if not progress or not progress.get("total"):
        return None
    share = 100.0 * float(progress["current"]) / float(progress["total"])
    return min(max(share, 0.0), 100.0)


def progress_json(progress: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored progress row as the commands' JSON (``None`` when the run reported none)."""
    if progress is None:
        return None
    updated = progress.get("updated_at")
    share = percent(progress)
    return {
        "current": progress["current"],
        "total": progress["total"],
        "percent": None if share is None else round(share, 1),
        "message": progress["message"],
        "updated_at": updated.isoformat() if isinstance(updated, datetime) else updated,
    }


def progress_text(progress: dict[str, Any] | None, *, bar: bool = True) -> str:
    """``█████░░░░░  50% 25/50 item 25``; ``12 done`` without a total; ``—`` without progress."""
    if progress is None:
        return "—"
    share = percent(progress)
    current = number(float(progress["current"]))
    if share is None:
        parts = [f"{current} done"]
    else:
        parts = [f"{share:3.0f}%" if bar else f"{share:.0f}%"]
        parts.append(f"{current}/{number(float(progress['total']))}")
        if bar:
            filled = round(BAR_WIDTH * share / 100)
            parts.insert(0, "█" * filled + "░" * (BAR_WIDTH - filled))
    if progress.get("message"):
        parts.append(str(progress["message"]))
    return " ".join(parts)


def elapsed_text(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``2h 01m``, ``3d 04h``."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


class RunProgress:
    """What ``quest run`` shows of the progress its run reports.

    On a terminal, a rich progress bar on stderr, started at the first report (a script that
    reports nothing shows nothing); the log lines printed meanwhile go above it. Elsewhere, a plain
    line at the first report, each time another tenth is done, and at the end (when there is no
    total: when the message changes, or every 10 s).
    """

    def __init__(self, *, terminal: bool, console: Any = None) -> None:
        self.terminal = terminal
        self.console = console
        self._lock = threading.Lock()
        self._bar: Any = None
        self._task: Any = None
        self._run_id: str | None = None
        self._shown: tuple[int | None, str | None] | None = None
        self._shown_at = 0.0
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []

    @classmethod
    def for_stderr(cls) -> RunProgress:
        return cls(terminal=sys.stderr.isatty())

    def update(self, run_id: str, payload: Any) -> None:
        from quest.progress import Reading

        reading = Reading.of(payload)
        if reading is None:
            return
        with self._lock:
            if self.terminal:
                self._draw(run_id, reading)
            else:
                self._line(run_id, reading)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None
                for handler, stream in self._streams:
                    handler.setStream(stream)
                self._streams.clear()

    # -- a terminal ------------------------------------------------------------------------------

    def _draw(self, run_id: str, reading: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        if self._bar is None:
            from rich.console import Console

            console = self.console or Console(stderr=True)
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[message]}"),
                console=console,
                transient=False,
                redirect_stderr=True,
                redirect_stdout=False,
            )
            self._bar.start()
            self._follow_stderr()
        if run_id != self._run_id:
            if self._task is not None:
                self._bar.stop_task(self._task)
            self._task = self._bar.add_task(f"run {run_id[:8]}", total=None, message="")
            self._run_id = run_id
        self._bar.update(
            self._task,
            completed=reading.current,
            total=reading.total,
            message=reading.message or "",
        )

    def _follow_stderr(self) -> None:
        """Send the log handlers that write to stderr through the bar's console."""
        original = getattr(sys, "__stderr__", None)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (
                original,
                getattr(sys.stderr, "rich_proxied_file", None),
            ):
                self._streams.append((handler, handler.setStream(sys.stderr)))

    # -- elsewhere -------------------------------------------------------------------------------

    def _line(self, run_id: str, reading: Any) -> None:
        import time

        share = None if reading.fraction is None else 100.0 * reading.fraction
        tenth = None if share is None else int(share // 10)
        key = (tenth, reading.message if tenth is None else None)
        now = time.monotonic()
        if run_id == self._run_id and self._shown is not None:
            if tenth is not None and self._shown[0] is not None and tenth <= self._shown[0]:
                return
            if tenth is None and key == self._shown and now - self._shown_at < 10:
                return
        self._run_id, self._shown, self._shown_at = run_id, key, now
        text = progress_text(
            {"current": reading.current, "total": reading.total, "message": reading.message},
            bar=False,
        )
        click.echo(f"  progress {text}", err=True)
