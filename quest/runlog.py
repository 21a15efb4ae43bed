"""A run's log lines: captured where the run executes, bounded, redacted, stored by its runner.

Every record logged while a run executes (``ctx.log`` and the logging of any code it calls)
belongs to that run: in the thread that runs it (thread isolation, ``quest run``), and in the whole
process when the run has one of its own (a worker of ``quest serve``, the child of a timed run).
One handler on the root logger finds the current run (:func:`capture` sets it; a record of
``ctx.log`` names its run, so it is the run's from any thread) and hands the record to the run's
:class:`Capture`, which renders it (message, exception, stack), scrubs the active secrets from it,
cuts a line longer than :data:`MAX_LINE` characters and keeps at most the last :data:`MAX_LINES`
lines and :data:`MAX_BYTES` bytes waiting to be sent: a run that logs a gigabyte never holds more
than that. Waiting lines are sent as one batch at most every :data:`FLUSH_EVERY` seconds (by the
thread that logs, or by a flusher thread when the run is quiet) through
``ctx._report("log", batch)``, and the last batch before the run's result.

The runner's :class:`RunLogs` receives the batches, keeps the same bound per run in the database
(``quest_run_logs``, ``seq`` numbering the lines from 1) and writes a marker line at ``seq`` 0
saying how many earlier lines and bytes were dropped.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import redact

if TYPE_CHECKING:
    from .store import Store

MAX_LINES = 1000
"""Lines a run keeps (the last ones)."""
MAX_BYTES = 256 * 1024
"""Bytes of message a run keeps (UTF-8, the last lines)."""
MAX_LINE = 16 * 1024
"""Characters of one line kept; the rest is cut and counted."""
FLUSH_EVERY = 0.5
"""Seconds between two batches of one run."""
MARKER_SEQ = 0
"""The ``seq`` of the line that says what was dropped; a run's own lines start at 1."""
MARKER_LOGGER = "quest"
SCRIPT_LOGGERS = "quest.script."
LEVEL_WIDTH = 10
LOGGER_WIDTH = 200

Send = Callable[[dict[str, Any]], None]

log = logging.getLogger("quest.runlog")


# -- where a run executes ------------------------------------------------------------------------


@dataclass(slots=True)
class _Line:
    seq: int
    at: float
    level: str
    logger: str
    message: str
    size: int

    def wire(self) -> list[Any]:
        return [self.seq, self.at, self.level, self.logger, self.message]


class Capture:
    """The log lines of one run in this process, waiting to be sent to its runner."""

    def __init__(
        self,
        run_id: str,
        send: Send,
        *,
        max_lines: int = MAX_LINES,
        max_bytes: int = MAX_BYTES,
        flush_every: float = FLUSH_EVERY,
    ) -> None:
        self.run_id = run_id
        self._send = send
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self.flush_every = flush_every
        self.seq = 0
        self.total_bytes = 0
        self._pending: deque[_Line] = deque()
        self._pending_bytes = 0
        self._last_flush = time.monotonic()
        self._closed = False
        self._lock = threading.Lock()
        self._sending = threading.Lock()

    def add(self, record: logging.LogRecord) -> None:
        """Keep *record* as the run's next line (dropping the oldest waiting ones if needed)."""
        message, size = _render(record)
        line = _Line(
            0,
            record.created,
            (record.levelname or "")[:LEVEL_WIDTH],
            (record.name or "")[:LOGGER_WIDTH],
            message,
            _size(message),
        )
        with self._lock:
            if self._closed:
                return
            self.seq += 1
            line.seq = self.seq
            self.total_bytes += size
            first = not self._pending
            self._pending.append(line)
            self._pending_bytes += line.size
            while len(self._pending) > self.max_lines or self._pending_bytes > self.max_bytes:
                self._pending_bytes -= self._pending.popleft().size
            due = time.monotonic() - self._last_flush >= self.flush_every
        if due:
            self.flush(wait=False)
        elif first:
            # Lines are waiting: the flusher sends them if the run goes quiet.
            with _flusher_wanted:
                _flusher_wanted.notify_all()

    def flush(self, *, wait: bool = True, final: bool = False) -> None:
        """Send the waiting lines as one batch (*final*: the last one, even when empty)."""
        if final:
            with self._lock:
                if self.seq == 0:
                    # The run logged nothing: there is nothing to send, then or later.
                    self._closed = True
                    return
        if not self._sending.acquire(blocking=wait):
            return  # another thread is sending this run's lines right now
        try:
            with self._lock:
                if self._closed:
                    return
                lines, self._pending = list(self._pending), deque()
                self._pending_bytes = 0
                self._last_flush = time.monotonic()
                self._closed = final
                seen, total = self.seq, self.total_bytes
            if not lines and (not final or seen == 0):
                # Nothing to send: the receiver of a run that logged nothing has nothing to keep,
                # and forgets the run when it ends.
                return
            batch = {
                "lines": [line.wire() for line in lines],
                "seen": seen,
                "bytes": total,
                "final": final,
            }
            busy = getattr(_local, "busy", False)
            _local.busy = True
            try:
                self._send(batch)
            except Exception:
                log.debug("the log lines of run %s could not be sent", self.run_id, exc_info=True)
            finally:
                _local.busy = busy
        finally:
            self._sending.release()

    def due(self) -> bool:
        with self._lock:
            return bool(self._pending) and (time.monotonic() - self._last_flush >= self.flush_every)

    def waiting(self) -> bool:
        """Whether lines are waiting to be sent."""
        return bool(self._pending)

    def after_fork(self) -> None:
        self._lock = threading.Lock()
        self._sending = threading.Lock()


