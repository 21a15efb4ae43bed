"""The dispatcher: queued runs in worker processes, driven by one thread (on SQLite).

A serve draining its queue with process isolation hands each claimed run to an idle worker and
waits for the answers of every busy worker in one ``poll``. The runs that ended together are
recorded in one transaction, which also claims as many due runs as they freed workers, and,
while runs are brief, as many again ahead: those are handed to the workers as they come back,
before the ends are committed, so the workers never wait for the commit. So a run costs the
supervisor no thread of its own and no thread wake-up: the hand-off, the wait and the end are the
same few steps whether one run ends at a time or four.

The dispatcher runs while it has work (a thread of the serve's :class:`~quest.scheduler.Workers`,
so that :meth:`~quest.scheduler.Serve.join` and the shutdown's grace period count it) and lets its
thread go when it has none. Runs of scripts isolated in threads are handed to threads as before.
"""

from __future__ import annotations

import logging
import math
import select
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from .errors import RunInterrupted
from .pool import EXIT_CHECK_EVERY, Flight, Worker, WorkerPool
from .runner import Begun, RunOutcome, seconds_of
from .scheduler import log_not_carried_out
from .signals import Later, emit_later
from .store.wake import Bell

if TYPE_CHECKING:
    from .scheduler import Serve

log = logging.getLogger("quest.serve")

HOLD_AHEAD = 0.5
"""Seconds the rows claimed ahead (beyond the serve's concurrency, while runs are brief) may
wait for a worker before they go back to the queue: runs that turned out long keep no row of
the queue ``running`` in this serve unstarted. The other rows waiting that long begin, and are
looked after by the heartbeat until a worker takes them."""
FAILED_TURN_PAUSE = 0.05
"""Seconds the dispatcher waits after a turn failed unexpectedly, before the next."""
GUARD_EVERY = 0.25
"""Seconds the dispatcher may go without doing the timed checks of the runs in the workers (it
is waiting for the database, or for a dead worker's exit report) before its guard does them: a
run's timeout, the kill after an ignored cancel and the heartbeat's first look come on time
however long the database keeps the dispatcher."""


