"""Figure 3: recorded runs per second, one contender per process.

    python -m bench.cases.throughput CONTENDER N FOLDER

Prints ``{"runs": N, "seconds": S, "rate": N/S}``. Only the loop is timed: imports, schema
creation and (for the queues) enqueueing happen before the clock starts.

- ``quest``: ``Runner.run("noop", {})`` N times in-process, JobLog on SQLite (WAL). Each run is
  the whole recorded path: inputs validated, overlap lease taken and released, job:start and
  job:complete sent, the JobLog row inserted at start and finished at the end.
- ``apscheduler``: N one-off jobs of the same no-op added to a paused ``BackgroundScheduler``
  (memory job store, default thread pool), then resumed; timed until the N-th has executed.
  Nothing is recorded.
- ``huey``: N tasks enqueued in ``SqliteHuey``, then drained by one in-process worker loop
  (``dequeue`` + ``execute``), the consumer's work without its polling sleeps. The storage gets
  ``synchronous=NORMAL``, the durability quest's store uses; ``huey-default`` keeps huey's own
  default (SQLite's ``synchronous=FULL``, an fsync per commit).
- ``sqlite``: the store's floor, with the store's pragmas: per run one transaction inserting the
  row and one finishing it, through the ``sqlite3`` module.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path


def noop() -> None:
    return None


def bench_quest(n: int, folder: Path) -> float:
    from quest.app import Quest
    from quest.config import load_settings

    settings = load_settings(folder)
    quest = Quest(settings)
    runner = quest.runner
    runner.run("noop", {})
    start = time.perf_counter()
    for _ in range(n):
        outcome = runner.run("noop", {})
        if not outcome.ok:
            raise SystemExit(f"quest run failed: {outcome.error}")
    elapsed = time.perf_counter() - start
    if quest.store.count_runs("noop") != n + 1:
        raise SystemExit("quest: the JobLog does not hold one row per run")
    quest.close()
    return elapsed


def bench_apscheduler(n: int, folder: Path) -> float:
    from apscheduler.events import EVENT_JOB_EXECUTED
    from apscheduler.schedulers.background import BackgroundScheduler

    done = threading.Event()
    count = 0
    lock = threading.Lock()

    def executed(event: object) -> None:
        nonlocal count
        with lock:
            count += 1
            if count == n:
                done.set()

    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_listener(executed, EVENT_JOB_EXECUTED)
    scheduler.start(paused=True)
    now = datetime.now(UTC)
    for _ in range(n):
        scheduler.add_job(noop, "date", run_date=now, misfire_grace_time=None)
    start = time.perf_counter()
    scheduler.resume()
    if not done.wait(600):
        raise SystemExit(f"apscheduler: only {count} of {n} jobs ran")
    elapsed = time.perf_counter() - start
    scheduler.shutdown(wait=True)
    return elapsed


def bench_huey(n: int, folder: Path, *, normal: bool = True) -> float:
    from huey import SqliteHuey
    from huey.storage import SqliteStorage

    class Storage(SqliteStorage):
        def _create_connection(self):  # type: ignore[no-untyped-def]
            conn = super()._create_connection()
            if normal:
                conn.execute("pragma synchronous=NORMAL")
            return conn

    huey = SqliteHuey("bench", filename=str(folder / "huey.db"), storage_class=Storage)
    task = huey.task()(noop)
    for _ in range(n):
        task()
    if huey.pending_count() != n:
        raise SystemExit("huey: not every task was enqueued")
    start = time.perf_counter()
    ran = 0
    while True:
        item = huey.dequeue()
        if item is None:
            break
        huey.execute(item)
        ran += 1
    elapsed = time.perf_counter() - start
    if ran != n:
        raise SystemExit(f"huey: drained {ran} of {n}")
    return elapsed


def bench_sqlite(n: int, folder: Path) -> float:
    import sqlite3

    connection = sqlite3.connect(str(folder / "floor.db"), isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
        connection.execute(f"PRAGMA {pragma}")
    connection.execute(
        "CREATE TABLE runs (id VARCHAR(32) PRIMARY KEY, name VARCHAR(200), status VARCHAR(20),"
        " trigger VARCHAR(20), inputs JSON, created_at DATETIME, started_at DATETIME,"
        " finished_at DATETIME, duration_ms INTEGER, result JSON)"
    )
    connection.execute("CREATE INDEX ix_runs_name_created ON runs (name, created_at)")
    start = time.perf_counter()
    for _ in range(n):
        run_id = uuid.uuid4().hex
        began = datetime.now(UTC)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "INSERT INTO runs (id, name, status, trigger, inputs, created_at, started_at)"
            " VALUES (?, 'noop', 'running', 'manual', '{}', ?, ?)",
            (run_id, began.isoformat(), began.isoformat()),
        )
        connection.execute("COMMIT")
        noop()
        ended = datetime.now(UTC)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute(
            "UPDATE runs SET status = 'succeeded', finished_at = ?, duration_ms = ?,"
            " result = 'null' WHERE id = ?",
            (ended.isoformat(), round((ended - began).total_seconds() * 1000), run_id),
        )
        connection.execute("COMMIT")
    elapsed = time.perf_counter() - start
    connection.close()
    return elapsed


CONTENDERS = {
    "quest": bench_quest,
    "apscheduler": bench_apscheduler,
    "huey": bench_huey,
    "huey-default": lambda n, folder: bench_huey(n, folder, normal=False),
    "sqlite": bench_sqlite,
}


def main(argv: list[str]) -> None:
    name, n, folder = argv[0], int(argv[1]), Path(argv[2])
    seconds = CONTENDERS[name](n, folder)
    print(json.dumps({"runs": n, "seconds": seconds, "rate": n / seconds}))


if __name__ == "__main__":
    main(sys.argv[1:])
