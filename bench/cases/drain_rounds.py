"""Figure 9's drain, checkout against checkout: ``quest serve`` draining a SQLite queue.

    python -m bench.cases.drain_rounds [--rounds R] [--runs N] CHECKOUT [CHECKOUT ...]

Each round drains, for every CHECKOUT in turn (the order rotating from round to round), N
enqueued runs of figure 9's no-op (default 3,000) with ``quest -q serve --concurrency 4
--isolation process`` importing quest from that folder, on a fresh project upgraded by that
checkout, timed as figure 9 times it (from the serve's start to the last run's end, read from
the database). Prints one JSON line per checkout: the median and the fastest runs per second over
R rounds (default 8), and the median per-round ratio to the first checkout. Give the same
checkout twice to see the noise of the machine beside the difference between two.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from .. import _projects, _queues
from .._lib import PYTHON, checkout_rounds, print_rounds

UPGRADE = "import sys; sys.argv = ['quest', 'db', 'upgrade']; from quest.cli import main; main()"
SERVE = (
    "import sys; sys.argv = ['quest', '-q', 'serve', '--concurrency', '4', '--isolation', "
    "'process']; from quest.cli import main; main()"
)


def one(checkout: Path, runs: int, scratch: Path) -> float:
    """Runs per second of *checkout*'s serve draining *runs* queued runs."""
    folder = _projects.project(Path(tempfile.mkdtemp(dir=scratch)), noop=_projects.QUEUED_NOOP)
    env = _queues._quest_env(folder)
    served = {**_queues._serve_env(env), "PYTHONPATH": str(checkout)}
    subprocess.run([PYTHON, "-c", UPGRADE], env=served, cwd=folder, check=True, capture_output=True)
    _queues._enqueue("quest", runs, str(folder), env=env, cwd=folder)
    return _queues.drain(
        str(checkout),
        [[PYTHON, "-c", SERVE]],
        env=served,
        cwd=folder,
        runs=runs,
        progress=_queues.quest_sqlite_watch(folder / "quest.sqlite3"),
    )


def main(argv: list[str]) -> None:
    results = checkout_rounds("python -m bench.cases.drain_rounds", argv, one, runs=3000)
    print_rounds(results, "per_s", fastest=max, digits=0)


if __name__ == "__main__":
    main(sys.argv[1:])