class Dispatcher:
    """Runs the queued rows a :class:`~quest.scheduler.Serve` claims in its pool's workers."""

    def __init__(self, serve: Serve, pool: WorkerPool) -> None:
        self.serve = serve
        self.pool = pool
        self._lock = threading.Lock()
        self._inbox: list[dict[str, Any]] = []
        self._running = False
        self._starved = False
        self._stalled_at: float | None = None
        runner = serve.quest.runner
        self._all_in_workers = all(
            runner.in_worker(script) for script in serve.quest.registry.scripts.values()
        )
        """Whether every script runs in the workers: rows are claimed ahead only then (a row of
        a thread-isolated script goes to a thread of its own at once, holding a slot)."""
        self._bell = Bell()
        self._flights: dict[Flight, Begun] = {}
        self._checks = threading.Lock()
        """Held while the timed checks of the flights run (:meth:`Flight.due`), by the
        dispatcher or by its guard."""
        self._checked_at = time.monotonic()
        self._polling = False
        self._guarding = threading.Condition(threading.Lock())
        self._closed = False
        threading.Thread(target=self._keep_time, name="quest-dispatch-guard", daemon=True).start()
        pool.on_idle = self._idle

    def submit(self, rows: list[dict[str, Any]]) -> None:
        """Run claimed *rows* (each holds one of the serve's queue slots until its run ends)."""
        if not rows:
            return
        with self._lock:
            self._inbox.extend(rows)
            start, self._running = not self._running, True
        if start:
            with self._guarding:
                self._guarding.notify()
            self.serve._workers.submit(self._loop)
        else:
            self._bell.ring()

    def close(self) -> None:
        self.pool.on_idle = None
        self._bell.close()
        with self._guarding:
            self._closed = True
            self._guarding.notify()

    def _keep_time(self) -> None:
        """The guard: while the dispatcher runs, every ``GUARD_EVERY`` seconds, do the timed
        checks of the runs in the workers if the dispatcher has not done them for that long."""
        guarded = float("-inf")
        while True:
            with self._guarding:
                if self._closed:
                    return
                wait = None
                if self._running:
                    last = max(self._checked_at, guarded)
                    wait = max(0.01, GUARD_EVERY - (time.monotonic() - last))
                self._guarding.wait(wait)
                if self._closed:
                    return
            if not self._away() or time.monotonic() - guarded < GUARD_EVERY:
                continue
            try:
                with self._checks:
                    if not self._away():
                        continue
                    now = guarded = time.monotonic()
                    for flight in list(self._flights):
                        if not flight.over and flight in self._flights:
                            flight.due(now)
            except Exception:
                log.exception(
                    "the timed checks of the runs in the workers failed",
                    extra={"action": "dispatch_error"},
                )

    def _idle(self) -> None:
        if self._starved:
            self._bell.ring()

    # -- the loop ---------------------------------------------------------------------------------

    def _away(self) -> bool:
        """Whether the dispatcher has gone ``GUARD_EVERY`` without its timed checks."""
        return not self._polling and time.monotonic() - self._checked_at >= GUARD_EVERY

    def _loop(self) -> None:
        waiting: deque[dict[str, Any] | Begun] = deque()
        flights = self._flights
        self._checked_at = time.monotonic()
        while True:
            try:
                if not self._turn(waiting, flights):
                    return
            except BaseException:
                # Every run it holds is still in *waiting* or *flights*: the next turn goes on
                # with them. (A callback may raise SystemExit: the queue goes on all the same.)
                log.exception(
                    "the queue's dispatcher failed; it carries on",
                    extra={"action": "dispatch_error"},
                )
                time.sleep(FAILED_TURN_PAUSE)

    def _turn(self, waiting: deque[dict[str, Any] | Begun], flights: dict[Flight, Begun]) -> bool:
        """Hand out, wait, record; ``False`` once there is nothing left to do."""
        with self._lock:
            if self._inbox:
                waiting.extend(self._inbox)
                self._inbox.clear()
            elif not waiting and not flights:
                self._running = False
                return False
        if waiting:
            self._hand_out(waiting, flights)
        self._wait(flights)
        ended = [flight for flight in flights if flight.over]
        if ended:
            waiting.extend(self._record(ended, flights, waiting))
        return True

    def _wait(self, flights: dict[Flight, Begun]) -> None:
        """Wait until a worker answers, something is due, or the bell rings; read what came."""
        timeout = EXIT_CHECK_EVERY
        with self._checks:
            now = time.monotonic()
            for flight in flights:
                timeout = min(timeout, flight.due(now))
                if flight.over or flight.worker.channel.buffered():
                    timeout = 0.0
        poller = select.poll()
        poller.register(self._bell.read, select.POLLIN)
        for flight in flights:
            fd = flight.worker.channel.fileno()
            if fd >= 0:
                poller.register(fd, select.POLLIN)
        self._polling = True
        try:
            ready = {fd for fd, _ in poller.poll(math.ceil(timeout * 1000))}
        except OSError:
            ready = set()
            time.sleep(timeout)
        finally:
            self._checked_at = time.monotonic()
            self._polling = False
        if self._bell.read in ready:
            self._bell.drain()
        now = time.monotonic()
        for flight in flights:
            if flight.over:
                continue
            channel = flight.worker.channel
            if channel.fileno() in ready or channel.buffered():
                flight.read()
            elif now - flight.quiet_since >= EXIT_CHECK_EVERY:
                flight.check_exit()

    def _hand_out(
        self, waiting: deque[dict[str, Any] | Begun], flights: dict[Flight, Begun]
    ) -> None:
        """Hand waiting runs to idle workers, as many as there are."""
        serve = self.serve
        while waiting:
            item = waiting[0]
            if isinstance(item, dict) and not self._in_worker(item):
                waiting.popleft()
                serve._workers.submit(serve._run_queued, item)  # it keeps its queue slot
                continue
            self._starved = True
            try:
                worker = self.pool.take_idle(len(waiting))
            except RunInterrupted as exc:
                self._starved = False
                waiting.popleft()
                self._abandon(item, exc)
                continue
            if worker is None:
                self._stalled(waiting)
                return  # the bell rings when one is idle
            self._starved = False
            self._stalled_at = None
            waiting.popleft()
            begun = item if isinstance(item, Begun) else self._begin(item)
            if begun is None:
                self.pool.put_back(worker)
                continue
            try:
                flight = self._launch(worker, begun)
            except BaseException as exc:
                self.pool.discard(worker)
                self._finish([(begun, None, exc)])
                continue
            if flight is not None:
                flights[flight] = begun
                continue
            # That worker was found dead; the next one takes the run, which the heartbeat
            # looks after meanwhile.
            waiting.appendleft(begun)
            _watch_now(begun)

    def _stalled(self, waiting: deque[dict[str, Any] | Begun]) -> None:
        """No worker is idle for the runs waiting. Once that has lasted ``HOLD_AHEAD``, the rows
        claimed ahead go back to the queue, where another serve may take them, and the others
        begin: the heartbeat then keeps their rows alive while they wait for a worker (the
        workers are busy with scheduled runs), as it does a run's in a worker."""
        now = time.monotonic()
        if self._stalled_at is None:
            self._stalled_at = now
            return
        if now - self._stalled_at < HOLD_AHEAD:
            return
        self._stalled_at = None
        serve = self.serve
        with serve._lock:
            ahead = serve._queued_active - serve.concurrency
        rows = [item for item in waiting if isinstance(item, dict)]
        count = min(ahead, len(rows))
        if count > 0:
            back = rows[-count:]
            for row in back:
                waiting.remove(row)
            with serve._lock:
                # Once shutdown has given back every row not begun, they are not this serve's.
                mine = [] if serve._released else back
                for row in mine:
                    serve._unstarted.pop(row["id"], None)
            serve._give_back(mine)
            self._free(count)
        kept = list(waiting)
        waiting.clear()
        for item in kept:
            begun = item if isinstance(item, Begun) else self._begin(item)
            if begun is not None:
                _watch_now(begun)
                waiting.append(begun)

    def _in_worker(self, row: dict[str, Any]) -> bool:
        script = self.serve.quest.registry.scripts.get(row["name"])
        return script is None or self.serve.quest.runner.in_worker(script)

    def _begin(self, row: dict[str, Any]) -> Begun | None:
        """Begin the run of a claimed *row*; ``None`` if it ended here (it could not run, or
        shutdown gave it back), its queue slot then freed."""
        serve = self.serve
        quest = serve.quest
        begun: Begun | RunOutcome | None = None
        if serve._begin(row):
            try:
                request = quest.claimed_request(row)
                if request is not None:
                    script, inputs, run = request
                    begun = quest.runner.begin(script.name, inputs, run)
            except Exception:
                log_not_carried_out(row)
        if isinstance(begun, Begun):
            return begun
        self._free(1)
        if begun is not None:
            self._announce([begun])
        return None

    def _launch(self, worker: Worker, begun: Begun) -> Flight | None:
        timeout = seconds_of(begun.script.block().timeout)
        return self.pool.launch(
            worker, begun.script, begun.inputs, begun.ctx, begun.active, timeout
        )

    def _abandon(self, item: dict[str, Any] | Begun, exc: BaseException) -> None:
        """The pool is closed: a begun run ends with *exc*; a row not begun is left to the
        shutdown, which gives it back."""
        if isinstance(item, Begun):
            self._finish([(item, None, exc)])
        else:
            self._free(1)

    def _record(
        self,
        ended: list[Flight],
        flights: dict[Flight, Begun],
        waiting: deque[dict[str, Any] | Begun],
    ) -> list[dict[str, Any]]:
        """Settle the flights that ended, hand the runs waiting to the workers they freed, then
        record the ends in one transaction that also claims as many due runs; returns the rows
        claimed."""
        settled: list[tuple[Begun, Any, BaseException | None]] = []
        for flight in ended:
            with self._checks:  # the guard checks only flights still held
                begun = flights.pop(flight)
            try:
                settled.append((begun, self.pool.settle(flight), None))
            except BaseException as exc:
                settled.append((begun, None, exc))
        if waiting:
            try:
                self._hand_out(waiting, flights)
            except Exception:
                log.exception("handing out queued runs failed", extra={"action": "dispatch_error"})
        claim = 0
        if not self.serve.stopping:
            ahead = self.pool.size if self.pool.brief and self._all_in_workers else 0
            claim = max(0, len(settled) + ahead - len(waiting))
        return self._finish(settled, claim=claim)

    def _finish(
        self,
        settled: list[tuple[Begun, Any, BaseException | None]],
        *,
        claim: int = 0,
    ) -> list[dict[str, Any]]:
        """Record the ends of *settled* runs in one transaction that claims up to *claim* due
        rows; returns the rows claimed (held for this serve). Should that transaction fail (the
        database is gone, or locked past its timeout), each end is recorded again in a
        transaction of its own, replayed until the database is back, by a thread of its own:
        meanwhile this one goes on watching the runs in the workers (their timeouts, cancels
        and deaths)."""
        serve = self.serve
        quest = serve.quest
        later: list[Later] = []
        outcomes: list[RunOutcome] = []
        taken = None
        try:
            with quest.store.unit(about={"action": "run_end"}):
                for begun, value, failure in settled:
                    outcomes.append(quest.runner.finish(begun, value, failure, later=later))
                if claim:
                    taken = serve._claim_at_commit(quest.clock.now(), claim)
        except Exception:
            log.warning(
                "recording the end of %d run(s) together failed; recording each alone",
                len(settled),
                exc_info=True,
                extra={"action": "dispatch_error"},
            )
            serve._workers.submit(self._finish_each, settled)
            self._free(len(settled))
            return []
        emit_later(later)
        self._announce(outcomes)
        rows: list[dict[str, Any]] = []
        if taken is not None and taken.items:
            rows = taken.items
            try:
                if serve.metrics is not None:
                    serve.metrics.claimed(rows)
            except Exception:
                log.exception("counting claimed runs failed")
            rows = serve._hold(rows)
        self._free(len(settled) - len(rows))
        return rows

    def _finish_each(self, settled: list[tuple[Begun, Any, BaseException | None]]) -> None:
        for begun, value, failure in settled:
            try:
                outcome = self.serve.quest.runner.finish(begun, value, failure)
            except Exception:
                log.exception(
                    "the end of run %s of %s could not be recorded",
                    begun.run_id,
                    begun.script.name,
                    extra={"script": begun.script.name, "run_id": begun.run_id},
                )
                continue
            self._announce([outcome])

    def _announce(self, outcomes: list[RunOutcome]) -> None:
        on_outcome = self.serve.on_outcome
        if on_outcome is None:
            return
        for outcome in outcomes:
            try:
                on_outcome(outcome)
            except BaseException:
                log.exception(
                    "a run's outcome could not be passed on", extra={"run_id": outcome.run_id}
                )

    def _free(self, slots: int) -> None:
        """Give back *slots* queue slots (take them when negative: rows claimed ahead), and let
        the serve's loop look at the queue."""
        if slots == 0:
            return
        serve = self.serve
        with serve._lock:
            serve._queued_active -= slots
        if slots > 0:
            serve._wake()


def _watch_now(begun: Begun) -> None:
    """Hand a begun run that waits for a worker to the heartbeat now (see ``_Active.watch``)."""
    watch, begun.active.watch = begun.active.watch, None
    if watch is not None:
        watch()
