"""Figure 3's run, checkout against checkout: ``Runner.run("noop")`` in interleaved rounds.

    python -m bench.cases.runner_rounds [--rounds R] [--runs N] CHECKOUT [CHECKOUT ...]

Each round runs, for every CHECKOUT in turn, a fresh process importing quest from that folder
(``PYTHONPATH``) on a fresh SQLite project (upgraded by that checkout), which times N runs of a
no-op (default 3,000, after one untimed run). Prints one JSON line per checkout: the median and
the fastest microseconds a run over R rounds (default 8), and the median per-round ratio to the
first checkout. The way to tell whether a change to the runner's path is worth keeping.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

NOOP = (
    "from quest import script\n\n\n"
    "@script(description='Does nothing.')\n"
    "def noop(inputs, ctx):\n"
    "    return None\n"
)

TIMED = """
import sys, time
from pathlib import Path
from quest.app import Quest
from quest.config import load_settings
quest = Quest(load_settings(Path(sys.argv[1])))
runner = quest.runner
runner.run("noop", {})
n = int(sys.argv[2])
began = time.perf_counter()
for _ in range(n):
    runner.run("noop", {})
print((time.perf_counter() - began) / n * 1e6)
quest.close()
"""


def one(checkout: Path, runs: int, scratch: Path) -> float:
    folder = Path(tempfile.mkdtemp(dir=scratch))
    (folder / "scripts").mkdir()
    (folder / "scripts" / "noop.py").write_text(NOOP)
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout),
        "QUEST_SCRIPTS_DIR": str(folder / "scripts"),
        "QUEST_DATABASE_URL": f"sqlite:///{folder / 'quest.sqlite3'}",
        "QUEST_MODELS": "",
        "QUEST_BOOTSTRAP": "",
    }
    upgrade = (
        "import sys; sys.argv = ['quest', 'db', 'upgrade']; from quest.cli import main; main()"
    )
    subprocess.run(
        [sys.executable, "-c", upgrade], env=env, cwd=folder, check=True, capture_output=True
    )
    done = subprocess.run(
        [sys.executable, "-c", TIMED, str(folder), str(runs)],
        env=env,
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(done.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cases.runner_rounds")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("checkouts", nargs="+", type=Path)
    args = parser.parse_args(argv)
    checkouts = [path.resolve() for path in args.checkouts]
    times: dict[Path, list[float]] = {path: [] for path in checkouts}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.rounds):
            for path in checkouts:
                times[path].append(one(path, args.runs, Path(scratch)))
    first = times[checkouts[0]]
    for path in checkouts:
        ratios = [mine / theirs for mine, theirs in zip(times[path], first, strict=True)]
        print(
            json.dumps(
                {
                    "checkout": str(path),
                    "median_us": round(statistics.median(times[path]), 1),
                    "fastest_us": round(min(times[path]), 1),
                    "ratio": round(statistics.median(ratios), 3),
                }
            )
        )


if __name__ == "__main__":
    main(sys.argv[1:])
