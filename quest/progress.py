"""``ctx.progress``: how far a run has come, reported while it runs, from any process.

A script calls ``ctx.progress(current, total, message)`` (or loops over
``ctx.progress.iter(rows)``). The call never fails the run: a value that is not a finite number
at least 0 is a warning in the run's log and nothing else. Reports are throttled where they are
made (at most one a second; the last value is always sent before the run ends), travel to the
runner like every report (:meth:`quest.runner.Runner.report`), and the runner stores them and sends
``job:progress`` at most about once a second per run.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from numbers import Real
from typing import Any, Generic, TypeVar

KIND = "progress"
EVERY = 1.0
"""Seconds between two reports of one run, at the source and in the runner."""
MESSAGE_LENGTH = 500

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Reading:
    """One progress report: ``current`` of ``total`` (unknown when ``None``), and a message."""

    current: float
    total: float | None = None
    message: str | None = None

    @property
    def fraction(self) -> float | None:
        """``current / total`` within 0..1; ``None`` without a positive total."""
        if not self.total:
            return None
        return min(max(self.current / self.total, 0.0), 1.0)

    def payload(self) -> dict[str, Any]:
        return {"current": self.current, "total": self.total, "message": self.message}

    @classmethod
    def of(cls, payload: Any) -> Reading | None:
        """The reading a report carries; ``None`` if it is not one (it came over a channel)."""
        if not isinstance(payload, dict):
            return None
        current, total, message = (
            payload.get("current"),
            payload.get("total"),
            payload.get("message"),
        )
        if current is None or number_problem(current):
            return None
        if total is not None and number_problem(total):
            return None
        if message is not None and not isinstance(message, str):
            return None
        return cls(float(current), None if total is None else float(total), message)


def number_problem(value: Any) -> str | None:
    """What makes *value* unusable as a progress number, or ``None`` if it is fine."""
    if isinstance(value, bool) or not isinstance(value, Real):
        return f"is not a number ({type(value).__name__} {_shown(value)})"
    number = float(value)
    if math.isnan(number):
        return "is NaN"
    if math.isinf(number):
        return "is infinite"
    if number < 0:
        return f"is negative ({_shown(value)})"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


def clean_message(message: Any) -> str | None:
    if message is None:
        return None
    text = message if isinstance(message, str) else str(message)
    text = text.replace("\x00", "\\x00")
    return text if len(text) <= MESSAGE_LENGTH else text[: MESSAGE_LENGTH - 1] + "…"


Schedule = Callable[[float, Callable[[], None]], Any]
"""Call a function after so many seconds; returns something with ``cancel()``."""


def _timer(delay: float, function: Callable[[], None]) -> threading.Timer:
    timer = threading.Timer(delay, function)
    timer.daemon = True
    timer.name = "quest-progress"
    timer.start()
    return timer


class Progress:
    """``ctx.progress``: call it with ``(current, total=None, message=None)``.

    At most one report leaves every ``every`` seconds; a value held back is sent when the interval
    has passed (by the next call, else by a timer) and always by :meth:`flush`, which the process
    running the script calls when the script returns.
    """

    def __init__(
        self,
        report: Callable[[str, Any], None] | None,
        log: logging.LoggerAdapter | logging.Logger | None = None,  # type: ignore[type-arg]
        *,
        monotonic: Callable[[], float],
        every: float = EVERY,
        schedule: Schedule | None = _timer,
    ) -> None:
        self._report = report
        self._log = log
        self._monotonic = monotonic
        self._every = every
        self._schedule = schedule
        self._lock = threading.Lock()
        self._sent_at: float | None = None
        self._pending: Reading | None = None
        self._timer: Any = None
        self._closed = False
        self.last: Reading | None = None
        """The last valid value given, sent or not."""

    def __call__(self, current: Any, total: Any = None, message: Any = None) -> None:
        problem = number_problem(current)
        if problem is None and total is not None:
            total_problem = number_problem(total)
            problem = None if total_problem is None else f"total {total_problem}"
        elif problem is not None:
            problem = f"current {problem}"
        if problem is not None:
            self._warn(
                "ctx.progress(%s, %s) ignored: %s; give current and total as finite numbers "
                ">= 0 (total may be None when unknown). The run goes on.",
                _shown(current),
                _shown(total),
                problem,
            )
            return
        reading = Reading(
            float(current), None if total is None else float(total), clean_message(message)
        )
        send: Reading | None = None
        with self._lock:
            if self._closed:
                return
            self.last = reading
            now = self._monotonic()
            if self._sent_at is None or now - self._sent_at >= self._every:
                self._sent_at, self._pending, send = now, None, reading
                self._cancel_timer()
            else:
                self._pending = reading
                if self._timer is None and self._schedule is not None:
                    wait = max(self._every - (now - self._sent_at), 0.0)
                    self._timer = self._schedule(wait, self._on_timer)
            if send is not None:
                self._send(send)

    def iter(
        self, iterable: Iterable[T] | AsyncIterable[T], total: Any = None, message: Any = None
    ) -> Tracked[T]:
        """Iterate *iterable* (``for`` or ``async for``), reporting how many items are done.

        *total* defaults to ``len(iterable)`` when it has one.
        """
        if total is None:
            try:
                total = len(iterable)  # type: ignore[arg-type]
            except TypeError:
                total = None
        return Tracked(self, iterable, total, message)

    def flush(self) -> None:
        """Send the value held back, if any, and report nothing more (the script returned)."""
        with self._lock:
            self._cancel_timer()
            pending, self._pending = self._pending, None
            self._closed = True
            if pending is not None:
                self._send(pending)

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            pending, self._pending = self._pending, None
            if pending is None or self._closed:
                return
            self._sent_at = self._monotonic()
            self._send(pending)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _send(self, reading: Reading) -> None:
        if self._report is None:
            return
        try:
            self._report(KIND, reading.payload())
        except Exception:
            logging.getLogger("quest.progress").debug("a progress report was lost", exc_info=True)

    def _warn(self, message: str, *args: Any) -> None:
        log = self._log if self._log is not None else logging.getLogger("quest.progress")
        log.warning(message, *args)


class Tracked(Generic[T]):
    """What :meth:`Progress.iter` returns: iterate it with ``for`` or ``async for``."""

    def __init__(
        self,
        progress: Progress,
        iterable: Iterable[T] | AsyncIterable[T],
        total: Any,
        message: Any,
    ) -> None:
        self._progress = progress
        self._iterable = iterable
        self._total = total
        self._message = message

    def __iter__(self) -> Iterator[T]:
        if not isinstance(self._iterable, Iterable):
            raise TypeError("ctx.progress.iter() of an async iterable needs `async for`")
        self._progress(0, self._total, self._message)
        for done, item in enumerate(self._iterable, 1):
            yield item
            self._progress(done, self._total, self._message)

    async def __aiter__(self) -> AsyncIterator[T]:
        self._progress(0, self._total, self._message)
        if isinstance(self._iterable, AsyncIterable):
            done = 0
            async for item in self._iterable:
                yield item
                done += 1
                self._progress(done, self._total, self._message)
        else:
            for done, item in enumerate(self._iterable, 1):
                yield item
                self._progress(done, self._total, self._message)