_current: contextvars.ContextVar[Capture | None] = contextvars.ContextVar(
    "quest_run_log", default=None
)
_process: Capture | None = None
_local = threading.local()
# Each capture is in both while its block runs (the block's end takes it out).
_captures: set[Capture] = set()
_by_run: dict[str, Capture] = {}
_flusher_started = False
_flusher_lock = threading.Lock()
# The flusher waits on this while no run has lines waiting, so neither an idle process nor a run
# that logs nothing wakes it.
_flusher_wanted = threading.Condition()


class RunLogHandler(logging.Handler):
    """Hands every record logged for a run to the run's :class:`Capture`; ignores the rest."""

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler-wide lock: each run's capture has its own.
        if getattr(_local, "busy", False):
            return False
        target = None
        if record.name.startswith(SCRIPT_LOGGERS):
            # A run's ctx.log names its run, whichever thread the script logs from.
            run_id = record.__dict__.get("run_id")
            target = _by_run.get(run_id) if isinstance(run_id, str) else None
        target = target or _current.get() or _process
        if target is None or not self.filter(record):
            return False
        try:
            target.add(record)
        except Exception:
            return False
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)


HANDLER = RunLogHandler()


def install() -> None:
    """Put :data:`HANDLER` on the root logger (again, if the application's set-up removed it)."""
    root = logging.getLogger()
    if HANDLER not in root.handlers:
        root.addHandler(HANDLER)


def capture(run_id: str, send: Send, *, process: bool = False) -> Capturing:
    """Keep what is logged while the block runs as *run_id*'s lines, sent through *send*.

    In this thread (and the tasks and contexts it starts) by default; in every thread of the
    process when *process* (a process that executes one run at a time). The last batch is sent
    when the block ends, before the caller reports the run's end.
    """
    return Capturing(run_id, send, process)


class Capturing:
    """The block of :func:`capture`: the run's :class:`Capture` while it lasts."""

    __slots__ = ("previous", "process", "run", "run_id", "send", "token")

    def __init__(self, run_id: str, send: Send, process: bool) -> None:
        self.run_id = run_id
        self.send = send
        self.process = process

    def __enter__(self) -> Capture:
        global _process
        install()
        run = self.run = Capture(self.run_id, self.send)
        _captures.add(run)
        _by_run[self.run_id] = run
        self.token = _current.set(run)
        self.previous = _process
        if self.process:
            _process = run
        _start_flusher()
        return run

    def __exit__(self, *exc: object) -> None:
        global _process
        run, run_id = self.run, self.run_id
        if self.process:
            _process = self.previous
        _current.reset(self.token)
        run.flush(final=True)
        _captures.discard(run)
        if _by_run.get(run_id) is run:
            del _by_run[run_id]


def _start_flusher() -> None:
    global _flusher_started
    if _flusher_started:
        return
    with _flusher_lock:
        if _flusher_started:
            return
        threading.Thread(target=_flush_quiet_runs, name="quest-log-flush", daemon=True).start()
        _flusher_started = True


def _flush_quiet_runs() -> None:
    """Send the lines of runs that logged and then went quiet (a flusher thread per process)."""
    _local.busy = True
    me = os.getpid()
    while os.getpid() == me:
        with _flusher_wanted:
            while not any(run.waiting() for run in list(_captures)):
                _flusher_wanted.wait()
        time.sleep(FLUSH_EVERY / 2)
        for run in list(_captures):
            try:
                if run.due():
                    run.flush(wait=False)
            except Exception:
                pass


