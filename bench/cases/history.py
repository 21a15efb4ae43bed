"""Figure 7: the JobLog with many rows.

    python -m bench.cases.history seed DATABASE ROWS   # fill an upgraded JobLog
    python -m bench.cases.history quest FOLDER NAME    # Store.history(NAME, limit=20), in-process
    python -m bench.cases.history sqlite DATABASE NAME # the same query through sqlite3

``seed`` spreads ROWS runs over 100 scripts (``script-000`` .. ``script-099``), one every
0.3 s going back from now, nine in ten succeeded. The query modes time the first query of a
fresh process (what ``quest history`` does) and print ``{"ms": ...}``.
"""

from __future__ import annotations

import json
import random
import sqlite3
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

TABLE = "quest_job_log"
NAMES = [f"script-{i:03d}" for i in range(100)]
COLUMNS = (
    "id",
    "name",
    "status",
    "trigger",
    "attempt",
    "max_attempts",
    "root_id",
    "key",
    "inputs",
    "scheduled_for",
    "created_at",
    "run_after",
    "started_at",
    "finished_at",
    "heartbeat_at",
    "duration_ms",
    "result",
    "error",
    "traceback",
    "reason",
    "owner_host",
    "owner_pid",
)


def _stamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def seed(database: Path, rows: int) -> None:
    rng = random.Random(7)
    now = datetime.now(UTC).replace(tzinfo=None)
    first = now - timedelta(seconds=0.3 * rows)
    connection = sqlite3.connect(str(database), isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    connection.execute("BEGIN")
    sql = f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    batch = []
    for i in range(rows):
        created = first + timedelta(seconds=0.3 * i)
        failed = rng.random() < 0.1
        run_id = uuid.uuid4().hex
        duration = rng.randint(1, 900)
        batch.append(
            (
                run_id,
                rng.choice(NAMES),
                "failed" if failed else "succeeded",
                "scheduled",
                1,
                1,
                run_id,
                None,
                "{}",
                _stamp(created),
                _stamp(created),
                None,
                _stamp(created),
                _stamp(created + timedelta(milliseconds=duration)),
                _stamp(created),
                duration,
                "null" if failed else '{"done": true}',
                "RuntimeError: upstream said no" if failed else None,
                None,
                None,
                "bench",
                1,
            )
        )
        if len(batch) == 50_000:
            connection.executemany(sql, batch)
            batch.clear()
    if batch:
        connection.executemany(sql, batch)
    connection.execute("COMMIT")
    connection.execute("ANALYZE")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def query_quest(folder: Path, name: str) -> float:
    from quest.config import load_settings
    from quest.store import Store

    store = Store.from_settings(load_settings(folder))
    store.ensure_schema()
    start = time.perf_counter()
    rows = store.history(name, limit=20)
    elapsed = time.perf_counter() - start
    if len(rows) != 20:
        raise SystemExit(f"expected 20 rows, got {len(rows)}")
    return elapsed


def query_sqlite(database: Path, name: str) -> float:
    connection = sqlite3.connect(str(database))
    start = time.perf_counter()
    rows = connection.execute(
        f"SELECT * FROM {TABLE} WHERE name = ? ORDER BY created_at DESC, id DESC LIMIT 20",
        (name,),
    ).fetchall()
    elapsed = time.perf_counter() - start
    if len(rows) != 20:
        raise SystemExit(f"expected 20 rows, got {len(rows)}")
    return elapsed


def main(argv: list[str]) -> None:
    mode = argv[0]
    if mode == "seed":
        seed(Path(argv[1]), int(argv[2]))
        return
    if mode == "quest":
        seconds = query_quest(Path(argv[1]), argv[2])
    elif mode == "sqlite":
        seconds = query_sqlite(Path(argv[1]), argv[2])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    print(json.dumps({"ms": seconds * 1000}))


if __name__ == "__main__":
    main(sys.argv[1:])
