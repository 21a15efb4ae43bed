"""The runner: validate → lease → signals → call → signals. It knows nothing of APScheduler.

Every way a script runs (``quest run``, a scheduled fire, a queued or retried run) goes through
:meth:`Runner.run`, which returns a :class:`RunOutcome` once the run has ended.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import socket
import threading
import time
import traceback as tb
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any, Protocol

from . import redact, runlog
from .clock import SYSTEM_CLOCK, Clock
from .config import Settings
from .context import Context, RunLogger
from .definition import Script
from .discovery import Registry
from .enums import Isolation, RunStatus, SkipReason, Trigger
from .errors import Discard, InvalidInputs, LeaseHeld, RunCancelled, RunInterrupted, RunTimeout
from .failures import ScriptFailed
from .inputs import Inputs, dump, secrets, validate
from .progress import EVERY, KIND, Reading
from .results import Captured, capture, exception_text
from .signals import (
    JobEvent,
    Later,
    emit,
    job_complete,
    job_error,
    job_progress,
    job_skip,
    job_start,
)
from .store import Store
from .timespan import parse_timespan


class FollowUp(Protocol):
    """What to do in the transaction that records a run's end: a serve claims its next queued
    run there, or writes its node's heartbeat."""

    def claim(self) -> None: ...

    def discard(self) -> None:
        """The end's transaction failed and was replayed: what :meth:`claim` took is void."""


class Executor(Protocol):
    """Where a run executes when not in the calling thread: a worker pool, a child process."""

    def execute(
        self, script: Script, inputs: Inputs, ctx: Context, active: Any, timeout: float | None
    ) -> Any: ...


log = logging.getLogger("quest.runner")

HOST = socket.gethostname()

WATCH_AFTER = 0.25
"""How long a run executes in a worker process before the runner's heartbeat looks after it
(renews its lease and heartbeat, reads cancel requests): the many runs that end sooner never
wake the heartbeat. Cancel requests reach them meanwhile through serve's wake-ups."""
LATE_WATCH_TTL = 3.0
"""Runs whose lease or heartbeat must be renewed sooner than this (a short ``lease_ttl`` or
``QUEST_LEASE_TTL``) are looked after from their start: the first renewal, a third of the TTL
after the heartbeat's first look, then still comes well before the TTL runs out."""
TAKEN_FOR_ABANDONED = "quest: another serve took the run for abandoned"
"""Who stops a run whose row was marked ``abandoned`` while it ran here (:meth:`Runner._beat`)."""
HEARTBEAT_JOIN = 10.0
"""Seconds :meth:`Runner.close` waits for the heartbeat's writes under way (a renewal, a cancel
check) to end before the store can be closed under them."""


def new_run_id() -> str:
    """A random (version 4) UUID's 32 hex digits, built without a ``uuid.UUID`` object."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    return raw.hex()


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """How a run ended."""

    name: str
    run_id: str
    status: RunStatus
    trigger: Trigger
    attempt: int = 1
    result: Any = None
    error: str | None = None
    traceback: str | None = None
    duration_ms: int | None = None
    reason: str | None = None
    retry_at: datetime | None = None
    retry_run_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.succeeded


@dataclass(slots=True)
class _Active:
    script: Script
    run_id: str
    lease_ttl: timedelta | None
    cancel: Callable[[], None] | None = None
    interrupted: bool = False
    cancelled_by: str | None = None
    event: JobEvent | None = None
    progress: Reading | None = None
    progress_dirty: bool = False
    progress_at: float | None = None
    progress_lock: threading.Lock = field(default_factory=threading.Lock)
    progress_writing: threading.Lock = field(default_factory=threading.Lock)
    watched: bool = False
    """Whether the heartbeat looks after the run (renews its lease, reads cancel requests)."""
    watch: Callable[[], None] | None = None
    """Hand the run to the heartbeat: called by the pool when a run in a worker process has
    lasted until ``watch_at`` (``time.monotonic()``), or must wait for a worker (a run that ends
    before never wakes the heartbeat)."""
    watch_at: float = 0.0
    ending: bool = False
    """Set as the run's end is written: its row may no longer be ``running`` from then on."""


