"""``quest serve``: fire each scheduled script at its slots, claim each slot once, stop cleanly.

The loop is deterministic at its core: :meth:`Serve.tick` processes exactly what is due at the
instant it is given, so tests drive it with a frozen clock. :meth:`Serve.serve_forever` only adds
waiting. Fire times come from APScheduler triggers built in :mod:`quest.plan`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import __version__
from .definition import Script
from .enums import CatchUp, Isolation, RunStatus, SkipReason, Trigger
from .inputs import Inputs
from .plan import Planned, inactive_reason, plan
from .runner import HOST, RunOutcome, RunRequest, new_run_id
from .store import Limits, Taken, Waiter
from .store.wake import SHORT_WAIT

if TYPE_CHECKING:
    from .app import Quest
    from .dispatch import Dispatcher
    from .metrics import Metrics
    from .pool import WorkerPool

log = logging.getLogger("quest.serve")

MAX_MISSED_ROWS = 50
MAX_MISSED_WALK = 100_000
SLOT_MEMORY = timedelta(days=2)
NODE_MEMORY = timedelta(days=1)
HANDOFF = 0.02
NODE_BEAT_CARRIED = 2.0
"""A scheduled run ending up to this many seconds before the node's heartbeat comes due writes
the heartbeat in its end's transaction: a serve whose scripts fire often never spends a
transaction of its own on it."""
READY_AHEAD = 0.002
"""Seconds before a slot the loop wakes to get its fire ready (the slot after it, the run's id
and validated inputs), so that at the slot it only hands the run over. The wait for the slot is
two ``select`` calls either way (see :func:`quest.store.wake.select_until`); the first now ends
here."""
HOUSEKEEPING_DEFER = 0.25
"""Housekeeping (a node beat, recovery, pruning, a safety poll of the queue) that comes due this
many seconds or less before a scheduled slot waits for the slot and runs right after its fire,
instead of delaying the fire by its transactions."""


class Workers:
    """Daemon threads that run what serve hands them: a warm thread is reused, none is kept
    waiting when all are busy (a new one starts), and one idle for a minute retires."""

    IDLE = 60.0

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._idle = 0
        self._busy = 0

    def submit(self, task: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            self._busy += 1
            spawn = self._idle == 0
            if not spawn:
                self._idle -= 1
        self._tasks.put((task, args))
        if spawn:
            threading.Thread(target=self._work, name="quest-worker", daemon=True).start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until nothing is running; ``False`` if *timeout* passed first."""
        with self._settled:
            return self._settled.wait_for(lambda: self._busy == 0, timeout)

    @property
    def busy(self) -> int:
        return self._busy

    def _work(self) -> None:
        while True:
            try:
                task, args = self._tasks.get(timeout=self.IDLE)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:
                        self._idle -= 1
                        return
                continue
            try:
                task(*args)
            except BaseException:
                log.exception("a serve task failed; its worker carries on")
            finally:
                with self._lock:
                    self._busy -= 1
                    self._idle += 1
                    self._settled.notify_all()


def log_not_carried_out(row: dict[str, Any]) -> None:
    """Log, with the exception being handled, that a claimed queued *row* could not be run."""
    log.exception(
        "queued run %s of %s could not be carried out",
        row["id"],
        row["name"],
        extra={"script": row["name"], "run_id": row["id"]},
    )


def limits_of(script: Script) -> Limits | None:
    """The queue limits a script declares (``rate_limit``, ``concurrency``), if any."""
    block = script.block()
    if block.rate_limit is None and block.concurrency is None:
        return None
    return Limits(
        concurrency=block.concurrency.max if block.concurrency else None,
        concurrency_per_key=bool(block.concurrency and block.concurrency.per_key),
        rate_max=block.rate_limit.max if block.rate_limit else None,
        rate_per=block.rate_limit.per if block.rate_limit else timedelta(seconds=1),
        rate_per_key=bool(block.rate_limit and block.rate_limit.per_key),
    )


@dataclass(frozen=True, slots=True)
class _Ready:
    """A fire got ready ahead of its slot: the slot after it, its request, its inputs."""

    slot: datetime
    following: datetime | None
    request: RunRequest
    inputs: Inputs | None


@dataclass(slots=True)
class _Entry:
    planned: Planned
    next_slot: datetime | None
    ready: _Ready | None = None


