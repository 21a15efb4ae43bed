"""The supervisor's pool of worker processes.

``quest serve`` executes runs in worker processes so that no script can stop the scheduler: a
worker that segfaults, calls ``os._exit``, is killed by the OOM killer or hangs is a run that ended
badly, recorded by the supervisor, and a fresh worker takes its place.

Workers are forked from a *template* process, itself forked once by the supervisor at start-up,
before any thread exists, with the project's scripts already imported and their SQLAlchemy mappers
configured. Forking from the template is safe (it has one thread and no database connection) and
cheap: every worker shares the template's memory pages, and the template shares the supervisor's.
The template reaps its workers and reports how each one ended, so the supervisor can say ``worker
process died: SIGSEGV``. It also learns what the workers import while they run (see
:mod:`quest.learning`): an idle worker holding its own copy of modules the template has since
learned is replaced by a fresh fork, which shares them.

One worker executes one run at a time. The pool keeps one worker warm and forks more on demand,
one for each run that finds every worker busy: a queued run at once, up to ``size``; any other
run (a scheduled fire) once it has waited ``FIRE_WAIT`` seconds for a busy worker to come back,
beyond ``size`` too. So scripts due at one instant share the workers when their runs are short,
and a full queue delays the schedule by ``FIRE_WAIT`` at most. Workers beyond the first retire
once idle for ``IDLE_RETIRE`` seconds. A worker is replaced after ``max_runs`` runs, or after a
run that left it above ``max_memory`` bytes.

Each worker leads a process group of its own. A worker the supervisor ends (a timeout, a cancel,
a shutdown's interrupt) or finds dead is ended with its whole group, so the processes a script
forked or started end with it: a stopped run leaves nothing running. A worker retired in good
health is only asked to stop.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import pickle
import select
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import RunCancelled, RunInterrupted, RunTimeout, WorkerDied
from .inputs import sensitive_values
from .learning import ModuleWatch, learn
from .worker import CANCEL, STOP, Done, Job, Report, portable

if TYPE_CHECKING:
    from .app import Quest
    from .context import Context
    from .definition import Script
    from .inputs import Inputs

log = logging.getLogger("quest.pool")

KILL_AFTER = 2.0
"""Seconds an async run has to honour a cancel before its worker is killed."""
EXIT_REPORT_WAIT = 2.0
EXIT_CHECK_EVERY = 0.25
"""Seconds between looks at the template's exit reports while a run is waited for: a worker's
channel may outlive it (a process the script forked holds a copy), so its end-of-file alone
cannot say that the worker died."""
WARM = 1
"""Workers kept even when idle: a quiet schedule needs no more, and a fork is milliseconds."""
IDLE_RETIRE = 90.0
"""Seconds a worker beyond the ``WARM`` ones may stay idle; a worker a per-minute schedule uses
stays."""
SPAWN_TIMEOUT = 30.0
BRIEF = 0.002
"""Runs taking less than this, from hand-off to answer, are brief: a run handed to a worker
while runs are this brief is expected to end in time to commit with the ends of the others (see
:meth:`quest.store.Database.expect`), so that a serve draining a queue of short runs records their
ends in one transaction rather than one each."""
FIRE_WAIT = 0.25
"""How long a run that is not a queued one (a scheduled fire) and finds every worker busy waits
for one to come back before a worker is forked for it. A queued run does not wait (up to
``size``): a drain gets its workers at once."""
MESSAGE_SIZE = 1 << 16
"""The largest message between the supervisor and the template (a list of module names is cut
into messages below it)."""


@dataclass(eq=False)
class Worker:
    """The supervisor's handle on one worker process."""

    pid: int
    channel: Channel
    template: int | None = None
    """The pid of the template process that forked it: the worker dies with it."""
    runs: int = 0
    rss: int = 0
    idle_since: float = field(default_factory=time.monotonic)
    dead: bool = False
    imported: set[str] = field(default_factory=set)
    """Modules this worker imported itself, in memory of its own."""
    handed_at: float = 0.0
    """:func:`boot_clock` just before its current run was sent to it (see :func:`_kill_worker`)."""