@dataclass(slots=True, eq=False)
class Begun:
    """A run whose start is recorded, waiting for its call: see :meth:`Runner.begin`."""

    script: Script
    inputs: Inputs
    request: RunRequest
    base: JobEvent
    """The start's event, which the end's builds on."""
    active: _Active
    hidden: list[Any]
    """The values of the run's sensitive inputs."""
    ctx: Context
    t0: float
    secret_scope: int | None

    @property
    def run_id(self) -> str:
        return self.base.run_id


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Everything the runner needs to know about one run besides the script."""

    trigger: Trigger = Trigger.manual
    run_id: str | None = None
    attempt: int = 1
    root_id: str | None = None
    key: str | None = None
    scheduled_for: datetime | None = None
    retry: bool | None = None
    wait: bool = False
    slot: bool = False
    leased: bool = False
    follow: FollowUp | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


DEFAULT_REQUEST = RunRequest()
"""What :meth:`Runner.begin` runs with when given no request: a manual run, its first attempt."""


class Runner:
    """Runs scripts of one registry against one store."""

    def __init__(
        self,
        registry: Registry,
        store: Store,
        settings: Settings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        owner: str | None = None,
        enqueue: Callable[..., str] | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.settings = settings
        self.clock = clock
        self.owner = owner or f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._enqueue = enqueue or self.enqueue
        self._active: dict[str, _Active] = {}
        self._lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None
        self._stop_heartbeat = threading.Event()
        self._closed = False
        # The heartbeat thread waits on this while no run is active: an idle runner never wakes.
        self._beat_wanted = threading.Condition(self._lock)
        self._facets: dict[str, tuple[Script, logging.Logger, tzinfo]] = {}
        self.pool: Executor | None = None
        self.reporters: dict[str, Callable[[str, Any], None]] = {KIND: self._on_progress}
        self.logs = runlog.RunLogs(store)
        self.reporters["log"] = self.logs.receive
        self.timed: Executor | None = None
        self.cancel_check_every = 0.5
        self.progress_every = EVERY
        self._serves_ttl: float | None = None
        """The shortest lease TTL among the serves on this database, read by the heartbeat."""

    # -- public ------------------------------------------------------------------------------

    def prepare(self, name: str, raw: Mapping[str, Any] | None = None) -> tuple[Script, Inputs]:
        """Find *name* and validate *raw* inputs; raises before anything is recorded."""
        script = self.registry.get(name)
        _, zone = self._script_facets(script)
        return script, validate(script.model, script.inputs, raw or {}, timezone=zone)

    def enqueue(
        self,
        name: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        delay: timedelta | str | float | None = None,
        key: str | None = None,
        run_at: datetime | None = None,
    ) -> str:
        """Queue a run of *name* for ``quest serve``; the inputs are validated now."""
        script, validated = self.prepare(name, inputs or {})
        if delay is not None:
            try:
                wait = parse_timespan(delay, allow_zero=True)
            except ValueError as exc:
                raise InvalidInputs(f"Invalid delay: {exc}") from None
        else:
            wait = timedelta(0)
        now = self.clock.now()
        run_id = new_run_id()
        self.store.enqueue_run(
            {
                "id": run_id,
                "name": script.name,
                "status": RunStatus.queued,
                "trigger": Trigger.enqueued,
                "attempt": 1,
                "max_attempts": script.block().attempts,
                "root_id": run_id,
                "key": key,
                "inputs": dump(validated, script.inputs),
                "created_at": now,
                "run_after": run_at or now + wait,
            },
            secrets(validated, script.inputs),
        )
        return run_id

    def run(
        self,
        name: str,
        inputs: Mapping[str, Any] | Inputs | None = None,
        request: RunRequest | None = None,
    ) -> RunOutcome:
        """Run *name* now and return how it ended. Invalid inputs raise; nothing is recorded.

        The start (slot claim, overlap lease, JobLog row) is one transaction and the end (the row
        finished, a retry queued, the lease released) another.
        """
        begun = self.begin(name, inputs, request)
        if isinstance(begun, RunOutcome):
            return begun
        try:
            value = self._call(begun.script, begun.inputs, begun.ctx, begun.active)
        except BaseException as exc:
            return self.finish(begun, failure=exc)
        return self.finish(begun, value)

    def begin(
        self,
        name: str,
        inputs: Mapping[str, Any] | Inputs | None = None,
        request: RunRequest | None = None,
    ) -> Begun | RunOutcome:
        """The first half of :meth:`run`: record the start; what the call needs, or the outcome
        of a run refused (a slot taken, a lease held). Every :class:`Begun` is then ended by
        :meth:`finish`, with what its call returned or raised."""
        request = request or DEFAULT_REQUEST
        if isinstance(inputs, Inputs):
            script = self.registry.get(name)
            validated = inputs
        else:
            script, validated = self.prepare(name, inputs)
        run_id = request.run_id or new_run_id()
        block = script.block()
        lease_ttl = None
        if block.without_overlapping and (
            request.leased or overlap_governed(request.trigger, request.scheduled_for)
        ):
            lease_ttl = block.lease_ttl or timedelta(seconds=self.settings.lease_ttl)
            if request.wait and not request.leased:
                self._wait_for_lease(script, run_id, lease_ttl)
        active = _Active(script, run_id, lease_ttl)
        hidden = _sensitive(script, validated)
        try:
            with self.store.unit():
                refusal = self._admit(script, validated, request, run_id, lease_ttl)
                if refusal is not None:
                    return refusal
                start = self._start(script, validated, request, run_id, hidden)
            active.event = start
            if self.in_worker(script) and self._may_watch_late(lease_ttl):
                active.watch = functools.partial(self._watch, active)
                active.watch_at = time.monotonic() + WATCH_AFTER
                with self._lock:
                    self._active[run_id] = active
            else:
                self._watch(active, adding=True)
            ctx = self.context(
                script,
                run_id=run_id,
                now=start.timestamp,
                trigger=request.trigger,
                attempt=request.attempt,
                max_attempts=start.max_attempts,
                scheduled_for=request.scheduled_for,
                key=request.key,
                root_id=request.root_id or run_id,
            )
        except BaseException:
            with self._lock:
                self._active.pop(run_id, None)
            if lease_ttl is not None:
                self.store.release_lease(script.name, run_id=run_id)
            raise
        scope = redact.register(hidden) if hidden else None
        return Begun(
            script, validated, request, start, active, hidden, ctx, self.clock.monotonic(), scope
        )

    def _admit(
        self,
        script: Script,
        inputs: Inputs,
        request: RunRequest,
        run_id: str,
        lease_ttl: timedelta | None,
    ) -> RunOutcome | None:
        """Claim the slot and take the lease; an outcome when the run must not start."""
        now = self.clock.now()
        if request.slot:
            if request.scheduled_for is None:
                raise ValueError("a slot run needs its scheduled_for instant")
            paused = self.store.claim_slot_paused(
                script.name, request.scheduled_for, run_id=run_id, owner=self.owner, now=now
            )
            if paused is None:
                return RunOutcome(
                    script.name, run_id, RunStatus.skipped, request.trigger, reason="claimed"
                )
            if paused:
                return self.skip(
                    script,
                    SkipReason.paused,
                    request,
                    run_id=run_id,
                    inputs=inputs,
                    detail="quest pause",
                )
        if lease_ttl is None or request.wait or request.leased:
            return None
        if self.store.acquire_lease(
            script.name, run_id=run_id, owner=self.owner, now=now, ttl=lease_ttl
        ):
            return None
        if request.trigger is Trigger.manual:
            raise LeaseHeld(
                f"{script.name} is already running ({self._holder_text(script.name)}); "
                "it declares without_overlapping. Use --wait to wait for it."
            )
        if request.trigger.queued:
            return RunOutcome(
                script.name,
                run_id,
                RunStatus.queued,
                request.trigger,
                attempt=request.attempt,
                reason="overlap",
            )
        return self.skip(
            script,
            SkipReason.overlap,
            request,
            run_id=run_id,
            inputs=inputs,
            detail=self._holder_text(script.name),
        )

    def skip(
        self,
        script: Script,
        reason: SkipReason,
        request: RunRequest,
        *,
        run_id: str | None = None,
        inputs: Inputs | None = None,
        detail: str = "",
    ) -> RunOutcome:
        """Record and announce a fire that does not run."""
        now = self.clock.now()
        run_id = run_id or new_run_id()
        text = reason.value + (f": {detail}" if detail else "")
        event = JobEvent(
            name=script.name,
            run_id=run_id,
            trigger=request.trigger,
            status=RunStatus.skipped,
            inputs=dump(inputs, script.inputs) if inputs is not None else {},
            timestamp=now,
            attempt=request.attempt,
            root_id=request.root_id or run_id,
            key=request.key,
            scheduled_for=request.scheduled_for,
            finished_at=now,
            reason=text,
        )
        emit(job_skip, self, event, between=self.store.flush)
        log.info(
            "skip %s run=%s trigger=%s reason=%s",
            script.name,
            run_id,
            request.trigger.value,
            text,
            extra={"script": script.name, "run_id": run_id, "action": "skip"},
        )
        return RunOutcome(script.name, run_id, RunStatus.skipped, request.trigger, reason=text)

    def abandoned(self, row: Mapping[str, Any], now: datetime) -> RunOutcome:
        """Announce a run found abandoned and queue its retry if attempts remain."""
        script = self.registry.scripts.get(row["name"])
        retry_at: datetime | None = None
        retry_id: str | None = None
        attempt = int(row["attempt"])
        if script is not None and attempt < int(row["max_attempts"] or 1):
            backoff = script.block().backoff
            wait = backoff.delay_for(attempt) if backoff else timedelta(0)
            retry_at = now + wait
            retry_id = new_run_id()
            self.store.enqueue_run(
                {
                    "id": retry_id,
                    "name": row["name"],
                    "status": RunStatus.queued,
                    "trigger": Trigger.retry,
                    "attempt": attempt + 1,
                    "max_attempts": row["max_attempts"],
                    "root_id": row["root_id"] or row["id"],
                    "key": row["key"],
                    "inputs": row["inputs"],
                    "scheduled_for": row["scheduled_for"],
                    "created_at": now,
                    "run_after": retry_at,
                }
            )
        if retry_id is None:
            self.store.forget_secrets(row["root_id"] or row["id"])
        started = row["started_at"]
        duration = round((now - started).total_seconds() * 1000) if started else None
        event = JobEvent(
            name=row["name"],
            run_id=row["id"],
            trigger=row["trigger"],
            status=RunStatus.abandoned,
            inputs=row["inputs"] or {},
            timestamp=now,
            attempt=attempt,
            max_attempts=int(row["max_attempts"] or 1),
            root_id=row["root_id"],
            key=row["key"],
            scheduled_for=row["scheduled_for"],
            started_at=started,
            finished_at=now,
            duration_ms=duration,
            error="Abandoned: its process stopped heartbeating",
            error_type="Abandoned",
            retry_at=retry_at,
        )
        emit(job_error, self, event)
        log.warning(
            "abandoned %s run=%s (owner %s:%s stopped heartbeating)%s",
            row["name"],
            row["id"],
            row["owner_host"],
            row["owner_pid"],
            f"; retry {retry_id} at {retry_at:%H:%M:%S}" if retry_at else "",
            extra={"script": row["name"], "run_id": row["id"], "action": "abandoned"},
        )
        return RunOutcome(
            row["name"],
            row["id"],
            RunStatus.abandoned,
            row["trigger"],
            attempt=attempt,
            error=event.error,
            retry_at=retry_at,
            retry_run_id=retry_id,
        )

    def context(self, script: Script, *, run_id: str, now: datetime, **fields: Any) -> Context:
        """The context a run of *script* receives (its clock, logger, database, enqueue)."""
        logger, zone = self._script_facets(script)
        return Context(
            name=script.name,
            run_id=run_id,
            now=now,
            trigger=fields.pop("trigger", Trigger.manual),
            attempt=fields.pop("attempt", 1),
            clock=self.clock,
            log=RunLogger(logger, {"script": script.name, "run_id": run_id}),
            db=self.store.sessions,
            settings=self.settings,
            timezone=zone,
            _enqueue=self._enqueue,
            _report=fields.pop("report", None) or functools.partial(self.report, run_id),
            **fields,
        )

    def _script_facets(self, script: Script) -> tuple[logging.Logger, tzinfo]:
        """*script*'s logger and time zone, found once per script (a registry that reloads
        gives new script objects, found again)."""
        found = self._facets.get(script.name)
        if found is None or found[0] is not script:
            logger = logging.getLogger(f"quest.script.{script.name}")
            found = (script, logger, script.timezone(self.settings.timezone))
            self._facets[script.name] = found
        return found[1], found[2]

    def report(self, run_id: str, kind: str, payload: Any) -> None:
        """What a run reports while it runs (progress, log lines), from any process, ends here."""
        handler = self.reporters.get(kind)
        if handler is None:
            return
        try:
            handler(run_id, payload)
        except Exception:
            log.warning("a %s report of run %s failed", kind, run_id, exc_info=True)

    def _on_progress(self, run_id: str, payload: Any) -> None:
        """Keep the latest progress of an active run; :meth:`flush_progress` writes it."""
        reading = Reading.of(payload)
        if reading is None:
            log.warning("run %s sent a progress report that is not one: %r", run_id, payload)
            return
        with self._lock:
            active = self._active.get(run_id)
        if active is None:
            return
        with active.progress_lock:
            active.progress, active.progress_dirty = reading, True

    def flush_progress(self, actives: list[_Active] | None = None, *, final: bool = False) -> int:
        """Store and announce (``job:progress``) the new progress of *actives* (default: every
        active run), each at most once every ``progress_every`` seconds unless *final*.

        Called by the heartbeat, and with *final* when a run's script has returned. Returns how
        many runs' progress was written.
        """
        if actives is None:
            actives = self.active()
        written = 0
        for active in actives:
            # One writer at a time per run, so that values are stored in the order they came;
            # a report arriving meanwhile only waits for the snapshot, never for the database.
            with active.progress_writing:
                with active.progress_lock:
                    reading = active.progress
                    if not active.progress_dirty or reading is None:
                        continue
                    moment = self.clock.monotonic()
                    if (
                        not final
                        and active.progress_at is not None
                        and moment - active.progress_at < self.progress_every
                    ):
                        continue
                    active.progress_dirty, active.progress_at = False, moment
                try:
                    self._write_progress(active, reading)
                    written += 1
                except Exception:
                    with active.progress_lock:
                        active.progress_dirty = True  # the next heartbeat tries again
                    log.warning(
                        "recording the progress of run %s failed", active.run_id, exc_info=True
                    )
        return written

    def _write_progress(self, active: _Active, reading: Reading) -> None:
        now = self.clock.now()
        message = None if reading.message is None else redact.scrub(reading.message)
        self.store.set_progress(
            active.run_id, current=reading.current, total=reading.total, message=message, now=now
        )
        if active.event is None:
            return
        event = JobEvent(
            **{
                **_fields(active.event),
                "timestamp": now,
                "progress_current": reading.current,
                "progress_total": reading.total,
                "progress_message": message,
            }
        )
        emit(job_progress, self, event)

    def active_runs(self) -> list[str]:
        with self._lock:
            return list(self._active)

    def active(self) -> list[_Active]:
        with self._lock:
            return list(self._active.values())

    def cancel(self, run_id: str, by: str) -> bool:
        """Stop the active run *run_id* because *by* asked; ``False`` if it is not active here."""
        with self._lock:
            active = self._active.get(run_id)
        if active is None:
            return False
        if active.cancelled_by is None:
            active.cancelled_by = by
            log.warning(
                "cancelling %s run=%s (asked by %s)",
                active.script.name,
                run_id,
                by,
                extra={"script": active.script.name, "run_id": run_id, "action": "cancel"},
            )
            if active.cancel is not None:
                active.cancel()
        return True

    def interrupt_all(self) -> None:
        """Stop every active run that can be stopped (async tasks, child processes)."""
        with self._lock:
            actives = list(self._active.values())
        for active in actives:
            active.interrupted = True
            if active.cancel is not None:
                active.cancel()

    def close(self) -> None:
        """Stop the heartbeat and wait for it, so that no write of it outlives the store; a run
        started later is not looked after."""
        self._stop_heartbeat.set()
        with self._lock:
            self._closed = True
            self._beat_wanted.notify_all()
        heartbeat = self._heartbeat
        if heartbeat is not None and heartbeat is not threading.current_thread():
            heartbeat.join(HEARTBEAT_JOIN)

    # -- internals ---------------------------------------------------------------------------

    def _wait_for_lease(self, script: Script, run_id: str, ttl: timedelta) -> None:
        while not self.store.acquire_lease(
            script.name, run_id=run_id, owner=self.owner, now=self.clock.now(), ttl=ttl
        ):
            self._stop_heartbeat.wait(0.2)

    def _holder_text(self, name: str) -> str:
        lease = self.store.lease(name)
        if not lease:
            return "held by another run"
        until = f"{lease['expires_at']:%H:%M:%S} UTC"
        return f"run {lease['run_id']} on {lease['owner']}, lease until {until}"

    def _start(
        self,
        script: Script,
        inputs: Inputs,
        request: RunRequest,
        run_id: str,
        hidden: list[Any],
    ) -> JobEvent:
        """Announce the start (the recorder inserts the row); the event the end builds on.
        *hidden*: the values of the run's sensitive inputs."""
        retry_allowed = (
            request.retry if request.retry is not None else (request.trigger is not Trigger.manual)
        )
        started = self.clock.now()
        event = JobEvent(
            name=script.name,
            run_id=run_id,
            trigger=request.trigger,
            status=RunStatus.running,
            inputs=redact.scrub_value(dump(inputs, script.inputs), hidden),
            timestamp=started,
            attempt=request.attempt,
            max_attempts=script.block().attempts if retry_allowed else request.attempt,
            root_id=request.root_id or run_id,
            key=request.key,
            scheduled_for=request.scheduled_for,
            started_at=started,
            extra=dict(request.extra),
        )
        emit(job_start, self, event, between=self.store.flush)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "start %s run=%s trigger=%s attempt=%d",
                script.name,
                run_id,
                request.trigger.value,
                request.attempt,
                extra={"script": script.name, "run_id": run_id, "action": "start"},
            )
        return event

    def finish(
        self,
        begun: Begun,
        value: Any = None,
        failure: BaseException | None = None,
        *,
        later: list[Later] | None = None,
    ) -> RunOutcome:
        """The second half of :meth:`run`: record how *begun*'s call ended (it returned *value*,
        or raised *failure*) and return the outcome.

        With *later*, the end is written in the unit of work open in this thread, which the
        caller commits (the ends of several runs together), and what the receivers of the end
        signal other than the recorder have to do is appended to *later*, to be done once it has
        committed (:func:`quest.signals.emit_later`).
        """
        ended = False
        try:
            outcome = self._end(begun, value, failure, later)
            ended = True
            return outcome
        finally:
            if begun.secret_scope is not None:
                redact.unregister(begun.secret_scope)
            run_id = begun.base.run_id
            self.logs.end(run_id)
            with self._lock:
                self._active.pop(run_id, None)
            if begun.active.lease_ttl is not None and not ended:
                self.store.release_lease(begun.script.name, run_id=run_id)

    def _end(
        self,
        begun: Begun,
        value: Any,
        failure: BaseException | None,
        later: list[Later] | None,
    ) -> RunOutcome:
        script, inputs, request, active, hidden = (
            begun.script,
            begun.inputs,
            begun.request,
            begun.active,
            begun.hidden,
        )
        base = begun.base
        run_id = base.run_id
        max_attempts = base.max_attempts
        status = RunStatus.succeeded
        result: Any = None
        error: str | None = None
        trace: str | None = None
        retry_at: datetime | None = None
        retry_id: str | None = None
        escaping: BaseException | None = None
        try:
            begun.ctx.progress.flush()
            self.flush_progress([active], final=True)
            if failure is None:
                result = value.value if isinstance(value, Captured) else capture(value)
                result = redact.scrub_value(result, hidden)
        except BaseException as raised:
            if failure is None:
                failure = raised
        if failure is not None:
            result = None
            if isinstance(failure, KeyboardInterrupt) and not active.interrupted:
                escaping = failure
            error, trace = _describe(failure, hidden)
            status = _status_for(failure, script, active)
            if isinstance(failure, KeyboardInterrupt) or (
                # raised in a worker process: the same outcome as in this one
                isinstance(failure, ScriptFailed) and failure.failure.interrupt
            ):
                status = RunStatus.interrupted
        if status is RunStatus.failed and request.attempt < max_attempts and escaping is None:
            retry_at, retry_id = self._retry_plan(script, request)
        finished = self.clock.now()
        duration_ms = max(0, round((self.clock.monotonic() - begun.t0) * 1000))
        end = JobEvent(
            name=base.name,
            run_id=run_id,
            trigger=base.trigger,
            status=status,
            inputs=base.inputs,
            timestamp=finished,
            attempt=base.attempt,
            max_attempts=max_attempts,
            root_id=base.root_id,
            key=base.key,
            scheduled_for=base.scheduled_for,
            started_at=base.started_at,
            finished_at=finished,
            duration_ms=duration_ms,
            result=result,
            error=error,
            error_type=None if error is None else error.split(":", 1)[0],
            traceback=trace,
            reason=base.reason,
            retry_at=retry_at,
            extra=base.extra,
            progress_current=base.progress_current,
            progress_total=base.progress_total,
            progress_message=base.progress_message,
        )
        active.ending = True
        with self.store.unit(durable=True, about={"run_id": run_id, "script": script.name}) as unit:
            if retry_id is not None and retry_at is not None:
                self._queue_retry(script, inputs, request, run_id, retry_id, retry_at)
            elif any(spec.sensitive for spec in script.inputs.values()):
                self.store.forget_secrets(request.root_id or run_id)
            if active.lease_ttl is not None:
                self.store.release_lease(script.name, run_id=run_id)
            if active.cancelled_by is not None:
                self.store.forget_cancel(run_id)
            if request.follow is not None and escaping is None:
                _follow(request.follow)
            emit(
                job_complete if status is RunStatus.succeeded else job_error,
                self,
                end,
                between=None if later is not None else self.store.flush,
                later=later,
            )
        if request.follow is not None and unit is not None and unit.replayed:
            request.follow.discard()
        if escaping is not None:
            raise escaping
        level = logging.INFO if status is RunStatus.succeeded else logging.ERROR
        if log.isEnabledFor(level):
            log.log(
                level,
                "end %s run=%s trigger=%s duration_ms=%d status=%s%s",
                script.name,
                run_id,
                request.trigger.value,
                duration_ms,
                status.value,
                f" error={error!r}" if error else "",
                extra={
                    "script": script.name,
                    "run_id": run_id,
                    "action": "end",
                    "status": status.value,
                    "duration_ms": duration_ms,
                },
            )
        return RunOutcome(
            name=script.name,
            run_id=run_id,
            status=status,
            trigger=request.trigger,
            attempt=request.attempt,
            result=result,
            error=error,
            traceback=trace,
            duration_ms=duration_ms,
            retry_at=retry_at,
            retry_run_id=retry_id,
        )

    def _may_watch_late(self, lease_ttl: timedelta | None) -> bool:
        """Whether a run's lease and heartbeat outlive :data:`WATCH_AFTER` by far enough that
        the heartbeat may first look at the run then."""
        ttl = self._ttl()
        if lease_ttl is not None:
            ttl = min(ttl, lease_ttl.total_seconds())
        return ttl >= LATE_WATCH_TTL

    def in_worker(self, script: Script) -> bool:
        """Whether runs of *script* execute in a worker process of the pool."""
        return (
            self.pool is not None
            and (script.block().isolation or self.settings.isolation) is Isolation.process
        )

    def _call(self, script: Script, inputs: Inputs, ctx: Context, active: _Active) -> Any:
        timeout = script.block().timeout
        if self.pool is not None and self.in_worker(script):
            return Captured(self.pool.execute(script, inputs, ctx, active, seconds_of(timeout)))
        if not script.is_async and timeout is not None and self.timed is not None:
            return Captured(self.timed.execute(script, inputs, ctx, active, seconds_of(timeout)))
        # The run executes in this thread: what the thread logs meanwhile is the run's.
        with runlog.capture(ctx.run_id, _log_sender(ctx)):
            if script.is_async:
                return self._call_async(script, inputs, ctx, active, timeout)
            value = script.fn(inputs, ctx)
            if asyncio.iscoroutine(value):
                return asyncio.run(value)
            return value

    def _call_async(
        self,
        script: Script,
        inputs: Inputs,
        ctx: Context,
        active: _Active,
        timeout: timedelta | None,
    ) -> Any:
        loop = asyncio.new_event_loop()
        task = loop.create_task(script.fn(inputs, ctx))

        def cancel() -> None:
            loop.call_soon_threadsafe(task.cancel)

        active.cancel = cancel
        try:
            if timeout is None:
                return loop.run_until_complete(task)
            try:
                return loop.run_until_complete(
                    asyncio.wait_for(task, timeout=timeout.total_seconds())
                )
            except TimeoutError:
                if active.interrupted:
                    raise
                raise RunTimeout(f"exceeded its timeout of {timeout.total_seconds():g} s") from None
        except asyncio.CancelledError:
            if active.cancelled_by is not None:
                raise RunCancelled(active.cancelled_by) from None
            raise RunInterrupted("stopped by shutdown") from None
        finally:
            active.cancel = None
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _retry_plan(self, script: Script, request: RunRequest) -> tuple[datetime, str]:
        """When the next attempt runs (backoff and jitter applied) and its run id."""
        backoff = script.block().backoff
        wait = backoff.delay_for(request.attempt) if backoff else timedelta(0)
        if backoff is not None and backoff.jitter:
            wait = wait * (1 + random.uniform(-backoff.jitter, backoff.jitter))
        return self.clock.now() + wait, new_run_id()

    def _queue_retry(
        self,
        script: Script,
        inputs: Inputs,
        request: RunRequest,
        run_id: str,
        retry_id: str,
        retry_at: datetime,
    ) -> None:
        self.store.enqueue_run(
            {
                "id": retry_id,
                "name": script.name,
                "status": RunStatus.queued,
                "trigger": Trigger.retry,
                "attempt": request.attempt + 1,
                "max_attempts": script.block().attempts,
                "root_id": request.root_id or run_id,
                "key": request.key,
                "inputs": dump(inputs, script.inputs),
                "scheduled_for": request.scheduled_for,
                "created_at": self.clock.now(),
                "run_after": retry_at,
            },
            secrets(inputs, script.inputs),
        )

    def _beat_every(self) -> float:
        """A third of the shortest lease among the active runs (and of the global TTL)."""
        with self._lock:
            ttls = [a.lease_ttl.total_seconds() for a in self._active.values() if a.lease_ttl]
        return max(0.1, min([self._ttl(), *ttls]) / 3)

    def _ttl(self) -> float:
        """The TTL this runner's heartbeat keeps its runs alive for: its own
        ``QUEST_LEASE_TTL``, or a serve's on the same database when that is shorter (a serve
        takes a run for abandoned after its own TTL without a beat)."""
        serves = self._serves_ttl
        own: float = self.settings.lease_ttl
        return own if serves is None else min(own, serves)

    def _learn_serves_ttl(self) -> bool:
        """Read the shortest lease TTL of the serves on this database; whether it was read."""
        try:
            self._serves_ttl = self.store.shortest_lease_ttl()
        except Exception:
            log.debug("could not read the lease TTLs of the serves", exc_info=True)
            return False
        return True

    def _watch(self, active: _Active, *, adding: bool = False) -> None:
        """Let the heartbeat look after *active* (*adding*: it becomes active now)."""
        with self._lock:
            if adding:
                self._active[active.run_id] = active
            elif active.watched or active.run_id not in self._active:
                return
            active.watched = True
            self._beat_wanted.notify_all()
        self._ensure_heartbeat()

    def _ensure_heartbeat(self) -> None:
        with self._lock:
            if self._closed or (self._heartbeat is not None and self._heartbeat.is_alive()):
                return
            self._stop_heartbeat.clear()
            self._heartbeat = threading.Thread(
                target=self._beat, name="quest-heartbeat", daemon=True
            )
            self._heartbeat.start()

    def _beat(self) -> None:
        """Renew leases and heartbeats of the active runs; stop the runs someone cancelled."""
        last_beat = self.clock.monotonic()
        learned = False
        while True:
            with self._lock:
                while not self._stop_heartbeat.is_set() and not any(
                    active.watched for active in self._active.values()
                ):
                    self._beat_wanted.wait()
            if self._stop_heartbeat.wait(min(self.cancel_check_every, self._beat_every())):
                return
            with self._lock:
                actives = [active for active in self._active.values() if active.watched]
            if not actives:
                continue
            self.check_cancels(actives)
            self.flush_progress(actives)
            if not learned:
                # Once a run has lasted a look (the many that end sooner never need it), then
                # once a beat.
                learned = self._learn_serves_ttl()
            if self.clock.monotonic() - last_beat < self._beat_every():
                continue
            last_beat = self.clock.monotonic()
            now = self.clock.now()
            for active in actives:
                try:
                    if active.lease_ttl is not None:
                        self.store.renew_lease(
                            active.script.name, run_id=active.run_id, now=now, ttl=active.lease_ttl
                        )
                    if not self.store.beat_run(active.run_id, now) and not active.ending:
                        # Another serve took it for abandoned while this process was silent
                        # (stopped, or cut off): its retry may be running elsewhere already.
                        self.cancel(active.run_id, TAKEN_FOR_ABANDONED)
                except Exception:
                    log.warning("heartbeat of run %s failed", active.run_id, exc_info=True)
            learned = False

    def check_cancels(self, actives: list[_Active] | None = None) -> list[str]:
        """Stop the active runs that ``quest cancel`` asked for; returns their ids."""
        if actives is None:
            with self._lock:
                actives = list(self._active.values())
        waiting = [a.run_id for a in actives if a.cancelled_by is None]
        if not waiting:
            return []
        try:
            asked = self.store.cancel_requests(waiting)
        except Exception:
            log.warning("reading cancel requests failed", exc_info=True)
            return []
        for run_id, by in asked.items():
            self.cancel(run_id, by)
        return list(asked)