@dataclass(frozen=True, slots=True)
class Fire:
    """A slot this process claimed and started (or skipped)."""

    name: str
    scheduled_for: datetime
    run_id: str
    trigger: Trigger
    skipped: SkipReason | None = None


class _Next:
    """The follow-up of a queued run's end: claim this worker's next run in the transaction that
    records the end (with the other ends committed together, on SQLite)."""

    __slots__ = ("serve", "taken")

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.taken: Taken | None = None

    def claim(self) -> None:
        if not self.serve.stopping:
            self.taken = self.serve._claim_at_commit(self.serve.clock.now(), 1)

    def discard(self) -> None:
        self.taken = None

    @property
    def rows(self) -> list[dict[str, Any]]:
        """What the claim took, once the end has committed."""
        if self.taken is None:
            return []
        rows: list[dict[str, Any]] = self.taken.items
        self.taken = None
        if rows and self.serve.metrics is not None:
            self.serve.metrics.claimed(rows)
        return rows


class _Beat:
    """The follow-up of a scheduled run's end: the node's heartbeat, when it is nearly due,
    written in the transaction that records the end."""

    __slots__ = ("before", "serve")

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.before: float | None = None

    def claim(self) -> None:
        self.before = self.serve._carry_node_beat()

    def discard(self) -> None:
        if self.before is not None:
            # The end's transaction was replayed write by write: the beat may not have landed.
            self.serve._last_node_beat = self.before
            self.before = None


