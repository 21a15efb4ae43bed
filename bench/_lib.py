"""What every figure shares: timing processes, interleaved rounds, statistics and the table."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
PYTHON = str(BIN / "python")
QUEST = str(BIN / "quest")
PROCRASTINATE = str(BIN / "procrastinate")
HUEY_CONSUMER = str(BIN / "huey_consumer")


T = TypeVar("T")


def say(message: str) -> None:
    """Progress goes to stderr; stdout carries only the report."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


# -- environments -------------------------------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a measured process: no PYTHONPATH, no QUEST_* from the caller.

    Bytecode caching stays on (``PYTHONDONTWRITEBYTECODE`` is dropped), as on any installed
    system: otherwise every start-up would compile quest's modules and the scripts again.
    """
    dropped = ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEST_") and k not in dropped}
    env.update(extra)
    return env


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of a ``bench.cases`` module: the repository on the path."""
    env = clean_env(**extra)
    env["PYTHONPATH"] = str(ROOT)
    return env


def project_env(folder: Path) -> dict[str, str]:
    """A throwaway quest project: its scripts, its SQLite file, no sample-app models."""
    return clean_env(
        QUEST_SCRIPTS_DIR=str(folder / "scripts"),
        QUEST_DATABASE_URL=f"sqlite:///{folder / 'quest.sqlite3'}",
        QUEST_MODELS="",
        QUEST_BOOTSTRAP="",
    )


