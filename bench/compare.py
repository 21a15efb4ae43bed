"""Figure 8's three-serve drain for two checkouts side by side, and one serve's first claim.

    python -m bench.compare --before /path/to/other/checkout [--rounds 5] [--runs 3000]

Each checkout runs with its own venv (``CHECKOUT/.venv``). Per round, in rotating order: 3
``quest -q serve --concurrency 2 --isolation process`` of each checkout, and 3 ``procrastinate
worker --concurrency 2``, each on a fresh PostgreSQL database holding *runs* queued no-ops, timed
as figure 8 times them (from spawning the consumers to the last run's end). Then *starts* rounds
of one serve of each checkout on a database holding one queued run: seconds from spawning it to
the run's ``started_at`` (its claim). Prints medians, (min-max) and paired ratios.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import _projects
from ._lib import ROOT, check, clean_env, interleaved
from ._queues import (
    _admin,
    drain,
    fresh_database,
    postgres_url,
    procrastinate_drain,
    quest_postgres_watch,
)


class Side:
    """One checkout: its venv's binaries and a database template ``quest db upgrade`` made."""

    def __init__(self, name: str, checkout: Path) -> None:
        self.name = name
        self.checkout = checkout
        self.bin = checkout / ".venv" / "bin"
        self.template = ""

    def env(self, folder: Path, url: str, *, path: bool = False) -> dict[str, str]:
        env = clean_env(
            QUEST_SCRIPTS_DIR=str(folder / "scripts"),
            QUEST_DATABASE_URL=url,
            QUEST_MODELS="",
            QUEST_BOOTSTRAP="",
        )
        if path:
            env["PYTHONPATH"] = str(self.checkout)
        return env

    def serve(self, concurrency: int) -> list[str]:
        return [
            str(self.bin / "quest"),
            "-q",
            "serve",
            "--concurrency",
            str(concurrency),
            "--isolation",
            "process",
        ]

    def enqueue(self, folder: Path, url: str, runs: int) -> None:
        enqueue = ["-m", "bench.cases.queue", "enqueue", "quest", str(runs), str(folder)]
        check(
            [str(self.bin / "python"), *enqueue],
            env=self.env(folder, url, path=True),
            cwd=folder,
        )


def _first_start(url: str) -> float:
    with _admin(url) as connection:
        first = connection.execute(
            "SELECT min(started_at) FROM quest_job_log WHERE name = 'noop'"
        ).fetchone()[0]
    if isinstance(first, str):
        first = datetime.fromisoformat(first).replace(tzinfo=UTC)
    return float(first.timestamp())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--after", type=Path, default=ROOT)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--no-peer", action="store_true")
    args = parser.parse_args()
    base = postgres_url()
    scratch = Path(tempfile.mkdtemp(prefix="quest-compare-"))
    sides = [Side("before", args.before.resolve()), Side("after", args.after.resolve())]
    firsts: dict[str, list[float]] = {side.name: [] for side in sides}

    def quest(side: Side, serves: int, runs: int) -> Callable[[int], float]:
        def go(r: int) -> float:
            folder = _projects.project(
                scratch / f"{side.name}-{serves}-{r}-{runs}", noop=_projects.QUEUED_NOOP
            )
            with fresh_database(base, side.template) as url:
                side.enqueue(folder, url, runs)
                began = time.time()
                rate = drain(
                    f"{side.name} {serves}x2",
                    [side.serve(2)] * serves,
                    env=side.env(folder, url),
                    cwd=folder,
                    runs=runs,
                    progress=quest_postgres_watch(url),
                )
                if serves == 1:
                    rate = _first_start(url) - began
                else:
                    firsts[side.name].append(_first_start(url) - began)
            shutil.rmtree(folder, ignore_errors=True)
            return rate

        return go

    def peer(r: int) -> float:
        return procrastinate_drain(
            base,
            scratch / f"procrastinate-{r}",
            args.runs,
            3,
            2,
            label="procrastinate 3x2",
            python=str(sides[1].bin / "python"),
            procrastinate=str(sides[1].bin / "procrastinate"),
        )

    try:
        with fresh_database(base) as before, fresh_database(base) as after:
            for side, template in zip(sides, (before, after), strict=True):
                side.template = template
                folder = _projects.project(
                    scratch / f"{side.name}-template", noop=_projects.QUEUED_NOOP
                )
                check(
                    [str(side.bin / "quest"), "db", "upgrade"],
                    env=side.env(folder, template),
                    cwd=folder,
                )
            contenders: dict[str, Callable[[int], Any]] = {
                side.name: quest(side, 3, args.runs) for side in sides
            }
            if not args.no_peer:
                contenders["procrastinate"] = peer
            if args.rounds:
                got = interleaved(contenders, args.rounds)
                _report("3 serves x 2, runs/s", got, higher=True)
                _report("3 serves x 2, spawn -> first claim, s", firsts, higher=False)
            if args.starts:
                started = interleaved({side.name: quest(side, 1, 1) for side in sides}, args.starts)
                _report("1 serve x 2, spawn -> first claim, s", started, higher=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _report(title: str, got: dict[str, list[float]], *, higher: bool) -> None:
    print(f"\n{title}")
    for name, values in got.items():
        print(
            f"  {name:14} median {statistics.median(values):9.3f}"
            f"  ({min(values):.3f}-{max(values):.3f})  n={len(values)}"
        )
    pairs = [("after", "before")]
    if "procrastinate" in got:
        pairs += [("before", "procrastinate"), ("after", "procrastinate")]
    for a, b in pairs:
        if a in got and b in got and len(got[a]) == len(got[b]):
            ratios = [x / y for x, y in zip(got[a], got[b], strict=True)]
            print(
                f"  {a}/{b}: median of paired ratios {statistics.median(ratios):.3f}"
                f"  ({min(ratios):.3f}-{max(ratios):.3f})"
            )


if __name__ == "__main__":
    main()
