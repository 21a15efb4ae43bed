"""What one wake-up of a sleeping thread costs in CPU time on this machine.

    python -m bench.cases.wakeups [ROUNDS]

A thread that sleeps half a second and wakes is charged CPU time for the wake-up itself (the
scheduler, the timer, on a virtual machine the exit and re-entry of its virtual CPU, and the
caches it finds cold). Figure 4's serve wakes several threads per scheduled run; this prints
``{"kind": ..., "cpu_us": ...}`` per way of sleeping, the thread's CPU time per wait (median of
ROUNDS waits, default 8), with nothing else running in the thread.
"""

from __future__ import annotations

import json
import select
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable


def charged(wait: Callable[[], object], rounds: int) -> float:
    """The median CPU time (µs) this thread is charged for one *wait*."""
    costs = []
    for _ in range(rounds):
        began = time.thread_time_ns()
        wait()
        costs.append((time.thread_time_ns() - began) / 1000)
    return statistics.median(costs)


def main(argv: list[str]) -> None:
    rounds = int(argv[0]) if argv else 8
    near, _far = socket.socketpair()
    event = threading.Event()
    kinds: dict[str, Callable[[], object]] = {
        "select 0.5 s": lambda: select.select([near], [], [], 0.5),
        "select 0.499 s then 0.001 s": lambda: (
            select.select([near], [], [], 0.499),
            select.select([near], [], [], 0.001),
        ),
        "threading.Event.wait 0.5 s": lambda: event.wait(0.5),
    }
    for kind, wait in kinds.items():
        print(json.dumps({"kind": kind, "cpu_us": round(charged(wait, rounds), 1)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
