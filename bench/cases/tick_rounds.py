"""Figure 4, checkout against checkout: a 1 s interval script under ``quest serve``.

    python -m bench.cases.tick_rounds [--seconds S] [--rounds R] CHECKOUT [CHECKOUT ...]

Each round runs, for every CHECKOUT in turn (the order rotating from round to round), ``quest -q
serve --isolation process`` importing quest from that folder on a fresh project with figure 4's
1 s tick, and after 4 s to settle watches it for S seconds (default 15): its CPU, supervisor and
workers together, from every thread's ``schedstat`` in nanoseconds (a thread that ends within
the window is not counted), per fire; and the lateness of its fires (``started_at`` minus
``scheduled_for``, from its JobLog). One serve at a time: a 1 s interval fires on the whole
second in every serve. Prints one JSON line per checkout: the median over the rounds of its CPU
a fire and its median per-round ratio to the first checkout's, and the median, p99 and max
lateness over all its fires (R rounds, default 4). Give one checkout twice to see the noise of
the machine beside a difference.
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from .. import _projects
from .._lib import PYTHON, checkout_rounds, paired_ratio, percentile, project_env
from .serve_threads import serve_window

UPGRADE = "import sys; sys.argv = ['quest', 'db', 'upgrade']; from quest.cli import main; main()"
SERVE = (
    "import sys; sys.argv = ['quest', '-q', 'serve', '--isolation', 'process'];"
    " from quest.cli import main; main()"
)


def lateness(database: Path, start: float, end: float) -> list[float]:
    """Milliseconds from slot to start of the fires due in [*start*, *end*)."""
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT scheduled_for, started_at FROM quest_job_log"
            " WHERE scheduled_for IS NOT NULL AND started_at IS NOT NULL"
        ).fetchall()
    late = []
    for due_text, began_text in rows:
        due = datetime.fromisoformat(due_text).replace(tzinfo=UTC).timestamp()
        if start <= due < end:
            began = datetime.fromisoformat(began_text).replace(tzinfo=UTC).timestamp()
            late.append((began - due) * 1000)
    return late


def one(checkout: Path, seconds: float, scratch: Path) -> tuple[float, list[float]]:
    """CPU ms a fire and the fires' lateness (ms) of *checkout*'s serve over one window."""
    folder = _projects.project(Path(tempfile.mkdtemp(dir=scratch)), tick=_projects.TICK)
    env = {**project_env(folder), "PYTHONPATH": str(checkout)}
    subprocess.run([PYTHON, "-c", UPGRADE], env=env, cwd=folder, check=True, capture_output=True)
    start, end, spent = serve_window([PYTHON, "-c", SERVE], env, folder, 4, seconds)
    fires = lateness(folder / "quest.sqlite3", start, end)
    return spent / max(len(fires), 1) / 1e6, fires


def main(argv: list[str]) -> None:
    results = checkout_rounds(
        "python -m bench.cases.tick_rounds", argv, one, runs=15.0, flag="--seconds", rounds=4
    )
    first = [cpu for cpu, _ in results[0][1]]
    for checkout, measures in results:
        cpu = [c for c, _ in measures]
        late = [ms for _, fires in measures for ms in fires]
        print(
            json.dumps(
                {
                    "checkout": str(checkout),
                    "fires": len(late),
                    "cpu_ms_a_fire": round(statistics.median(cpu), 3),
                    "cpu_ratio": round(paired_ratio(cpu, first), 3),
                    "late_median_ms": round(statistics.median(late), 3),
                    "late_p99_ms": round(percentile(late, 99), 3),
                    "late_max_ms": round(max(late), 3),
                }
            )
        )


if __name__ == "__main__":
    main(sys.argv[1:])