def _describe(exc: BaseException, secrets: list[Any]) -> tuple[str, str]:
    """The error line and traceback stored for *exc*, scrubbed of secrets and NUL bytes."""
    if isinstance(exc, ScriptFailed):
        error, trace = f"{exc.failure.type_name}: {exc.failure.message}", exc.failure.traceback
    else:
        error, trace = exception_text(exc), "".join(tb.format_exception(exc))
    return (
        redact.scrub(error, secrets).replace("\x00", "\\x00"),
        redact.scrub(trace, secrets).replace("\x00", "\\x00"),
    )


def _sensitive(script: Script, inputs: Inputs) -> list[Any]:
    """The values of the sensitive inputs given to a run of *script*."""
    if not any(spec.sensitive for spec in script.inputs.values()):
        return []
    return redact.sensitive_values(inputs, script.inputs)


def _status_for(exc: BaseException, script: Script, active: _Active) -> RunStatus:
    if isinstance(exc, RunCancelled) or active.cancelled_by is not None:
        return RunStatus.cancelled
    if isinstance(exc, RunTimeout):
        return RunStatus.timed_out
    if isinstance(exc, RunInterrupted) or active.interrupted:
        return RunStatus.interrupted
    if isinstance(exc, (Discard, *script.block().discard_on)):
        return RunStatus.discarded
    return RunStatus.failed


def _log_sender(ctx: Context) -> runlog.Send:
    report = ctx._report

    def send(batch: dict[str, Any]) -> None:
        if report is not None:
            report("log", batch)

    return send


def _follow(follow: FollowUp) -> None:
    try:
        follow.claim()
    except Exception:
        log.warning("the follow-up of a run's end failed", exc_info=True)
        follow.discard()


def seconds_of(timeout: timedelta | None) -> float | None:
    """A script's ``timeout`` as the seconds an executor takes (``None``: no timeout)."""
    return None if timeout is None else timeout.total_seconds()


def overlap_governed(trigger: Trigger, scheduled_for: datetime | None) -> bool:
    """Whether ``without_overlapping`` applies: runs of the schedule, their retries, manual runs.

    Enqueued runs (and retries of enqueued runs) are bounded by ``concurrency`` and
    ``rate_limit`` instead, and run in parallel otherwise.
    """
    if trigger in (Trigger.scheduled, Trigger.catch_up, Trigger.manual):
        return True
    return trigger is Trigger.retry and scheduled_for is not None


def _fields(event: JobEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in event.__dataclass_fields__}
