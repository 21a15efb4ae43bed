"""Figures 9 and 8's drains, checkout against checkout: ``quest serve`` draining its queue.

    python -m bench.cases.drain_rounds [--postgres] [--serves S] [--concurrency C]
        [--rounds R] [--runs N] CHECKOUT [CHECKOUT ...]

Each round drains, for every CHECKOUT in turn (the order rotating from round to round), N
enqueued runs of the figures' no-op (default 3,000) with S (default 1) ``quest -q serve
--concurrency C --isolation process`` (default C: 4) importing quest from that folder, on a fresh
project upgraded by that checkout, on SQLite (figure 9) or, with ``--postgres``, on a fresh
PostgreSQL database (figure 8; ``QUEST_BENCH_POSTGRES_URL``), timed as the figures time it (from
the serves' start to the last run's end, read from the database). Prints one JSON line per
checkout: the median and the fastest runs per second over R rounds (default 8), and the median
per-round ratio to the first checkout. Give the same checkout twice to see the noise of the
machine beside the difference between two.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import _projects, _queues
from .._lib import PYTHON, ROOT, checkout_rounds, print_rounds

UPGRADE = "import sys; sys.argv = ['quest', 'db', 'upgrade']; from quest.cli import main; main()"
SERVE = (
    "import sys; sys.argv = ['quest', '-q', 'serve', '--concurrency', '{concurrency}', "
    "'--isolation', 'process']; from quest.cli import main; main()"
)


def one(
    checkout: Path, runs: int, scratch: Path, *, postgres: bool, serves: int, concurrency: int
) -> float:
    """Runs per second of *checkout*'s serves draining *runs* queued runs."""
    folder = _projects.project(Path(tempfile.mkdtemp(dir=scratch)), noop=_projects.QUEUED_NOOP)
    command = [PYTHON, "-c", SERVE.format(concurrency=concurrency)]
    if not postgres:
        return _drain(checkout, folder, runs, [command] * serves, None)
    with _queues.fresh_database(_queues.postgres_url()) as url:
        return _drain(checkout, folder, runs, [command] * serves, url)


def _drain(
    checkout: Path, folder: Path, runs: int, commands: list[list[str]], url: str | None
) -> float:
    env = _queues._quest_env(folder, url)
    served = {**_queues._serve_env(env), "PYTHONPATH": str(checkout)}
    subprocess.run([PYTHON, "-c", UPGRADE], env=served, cwd=folder, check=True, capture_output=True)
    # Enqueued by the checkout's own quest, which finds its schema as it left it.
    _queues._enqueue(
        "quest", runs, str(folder), env={**env, "PYTHONPATH": f"{checkout}:{ROOT}"}, cwd=folder
    )
    progress = (
        _queues.quest_sqlite_watch(folder / "quest.sqlite3")
        if url is None
        else _queues.quest_postgres_watch(url)
    )
    return _queues.drain(
        str(checkout), commands, env=served, cwd=folder, runs=runs, progress=progress
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--serves", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=4)
    known, rest = parser.parse_known_args(argv)

    def measure(checkout: Path, runs: int, scratch: Path) -> float:
        return one(
            checkout,
            runs,
            scratch,
            postgres=known.postgres,
            serves=known.serves,
            concurrency=known.concurrency,
        )

    results = checkout_rounds("python -m bench.cases.drain_rounds", rest, measure, runs=3000)
    print_rounds(results, "per_s", fastest=max, digits=0)


if __name__ == "__main__":
    main(sys.argv[1:])
