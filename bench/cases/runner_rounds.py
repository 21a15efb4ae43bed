"""Figure 3's run, checkout against checkout: ``Runner.run("noop")`` in interleaved rounds.

    python -m bench.cases.runner_rounds [--rounds R] [--runs N] CHECKOUT [CHECKOUT ...]

Each round runs, for every CHECKOUT in turn (the order rotating from round to round), figure
3's quest contender (``bench.cases.throughput quest``) in a fresh process importing quest from
that folder, on a fresh project upgraded by that checkout: N runs of a no-op (default 3,000)
after one untimed run. Prints one JSON line per checkout: the median and the fastest
microseconds a run over R rounds (default 8), and the median per-round ratio to the first
checkout. The way to tell whether a change to the runner's path is worth keeping.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from .. import _projects
from .._lib import PYTHON, ROOT, checkout_rounds, print_rounds, project_env

UPGRADE = "import sys; sys.argv = ['quest', 'db', 'upgrade']; from quest.cli import main; main()"


def one(checkout: Path, runs: int, scratch: Path) -> float:
    """Microseconds a run of *checkout*'s runner, on a project of its own."""
    folder = _projects.project(Path(tempfile.mkdtemp(dir=scratch)), noop=_projects.NOOP)
    env = project_env(folder)
    env["PYTHONPATH"] = f"{checkout}:{ROOT}"
    subprocess.run([PYTHON, "-c", UPGRADE], env=env, cwd=folder, check=True, capture_output=True)
    done = subprocess.run(
        [PYTHON, "-m", "bench.cases.throughput", "quest", str(runs), str(folder)],
        env=env,
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    )
    return 1e6 / float(json.loads(done.stdout)["rate"])


def main(argv: list[str]) -> None:
    results = checkout_rounds("python -m bench.cases.runner_rounds", argv, one, runs=3000)
    print_rounds(results, "us", fastest=min, digits=1)


if __name__ == "__main__":
    main(sys.argv[1:])
