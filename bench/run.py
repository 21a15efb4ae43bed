"""Benchmarks: quest next to its floors and peers, in one run.

    python bench/run.py            # the full run (about 25 minutes)
    python bench/run.py --quick    # fewer iterations, under 10 minutes
    python bench/run.py --only 8,9,10

Builds ``bench/.work/venv`` (this checkout installed editable with its dashboard extra, plus
huey, procrastinate with psycopg, psutil, and pyinstrument and py-spy for profiling) on first
use, then runs :mod:`bench._suite` with that venv's python, which prints a markdown table.
Figures 8 and 10 use
the PostgreSQL server at ``QUEST_BENCH_POSTGRES_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), and so does figure 11 (the dashboard's pages),
which keeps its generated databases in ``bench/.work/dashboard`` between runs.
Runs with any Python 3.11 or newer; needs nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / ".work"
VENV = WORK / "venv"
PEERS = [
    "huey>=2.5",
    "procrastinate>=3",
    "psycopg[binary]>=3.1",
    "psutil>=5.9",
    "pyinstrument>=4.6",
    "py-spy>=0.3",
]


def extras() -> str:
    """``[dashboard]`` when the project has that extra (figure 11 renders the dashboard)."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    return "[dashboard]" if "dashboard" in project.get("optional-dependencies", {}) else ""


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _fingerprint() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(" ".join(PEERS).encode())
    digest.update(sys.version.encode())
    digest.update(str(ROOT).encode())
    return digest.hexdigest()[:16]


def ensure_venv() -> Path:
    """Create the bench venv, anew whenever the project's dependencies, this Python or the
    checkout's location changed: quest is installed editable from the checkout holding bench/."""
    python = venv_python()
    stamp = VENV / ".bench-installed"
    wanted = _fingerprint()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    print(f"bench: creating {VENV.relative_to(ROOT)}", file=sys.stderr, flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print("bench: installing quest (editable) and the peers", file=sys.stderr, flush=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-e", f"{ROOT}{extras()}", *PEERS],
        check=True,
    )
    stamp.write_text(wanted + "\n")
    return python


def main(argv: list[str]) -> int:
    python = ensure_venv()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run(
        [str(python), "-m", "compileall", "-q", "quest", "app", "scripts"], cwd=ROOT, check=False
    )
    command = [str(python), "-m", "bench._suite", *argv]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