@dataclass
class Serve:
    """Schedules the scripts of one :class:`~quest.app.Quest`."""

    quest: Quest
    grace: float = 30.0
    concurrency: int = 4
    inline: bool = False
    maintenance_every: float = 60.0
    on_outcome: Callable[[RunOutcome], None] | None = None
    entries: dict[str, _Entry] = field(default_factory=dict)
    _workers: Workers = field(default_factory=lambda: Workers())
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _last_maintenance: float = float("-inf")
    _last_recovery: float = float("-inf")
    _last_retention: float = float("-inf")
    retention_every: float = 3600.0
    poll_every: float = 1.0
    queue_check_every: float = 10.0
    _queue_next: datetime | None = None
    _queue_woken: bool = True
    _waiter: Waiter | None = None
    _event: threading.Event = field(default_factory=threading.Event)
    _leases: dict[str, timedelta] = field(default_factory=dict)
    node_id: str | None = None
    node_every: float = 5.0
    _last_node_beat: float = float("-inf")
    _queued_active: int = 0
    _unstarted: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Queued rows this serve has claimed (they are ``running``) whose run has not begun."""
    _released: bool = False
    """Set at shutdown: claimed rows that had not begun went back to the queue, and no more
    begin here."""
    _limits: dict[str, Limits] = field(default_factory=dict)
    pool: WorkerPool | None = None
    metrics: Metrics | None = None
    dispatch: bool | None = None
    """Whether queued runs in worker processes are driven by one dispatcher thread
    (:mod:`quest.dispatch`) rather than a thread each. By default, on SQLite, whose writes are
    one at a time anyway; on PostgreSQL a thread a run overlaps the round trips of several runs
    and carries each end in the statement that claims the next run, which one thread cannot."""
    _dispatcher: Dispatcher | None = None
    _held: list[tuple[str, RunRequest, Inputs | None]] | None = None
    """While the loop fires: the runs it will hand to threads once it has planned its sleep."""

    @property
    def clock(self) -> Any:
        return self.quest.clock

    # -- set-up -------------------------------------------------------------------------------

    def start(self, now: datetime | None = None) -> list[Fire]:
        """Plan every script, handle slots missed while no serve ran, and run ``run_on_start``."""
        now = now or self.clock.now()
        store = self.quest.store
        fires: list[Fire] = []
        self._limits = {
            script.name: rule
            for script in self.quest.registry
            if (rule := limits_of(script)) is not None
        }
        default_ttl = timedelta(seconds=self.quest.settings.lease_ttl)
        self._leases = {
            script.name: script.block().lease_ttl or default_ttl
            for script in self.quest.registry
            if script.block().without_overlapping
        }
        # The node's heartbeat comes at least three times within its lease TTL, as a run's does.
        self.node_every = min(self.node_every, self.quest.settings.lease_ttl / 3)
        self._register_node(now)
        last = store.last_slots()
        for script in self.quest.registry:
            planned = plan(script, self.quest.settings)
            if planned is None:
                fires += self._skip_disabled(script)
                continue
            entry = _Entry(planned, planned.next_after(None, now))
            self.entries[script.name] = entry
            fires += self._catch_up(entry, last.get(script.name), now)
            if script.block().run_on_start:
                fires += self._fire(entry, now, Trigger.scheduled)
            log.info(
                "scheduled %s: next %s",
                script.name,
                entry.next_slot.isoformat() if entry.next_slot else "never",
                extra={"script": script.name, "action": "plan"},
            )
        return fires

    def _register_node(self, now: datetime) -> None:
        try:
            moment = self.clock.monotonic()
            self.node_id = self.quest.store.register_node(
                host=HOST,
                pid=os.getpid(),
                version=__version__,
                now=now,
                concurrency=self.concurrency,
                isolation=Isolation.process.value if self.pool else Isolation.thread.value,
                lease_ttl=self.quest.settings.lease_ttl,
            )
            # Registering stamped the heartbeat: the next beat is due a beat from now.
            self._last_node_beat = moment
        except Exception:
            log.warning("could not register this serve as a node", exc_info=True)

    def _beat_node(self, now: datetime, moment: float) -> None:
        if self.node_id is None or moment - self._last_node_beat < self.node_every:
            return
        self._last_node_beat = moment
        try:
            self.quest.store.beat_node(self.node_id, now)
        except Exception:
            log.warning("node heartbeat failed", exc_info=True)

    def _carry_node_beat(self) -> float | None:
        """Write the node's heartbeat in the unit of work open in this thread if it comes due
        within :data:`NODE_BEAT_CARRIED` seconds; the time of the previous beat if it did."""
        moment = self.clock.monotonic()
        last = self._last_node_beat
        carried = min(NODE_BEAT_CARRIED, self.node_every / 2)
        if self.node_id is None or moment - last < self.node_every - carried:
            return None
        self._last_node_beat = moment
        self.quest.store.beat_node(self.node_id, self.clock.now())
        return last

    def _skip_disabled(self, script: Script) -> list[Fire]:
        """Say once per start, as a skip, why a script with a schedule is not scheduled."""
        why = inactive_reason(script, self.quest.settings)
        if why is None or script.schedule(self.quest.settings.timezone) is None:
            return []
        outcome = self.quest.runner.skip(
            script, SkipReason.disabled, RunRequest(trigger=Trigger.scheduled), detail=why
        )
        return [
            Fire(
                script.name,
                self.clock.now(),
                outcome.run_id,
                Trigger.scheduled,
                SkipReason.disabled,
            )
        ]

    def _catch_up(self, entry: _Entry, last: datetime | None, now: datetime) -> list[Fire]:
        if last is None:
            return []
        missed: list[datetime] = []
        slot = entry.planned.next_after(last, now)
        walked = 0
        while slot is not None and slot < now and walked < MAX_MISSED_WALK:
            missed.append(slot)
            slot = entry.planned.next_after(slot, now)
            walked += 1
        if not missed:
            return []
        policy = entry.planned.script.block().catch_up
        run: datetime | None = None
        if policy.policy is CatchUp.once and (
            policy.window is None or now - missed[-1] <= policy.window
        ):
            run = missed.pop()
        fires = self._skip_missed(entry, missed, "no serve was running")
        if run is not None:
            fires += self._fire(entry, run, Trigger.catch_up)
        return fires

    # -- the loop -----------------------------------------------------------------------------

    def tick(self, now: datetime | None = None) -> list[Fire]:
        """Fire every slot due at *now*, then keep house (queued runs, recovery, pruning)."""
        now = now or self.clock.now()
        fires = self.fire_due(now)
        self.housekeeping(now)
        return fires

    def housekeeping(self, now: datetime | None = None) -> None:
        """Recover abandoned runs, prune, and start due queued runs."""
        now = now or self.clock.now()
        self._maintain(now)
        self.drain(now)

    def fire_due(self, now: datetime) -> list[Fire]:
        """Fire every slot due at *now*; slots that came due together run once, the rest skip."""
        fires: list[Fire] = []
        for entry in list(self.entries.values()):
            due: list[datetime] = []
            ready, entry.ready = entry.ready, None
            while entry.next_slot is not None and entry.next_slot <= now:
                due.append(entry.next_slot)
                if ready is not None and ready.slot == entry.next_slot:
                    entry.next_slot = ready.following
                else:
                    entry.next_slot = entry.planned.next_after(entry.next_slot, now)
                if len(due) > MAX_MISSED_WALK:
                    break
            if not due:
                entry.ready = ready
                continue
            fires += self._skip_missed(entry, due[:-1], "serve was busy or suspended")
            if ready is None or ready.slot != due[-1]:
                ready = None
            fires += self._fire(entry, due[-1], Trigger.scheduled, ready)
        return fires

    def _get_ready(self, now: datetime, within: float) -> None:
        """Get the fires of the slots due within *within* seconds of *now* ready (see
        :data:`READY_AHEAD`); a fire that cannot be got ready is left to its slot."""
        horizon = now + timedelta(seconds=within)
        for entry in self.entries.values():
            slot = entry.next_slot
            if slot is None or slot > horizon or entry.ready is not None:
                continue
            try:
                script = entry.planned.script
                following = entry.planned.next_after(slot, now)
                inputs = None
                if not self.inline:
                    with contextlib.suppress(Exception):  # its run says what is wrong with them
                        inputs = self.quest.runner.prepare(script.name, script.block().inputs)[1]
                entry.ready = _Ready(slot, following, self._slot_request(slot), inputs)
            except Exception:
                log.debug("a fire could not be got ready ahead of its slot", exc_info=True)

    def drain(self, now: datetime | None = None) -> list[str]:
        """Claim and start due queued runs, as many as free workers allow; returns their ids.

        The claim is the start of each run (its row comes back ``running``), and it checks the
        script's limits and overlap lease itself, so every row claimed can start now.
        """
        return self._drain(now or self.clock.now())[0]

    def _drain(self, now: datetime) -> tuple[list[str], bool]:
        """:meth:`drain`, and whether the queue may still hold rows due at *now* (some were
        left for want of a free worker, or the claim took as many as it could)."""
        with self._lock:
            free = self.concurrency - self._queued_active
            if free <= 0 or self._stop.is_set():
                return [], True
            self._queued_active += free
        rows: list[dict[str, Any]] = []
        try:
            rows = self._hold(self._claim(now, free))
        finally:
            with self._lock:
                self._queued_active -= free - len(rows)
        dispatcher = self._dispatcher_for_queue()
        if dispatcher is not None:
            dispatcher.submit(rows)
        else:
            for row in rows:
                if self.inline:
                    self._run_queued(row)
                else:
                    self._workers.submit(self._run_queued, row)
        return [row["id"] for row in rows], len(rows) >= free

    def _dispatcher_for_queue(self) -> Dispatcher | None:
        if self.inline or self.pool is None:
            return None
        if self.dispatch is False or (
            self.dispatch is None and self.quest.store.dialect != "sqlite"
        ):
            return None
        if self._dispatcher is None:
            from .dispatch import Dispatcher

            self._dispatcher = Dispatcher(self, self.pool)
        return self._dispatcher

    def _hold(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Note claimed *rows* as not begun yet; after shutdown, give them back instead."""
        with self._lock:
            if not self._released:
                self._unstarted.update((row["id"], row) for row in rows)
                return rows
        self._give_back(rows)
        return []

    def _begin(self, row: dict[str, Any]) -> bool:
        """Whether the claimed *row* may begin here (``False`` once shutdown gave it back)."""
        with self._lock:
            if self._released:
                return False
            self._unstarted.pop(row["id"], None)
            return True

    def _give_back(self, rows: list[dict[str, Any]]) -> None:
        """Return claimed rows that never began to the queue, due when they were, with the
        overlap lease a claim may have taken for one (a retry of a scheduled run)."""
        store = self.quest.store
        for row in rows:
            due = row.get("run_after") or self.clock.now()
            try:
                with store.unit():
                    store.requeue(row["id"], run_after=due)
                    if row["name"] in self._leases:
                        store.release_lease(row["name"], run_id=row["id"])
            except Exception:
                log.warning(
                    "could not give claimed run %s back to the queue; recovery will",
                    row["id"],
                    exc_info=True,
                    extra={"run_id": row["id"], "script": row.get("name")},
                )

    def _claim(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        rows = self.quest.store.claim_queued(
            now=now,
            limit=limit,
            owner_host=HOST,
            owner_pid=os.getpid(),
            limits=self._limits,
            leases=self._leases,
            owner=self.quest.runner.owner,
        )
        if rows and self.metrics is not None:
            self.metrics.claimed(rows)
        return rows

    def _claim_at_commit(self, now: datetime, limit: int) -> Taken:
        return self.quest.store.claim_queued_at_commit(
            now=now,
            limit=limit,
            owner_host=HOST,
            owner_pid=os.getpid(),
            limits=self._limits,
            leases=self._leases,
            owner=self.quest.runner.owner,
        )

    def seconds_until_next(self, now: datetime) -> float:
        housekeeping = min(self.maintenance_every, self._recovery_every)
        queue = self._queue_wait(now)
        if self._queue_timed:
            # The queue no longer wakes the loop every second: the node's heartbeat keeps its own.
            since = self.clock.monotonic() - self._last_node_beat
            housekeeping = min(housekeeping, max(0.0, self.node_every - since))
        else:
            # Polled (the wake-ups come by LISTEN/NOTIFY): a poll is housekeeping too.
            housekeeping, queue = min(housekeeping, queue), math.inf
        wait = self._slot_wait(now)
        if wait is None:
            return min(housekeeping, queue)
        if wait - housekeeping <= HOUSEKEEPING_DEFER:
            housekeeping = wait
        return max(0.0, min(wait, housekeeping, queue))

    def _slot_wait(self, now: datetime) -> float | None:
        """Seconds until the next scheduled slot (``None`` without one)."""
        upcoming = [e.next_slot for e in self.entries.values() if e.next_slot is not None]
        return None if not upcoming else (min(upcoming) - now).total_seconds()

    def _housekeeping_waits(self, now: datetime) -> bool:
        """Whether a slot comes so soon that housekeeping should wait for its fire."""
        wait = self._slot_wait(now)
        return wait is not None and wait <= HOUSEKEEPING_DEFER

    @property
    def _recovery_every(self) -> float:
        return max(0.5, self.quest.settings.lease_ttl / 2)

    @property
    def _queue_timed(self) -> bool:
        """Whether the loop looks at the queue only when woken or when its next row comes due,
        instead of every ``poll_every`` seconds: on SQLite, whose wake-ups (a bell in the
        database's folder, or its data version) are local and never lost."""
        return self._waiter is not None and self.quest.store.dialect == "sqlite"

    def _queue_due(self, now: datetime) -> bool:
        """Whether the loop should claim queued runs now."""
        if not self._queue_timed or self._queue_woken or self._queue_next is None:
            return True
        return now >= self._queue_next

    def _queue_wait(self, now: datetime) -> float:
        if not self._queue_timed or self._queue_next is None:
            return self.poll_every
        return max(0.0, (self._queue_next - now).total_seconds())

    def _plan_queue(self, now: datetime, more: bool) -> None:
        """After a claim at *now*: when to look at the queue again if nothing wakes the loop.

        Every ``poll_every`` seconds while rows may be due (some were left behind, or held back
        by a limit or a lease); otherwise when the next queued row comes due, and at least every
        ``queue_check_every`` seconds. An enqueue, a cancel request or a run of this serve ending
        wakes the loop at once (:meth:`_sleep`).
        """
        self._queue_woken = False
        again = now + timedelta(seconds=self.poll_every)
        if not more and self._queue_timed:
            due = self.quest.store.next_queued()
            latest = now + timedelta(seconds=self.queue_check_every)
            if due is None:
                again = latest
            elif due > now:
                again = min(due, latest)
        self._queue_next = again

    def _maintenance_due(self) -> bool:
        moment: float = self.clock.monotonic()
        return bool(
            (self.node_id is not None and moment - self._last_node_beat >= self.node_every)
            or moment - self._last_recovery >= self._recovery_every
            or moment - self._last_maintenance >= self.maintenance_every
            or moment - self._last_retention >= self.retention_every
        )

    def serve_forever(self) -> None:
        """Run until :meth:`stop` is called."""
        self.start()
        # Listening before the first look at the queue: an enqueue from then on wakes the loop.
        self._ensure_waiter()
        first = True
        while not self._stop.is_set():
            try:
                now, mark = self.clock.now(), self.clock.monotonic()
                self._held = []
                try:
                    fired = self.fire_due(now)
                except BaseException:
                    held, self._held = self._held, None
                    self._hand(held)
                    raise
                held, self._held = self._held, None
                claim = self._queue_due(now)
                if held and not (first or claim or self._maintenance_due()):
                    # Nothing else to do before the next slot: the sleep is planned first, so
                    # that the fires' threads find the interpreter free as soon as they wake.
                    self._hand_over(held, self.seconds_until_next(now), mark)
                    continue
                self._hand(held)
                if first:
                    # The first claim comes before the start's housekeeping (recovery, pruning,
                    # retention: a few transactions each), which then runs beside the first runs.
                    first = False
                    if claim:
                        self._plan_queue(now, self._drain(now)[1])
                        claim = False
                elif fired and (claim or self._maintenance_due()):
                    # Let the runs just handed to workers start before this thread takes the
                    # interpreter for housekeeping: their lateness is what a user sees.
                    self._stop.wait(HANDOFF)
                now = self.clock.now()
                if fired or not self._housekeeping_waits(now):
                    self._maintain(now)
                if claim:
                    self._plan_queue(now, self._drain(now)[1])
            except Exception:
                log.exception("scheduler tick failed; retrying", extra={"action": "tick_error"})
                self._stop.wait(1.0)
            self._rest(self.seconds_until_next(self.clock.now()))
        # Runs still ending wake this loop (_run_queued): from now on they only set the event.
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.close()

    def _hand_over(
        self, held: list[tuple[str, RunRequest, Inputs | None]], seconds: float, mark: float
    ) -> None:
        """Hand the *held* fires to threads, then sleep until *seconds* after the monotonic
        instant *mark*."""
        self._hand(held)
        self._rest(seconds - (self.clock.monotonic() - mark))

    def _hand(self, held: list[tuple[str, RunRequest, Inputs | None]]) -> None:
        """Hand the *held* fires to threads of their own."""
        for task in held:
            self._workers.submit(self._run, *task)

    def _rest(self, seconds: float) -> None:
        """Sleep *seconds* (less if woken); when a slot ends the sleep, wake
        :data:`READY_AHEAD` before it to get its fires ready, then sleep to the slot."""
        if seconds <= READY_AHEAD + SHORT_WAIT:
            self._sleep(max(0.0, seconds))
            return
        mark = self.clock.monotonic()
        slot = self._slot_wait(self.clock.now())
        if slot is None or slot > seconds + READY_AHEAD:
            self._sleep(seconds)
            return
        if self._sleep(seconds - READY_AHEAD, early=True):
            return
        left = seconds - (self.clock.monotonic() - mark)
        self._get_ready(self.clock.now(), max(left, 0.0) + READY_AHEAD)
        left = seconds - (self.clock.monotonic() - mark)
        if left > 0:
            # Not the waiter: one that lost its connection would connect again here, before the
            # slot. A wake-up that comes meanwhile is still there for the next sleep.
            self._stop.wait(left)

    def _sleep(self, seconds: float, *, early: bool = False) -> bool:
        """Wait *seconds*, or less when a run is enqueued or cancelled anywhere (the store's
        waiter: LISTEN/NOTIFY on PostgreSQL) or a run of this serve ends; whether woken so.
        *early*: the wait may end a little before *seconds*, never after (one wake-up fewer)."""
        self._ensure_waiter()
        if self._waiter is None:
            woken = self._event.wait(seconds)
            self._event.clear()
            self._queue_woken = True
            return woken
        try:
            woken = self._waiter.wait(seconds, early=early)
        except Exception:
            log.warning("waiting for wake-ups failed", exc_info=True)
            self._stop.wait(min(seconds, 1.0))
            self._queue_woken = True
            return True
        if woken:
            self._queue_woken = True
            self.quest.runner.check_cancels()
        return woken

    def _ensure_waiter(self) -> None:
        if self._waiter is None:
            try:
                self._waiter = self.quest.store.waiter()
                # What was enqueued before it listened rang no one: look at the queue again.
                self._queue_woken = True
            except Exception:
                log.warning("no wake-ups from the database; polling", exc_info=True)
                self._waiter = None

    def _wake(self) -> None:
        if self._waiter is not None:
            self._waiter.wake()
        self._event.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def shutdown(self, grace: float | None = None) -> list[str]:
        """Stop firing; wait up to *grace* seconds for running runs, then stop and record them.

        Returns the run ids that had to be interrupted.
        """
        self._stop.set()
        try:
            return self._shutdown(self.grace if grace is None else grace)
        finally:
            self._close_dispatcher()
            self._stop_node()

    def _stop_node(self) -> None:
        if self.node_id is None:
            return
        try:
            self.quest.store.stop_node(self.node_id, self.clock.now())
        except Exception:
            log.warning("could not record this node as stopped", exc_info=True)

    def _shutdown(self, grace: float) -> list[str]:
        self._workers.join(grace)
        with self._lock:
            self._released = True
            unstarted, self._unstarted = list(self._unstarted.values()), {}
        self._give_back(unstarted)
        runner = self.quest.runner
        if not runner.active_runs():
            return []
        interrupted = runner.active_runs()
        log.warning(
            "grace period of %.0f s over; stopping %d run(s)",
            grace,
            len(interrupted),
            extra={"action": "interrupt"},
        )
        # Async runs and sync runs in a child process can be stopped: give them a moment to
        # record themselves. A sync run in a thread cannot, so waiting for it would only delay
        # the exit past the grace period the operator chose.
        stoppable = any(active.cancel is not None for active in runner.active())
        runner.interrupt_all()
        if stoppable:
            self._workers.join(5.0)
        self.record_interrupted()
        return interrupted

    def _close_dispatcher(self) -> None:
        dispatcher = self._dispatcher
        if dispatcher is not None and self._workers.busy == 0:
            self._dispatcher = None
            dispatcher.close()

    def record_interrupted(self) -> None:
        """Mark every run still active in this process ``interrupted``."""
        runner = self.quest.runner
        store = self.quest.store
        now = self.clock.now()
        for run_id in runner.active_runs():
            try:
                store.update_run(
                    run_id,
                    {
                        "status": RunStatus.interrupted,
                        "finished_at": now,
                        "error": "RunInterrupted: stopped by shutdown",
                    },
                )
                store.forget_secrets(run_id)
            except Exception:
                log.exception("could not record run %s as interrupted", run_id)
        for active in runner.active():
            if active.lease_ttl is not None:
                store.release_lease(active.script.name, run_id=active.run_id)

    def join(self, timeout: float | None = None) -> None:
        """Wait for every run this serve started (tests use this instead of sleeping)."""
        self._workers.join(timeout)

    # -- internals ----------------------------------------------------------------------------

    def _skip_missed(self, entry: _Entry, slots: list[datetime], why: str) -> list[Fire]:
        """Record slots that will not run: the latest one by one, older ones in one summary."""
        fires: list[Fire] = []
        older, recent = slots[:-MAX_MISSED_ROWS], slots[-MAX_MISSED_ROWS:]
        if older:
            detail = (
                f"{why}; {len(older)} slots from {older[0].isoformat()} to {older[-1].isoformat()}"
            )
            fires += self._skip_slot(entry.planned.script, older[0], detail)
        for slot in recent:
            fires += self._skip_slot(entry.planned.script, slot, why)
        return fires

    def _skip_slot(self, script: Script, slot: datetime, detail: str) -> list[Fire]:
        runner = self.quest.runner
        store = self.quest.store
        run_id = new_run_id()
        with store.unit():
            if not store.claim_slot(
                script.name, slot, run_id=run_id, owner=runner.owner, now=self.clock.now()
            ):
                return []
            request = RunRequest(trigger=Trigger.scheduled, scheduled_for=slot)
            runner.skip(script, SkipReason.missed, request, run_id=run_id, detail=detail)
        return [Fire(script.name, slot, run_id, Trigger.scheduled, SkipReason.missed)]

    def _slot_request(self, slot: datetime, trigger: Trigger = Trigger.scheduled) -> RunRequest:
        return RunRequest(
            trigger=trigger,
            run_id=new_run_id(),
            scheduled_for=slot,
            slot=True,
            follow=_Beat(self),
        )

    def _fire(
        self, entry: _Entry, slot: datetime, trigger: Trigger, ready: _Ready | None = None
    ) -> list[Fire]:
        """Start the run of a slot; the worker claims the slot, so only one serve runs it."""
        script = entry.planned.script
        request = ready.request if ready is not None else self._slot_request(slot, trigger)
        inputs = ready.inputs if ready is not None else None
        if not self.inline:
            if self._held is not None:
                self._held.append((script.name, request, inputs))
            else:
                self._workers.submit(self._run, script.name, request, inputs)
            return [Fire(script.name, slot, str(request.run_id), trigger)]
        outcome = self._run(script.name, request)
        if outcome is None or outcome.reason == "claimed":
            return []
        skipped = None
        if outcome.status is RunStatus.skipped and outcome.reason:
            skipped = SkipReason(outcome.reason.split(":", 1)[0])
        return [Fire(script.name, slot, outcome.run_id, trigger, skipped)]

    def _run(
        self, name: str, request: RunRequest, inputs: Inputs | None = None
    ) -> RunOutcome | None:
        """Carry out the run of *request*; *inputs*: the script's inputs, validated ahead of
        its slot (else they are validated here)."""
        script = self.quest.registry.get(name)
        block = script.block()
        jitter = block.jitter.total_seconds() if block.jitter is not None else 0.0
        if jitter and not self.inline and self._stop.wait(random.uniform(0, jitter)):
            return None
        given: Mapping[str, Any] | Inputs = (
            inputs if inputs is not None and type(inputs) is script.model else dict(block.inputs)
        )
        try:
            outcome = self.quest.runner.run(name, given, request)
        except Exception:
            log.exception(
                "run %s of %s could not be carried out",
                request.run_id,
                name,
                extra={"script": name, "run_id": request.run_id},
            )
            return None
        if self.on_outcome is not None and outcome.reason != "claimed":
            self.on_outcome(outcome)
        return outcome

    def _run_queued(self, row: dict[str, Any]) -> None:
        """Run a claimed row, then, while there is one, the next due run: a worker that finishes
        claims its next run in the transaction that records the end, without waiting for the
        loop."""
        next_row: dict[str, Any] | None = row
        while next_row is not None:
            current, next_row = next_row, None
            if not self._begin(current):
                break
            follow = None if self.inline else _Next(self)
            try:
                outcome = self.quest.run_claimed(current, follow)
                if outcome is not None and self.on_outcome is not None:
                    self.on_outcome(outcome)
            except BaseException:
                # A script run in this thread may raise SystemExit or KeyboardInterrupt: the
                # runner has recorded the run, and the queue goes on.
                log_not_carried_out(current)
            if follow is not None:
                rows = self._hold(follow.rows)
                next_row = rows[0] if rows else None
        with self._lock:
            self._queued_active -= 1
        self._wake()

    def _maintain(self, now: datetime) -> None:
        moment = self.clock.monotonic()
        store = self.quest.store
        if self.pool is not None:
            self.pool.trim()
        self._beat_node(now, moment)
        if moment - self._last_recovery >= self._recovery_every:
            self._last_recovery = moment
            try:
                self.recover(now)
            except Exception:
                log.warning("recovery of abandoned runs failed", exc_info=True)
        if moment - self._last_maintenance >= self.maintenance_every:
            self._last_maintenance = moment
            try:
                store.prune_slots(now - SLOT_MEMORY)
                store.prune_nodes(now - NODE_MEMORY)
            except Exception:
                log.warning("slot pruning failed", exc_info=True)
        if moment - self._last_retention >= self.retention_every:
            self._last_retention = moment
            try:
                from .retention import prune

                removed = prune(self.quest, now)
                if removed:
                    log.info(
                        "retention: deleted %d JobLog rows",
                        sum(removed.values()),
                        extra={"action": "prune"},
                    )
            except Exception:
                log.warning("retention pruning failed", exc_info=True)

    def recover(self, now: datetime | None = None) -> list[str]:
        """Mark runs whose owner stopped heartbeating ``abandoned``; queue their retry."""
        now = now or self.clock.now()
        ttl = timedelta(seconds=self.quest.settings.lease_ttl)
        rows = self.quest.store.abandon_stale(now=now, ttl=ttl)
        for row in rows:
            if row.get("status") is RunStatus.cancelled:
                # Its owner died after someone asked to cancel it: recorded cancelled, no retry.
                self.quest.store.forget_secrets(row["root_id"] or row["id"])
                log.warning(
                    "cancelled %s run=%s (its owner %s:%s stopped heartbeating)",
                    row["name"],
                    row["id"],
                    row["owner_host"],
                    row["owner_pid"],
                    extra={"script": row["name"], "run_id": row["id"], "action": "cancelled"},
                )
                continue
            self.quest.runner.abandoned(row, now)
        return [row["id"] for row in rows]
