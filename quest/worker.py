"""A worker process of ``quest serve``: it executes runs the supervisor hands it, nothing else.

A worker is forked from the pool's template process (see :mod:`quest.pool`), so it starts with the
project's scripts already imported. It reads :class:`Job` messages from its channel, runs one at a
time, and answers with a :class:`Done`. It never writes the JobLog: the supervisor records every
start and end, so a worker that dies (a segfault, ``os._exit``, the OOM killer) is just a run whose
answer never came.

Async scripts run on the worker's one event loop; while one runs, the worker still reads its
channel, so a ``cancel`` message cancels the task. A sync script cannot be stopped from inside: the
supervisor ends the worker instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from . import redact, runlog
from .enums import Trigger
from .failures import Failure
from .results import capture

if TYPE_CHECKING:
    from .app import Quest
    from .definition import Script
    from .learning import ModuleWatch


class Job(NamedTuple):
    """One run for a worker: the script, its validated inputs, its context's identity
    (:meth:`~quest.context.Context.identity`, as :func:`portable` sends it) and the values to
    scrub while it runs."""

    run_id: str
    name: str
    inputs: dict[str, Any]
    context: dict[str, Any]
    secrets: tuple[Any, ...] = ()


def portable(identity: dict[str, Any]) -> dict[str, Any]:
    """A context's identity as it crosses to a worker: UTC instants without their time zone and
    the trigger as its value, which pickle in a fraction of the time an aware datetime and an
    enum member take (every run's job carries them). :func:`restored` undoes it."""
    return _converted(identity, _TO_WIRE)


def restored(wire: dict[str, Any]) -> dict[str, Any]:
    """The identity :func:`portable` sent."""
    return _converted(wire, _FROM_WIRE)


def _converted(fields: dict[str, Any], how: Mapping[str, Callable[[Any], Any]]) -> dict[str, Any]:
    return {key: how[key](value) if key in how else value for key, value in fields.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is UTC:
        return value.replace(tzinfo=None)
    return value


def _aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _trigger_value(value: Any) -> Any:
    return value.value if isinstance(value, Trigger) else value


def _trigger(value: Any) -> Any:
    return Trigger(value) if isinstance(value, str) else value


_TO_WIRE: Mapping[str, Callable[[Any], Any]] = {
    "now": _plain,
    "scheduled_for": _plain,
    "trigger": _trigger_value,
}
_FROM_WIRE: Mapping[str, Callable[[Any], Any]] = {
    "now": _aware,
    "scheduled_for": _aware,
    "trigger": _trigger,
}


class Done(NamedTuple):
    """A worker's answer: the run's result or its failure, and the worker's resident memory."""

    run_id: str
    result: Any = None
    failure: Failure | None = None
    rss: int = 0
    spent: bool = False
    """The run left the worker unfit for another (it closed a standard stream): replace it."""
    modules: tuple[str, ...] = ()
    """Modules the worker imported since its last answer (see :mod:`quest.learning`)."""


class Report(NamedTuple):
    """Something a run reports while it runs (progress, log lines), for the supervisor."""

    run_id: str
    kind: str
    payload: Any


CANCEL = "cancel"
STOP = "stop"


def main(channel: Connection, quest: Quest, watch: ModuleWatch | None = None) -> NoReturn:
    """The worker's loop; it ends the process when the supervisor goes away or says stop.

    *watch* (the template's, taken over) tells which modules each run imported: they are reported
    with its answer, so that the template can learn them.
    """
    signal.signal(signal.SIGINT, _ignore_signal)
    signal.signal(signal.SIGTERM, _ignore_signal)
    _die_with_parent()
    me = os.getpid()
    worker = _Worker(channel, quest)
    while True:
        try:
            message = channel.recv()
        except (EOFError, OSError):
            _exit(0)
        if isinstance(message, Job):
            done = worker.execute(message)
            if os.getpid() != me:
                # The script forked and this is its child returning: only the worker answers.
                _exit(0)
            if not _streams_open():
                done = done._replace(spent=True)
            if watch is not None and (modules := watch.new()):
                done = done._replace(modules=modules)
            try:
                worker.send(done)
            except (OSError, ValueError):
                _exit(0)
        elif message == STOP:
            _exit(0)


class _Worker:
    def __init__(self, channel: Connection, quest: Quest) -> None:
        self.channel = channel
        self.quest = quest
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sending = threading.Lock()

    def send(self, message: Any) -> None:
        """Send *message* to the supervisor; a script's own threads may report at once."""
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        with self._sending:
            self.channel.send_bytes(data)

    def reporter(self, run_id: str) -> Callable[[str, Any], None]:
        me = os.getpid()

        def report(kind: str, payload: Any) -> None:
            if os.getpid() == me:
                self.send(Report(run_id, kind, payload))

        return report

    def execute(self, job: Job) -> Done:
        # Everything this process logs while the run executes is the run's; its last lines are
        # sent before the Done.
        report = self.reporter(job.run_id)
        with (
            redact.active(job.secrets),
            _scrubbed_streams(bool(job.secrets)),
            runlog.capture(job.run_id, lambda batch: report("log", batch), process=True),
        ):
            return self._execute(job)

    def _execute(self, job: Job) -> Done:
        script: Script | None = None
        context = None
        try:
            script = self.quest.registry.get(job.name)
            inputs = script.model.model_construct(**job.inputs)
            context = self.quest.context_for(
                script, report=self.reporter(job.run_id), **restored(job.context)
            )
            value = script.fn(inputs, context)
            if asyncio.iscoroutine(value):
                value = self._run_async(value)
            return Done(job.run_id, result=capture(value), rss=_rss())
        except BaseException as exc:
            discard_on = script.block().discard_on if script is not None else ()
            return Done(job.run_id, failure=Failure.of(exc, discard_on).scrubbed(), rss=_rss())
        finally:
            if context is not None:
                context.progress.flush()  # the last value reaches the supervisor before Done

    def _run_async(self, coroutine: Any) -> Any:
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        loop = self._loop
        task = loop.create_task(coroutine)
        fd = self.channel.fileno()

        def on_message() -> None:
            try:
                message = self.channel.recv()
            except (EOFError, OSError):
                _exit(0)
            if message == CANCEL:
                task.cancel()
            elif message == STOP:
                _exit(0)

        loop.add_reader(fd, on_message)
        try:
            return loop.run_until_complete(task)
        finally:
            loop.remove_reader(fd)


def _ignore_signal(signum: int, frame: Any) -> None:
    """SIGTERM and SIGINT: the supervisor decides when a worker ends (see
    :func:`quest.pool.ignore_signal`); a handler, not ``SIG_IGN``, so that programs a script
    starts get the default again."""


class _Scrubbed:
    """``sys.stdout`` / ``sys.stderr`` while a run with secrets executes: what the script prints
    goes to serve's output, so it is scrubbed like a log record (a value split across two writes
    is not recognised)."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: Any) -> int:
        self._stream.write(redact.scrub(text) if isinstance(text, str) else text)
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def _scrubbed_streams(scrub: bool) -> Iterator[None]:
    if not scrub:
        yield
        return
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Scrubbed(out), _Scrubbed(err)
    try:
        yield
    finally:
        if isinstance(sys.stdout, _Scrubbed):
            sys.stdout = out
        if isinstance(sys.stderr, _Scrubbed):
            sys.stderr = err


def _streams_open() -> bool:
    """Whether descriptors 0, 1 and 2 are still open (a script may close them)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            return False
    return True


_STATM: list[tuple[int, int]] = []
"""This process's ``/proc/self/statm``, opened once: its pid and the descriptor (a forked child,
whose inherited descriptor reads its parent's, opens its own)."""


def _rss() -> int:
    """This process's resident set size in bytes (0 where /proc is not available). Read after
    every run: one ``pread`` of a descriptor kept open, not a file opened and closed each time."""
    pid = os.getpid()
    try:
        if not _STATM or _STATM[0][0] != pid:
            fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
            if _STATM:
                with contextlib.suppress(OSError):
                    os.close(_STATM.pop()[1])
            _STATM.append((pid, fd))
        return int(os.pread(_STATM[0][1], 128, 0).split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


_PRCTL: list[Any] = []
"""libc's ``prctl``, looked up by :func:`prepare` in the template, for every worker."""


def prepare() -> None:
    """Load what every worker needs before the template forks any (so they share it)."""
    if _PRCTL or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        _PRCTL.append(ctypes.CDLL(None, use_errno=True).prctl)
    except (OSError, AttributeError):
        pass


def _die_with_parent() -> None:
    """Ask Linux to kill this worker if the template process that forked it goes away."""
    prepare()
    if _PRCTL:
        _PRCTL[0](1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _exit(code: int) -> NoReturn:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