class WorkerPool:
    """Worker processes forked from a template; :meth:`execute` runs one run in one of them."""

    def __init__(
        self,
        quest: Quest,
        *,
        size: int,
        max_runs: int | None = None,
        max_memory: int | None = None,
    ) -> None:
        self.quest = quest
        self.size = size
        self.warm = min(size, WARM)
        self.max_runs = max_runs
        self.max_memory = max_memory
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._idle: list[Worker] = []
        self._busy: set[Worker] = set()
        self._pending = 0
        self._wanted = 0
        self._taught: set[str] = set()
        self._learned: dict[str, None] = {}
        self._exits: dict[int, int] = {}
        self._dead_templates: set[int] = set()
        """The templates seen to die: a worker forked by one died with it, whether or not it was
        busy when its template's death was read (its run may have seen its channel close first)."""
        self._control: socket.socket | None = None
        self._template_pid: int | None = None
        self._reader: threading.Thread | None = None
        self._closed = False
        self.deaths = 0
        self.spawned = 0
        self.recycled = 0
        self._typical = BRIEF
        """How long runs have taken lately, from hand-off to answer (a moving average)."""
        self.on_idle: Callable[[], None] | None = None
        """Called (from any thread) when a worker becomes idle: see :meth:`take_idle`."""

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Fork the template and ask it for the warm workers. Call before starting any thread."""
        _configure_mappers()
        self._fork_template()
        with self._lock:
            for _ in range(self.warm):
                self._spawn_locked()

    def wait_ready(self, timeout: float = SPAWN_TIMEOUT) -> bool:
        """Wait until every warm worker has started; ``False`` if *timeout* passed first."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self._pending == 0 and len(self._idle) + len(self._busy) >= self.warm,
                timeout,
            )

    def close(self) -> None:
        """Stop every worker and the template."""
        with self._lock:
            self._closed = True
            workers = [*self._idle, *self._busy]
            self._idle.clear()
        for worker in workers:
            _send(worker.channel, STOP)
            worker.channel.close()
        control = self._control
        if control is not None:
            with contextlib.suppress(OSError):
                # A close, not a supervisor gone: what runs left running is left alone.
                control.send(pickle.dumps(("bye",)))
            with contextlib.suppress(OSError):
                control.shutdown(socket.SHUT_RDWR)
            control.close()
        if self._reader is not None:
            self._reader.join(5)
        if self._template_pid is not None:
            _reap(self._template_pid, 5.0)

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [worker.pid for worker in (*self._idle, *self._busy)]

    @property
    def brief(self) -> bool:
        """Whether runs have been brief lately (see ``BRIEF``)."""
        return self._typical < BRIEF

    @property
    def template_pid(self) -> int | None:
        return self._template_pid

    @property
    def learned(self) -> list[str]:
        """Modules the template imported because workers had imported them, in order."""
        with self._lock:
            return list(self._learned)

    # -- running ----------------------------------------------------------------------------------

    def execute(
        self,
        script: Script,
        inputs: Inputs,
        ctx: Context,
        active: Any,
        timeout: float | None,
    ) -> Any:
        """Run *script* in a worker and return its result; raise what the run ended with.

        *active* is the runner's record of the run: its ``cancel`` is set here, so that a shutdown,
        a ``quest cancel`` or the timeout stops the run, and its ``interrupted`` / ``cancelled_by``
        say why it was stopped.
        """
        job = self._job(script, inputs, ctx)
        worker = self._hand(job, active.watch, patient=not ctx.trigger.queued)
        db = self.quest.store.db
        if self._typical < BRIEF:
            db.expect()  # its end is likely to come before a group commit under way is written
        flight = self._flight(worker, script, job, ctx, active, timeout)
        try:
            while not flight.over:
                wait = flight.due(time.monotonic())
                if flight.over:
                    break
                try:
                    ready = worker.channel.poll(wait)
                except OSError:
                    flight.over = True
                    break
                if ready:
                    flight.read()
                else:
                    flight.check_exit()
        except BaseException:
            active.cancel = None
            flight.stop.settle()
            self.discard(worker)
            raise
        if flight.done is not None:
            db.expect()  # this thread records the run's end next
        return self.settle(flight)

    def discard(self, worker: Worker) -> None:
        """End a checked-out worker whose state is not known (its run went wrong on this
        side); a fresh one takes its place."""
        self._give_back(worker, healthy=False)

    def take_idle(self, want: int = 1) -> Worker | None:
        """An idle worker, checked out, or ``None``: then workers are forked, up to ``size`` and
        *want* on their way, and :attr:`on_idle` is called as each becomes idle."""
        with self._changed:
            if self._idle:
                worker = self._idle.pop()
                self._busy.add(worker)
                return worker
            if self._closed:
                raise RunInterrupted("stopped by shutdown")
            while (
                self._pending < want
                and len(self._idle) + len(self._busy) + self._pending < self.size
                and self._control is not None
            ):
                self._spawn_locked()
            return None

    def put_back(self, worker: Worker) -> None:
        """Return a worker from :meth:`take_idle` that was given no run."""
        with self._changed:
            self._busy.discard(worker)
            if self._closed:
                _send(worker.channel, STOP)
                worker.channel.close()
                return
            self._idle.append(worker)
            self._changed.notify_all()
            self._idled()

    def launch(
        self,
        worker: Worker,
        script: Script,
        inputs: Inputs,
        ctx: Context,
        active: Any,
        timeout: float | None,
    ) -> Flight | None:
        """Hand a run to *worker* (from :meth:`take_idle`); ``None`` if it could not take it
        (it was found dead, and is replaced)."""
        job = self._job(script, inputs, ctx)
        try:
            _send_job(worker, job)
        except (OSError, ValueError):
            self._give_back(worker, healthy=False)
            return None
        return self._flight(worker, script, job, ctx, active, timeout)

    def settle(self, flight: Flight) -> Any:
        """Give *flight*'s worker back and return what its run returned; raise what it ended
        with (the run's own exception, or why it was stopped)."""
        active, stop, worker, done = flight.active, flight.stop, flight.worker, flight.done
        stop.settle()
        # A stop ended the worker unless it only asked an async run to stop (its kill still
        # pending): a sync run's worker is ended even when its answer came first.
        asked = stop.reason is not None and stop.kill_at is not None
        if asked and done is not None:
            # An async run that stopped when asked: what it started goes; its worker stays.
            _kill_worker(worker.pid, stop.since, keep=True)
        healthy = done is not None and flight.failure is None and (stop.reason is None or asked)
        if healthy:
            self._typical += (time.monotonic() - flight.handed - self._typical) * 0.2
        try:
            active.cancel = None
            if done is not None and done.modules:
                self._teach(worker, done.modules)
        finally:
            self._give_back(worker, healthy, spent=done is not None and done.spent)
        if flight.failure is not None:
            raise flight.failure
        if stop.reason is not None or done is None:
            raise self._why_stopped(active, stop, worker, flight.timeout)
        if done.failure is not None:
            done.failure.reraise()
        return done.result

    def _job(self, script: Script, inputs: Inputs, ctx: Context) -> Job:
        return Job(
            run_id=ctx.run_id,
            name=script.name,
            inputs=inputs.model_dump(),
            context=portable(ctx.identity()),
            secrets=tuple(sensitive_values(inputs, script.inputs)),
        )

    def _flight(
        self,
        worker: Worker,
        script: Script,
        job: Job,
        ctx: Context,
        active: Any,
        timeout: float | None,
    ) -> Flight:
        stop = _Stop(worker, script.is_async, job.run_id, ctx._report, self._exited)
        active.cancel = stop
        flight = Flight(self, worker, stop, active, timeout)
        if active.cancelled_by is not None or active.interrupted:
            stop()  # asked for before the run could be stopped (while it waited for a worker)
        return flight

    def _hand(
        self, job: Job, waiting: Callable[[], None] | None = None, *, patient: bool = False
    ) -> Worker:
        """Send *job* to an idle worker (a worker found dead is replaced and the next tried);
        *waiting* is called first if none is idle. A *patient* job waits ``FIRE_WAIT`` for a busy
        worker to come back before one is forked for it."""
        while True:
            worker = self._checkout(waiting, patient=patient)
            try:
                _send_job(worker, job)
                return worker
            except (OSError, ValueError):
                self._give_back(worker, healthy=False)

    def _exited(self, worker: Worker) -> bool:
        """Whether the template reported *worker* ended (or the template itself is gone)."""
        with self._lock:
            return self._ended_locked(worker.pid, worker.template)

    def _ended_locked(self, pid: int, template: int | None) -> bool:
        return pid in self._exits or template in self._dead_templates

    def _why_stopped(
        self, active: Any, stop: _Stop, worker: Worker, timeout: float | None
    ) -> BaseException:
        if getattr(active, "cancelled_by", None) is not None:
            return RunCancelled(active.cancelled_by)
        if active.interrupted:
            return RunInterrupted("stopped by shutdown")
        if stop.reason == "timeout":
            return RunTimeout(f"exceeded its timeout of {timeout:g} s")
        return WorkerDied(f"worker process died: {self.exit_text(worker.pid, worker.template)}")

    def exit_text(self, pid: int, template: int | None = None) -> str:
        """How worker *pid* (forked by *template*) ended, in words (``SIGSEGV``, ``exit code 1``,
        ``its template process died``)."""
        with self._changed:
            self._changed.wait_for(lambda: self._ended_locked(pid, template), EXIT_REPORT_WAIT)
            status = self._exits.pop(pid, None)
            orphaned = template in self._dead_templates
        if status is None and orphaned:
            return "its template process died"
        if status is None:
            return "it closed its channel"
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            try:
                return signal.Signals(number).name
            except ValueError:
                return f"signal {number}"
        return f"exit code {os.waitstatus_to_exitcode(status)}"

    # -- the workers ------------------------------------------------------------------------------

    def _checkout(
        self, waiting: Callable[[], None] | None = None, *, patient: bool = False
    ) -> Worker:
        with self._changed:
            if self._idle:
                worker = self._idle.pop()
                self._busy.add(worker)
                return worker
        if waiting is not None:
            waiting()  # outside the pool's lock: it takes the runner's
        with self._changed:
            now = time.monotonic()
            deadline, patient_until = now + SPAWN_TIMEOUT, now + FIRE_WAIT
            self._wanted += 1
            try:
                while not self._idle:
                    if self._closed:
                        raise RunInterrupted("stopped by shutdown")
                    now = time.monotonic()
                    if now >= deadline:
                        raise WorkerDied("no worker process could be started")
                    wake_at = deadline
                    if self._pending < self._wanted:
                        live = len(self._idle) + len(self._busy) + self._pending
                        if (live < self.size and not patient) or now >= patient_until:
                            self._spawn_locked()  # one fork for each run waiting
                        else:
                            wake_at = patient_until  # a busy worker may be back first
                    self._changed.wait(max(0.0, wake_at - now))
            finally:
                self._wanted -= 1
            worker = self._idle.pop()
            self._busy.add(worker)
            return worker

    def _give_back(self, worker: Worker, healthy: bool, *, spent: bool = False) -> None:
        worker.runs += 1
        retire = (
            not healthy
            or spent
            or (self.max_runs is not None and worker.runs >= self.max_runs)
            or (self.max_memory is not None and worker.rss > self.max_memory)
        )
        with self._changed:
            self._busy.discard(worker)
            if not retire and not self._closed and self._stale(worker):
                self._recycle_locked(worker)
                return
            if not retire and not self._closed:
                worker.idle_since = time.monotonic()
                self._idle.append(worker)
                self._retire_idle_locked()
                self._changed.notify_all()
                self._idled()
                return
            if self._closed:
                return
            if healthy:
                log.info(
                    "recycling worker %d after %d run(s), %.0f MB",
                    worker.pid,
                    worker.runs,
                    worker.rss / 2**20,
                    extra={"action": "worker_recycle"},
                )
            self._top_up_locked()
        if healthy:
            _send(worker.channel, STOP)
        else:
            self.deaths += 1
            _kill_worker(worker.pid, worker.handed_at or boot_clock(), gone=self._exited(worker))
        worker.channel.close()

    def _idled(self) -> None:
        hook = self.on_idle
        if hook is not None:
            hook()

    def _top_up_locked(self) -> None:
        """Ask for workers until the warm ones are there (or on their way)."""
        while self._control is not None and (
            len(self._idle) + len(self._busy) + self._pending < self.warm
        ):
            self._spawn_locked()

    def _retire_idle_locked(self) -> None:
        """Let workers beyond the warm ones that have been idle for a while go, oldest first."""
        count = len(self._idle) + len(self._busy)
        if count <= self.warm:
            return
        now = time.monotonic()
        for worker in [w for w in self._idle if now - w.idle_since > IDLE_RETIRE]:
            if count <= self.warm:
                break
            self._idle.remove(worker)
            count -= 1
            _send(worker.channel, STOP)
            worker.channel.close()

    def trim(self) -> None:
        """Retire workers beyond the warm ones idle for a while (called from housekeeping)."""
        with self._lock:
            self._retire_idle_locked()

    # -- learning ---------------------------------------------------------------------------------

    def _teach(self, worker: Worker, modules: tuple[str, ...]) -> None:
        """Note what *worker* imported; send the template the names it was never sent."""
        with self._lock:
            worker.imported.update(modules)
            new = [name for name in modules if name not in self._taught]
            self._taught.update(new)
            if new:
                self._send_learn_locked(new)

    def _send_learn_locked(self, names: list[str]) -> None:
        control = self._control
        if control is None:
            return
        for chunk in _chunks(names, MESSAGE_SIZE // 2):
            try:
                control.send(pickle.dumps(("learn", chunk)))
            except OSError:
                return  # the reader sees the template gone

    def _stale(self, worker: Worker) -> bool:
        """Whether *worker* holds its own copy of modules the template has learned since."""
        return not worker.imported.isdisjoint(self._learned)

    def _recycle_locked(self, worker: Worker) -> None:
        """Replace idle *worker* by a fork of the template as it is now (it shares more)."""
        self.recycled += 1
        log.debug(
            "replacing worker %d: the template now holds modules it imported",
            worker.pid,
            extra={"action": "worker_refresh"},
        )
        _send(worker.channel, STOP)
        worker.channel.close()
        self._top_up_locked()
        self._changed.notify_all()

    def _learned_locked(self, names: list[str]) -> None:
        self._learned.update(dict.fromkeys(names))
        log.debug(
            "the worker template imported %d module(s) the workers had imported: %s",
            len(names),
            " ".join(names),
            extra={"action": "template_learned"},
        )
        for worker in [w for w in self._idle if self._stale(w)]:
            self._idle.remove(worker)
            self._recycle_locked(worker)

    def _spawn_locked(self) -> None:
        if self._control is None:
            return
        self._pending += 1
        self.spawned += 1
        try:
            self._control.send(pickle.dumps(("spawn",)))
        except OSError:
            self._pending -= 1
            self._template_gone_locked()

    def _template_gone_locked(self) -> None:
        """The template died, and every worker it forked with it (they die with their parent):
        start a new template and warm workers, unless the pool is closing."""
        self._control = None
        for worker in self._idle:
            worker.channel.close()
            self.deaths += 1
        self._idle.clear()
        self._pending = 0
        if self._template_pid is not None:
            self._dead_templates.add(self._template_pid)
            _reap(self._template_pid, EXIT_REPORT_WAIT)
            self._template_pid = None
        if self._closed:
            return
        log.error(
            "the worker template process died; starting a new one",
            extra={"action": "template_restart"},
        )
        self._fork_template()
        if self._learned:
            self._send_learn_locked(list(self._learned))
        for _ in range(self.warm - len(self._busy)):
            self._spawn_locked()

    def _fork_template(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # What exists now (modules, scripts, the app) is never collected: the collector of a
        # forked process would otherwise write to every page holding such objects and unshare it.
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            ours.close()
            _template_main(theirs, self.quest)
        theirs.close()
        self._control = ours
        self._template_pid = pid
        self._dead_templates.discard(pid)  # a pid the system gave again
        self._reader = threading.Thread(
            target=self._read_template, args=(ours, pid), name="quest-pool", daemon=True
        )
        self._reader.start()

    def _read_template(self, control: socket.socket, template: int) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(control, MESSAGE_SIZE, 1)
            except OSError:
                data, fds = b"", []
            if not data:
                control.close()
                with self._changed:
                    if self._control is control:
                        self._template_gone_locked()
                    self._changed.notify_all()
                return
            message = pickle.loads(data)
            with self._changed:
                if message[0] == "spawned" and fds:
                    self._pending -= 1
                    self._exits.pop(message[1], None)  # an earlier process's, if pids wrapped
                    worker = Worker(message[1], Channel(fds[0]), template)
                    if self._closed:
                        _send(worker.channel, STOP)
                        worker.channel.close()
                    else:
                        self._idle.append(worker)
                        self._idled()
                elif message[0] == "learned":
                    self._learned_locked(message[1])
                elif message[0] == "exit":
                    pid, status = message[1], message[2]
                    self._exits[pid] = status
                    if len(self._exits) > 1000:
                        self._exits.pop(next(iter(self._exits)))
                    for worker in [w for w in self._idle if w.pid == pid]:
                        # What its runs left running, as they ended on their own, is left alone.
                        self._idle.remove(worker)
                        worker.channel.close()
                        self.deaths += 1
                        if not self._closed:
                            self._top_up_locked()
                self._changed.notify_all()


class Flight:
    """One run in one worker, from hand-off to answer.

    :meth:`WorkerPool.execute` waits on one; a dispatcher waits on the channels of several at
    once. Either way, whoever waits calls :meth:`due` for the timed checks (the heartbeat's
    watch, a kill after an ignored cancel, the timeout), :meth:`read` when the worker's channel is
    readable, and :meth:`check_exit` when it has been quiet; then :meth:`WorkerPool.settle`.
    """

    __slots__ = (
        "active",
        "deadline",
        "done",
        "failure",
        "handed",
        "over",
        "pool",
        "quiet_since",
        "stop",
        "timeout",
        "worker",
    )

    def __init__(
        self, pool: WorkerPool, worker: Worker, stop: _Stop, active: Any, timeout: float | None
    ) -> None:
        self.pool = pool
        self.worker = worker
        self.stop = stop
        self.active = active
        self.timeout = timeout
        self.handed = self.quiet_since = time.monotonic()
        self.deadline = None if timeout is None else self.handed + timeout
        self.done: Done | None = None
        self.failure: Exception | None = None
        """What went wrong reading the worker's messages, if anything did."""
        self.over = False
        """Whether the answer came, or the worker is gone."""

    def due(self, now: float) -> float:
        """Do what is due at *now*; seconds until something may be due again (at most
        ``EXIT_CHECK_EVERY``: the next look at the worker's exit, should its channel stay quiet)."""
        wait = EXIT_CHECK_EVERY
        active, stop = self.active, self.stop
        if active.watch is not None:
            if now >= active.watch_at:
                active.watch()
                active.watch = None
            else:
                wait = min(wait, active.watch_at - now)
        if stop.kill_at is not None:
            if now >= stop.kill_at:
                stop.kill()
            else:
                wait = min(wait, stop.kill_at - now)
        if self.deadline is not None and stop.reason is None:
            if now >= self.deadline:
                stop("timeout")
                return 0.0 if stop.kill_at is None else min(wait, stop.kill_at - now)
            wait = min(wait, self.deadline - now)
        return max(wait, 0.0)

    def read(self) -> None:
        """Take what the worker sent (call when its channel is readable): reports go to the
        run, the answer ends the flight, and so does the channel's end."""
        channel = self.worker.channel
        self.quiet_since = time.monotonic()
        try:
            while True:
                message = channel.recv()
                if isinstance(message, Report) and message.run_id == self.stop.run_id:
                    self.stop.report(message.kind, message.payload)
                elif isinstance(message, Done) and message.run_id == self.stop.run_id:
                    self.worker.rss = message.rss
                    self.done = message
                    self.over = True
                    return
                if not channel.buffered():
                    return
        except (EOFError, OSError):
            self.over = True
        except Exception as exc:
            # A message that cannot be read: the run ends with that error, its worker with it.
            self.failure = exc
            self.over = True

    def check_exit(self) -> None:
        """The channel has been quiet: end the flight if the worker is known to have ended."""
        self.quiet_since = time.monotonic()
        if self.pool._exited(self.worker):
            self.over = True


class Channel:
    """The supervisor's end of a worker's socket.

    Messages are framed as :class:`multiprocessing.connection.Connection` frames them (a 4-byte
    big-endian length, then a pickle), which is what the worker reads and writes. Frames are read
    through a buffer, so one read usually brings a whole answer (and a log batch sent just before
    it), and the socket is watched by a poll object of its own rather than a selector set up for
    each wait.
    """

    __slots__ = ("_buffer", "_missing", "_poll", "_socket")

    def __init__(self, fd: int) -> None:
        self._socket = socket.socket(fileno=fd)
        self._buffer = bytearray()
        self._missing = 0
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    def send(self, message: Any) -> None:
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        size = len(data)
        if size > 0x7FFFFFFF:
            self._socket.sendall(_HEADER.pack(-1) + _LARGE.pack(size))
            self._socket.sendall(data)
        elif size <= SMALL_FRAME:
            self._socket.sendall(_HEADER.pack(size) + data)
        else:
            self._socket.sendall(_HEADER.pack(size))
            self._socket.sendall(data)

    def poll(self, timeout: float) -> bool:
        """Whether a message (or the end of the channel) can be read within *timeout* seconds."""
        if self._frame() is not None:
            return True
        return bool(self._poll.poll(max(0, round(timeout * 1000))))

    def buffered(self) -> bool:
        """Whether a whole message is read already (:meth:`recv` returns it without waiting)."""
        return self._frame() is not None

    def recv(self) -> Any:
        """The next message; ``EOFError`` once the worker's end is closed."""
        while True:
            frame = self._frame()
            if frame is not None:
                start, end = frame
                try:
                    with memoryview(self._buffer) as view, view[start:end] as body:
                        message = pickle.loads(body)
                finally:
                    del self._buffer[:end]  # a message that cannot be read is not read again
                return message
            chunk = self._socket.recv(max(READ_SIZE, self._missing))
            if not chunk:
                raise EOFError
            self._buffer += chunk

    def _frame(self) -> tuple[int, int] | None:
        """Where the first whole message in the buffer starts and ends, if there is one."""
        buffer = self._buffer
        self._missing = 0
        if len(buffer) < 4:
            return None
        (size,) = _HEADER.unpack_from(buffer)
        start = 4
        if size == -1:
            if len(buffer) < 12:
                return None
            (size,) = _LARGE.unpack_from(buffer, 4)
            start = 12
        if len(buffer) < start + size:
            self._missing = start + size - len(buffer)
            return None
        return start, start + size

    def fileno(self) -> int:
        return self._socket.fileno()

    def close(self) -> None:
        self._socket.close()


_HEADER = struct.Struct("!i")
_LARGE = struct.Struct("!Q")
SMALL_FRAME = 1 << 14
"""Frames up to this size are written with their header in one write."""
READ_SIZE = 1 << 16


class _Stop:
    """``active.cancel`` of a run in a worker: ask an async run to stop, end a sync run's worker."""

    def __init__(
        self,
        worker: Worker,
        is_async: bool,
        run_id: str,
        report: Callable[[str, Any], None] | None,
        exited: Callable[[Worker], bool] | None = None,
    ) -> None:
        self.worker = worker
        self.is_async = is_async
        self.run_id = run_id
        self._report = report
        self._exited = exited
        """Whether the worker is known to have ended (its pid may then be another process's)."""
        self.reason: str | None = None
        self.kill_at: float | None = None
        self.since = worker.handed_at
        """When the run was sent to its worker (see :func:`_kill_worker`)."""
        self.settled = False
        """Set once the run's worker is given back: a stop asked later (a cancel that raced the
        run's end) must not touch the worker, which may be running the next run already."""
        self._lock = threading.Lock()

    def report(self, kind: str, payload: Any) -> None:
        if self._report is not None:
            self._report(kind, payload)

    def __call__(self, reason: str = "cancel") -> None:
        with self._lock:
            if self.reason is not None or self.settled:
                return
            self.reason = reason
            if self.is_async and _send(self.worker.channel, CANCEL):
                self.kill_at = time.monotonic() + KILL_AFTER
            else:
                self._end_worker()

    def kill(self) -> None:
        """End the worker of an async run that ignored its cancel, unless the worker was given
        back meanwhile (it may be running the next run already)."""
        with self._lock:
            self.kill_at = None
            if not self.settled:
                self._end_worker()

    def _end_worker(self) -> None:
        gone = self._exited is not None and self._exited(self.worker)
        _kill_worker(self.worker.pid, self.since, gone=gone)

    def settle(self) -> None:
        with self._lock:
            self.settled = True


def _send(channel: Channel, message: Any) -> bool:
    try:
        channel.send(message)
        return True
    except (OSError, ValueError):
        return False


def _send_job(worker: Worker, job: Job) -> None:
    """Send *job* to *worker*, noting the instant first (see :func:`_kill_worker`)."""
    worker.handed_at = boot_clock()
    worker.channel.send(job)


def _kill(pid: int) -> None:
    _signal(pid, signal.SIGKILL)


TREE_LOOKS = 10
"""How many times :func:`_kill_worker` looks for more processes a stopped run started."""
_TICK = 1 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


def boot_clock() -> float:
    """Seconds since boot, on the clock of ``/proc/PID/stat``'s start times (Linux); 0 elsewhere."""
    clock = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(clock) if clock is not None else 0.0


def _kill_worker(
    pid: int, since: float | None = None, *, gone: bool = False, keep: bool = False
) -> None:
    """End worker *pid* and what its stopped run started, so that the run leaves nothing behind.

    *since* (:func:`boot_clock` just before the stopped run was sent to the worker): the run's
    processes are those started since then in the worker's process group (a script's forks and
    subprocesses, wherever they were reparented) or among the worker's descendants (a subprocess
    started in a session of its own). Each is stopped before the next look, so that none forks
    another meanwhile; then all are killed. What earlier runs started and left running is not the
    stopped run's and is left alone, unless it started in the same clock tick (10 ms) as the
    stopped run was sent; so is whatever a daemon that forked twice left under ``init`` in a
    session of its own. *gone*: the worker is known to have ended, and its pid may be another
    process's by now: only its process group is looked in. *keep*: the worker lives on (an async
    run that stopped when asked); only the run's processes are ended. Without *since* (a
    supervisor that went away), the worker's whole process group is ended."""
    if since is None or since <= 0:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        if not gone:
            _kill(pid)
        return
    stopped: list[int] = []
    try:
        if not gone and not keep:
            _signal(pid, signal.SIGSTOP)
        seen = {pid}
        for _ in range(TREE_LOOKS):
            found = [p for p in _run_processes(pid, since - _TICK, tree=not gone) if p not in seen]
            if not found:
                break
            for child in found:
                _signal(child, signal.SIGSTOP)
            stopped += found
            seen.update(found)
    finally:
        if not gone and not keep:
            _kill(pid)
        for each in stopped:
            _kill(each)


def _run_processes(pid: int, since: float, *, tree: bool) -> list[int]:
    """The processes a run of worker *pid* handed over at *since* started: (*tree*) its
    descendants started since then, and the processes of its process group started since then
    but for those an older process of the group started (what an earlier run left running goes
    on starting processes of its own)."""
    found = _started_since(pid, since) if tree else []
    seen = set(found)
    try:
        listed = os.listdir("/proc")
    except OSError:
        return found
    stats: dict[int, list[bytes]] = {}
    for entry in listed:
        if entry.isdigit() and (stat := _stat_fields(int(entry))) is not None:
            stats[int(entry)] = stat
    for member, stat in stats.items():
        if member in seen or int(stat[2]) != pid or int(stat[19]) * _TICK < since:
            continue
        parent = stats.get(int(stat[1]))
        if (
            parent is not None
            and int(stat[1]) != pid
            and int(parent[2]) == pid
            and int(parent[19]) * _TICK < since
        ):
            continue  # started by what an earlier run left running
        found.append(member)
        seen.add(member)
    return found


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _started_since(pid: int, since: float) -> list[int]:
    """The live descendants of *pid* started at or after *since* (:func:`boot_clock`), through
    such processes only, from ``/proc`` (none where it cannot be read)."""
    found: list[int] = []
    parents = [pid]
    while parents:
        parent = parents.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children", "rb") as listed:
                    children = [int(child) for child in listed.read().split()]
            except (OSError, ValueError):
                continue
            for child in children:
                started = _start_time(child)
                if started is not None and started >= since:
                    found.append(child)
                    parents.append(child)
    return found


def _start_time(pid: int) -> float | None:
    """When *pid* started, in seconds since boot (``/proc/PID/stat``)."""
    fields = _stat_fields(pid)
    try:
        return None if fields is None else int(fields[19]) * _TICK
    except (ValueError, IndexError):
        return None


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command's name (the state first), or ``None``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if len(fields) > 19 else None


def _reap(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        if time.monotonic() > deadline:
            _kill(pid)
            timeout, deadline = 0, time.monotonic() + 5
        time.sleep(0.01)


# -- the template process -----------------------------------------------------------------------


def _template_main(control: socket.socket, quest: Quest) -> NoReturn:
    """Fork workers on request and report how each ended; learn the modules it is sent; end
    with the supervisor."""
    from . import worker as worker_module

    signal.signal(signal.SIGINT, ignore_signal)
    signal.signal(signal.SIGTERM, ignore_signal)
    _forget_connections(quest)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    worker_module.prepare()
    scripts_dir = quest.settings.scripts_dir
    watch = ModuleWatch(scripts_dir)

    def reap() -> None:
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                children.clear()
                return
            if pid == 0:
                return
            children.discard(pid)
            with contextlib.suppress(OSError):
                control.send(pickle.dumps(("exit", pid, status)))

    while True:
        try:
            events = selector.select()
        except InterruptedError:
            continue
        for key, _ in events:
            if key.fileobj is wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
                reap()
                continue
            try:
                data = control.recv(MESSAGE_SIZE)
            except OSError:
                data = b""
            if not data:
                # The supervisor went away: its workers and all they started end with it.
                for pid in children:
                    _kill_worker(pid)
                os._exit(0)
            message = pickle.loads(data)
            if message[0] == "bye":
                for pid in children:
                    _kill(pid)
                os._exit(0)
            if message[0] == "learn":
                names = learn(message[1])
                watch = ModuleWatch(scripts_dir)  # what later workers import is new to it
                with contextlib.suppress(OSError):
                    control.send(pickle.dumps(("learned", names)))
                continue
            if message[0] != "spawn":
                continue
            ours, theirs = socket.socketpair()
            pid = os.fork()
            if pid == 0:
                # Each worker leads a process group of its own: see _kill_worker.
                with contextlib.suppress(OSError):
                    os.setpgid(0, 0)
                selector.close()
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.close(wake_r)
                os.close(wake_w)
                control.close()
                ours.close()
                worker_module.main(Connection(theirs.detach()), quest, watch)
            with contextlib.suppress(OSError):
                os.setpgid(pid, pid)  # also here, so that it holds before the fork returns
            children.add(pid)
            theirs.close()
            try:
                socket.send_fds(control, [pickle.dumps(("spawned", pid))], [ours.fileno()])
            except OSError:
                _kill_worker(pid)
            ours.close()


def _chunks(names: list[str], size: int) -> list[list[str]]:
    """*names* cut into lists whose names add up to fewer than *size* characters each."""
    chunks: list[list[str]] = [[]]
    length = 0
    for name in names:
        if chunks[-1] and length + len(name) + 8 > size:
            chunks.append([])
            length = 0
        chunks[-1].append(name)
        length += len(name) + 8
    return [chunk for chunk in chunks if chunk]


def _configure_mappers() -> None:
    """Configure the SQLAlchemy ORM mappers the project declared, before anything is forked.

    Configuring happens on the first query otherwise, in each worker, into memory of its own
    (several MB for a few dozen models); done here, its pages are shared. A mapper that cannot
    be configured is left for the run that uses it to report.
    """
    orm = sys.modules.get("sqlalchemy.orm")
    if orm is None:
        return
    try:
        orm.configure_mappers()
    except Exception:
        log.debug("the ORM mappers could not be configured before forking", exc_info=True)


def ignore_signal(signum: int, frame: Any) -> None:
    """SIGTERM and SIGINT in the template and the workers: the supervisor decides when they end.

    A SIGTERM sent to serve's whole process group (systemd's default, ``timeout``, ``kill -TERM
    -PGID``) must let the supervisor's grace period apply, not end the runs at once. A handler
    rather than ``SIG_IGN``, so that a program a script starts gets the default again.
    """


_INHERITED: list[Any] = []
"""The supervisor's connection pools, as forked processes inherited them: kept for good."""


def _forget_connections(quest: Quest) -> None:
    """Drop the supervisor's pooled connections without closing them (they are the parent's).

    The inherited pool is kept referenced, never collected: a collected SQLite connection closes
    its handle, and SQLite run in this process on the supervisor's handle and shared memory could
    corrupt the database. Its descriptors stay open, unused, until the process ends.
    """
    store = quest.__dict__.get("store")
    if store is not None:
        _INHERITED.append(store.engine.pool)
        store.engine.dispose(close=False)
