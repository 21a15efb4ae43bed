"""CPU time per second of each thread of a running ``quest serve`` and its workers.

    python -m bench.cases.serve_threads FOLDER [SECONDS] [ISOLATION]

Starts ``quest -q serve --isolation ISOLATION`` (default ``process``) on the project FOLDER (its
``scripts/`` and a fresh SQLite file there), lets it settle for 4 s, then reads every thread's
``/proc/PID/task/TID/schedstat`` (time on CPU, in nanoseconds) at the start and the end of a
window of SECONDS (default 30) and prints one JSON line per thread that ran, then the total:
``{"pid": ..., "tid": ..., "role": "supervisor" | "worker", "ms_per_s": ...}``. Figure 4's CPU
per scheduled run, taken apart: with a 1 s script, ms per second is ms per fire. Linux only.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from .._lib import QUEST, project_env, stop_all


def descendants(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def on_cpu(pid: int) -> dict[tuple[int, int], int]:
    times = {}
    for process in (pid, *descendants(pid)):
        try:
            tasks = list(Path(f"/proc/{process}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                times[(process, int(task.name))] = int((task / "schedstat").read_text().split()[0])
            except OSError:
                continue
    return times


def serve_window(
    command: list[str], env: dict[str, str], cwd: Path, settle: float, seconds: float
) -> tuple[float, float, int]:
    """Start the serve *command*, let it settle *settle* s, then watch it for *seconds*: the
    window's start and end (``time.time()``) and the nanoseconds every live thread of the serve
    and its descendants spent on CPU within it. The serve is stopped after."""
    serve = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(settle)
        start, before = time.time(), sum(on_cpu(serve.pid).values())
        time.sleep(seconds)
        end, after = time.time(), sum(on_cpu(serve.pid).values())
    finally:
        stop_all([serve])
    return start, end, after - before


def main(argv: list[str]) -> None:
    folder = Path(argv[0]).resolve()
    seconds = float(argv[1]) if len(argv) > 1 else 30.0
    isolation = argv[2] if len(argv) > 2 else "process"
    for leftover in folder.glob("quest.sqlite3*"):
        leftover.unlink()
    env = project_env(folder)
    subprocess.run([QUEST, "db", "upgrade"], env=env, check=True, capture_output=True)
    serve = subprocess.Popen(
        [QUEST, "-q", "serve", "--isolation", isolation],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(4)
        before = on_cpu(serve.pid)
        time.sleep(seconds)
        after = on_cpu(serve.pid)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait()
    total = 0
    for (process, tid), ns in sorted(after.items()):
        spent = ns - before.get((process, tid), 0)
        total += spent
        if spent > 0:
            role = "supervisor" if process == serve.pid else "worker"
            ms = round(spent / seconds / 1e6, 3)
            print(json.dumps({"pid": process, "tid": tid, "role": role, "ms_per_s": ms}))
    print(json.dumps({"total_ms_per_s": round(total / seconds / 1e6, 3)}))


if __name__ == "__main__":
    main(sys.argv[1:])
