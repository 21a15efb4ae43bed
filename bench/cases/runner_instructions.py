"""Figure 3's run counted in instructions, checkout against checkout.

    python -m bench.cases.runner_instructions [--runs N] CHECKOUT [CHECKOUT ...]

For every CHECKOUT, figure 3's quest contender (``bench.cases.throughput quest``) runs under
``valgrind --tool=callgrind`` twice, each time in a fresh process importing quest from that folder
on a fresh project upgraded by that checkout: once with ``FEW`` runs and once with N more (default
400). The difference of the two instruction counts, over N, is what one run costs beyond the
imports and the start-up, in instructions: a count the machine's load does not move, where the
times of ``bench.cases.runner_rounds`` move by 7-10 % from one window to the next. What is left
(random run ids splitting the JobLog's pages at other places; string hashing is pinned with
``PYTHONHASHSEED=0``) makes repeats differ by 2-4 % a run at the default N. Prints one JSON line
per checkout: its instructions a run and the ratio to the first checkout's. Needs ``valgrind`` on
the PATH (Debian: ``apt-get install valgrind``); under it a run is some fifty times slower, so N
stays small.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import _projects
from .._lib import PYTHON, ROOT, project_env
from .runner_rounds import UPGRADE

FEW = 100
COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def count(checkout: Path, runs: int, scratch: Path) -> int:
    """Instructions of figure 3's contender doing *runs* runs with *checkout*'s quest."""
    folder = _projects.project(Path(tempfile.mkdtemp(dir=scratch)), noop=_projects.NOOP)
    env = project_env(folder)
    env["PYTHONPATH"] = f"{checkout}:{ROOT}"
    env["PYTHONHASHSEED"] = "0"
    subprocess.run([PYTHON, "-c", UPGRADE], env=env, cwd=folder, check=True, capture_output=True)
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            PYTHON,
            "-m",
            "bench.cases.throughput",
            "quest",
            str(runs),
            str(folder),
        ],
        env=env,
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    )
    found = COLLECTED.search(done.stderr)
    if found is None:
        raise SystemExit(f"valgrind printed no instruction count:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def per_run(checkout: Path, runs: int, scratch: Path) -> float:
    """Instructions one run of *checkout*'s runner costs."""
    return (count(checkout, FEW + runs, scratch) - count(checkout, FEW, scratch)) / runs


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cases.runner_instructions")
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("checkouts", nargs="+", type=Path, metavar="CHECKOUT")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        parser.error("valgrind is not on the PATH (Debian: apt-get install valgrind)")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    first: float | None = None
    with tempfile.TemporaryDirectory() as scratch:
        for checkout in args.checkouts:
            instructions = per_run(checkout.resolve(), args.runs, Path(scratch))
            first = first if first is not None else instructions
            line = {
                "checkout": str(checkout),
                "instructions_per_run": round(instructions),
                "ratio": round(instructions / first, 3),
            }
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
