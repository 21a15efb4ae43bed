"""Figure 3's floor on quest's own schema: one recorded run's statements through bare ``sqlite3``.

    python -m bench.cases.replay [N] [--drop INDEX ...] [--no-lease]

A fresh SQLite file gets quest's schema (its migrations, triggers included); then, N times, the
two transactions a manual ``Runner.run`` of a no-op commits: the overlap lease taken and the
JobLog row inserted, then the lease released and the row ended (the outcome trigger fires). What
quest's Python adds around a run is ``bench.cases.throughput quest`` minus this. ``--drop`` takes
a JobLog index away first, to price it; ``--no-lease`` leaves the lease out.

Prints ``{"runs": N, "wall_us": ..., "cpu_us": ...}`` per run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

LEASE = (
    "INSERT INTO quest_leases (name, run_id, owner, acquired_at, expires_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET run_id = excluded.run_id,"
    " owner = excluded.owner, acquired_at = excluded.acquired_at,"
    " expires_at = excluded.expires_at WHERE quest_leases.expires_at <= ?"
)
START = (
    'INSERT INTO quest_job_log (id, name, status, "trigger", attempt, max_attempts, root_id, "key",'
    " inputs, scheduled_for, created_at, started_at, heartbeat_at, owner_host, owner_pid)"
    " VALUES (?, 'noop', 'running', 'manual', 1, 1, ?, NULL, '{}', NULL, ?, ?, ?, 'bench', 1)"
)
RELEASE = "DELETE FROM quest_leases WHERE name = 'noop' AND run_id = ?"
END = (
    "UPDATE quest_job_log SET status = 'succeeded', max_attempts = 1, finished_at = ?,"
    " duration_ms = 0, result = 'null', error = NULL, traceback = NULL"
    " WHERE id = ? AND status = 'running'"
)


def schema(folder: Path) -> Path:
    """A SQLite file with quest's schema, made by quest itself."""
    from quest.store import Store, make_engine

    path = folder / "quest.sqlite3"
    store = Store(make_engine(f"sqlite:///{path}"))
    try:
        store.ensure_schema()
    finally:
        store.dispose()
    return path


def stamp(instant: datetime) -> str:
    return instant.strftime("%Y-%m-%d %H:%M:%S.%f")


def replay(path: Path, runs: int, *, drop: list[str], lease: bool) -> tuple[float, float]:
    connection = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
        connection.execute(f"PRAGMA {pragma}")
    for index in drop:
        connection.execute(f'DROP INDEX "{index}"')

    def once() -> None:
        run_id = uuid.uuid4().hex
        now = datetime.now(UTC)
        began = stamp(now)
        connection.execute("BEGIN IMMEDIATE")
        if lease:
            until = stamp(now + timedelta(seconds=30))
            connection.execute(LEASE, ("noop", run_id, "bench", began, until, began))
        connection.execute(START, (run_id, run_id, began, began, began))
        connection.execute("COMMIT")
        connection.execute("BEGIN IMMEDIATE")
        if lease:
            connection.execute(RELEASE, (run_id,))
        connection.execute(END, (stamp(datetime.now(UTC)), run_id))
        connection.execute("COMMIT")

    for _ in range(min(runs, 500)):
        once()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(runs):
        once()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    connection.close()
    return wall / runs * 1e6, cpu / runs * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cases.replay")
    parser.add_argument("runs", nargs="?", type=int, default=10_000)
    parser.add_argument("--drop", action="append", default=[], metavar="INDEX")
    parser.add_argument("--no-lease", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = schema(Path(scratch))
        with contextlib.closing(sqlite3.connect(path)) as connection:
            indexes = {
                name
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index'"
                    " AND tbl_name = 'quest_job_log' AND sql IS NOT NULL"
                )
            }
        unknown = sorted(set(args.drop) - indexes)
        if unknown:
            parser.error(
                f"no JobLog index {', '.join(unknown)}; its indexes: {', '.join(sorted(indexes))}"
            )
        wall, cpu = replay(path, args.runs, drop=args.drop, lease=not args.no_lease)
    print(json.dumps({"runs": args.runs, "wall_us": round(wall, 1), "cpu_us": round(cpu, 1)}))


if __name__ == "__main__":
    main()
