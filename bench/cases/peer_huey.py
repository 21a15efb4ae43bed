"""huey's ``SqliteHuey``, the peer of figure 9, loaded by its own consumer as shipped:

    huey_consumer bench.cases.peer_huey.huey -w 4 -k thread

The database file is ``BENCH_HUEY_FILE``. The consumer drains ``BENCH_HUEY_RUNS`` no-op tasks;
a ``SIGNAL_COMPLETE`` receiver counts them and, at the last one, writes the instant it finished
to ``BENCH_HUEY_DONE`` (huey keeps no finish time of its own, and a no-op returning ``None``
stores no result).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from huey import SqliteHuey
from huey.signals import SIGNAL_COMPLETE

huey = SqliteHuey("bench", filename=os.environ.get("BENCH_HUEY_FILE", "huey.db"))

_expected = int(os.environ.get("BENCH_HUEY_RUNS", "0"))
_done_file = os.environ.get("BENCH_HUEY_DONE")
_lock = threading.Lock()
_completed = 0


@huey.task()
def noop() -> None:
    return None


@huey.signal(SIGNAL_COMPLETE)
def _count(signal: str, task: object) -> None:
    global _completed
    with _lock:
        _completed += 1
        last = _completed == _expected
    if last and _done_file:
        Path(_done_file).write_text(f"{time.time()!r} {_completed}\n")
