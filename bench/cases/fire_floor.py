"""Figure 4's floor: what a recorded, process-isolated fire a second costs in CPU on this machine
before any scheduler's code runs.

    python -m bench.cases.fire_floor [SECONDS]

Four processes run side by side over the same window (default 30 s), each waking on the second
like a 1 s interval script:

- ``wake``: wakes and does nothing (a ``select`` timed to the second);
- ``wake + sql``: wakes and commits a scheduled fire's statements on quest's own schema through
  bare ``sqlite3`` (the slot claim, the lease and the JobLog row in one transaction, the lease
  released and the row ended in another; the outcome triggers fire);
- ``wake + sql + worker``: the same, with the run handed to a forked child over a socket pair
  (a small pickle there, one back) between the two transactions;
- ``wake + thread + sql + worker``: the same, the wake-up handing the fire to a second thread
  as a pool would.

Beside them in the same window, for scale: plain APScheduler firing a no-op every second (figure
4's peer, nothing recorded) and ``quest -q serve`` on a project whose one script ticks every second
(figure 4's contender: process isolation, JobLog on SQLite).

Each process's CPU (its threads and its descendants, from ``/proc/PID/task/TID/schedstat``) over
the window, divided by the fires in it, is printed as ``{"kind": ..., "cpu_ms_per_fire": ...}``.
Linux only. In the four floors no quest code runs: the schema is made by quest beforehand.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from .._lib import PYTHON, QUEST, ROOT, bench_env, project_env
from .._projects import TICK, project
from .replay import END, LEASE, schema, stamp
from .serve_threads import on_cpu

SLOT = (
    "INSERT INTO quest_slots (name, scheduled_for, run_id, owner, claimed_at)"
    " VALUES ('tick', ?, ?, 'bench', ?) ON CONFLICT (name, scheduled_for) DO NOTHING"
    " RETURNING name, (SELECT quest_script_state.paused FROM quest_script_state"
    " WHERE quest_script_state.name = 'tick')"
)
START = (
    'INSERT INTO quest_job_log (id, name, status, "trigger", attempt, max_attempts, root_id, "key",'
    " inputs, scheduled_for, created_at, started_at, heartbeat_at, owner_host, owner_pid)"
    " VALUES (?, 'tick', 'running', 'scheduled', 1, 1, ?, NULL, '{}', ?, ?, ?, ?, 'bench', 1)"
)
RELEASE = "DELETE FROM quest_leases WHERE name = 'tick' AND run_id = ?"
KINDS = ("wake", "wake + sql", "wake + sql + worker", "wake + thread + sql + worker")


def _child(channel: socket.socket) -> None:
    while True:
        data = channel.recv(65536)
        if not data:
            os._exit(0)
        job = pickle.loads(data)
        channel.sendall(pickle.dumps({"run_id": job["run_id"], "result": None, "rss": 0}))


def _fire(connection: sqlite3.Connection | None, channel: socket.socket | None) -> None:
    if connection is None:
        return
    run_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    began = stamp(now)
    slot = stamp(now.replace(microsecond=0))
    connection.execute("BEGIN IMMEDIATE")
    connection.execute(SLOT, (slot, run_id, began)).fetchall()
    until = stamp(now + timedelta(seconds=30))
    connection.execute(LEASE, ("tick", run_id, "bench", began, until, began))
    connection.execute(START, (run_id, run_id, slot, began, began, began))
    connection.execute("COMMIT")
    if channel is not None:
        channel.sendall(pickle.dumps({"run_id": run_id, "name": "tick", "inputs": {}}))
        pickle.loads(channel.recv(65536))
    connection.execute("BEGIN IMMEDIATE")
    connection.execute(RELEASE, (run_id,))
    connection.execute(END, (stamp(datetime.now(UTC)), run_id))
    connection.execute("COMMIT")


def _contender(kind: str, path: Path, seconds: float, start_at: float) -> None:
    connection = None
    if "sql" in kind:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000"):
            connection.execute(f"PRAGMA {pragma}")
    channel = None
    if "worker" in kind:
        near, far = socket.socketpair()
        if os.fork() == 0:
            near.close()
            _child(far)
        far.close()
        channel = near
    hand: queue.SimpleQueue[float] | None = None
    if "thread" in kind:
        hand = queue.SimpleQueue()

        def runs() -> None:
            while hand.get() >= 0:
                _fire(connection, channel)

        threading.Thread(target=runs, daemon=True).start()
    awake, _ = socket.socketpair()
    end = start_at + seconds
    while True:
        now = time.time()
        if now >= end:
            break
        select.select([awake], [], [], max(0.0, 1.0 - now % 1.0))
        if hand is not None:
            hand.put(1.0)
        else:
            _fire(connection, channel)
    if hand is not None:
        hand.put(-1.0)


def main(argv: list[str]) -> None:
    seconds = float(argv[0]) if argv else 30.0
    with tempfile.TemporaryDirectory() as scratch:
        pids = {}
        begin = time.time() + 3
        for index, kind in enumerate(KINDS):
            folder = Path(scratch) / str(index)
            folder.mkdir()
            path = schema(folder)
            pid = os.fork()
            if pid == 0:
                try:
                    _contender(kind, path, seconds + 2, begin)
                finally:
                    os._exit(0)
            pids[kind] = pid
        peers = _peers(Path(scratch), begin, seconds)
        pids.update({kind: process.pid for kind, process in peers.items()})
        time.sleep(max(0.0, begin + 1.5 - time.time()))
        before = {kind: on_cpu(pid) for kind, pid in pids.items()}
        time.sleep(seconds)
        after = {kind: on_cpu(pid) for kind, pid in pids.items()}
        for kind in pids:
            spent = sum(ns - before[kind].get(key, 0) for key, ns in after[kind].items())
            print(
                json.dumps({"kind": kind, "cpu_ms_per_fire": round(spent / seconds / 1e6, 3)}),
                flush=True,
            )
        for process in peers.values():
            process.send_signal(signal.SIGTERM)
            process.wait()
        for kind, pid in pids.items():
            if kind not in peers:
                os.waitpid(pid, 0)


def _peers(scratch: Path, begin: float, seconds: float) -> dict[str, subprocess.Popen[bytes]]:
    """APScheduler and ``quest serve``, firing every second over the window."""
    folder = project(scratch / "quest", tick=TICK)
    env = project_env(folder)
    subprocess.run([QUEST, "db", "upgrade"], env=env, check=True, capture_output=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    return {
        "APScheduler": subprocess.Popen(
            [PYTHON, "-m", "bench.cases.aps", "fire", str(begin), str(begin + seconds + 3)],
            env=bench_env(),
            cwd=ROOT,
            **quiet,
        ),
        "quest serve": subprocess.Popen([QUEST, "-q", "serve"], env=env, **quiet),
    }


if __name__ == "__main__":
    main(sys.argv[1:])