def check(command: Sequence[str], *, env: dict[str, str], cwd: Path) -> str:
    """Run *command* to completion; its stdout, or exit with its stderr."""
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(
            f"bench: {' '.join(command)} exited {done.returncode}\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def quest_source() -> Path:
    """Where the ``quest`` the measured processes import comes from (must be this checkout)."""
    out = check(
        [PYTHON, "-c", "import quest; print(quest.__file__)"], env=clean_env(), cwd=ROOT
    ).strip()
    return Path(out).resolve().parent


@functools.cache
def has_isolation() -> bool:
    """Whether this checkout's ``quest serve`` takes ``--isolation process|thread``."""
    return "--isolation" in check([QUEST, "serve", "--help"], env=clean_env(), cwd=ROOT)


def serve_command(concurrency: int | None = None, isolation: str | None = None) -> list[str]:
    """``quest -q serve`` with *concurrency* worker processes and *isolation*, where this
    checkout has the flag; without it, serve runs as it always does (in-process)."""
    command = [QUEST, "-q", "serve"]
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    if isolation is not None and has_isolation():
        command += ["--isolation", isolation]
    return command


def isolation_label(isolation: str) -> str:
    """How a row names the isolation its serve ran with."""
    if has_isolation():
        return f"`--isolation {isolation}`"
    return "in-process, no `--isolation` in this checkout"


def isolation_cost() -> str:
    """The tail of a row that sets process isolation beside thread isolation."""
    if has_isolation():
        return "`--isolation process` vs `--isolation thread` (the cost of process isolation)"
    return "serve vs the same serve again (this checkout has no `--isolation`: nothing to compare)"


# -- one process --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Timed:
    seconds: float
    max_rss_mb: float


def timed(command: Sequence[str], *, env: dict[str, str], cwd: Path) -> Timed:
    """Wall time and peak RSS of one process (``wait4`` gives the child's own rusage)."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    errors = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    process.stderr.close()
    if process.returncode != 0:
        raise SystemExit(
            f"bench: {' '.join(command)} exited {process.returncode}\n{errors.decode()}"
        )
    return Timed(seconds, usage.ru_maxrss / 1024)


def interleaved(contenders: dict[str, Callable[[int], Any]], rounds: int) -> dict[str, list[Any]]:
    """Run each contender once per round, rotating who goes first, so noise hits all alike."""
    names = list(contenders)
    results: dict[str, list[Any]] = {name: [] for name in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            results[name].append(contenders[name](r))
    return results


def checkout_rounds(
    prog: str,
    argv: list[str],
    measure: Callable[[Path, Any, Path], T],
    *,
    runs: float,
    flag: str = "--runs",
    rounds: int = 8,
) -> list[tuple[Path, list[T]]]:
    """The command line of a checkout-against-checkout case (``[--rounds R] [FLAG N] CHECKOUT
    ...``, *flag* the size of one measure: runs, seconds), and *measure* (of a checkout, N and a
    scratch folder) for each checkout in :func:`interleaved` rounds: each checkout with its
    measures, in the order given (one checkout may be given twice, to show the noise beside a
    difference)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument(flag, dest="size", type=type(runs), default=runs)
    parser.add_argument("checkouts", nargs="+", type=Path)
    args = parser.parse_args(argv)
    checkouts = [path.resolve() for path in args.checkouts]
    with tempfile.TemporaryDirectory() as scratch:
        got = interleaved(
            {
                str(i): functools.partial(
                    lambda path, _round: measure(path, args.size, Path(scratch)), path
                )
                for i, path in enumerate(checkouts)
            },
            args.rounds,
        )
    return [(path, got[str(i)]) for i, path in enumerate(checkouts)]


def print_rounds(
    results: list[tuple[Path, list[float]]],
    unit: str,
    *,
    fastest: Callable[[list[float]], float],
    digits: int,
) -> None:
    """One JSON line per checkout of :func:`checkout_rounds`: the median and the fastest of its
    measures (in *unit*), and the median per-round ratio to the first checkout's."""
    first = results[0][1]
    for path, measures in results:
        line = {
            "checkout": str(path),
            f"median_{unit}": round(statistics.median(measures), digits or None),
            f"fastest_{unit}": round(fastest(measures), digits or None),
            "ratio": round(paired_ratio(measures, first), 3),
        }
        print(json.dumps(line))


def stop(process: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM, then wait (SIGKILL after *timeout* seconds); then end any descendant it left."""
    stop_all([process], timeout)


def stop_all(processes: Iterable[subprocess.Popen[Any]], timeout: float = 30) -> None:
    """Stop several processes together: every SIGTERM goes out before the first wait. A worker
    process its parent left behind is killed once the parent has exited."""
    import psutil

    processes = list(processes)
    left: list[Any] = []
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(psutil.Error):
                left += psutil.Process(process.pid).children(recursive=True)
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    for child in left:
        with contextlib.suppress(psutil.Error):
            if child.is_running():
                child.kill()


# -- process trees ------------------------------------------------------------------------------


def tree(root: Any) -> list[Any]:
    """*root* (a ``psutil.Process``) and every live descendant."""
    try:
        return [root, *root.children(recursive=True)]
    except Exception:
        return [root]


def tree_cpu(root: Any) -> float:
    """CPU seconds (user + system) of *root* and all its descendants, the exited ones included.

    A process's own times plus the times of its children that exited and were waited for
    (``children_user``/``children_system``), summed over every live process of the tree: a
    worker that exited during a window still counts, through its parent.
    """
    total = 0.0
    for process in tree(root):
        try:
            t = process.cpu_times()
        except Exception:  # it exited between the listing and the read
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return float(total)


@dataclass(frozen=True, slots=True)
class Memory:
    pss_mb: float
    rss_mb: float
    processes: int


def tree_memory(root: Any) -> Memory:
    """Total PSS and total RSS of *root* and its descendants (RSS counts shared pages once per
    process that maps them; PSS divides each shared page among them)."""
    pss = rss = 0.0
    count = 0
    for process in tree(root):
        try:
            info = process.memory_full_info()
        except Exception:
            continue
        pss += getattr(info, "pss", info.rss)
        rss += info.rss
        count += 1
    return Memory(pss / 2**20, rss / 2**20, count)


# -- statistics ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stat:
    """A figure: the median of its samples, with min and max."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float]) -> Stat:
        return cls(tuple(values))

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def low(self) -> float:
        return min(self.values)

    @property
    def high(self) -> float:
        return max(self.values)


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """The median of the per-round ratios a/b (rounds ran back to back)."""
    return statistics.median(x / y for x, y in zip(a, b, strict=True))


def percentile(values: Sequence[float], p: float) -> float:
    """The *p*-th percentile, linear between closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio_text(value: float) -> str:
    return f"{value:.2f}x"


# -- the report ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Row:
    figure: str
    quest: str
    comparison: str
    ratio: str
    target: str
    met: bool | None


def side_by_side(label: str, ours: list[float], theirs: list[float], unit: str) -> Row:
    """A row with no target: quest's samples against a comparison's, from the same rounds."""
    return Row(
        label,
        spread(Stat.of(ours), unit),
        spread(Stat.of(theirs), unit),
        ratio_text(paired_ratio(ours, theirs)),
        "—",
        None,
    )


def show(value: float, unit: str) -> str:
    if unit == "ms":
        if value < 1:
            return f"{value:.2f} ms"
        return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "%":
        return f"{value:.2f} %"
    return f"{value:g} {unit}"


def spread(stat: Stat, unit: str, scale: float = 1.0) -> str:
    """``median (min-max)`` in *unit*."""
    return (
        f"{show(stat.median * scale, unit)} "
        f"({show(stat.low * scale, unit).split()[0]}–{show(stat.high * scale, unit)})"  # noqa: RUF001
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| # | figure | quest | comparison | ratio | target | met? |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        met = "—" if row.met is None else ("yes" if row.met else "**NO**")
        label, _, what = row.figure.partition(" ")
        lines.append(
            f"| {label} | {what} | {row.quest} | {row.comparison} | {row.ratio} | "
            f"{row.target} | {met} |"
        )
    return "\n".join(lines)


def machine() -> list[str]:
    """The machine, in a few lines."""
    import psutil

    model = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = "?"
    return [
        f"- CPU: {model}, {os.cpu_count()} logical cores"
        f" ({psutil.cpu_count(logical=False) or '?'} physical)",
        f"- RAM: {memory:.1f} GiB",
        f"- Python: {platform.python_implementation()} {platform.python_version()}",
        f"- OS: {platform.platform()}",
        f"- load average at start: {load}",
        f"- quest at commit {commit or '?'}; "
        f"run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
    ]