def _after_fork() -> None:
    global _flusher_started, _flusher_lock, _flusher_wanted
    _flusher_started = False
    _flusher_lock = threading.Lock()
    _flusher_wanted = threading.Condition()
    for run in list(_captures):
        run.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _render(record: logging.LogRecord) -> tuple[str, int]:
    """The line of *record* (message, exception, stack), scrubbed and cut; and its full size."""
    try:
        text = record.getMessage()
    except Exception:
        text = f"{record.msg!s} (its arguments could not be rendered)"
    if record.exc_info and record.exc_info[0] is not None:
        text += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    elif record.exc_text:
        text += "\n" + record.exc_text
    if record.stack_info:
        text += "\n" + record.stack_info
    if redact.is_active():
        text = redact.scrub(text)
    text = text.replace("\x00", "\\x00")
    if len(text) <= MAX_LINE:
        return text, _size(text)
    more = len(text) - MAX_LINE
    cut = text[:MAX_LINE]
    return f"{cut} [... {more:,} more characters cut]", _size(cut) + more


def _size(text: str) -> int:
    return len(text.encode("utf-8", "replace"))


# -- the runner's side ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Kept:
    lines: deque[tuple[int, int]] = field(default_factory=deque)
    bytes: int = 0
    last_seq: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class RunLogs:
    """The runner's receiver of ``log`` reports: each run's last lines, kept in the database."""

    def __init__(
        self, store: Store, *, max_lines: int = MAX_LINES, max_bytes: int = MAX_BYTES
    ) -> None:
        self.store = store
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._runs: dict[str, _Kept] = {}
        self._lock = threading.Lock()

    def receive(self, run_id: str, batch: Any) -> None:
        """Store a batch of *run_id*'s lines, trimming the run to its bound."""
        lines, seen, total, final = _parse(batch)
        with self._lock:
            kept = self._runs.setdefault(run_id, _Kept())
        try:
            with kept.lock:
                rows: list[dict[str, Any]] = []
                for seq, at, level, logger, message in lines:
                    if seq <= kept.last_seq:
                        continue
                    kept.last_seq = seq
                    size = _size(message)
                    kept.lines.append((seq, size))
                    kept.bytes += size
                    rows.append(
                        {
                            "seq": seq,
                            "at": datetime.fromtimestamp(at, UTC),
                            "level": level,
                            "logger": logger,
                            "message": message,
                        }
                    )
                    while len(kept.lines) > self.max_lines or kept.bytes > self.max_bytes:
                        kept.bytes -= kept.lines.popleft()[1]
                kept.last_seq = max(kept.last_seq, seen)
                first = kept.lines[0][0] if kept.lines else kept.last_seq + 1
                rows = [row for row in rows if row["seq"] >= first]
                dropped = kept.last_seq - len(kept.lines)
                marker = None
                if dropped > 0:
                    marker = {
                        "seq": MARKER_SEQ,
                        "at": rows[0]["at"] if rows else datetime.now(UTC),
                        "level": "WARNING",
                        "logger": MARKER_LOGGER,
                        "message": marker_text(
                            dropped, max(0, total - kept.bytes), self.max_lines, self.max_bytes
                        ),
                    }
                if rows or marker is not None:
                    self.store.append_logs(run_id, rows, keep_from=first, marker=marker)
        finally:
            if final:
                self.end(run_id)

    def end(self, run_id: str) -> None:
        """Forget what is held for *run_id* (its run has ended)."""
        with self._lock:
            self._runs.pop(run_id, None)


def marker_text(lines: int, size: int, max_lines: int, max_bytes: int) -> str:
    return (
        f"[{lines:,} earlier line{'s' if lines != 1 else ''} ({_human(size)}) dropped: "
        f"a run keeps its last {max_lines:,} lines and {_human(max_bytes)}]"
    )


def _human(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB"):
        if value < 1024:
            return f"{value:,.0f} {unit}" if unit == "bytes" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} GiB"


def _parse(batch: Any) -> tuple[list[tuple[int, float, str, str, str]], int, int, bool]:
    """The parts of a batch, checked (a batch crosses a process boundary)."""
    if not isinstance(batch, Mapping):
        raise TypeError(f"a log batch is a mapping, not {type(batch).__name__}")
    lines = []
    for item in batch.get("lines") or ():
        seq, at, level, logger, message = item
        lines.append((int(seq), float(at), str(level), str(logger), str(message)))
    return (
        lines,
        int(batch.get("seen") or 0),
        int(batch.get("bytes") or 0),
        bool(batch.get("final")),
    )


def line_text(row: Mapping[str, Any]) -> str:
    """One stored line as ``quest logs`` prints it: local time, level, logger, message."""
    at: datetime = row["at"]
    when = at.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return f"{when} {row['level']:<7} {row['logger']}: {row['message']}"
