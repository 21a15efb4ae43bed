"""Figure 5's idle CPU, checkout against checkout: the sample app's serve doing nothing much.

    python -m bench.cases.idle_rounds [--seconds S] [--rounds R] CHECKOUT [CHECKOUT ...]

Each round runs, for every CHECKOUT in turn (the order rotating from round to round), ``quest -q
serve --isolation process`` importing quest from that folder, on that checkout's own
``scripts/`` and sample app (``app.models``, ``app.bootstrap``) on a fresh SQLite file that had
``quest db upgrade`` and ``quest demo seed``, as figure 5 does. After 5 s to settle it reads the
CPU of every thread of serve and its workers from ``schedstat`` at the start and the end of a
window of S seconds (default 30). Prints one JSON line per checkout: the median over the rounds
(default 3) of its CPU in % of one core, and its median per-round ratio to the first checkout's.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from .._lib import PYTHON, checkout_rounds, paired_ratio, project_env
from .serve_threads import serve_window

COMMAND = "import sys; sys.argv = {argv!r}; from quest.cli import main; main()"


def one(checkout: Path, seconds: float, scratch: Path) -> float:
    """Serve's CPU in % of one core over a window, on *checkout*'s seeded sample app."""
    folder = Path(tempfile.mkdtemp(dir=scratch))
    env = {
        **project_env(folder),
        "QUEST_SCRIPTS_DIR": str(checkout / "scripts"),
        "QUEST_MODELS": "app.models",
        "QUEST_BOOTSTRAP": "app.bootstrap",
        "PYTHONPATH": str(checkout),
    }
    for argv in (["quest", "db", "upgrade"], ["quest", "demo", "seed"]):
        code = COMMAND.format(argv=argv)
        subprocess.run([PYTHON, "-c", code], env=env, cwd=folder, check=True, capture_output=True)
    serve = COMMAND.format(argv=["quest", "-q", "serve", "--isolation", "process"])
    _, _, spent = serve_window([PYTHON, "-c", serve], env, folder, 5, seconds)
    return spent / seconds / 1e7


def main(argv: list[str]) -> None:
    results = checkout_rounds(
        "python -m bench.cases.idle_rounds", argv, one, runs=30.0, flag="--seconds", rounds=3
    )
    first = results[0][1]
    for checkout, measures in results:
        print(
            json.dumps(
                {
                    "checkout": str(checkout),
                    "cpu_percent": round(statistics.median(measures), 3),
                    "ratio": round(paired_ratio(measures, first), 3),
                }
            )
        )


if __name__ == "__main__":
    main(sys.argv[1:])
