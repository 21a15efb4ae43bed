"""The benchmark suite; started by ``python bench/run.py`` with the bench venv's python.

Every contender runs in a process of its own. Figures that repeat run their contenders in
interleaved rounds (the order rotates each round); the figures that watch a running serve for a
window (4, 5) run quest and its peer side by side over the same window. Figures 8-10 (queues,
with procrastinate and huey) live in :mod:`bench._queues`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from . import _projects, _queues
from ._lib import (
    PYTHON,
    QUEST,
    ROOT,
    Memory,
    Row,
    Stat,
    bench_env,
    check,
    interleaved,
    isolation_label,
    machine,
    paired_ratio,
    percentile,
    project_env,
    quest_source,
    ratio_text,
    say,
    serve_command,
    show,
    side_by_side,
    spread,
    stop,
    table,
    timed,
    tree_cpu,
    tree_memory,
)

FLOOR_IMPORTS = "import pydantic, sqlalchemy.orm, apscheduler.schedulers.background, click, blinker"


@dataclass(frozen=True)
class Plan:
    quick: bool
    cheap_rounds: int
    rounds: int
    runs: int
    window: float
    scripts: int
    rows: int
    drain_runs: int
    drain_rounds: int
    pings: int

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(True, 5, 5, 1_000, 10.0, 500, 100_000, 500, 3, 20)
        return cls(False, 15, 5, 10_000, 60.0, 10_000, 1_000_000, 3_000, 5, 20)

    def describe(self) -> str:
        mode = "full run"
        if self.quick:
            mode = "QUICK run (`--quick`): reduced sizes, not the figures of record"
        return (
            f"{mode}: {self.cheap_rounds} rounds for start-up figures, {self.rounds} for the "
            f"others; {self.runs:,} runs per round in 3; {self.window:g} s windows in 4 and 5; "
            f"{self.scripts:,} scripts in 6; {self.rows:,} JobLog rows in 7; "
            f"{self.drain_runs:,} enqueued runs x {self.drain_rounds} rounds in 8 and 9; "
            f"{self.pings} enqueues one at a time in 10; {self.rows:,} JobLog rows over "
            f"{self.scripts:,} scripts in 11."
        )


# -- 1 and 2: start-up ------------------------------------------------------------------------


def figure_1(plan: Plan, scratch: Path) -> list[Row]:
    say("1: quest --help")
    folder = _projects.project(scratch / "help")
    env = project_env(folder)
    commands = {
        "help": [QUEST, "--help"],
        "pass": [PYTHON, "-c", "pass"],
        "click": [PYTHON, "-c", "import click"],
    }
    got = interleaved(
        {k: (lambda r, c=c: timed(c, env=env, cwd=folder).seconds) for k, c in commands.items()},
        plan.cheap_rounds,
    )
    help_, pass_, click_ = (Stat.of(got[k]) for k in ("help", "pass", "click"))
    ratio = paired_ratio(got["help"], got["click"])
    return [
        Row(
            '1 `quest --help` wall vs `python -c "import click"`',
            spread(help_, "ms", 1000),
            spread(click_, "ms", 1000),
            ratio_text(ratio),
            "≤ 1.5x",
            ratio <= 1.5,
        ),
        Row(
            "1 `quest --help` wall vs `python -c pass`",
            spread(help_, "ms", 1000),
            spread(pass_, "ms", 1000),
            ratio_text(paired_ratio(got["help"], got["pass"])),
            "—",
            None,
        ),
    ]


def figure_2(plan: Plan, scratch: Path) -> list[Row]:
    say("2: quest run noop")
    folder = _projects.project(scratch / "noop", noop=_projects.NOOP)
    env = project_env(folder)
    check([QUEST, "db", "upgrade"], env=env, cwd=folder)
    commands = {
        "run": [QUEST, "run", "noop"],
        "floor": [PYTHON, "-c", FLOOR_IMPORTS],
    }
    got = interleaved(
        {k: (lambda r, c=c: timed(c, env=env, cwd=folder)) for k, c in commands.items()},
        plan.cheap_rounds,
    )
    wall = {k: [t.seconds for t in v] for k, v in got.items()}
    rss = {k: [t.max_rss_mb for t in v] for k, v in got.items()}
    wall_ratio = paired_ratio(wall["run"], wall["floor"])
    rss_ratio = paired_ratio(rss["run"], rss["floor"])
    return [
        Row(
            "2 `quest run noop` wall vs the import floor",
            spread(Stat.of(wall["run"]), "ms", 1000),
            spread(Stat.of(wall["floor"]), "ms", 1000),
            ratio_text(wall_ratio),
            "≤ 1.2x",
            wall_ratio <= 1.2,
        ),
        Row(
            "2 `quest run noop` max RSS vs the import floor",
            spread(Stat.of(rss["run"]), "MB"),
            spread(Stat.of(rss["floor"]), "MB"),
            ratio_text(rss_ratio),
            "≤ 1.2x",
            rss_ratio <= 1.2,
        ),
    ]


# -- 3: throughput ----------------------------------------------------------------------------


def figure_3(plan: Plan, scratch: Path) -> list[Row]:
    say(f"3: {plan.runs:,} recorded runs x {plan.rounds} rounds x 5 contenders")
    base = scratch / "throughput"

    def contender(name: str):  # type: ignore[no-untyped-def]
        def go(r: int) -> float:
            folder = _projects.project(base / f"{name}-{r}", noop=_projects.NOOP)
            env = project_env(folder)
            env["PYTHONPATH"] = str(ROOT)
            out = check(
                [PYTHON, "-m", "bench.cases.throughput", name, str(plan.runs), str(folder)],
                env=env,
                cwd=folder,
            )
            shutil.rmtree(folder, ignore_errors=True)
            return float(json.loads(out)["rate"])

        return go

    names = ("quest", "huey", "huey-default", "apscheduler", "sqlite")
    got = interleaved({n: contender(n) for n in names}, plan.rounds)
    q = Stat.of(got["quest"])
    vs_huey = paired_ratio(got["quest"], got["huey-default"])
    return [
        Row(
            "3 recorded runs/s: quest runner (JobLog, SQLite WAL) vs huey SqliteHuey drain, "
            "both as shipped",
            spread(q, "/s"),
            spread(Stat.of(got["huey-default"]), "/s"),
            ratio_text(vs_huey),
            "≥ 1x",
            vs_huey >= 1.0,
        ),
        side_by_side(
            "3 runs/s: quest vs huey SqliteHuey set to quest's durability (`synchronous=NORMAL`)",
            got["quest"],
            got["huey"],
            "/s",
        ),
        side_by_side(
            "3 runs/s: quest vs APScheduler, same no-op, nothing recorded",
            got["quest"],
            got["apscheduler"],
            "/s",
        ),
        side_by_side(
            "3 runs/s: quest vs raw sqlite3 insert+update per run (the store's floor)",
            got["quest"],
            got["sqlite"],
            "/s",
        ),
    ]


# -- 4 and 5: serve over a window -------------------------------------------------------------


def _sleep_until(instant: float) -> None:
    while (left := instant - time.time()) > 0:
        time.sleep(min(left, 0.5))


def _lateness_stats(samples: list[tuple[float, float]]) -> dict[str, float]:
    late = [ms for _, ms in sorted(samples)]
    k = min(10, len(late) // 2)
    return {
        "n": len(late),
        "median": statistics.median(late),
        "p99": percentile(late, 99),
        "max": max(late),
        "drift": statistics.median(late[-k:]) - statistics.median(late[:k]),
    }


@dataclass(frozen=True)
class TickWindow:
    quest: dict[str, float]
    peer: dict[str, float]
    cpu_quest_ms: float
    cpu_peer_ms: float


def _tick_window(plan: Plan, folder: Path, isolation: str) -> TickWindow:
    """A 1 s interval script under ``quest serve`` and APScheduler, over one window."""
    _projects.project(folder, tick=_projects.TICK)
    env = project_env(folder)
    check([QUEST, "db", "upgrade"], env=env, cwd=folder)
    start = math.ceil(time.time()) + 4
    end = start + int(plan.window)
    serve = subprocess.Popen(
        serve_command(None, isolation),
        env=env,
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peer = subprocess.Popen(
        [PYTHON, "-m", "bench.cases.aps", "fire", str(start), str(end)],
        env=bench_env(),
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        serve_p, peer_p = psutil.Process(serve.pid), psutil.Process(peer.pid)
        _sleep_until(start - 0.25)
        cpu0 = (tree_cpu(serve_p), tree_cpu(peer_p))
        _sleep_until(end - 0.25)
        cpu1 = (tree_cpu(serve_p), tree_cpu(peer_p))
        time.sleep(0.5)
    finally:
        stop(serve)
    out, _ = peer.communicate(timeout=30)
    peer_samples = [tuple(s) for s in json.loads(out)["samples"]]
    rows = json.loads(
        check([QUEST, "history", "tick", "--json", "--limit", "10000"], env=env, cwd=folder)
    )
    samples = []
    for row in rows:
        if not row["scheduled_for"] or not row["started_at"]:
            continue
        due = datetime.fromisoformat(row["scheduled_for"]).timestamp()
        if start <= due < end:
            began = datetime.fromisoformat(row["started_at"]).timestamp()
            samples.append((due, (began - due) * 1000))
    if len(samples) < plan.window * 0.9 or len(peer_samples) < plan.window * 0.9:
        raise SystemExit(
            f"bench: 4 saw {len(samples)} quest fires and {len(peer_samples)} "
            f"APScheduler fires in a {plan.window:g} s window"
        )
    q, p = _lateness_stats(samples), _lateness_stats(peer_samples)  # type: ignore[arg-type]
    return TickWindow(
        q, p, (cpu1[0] - cpu0[0]) / q["n"] * 1000, (cpu1[1] - cpu0[1]) / p["n"] * 1000
    )


def figure_4(plan: Plan, scratch: Path) -> list[Row]:
    say(f"4: fire lateness, 1 s interval, two {plan.window:g} s windows (process, thread)")
    main = _tick_window(plan, scratch / "tick", "process")
    light = _tick_window(plan, scratch / "tick-thread", "thread")
    q, p = main.quest, main.peer
    note = f" ({q['n']:.0f} fires vs {p['n']:.0f})"
    mode, thread = isolation_label("process"), isolation_label("thread")

    def ms(v: float) -> str:
        return show(v, "ms")

    def cpu_ratio(w: TickWindow) -> str:
        return ratio_text(w.cpu_quest_ms / w.cpu_peer_ms) if w.cpu_peer_ms > 0 else "—"

    return [
        Row(
            f"4 lateness median, `quest serve` ({mode}, JobLog on) vs plain APScheduler" + note,
            ms(q["median"]),
            ms(p["median"]),
            ratio_text(q["median"] / p["median"]),
            "—",
            None,
        ),
        Row(
            "4 lateness p99",
            ms(q["p99"]),
            ms(p["p99"]),
            ratio_text(q["p99"] / p["p99"]),
            "≤ 1.5x",
            q["p99"] <= 1.5 * p["p99"],
        ),
        Row(
            "4 lateness max", ms(q["max"]), ms(p["max"]), ratio_text(q["max"] / p["max"]), "—", None
        ),
        Row(
            "4 drift: median of last 10 fires − median of first 10",  # noqa: RUF001
            f"{q['drift']:+.2f} ms",
            f"{p['drift']:+.2f} ms",
            "—",
            "no drift (≤ +1 ms)",
            q["drift"] <= 1.0,
        ),
        Row(
            "4 serve CPU per scheduled run, supervisor and workers together",
            show(main.cpu_quest_ms, "ms"),
            show(main.cpu_peer_ms, "ms"),
            cpu_ratio(main),
            "≤ 1 ms",
            main.cpu_quest_ms <= 1.0,
        ),
        Row(
            f"4 lateness p99, `quest serve` ({thread}; its own window, APScheduler beside it)",
            ms(light.quest["p99"]),
            ms(light.peer["p99"]),
            ratio_text(light.quest["p99"] / light.peer["p99"]),
            "—",
            None,
        ),
        Row(
            f"4 serve CPU per scheduled run ({thread})",
            show(light.cpu_quest_ms, "ms"),
            show(light.cpu_peer_ms, "ms"),
            cpu_ratio(light),
            "—",
            None,
        ),
    ]


def _seeded(folder: Path) -> tuple[dict[str, str], bool]:
    """A fresh SQLite file for the repository's own scripts and sample app, seeded."""
    folder.mkdir()
    env = project_env(folder)
    env.update(
        QUEST_SCRIPTS_DIR=str(ROOT / "scripts"),
        QUEST_MODELS="app.models",
        QUEST_BOOTSTRAP="app.bootstrap",
        PYTHONPATH=str(ROOT),
    )
    check([QUEST, "db", "upgrade"], env=env, cwd=folder)
    seeded = "demo" in check([QUEST, "--help"], env=env, cwd=folder)
    if seeded:
        check([QUEST, "demo", "seed"], env=env, cwd=folder)
    return env, seeded


def figure_5(plan: Plan, scratch: Path) -> list[Row]:
    say(f"5: idle serve with the seed scripts, {plan.window:g} s window (process, thread)")
    envs: dict[str, dict[str, str]] = {}
    seeded = True
    for name in ("process", "thread"):
        envs[name], seeded = _seeded(scratch / f"seed-{name}")
    scripts = len(list((ROOT / "scripts").glob("[!_]*.py")))
    settle = 5.0
    processes = {
        name: subprocess.Popen(
            serve_command(None, name),
            env=env,
            cwd=scratch / f"seed-{name}",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, env in envs.items()
    }
    processes["peer"] = subprocess.Popen(
        [PYTHON, "-m", "bench.cases.aps", "idle", str(plan.window + settle + 2)],
        env=bench_env(),
        cwd=scratch,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    memory: dict[str, list[Memory]] = {k: [] for k in processes}
    try:
        procs = {k: psutil.Process(p.pid) for k, p in processes.items()}
        time.sleep(settle)
        for name, process in processes.items():
            if process.poll() is not None:
                raise SystemExit(f"bench: 5: {name} exited during start-up")
        t0, cpu0 = time.monotonic(), {k: tree_cpu(p) for k, p in procs.items()}
        while time.monotonic() - t0 < plan.window:
            time.sleep(1.0)
            for k, p in procs.items():
                memory[k].append(tree_memory(p))
        elapsed = time.monotonic() - t0
        cpu = {k: (tree_cpu(p) - cpu0[k]) / elapsed * 100 for k, p in procs.items()}
    finally:
        for process in processes.values():
            stop(process)
    pss = {k: max(m.pss_mb for m in v) for k, v in memory.items()}
    rss = {k: max(m.rss_mb for m in v) for k, v in memory.items()}
    count = {k: max(m.processes for m in v) for k, v in memory.items()}
    what = f"{scripts} seed scripts, {'seeded' if seeded else 'upgraded, unseeded'} SQLite"
    mode, thread = isolation_label("process"), isolation_label("thread")

    def ratio(a: float, b: float) -> str:
        return ratio_text(a / b) if b > 0 else "—"

    def processes_of(name: str) -> str:
        n = count[name]
        if n == 1:
            return "one process"
        workers = n - 2  # the supervisor and the template the workers are forked from
        return f"supervisor, template + {workers} worker{'' if workers == 1 else 's'}"

    one = count["process"] == 1
    return [
        Row(
            f"5 idle `quest serve` ({mode}; {what}), peak total PSS, {processes_of('process')}, "
            "vs APScheduler with 11 no-op jobs",
            show(pss["process"], "MB"),
            show(pss["peer"], "MB"),
            ratio(pss["process"], pss["peer"]),
            "≤ 112 MB",
            pss["process"] <= 112,
        ),
        Row(
            "5 idle `quest serve` peak RSS, summed over its processes",
            show(rss["process"], "MB"),
            show(rss["peer"], "MB"),
            ratio(rss["process"], rss["peer"]),
            "≤ 80 MB" if one else "— (shared pages counted once per process)",
            rss["process"] <= 80 if one else None,
        ),
        Row(
            "5 idle `quest serve` CPU, supervisor and workers together, % of one core",
            show(cpu["process"], "%"),
            show(cpu["peer"], "%"),
            ratio(cpu["process"], cpu["peer"]),
            "≤ 0.5 %",
            cpu["process"] <= 0.5,
        ),
        Row(
            f"5 idle `quest serve` ({thread}), peak total PSS, {processes_of('thread')}",
            show(pss["thread"], "MB"),
            show(pss["peer"], "MB"),
            ratio(pss["thread"], pss["peer"]),
            "—",
            None,
        ),
        Row(
            f"5 idle `quest serve` ({thread}), peak RSS",
            show(rss["thread"], "MB"),
            show(rss["peer"], "MB"),
            ratio(rss["thread"], rss["peer"]),
            "—",
            None,
        ),
        Row(
            f"5 idle `quest serve` ({thread}), CPU, % of one core",
            show(cpu["thread"], "%"),
            show(cpu["peer"], "%"),
            ratio(cpu["thread"], cpu["peer"]),
            "—",
            None,
        ),
    ]


# -- 6: many scripts ----------------------------------------------------------------------------


def _until_ready(
    command: list[str], *, env: dict[str, str], cwd: Path, stream: str, ready: str, count: int
) -> tuple[float, float, subprocess.Popen[str]]:
    """Start *command*; the seconds until *count* lines containing *ready*, and the RSS then."""
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE if stream == "stdout" else subprocess.DEVNULL,
        stderr=subprocess.PIPE if stream == "stderr" else subprocess.DEVNULL,
    )
    pipe = process.stdout if stream == "stdout" else process.stderr
    assert pipe is not None
    seen = 0
    for line in pipe:
        if ready in line:
            seen += 1
            if seen >= count:
                break
    seconds = time.perf_counter() - start
    if seen < count:
        raise SystemExit(f"bench: {' '.join(command)} ended after {seen} of {count} lines")
    rss = psutil.Process(process.pid).memory_info().rss / 2**20
    threading.Thread(target=lambda: [None for _ in pipe], daemon=True).start()
    return seconds, rss, process


def figure_6(plan: Plan, scratch: Path) -> list[Row]:
    say(f"6: {plan.scripts:,} generated scripts")
    folder, peer_dir = _projects.generated(scratch / "scale", plan.scripts)
    env = project_env(folder)
    check([QUEST, "db", "upgrade"], env=env, cwd=folder)
    peer_env = bench_env()

    def serve(r: int) -> tuple[float, float]:
        seconds, rss, process = _until_ready(
            [QUEST, "serve"],
            env=env,
            cwd=folder,
            stream="stderr",
            ready="quest.serve: scheduled ",
            count=plan.scripts,
        )
        stop(process)
        return seconds, rss

    def peer(r: int) -> tuple[float, float]:
        seconds, rss, process = _until_ready(
            [PYTHON, "-m", "bench.cases.aps", "scale", str(peer_dir)],
            env=peer_env,
            cwd=folder,
            stream="stdout",
            ready="ready",
            count=1,
        )
        stop(process)
        return seconds, rss

    def list_quest(r: int) -> float:
        return timed([QUEST, "list"], env=env, cwd=folder).seconds

    def list_peer(r: int) -> float:
        return timed(
            [PYTHON, "-m", "bench.cases.aps", "list", str(peer_dir)], env=peer_env, cwd=folder
        ).seconds

    got = interleaved(
        {"serve": serve, "peer": peer, "list": list_quest, "list_peer": list_peer}, plan.rounds
    )
    up = {k: [s for s, _ in got[k]] for k in ("serve", "peer")}
    rss = {k: [m for _, m in got[k]] for k in ("serve", "peer")}
    up_q, rss_q = Stat.of(up["serve"]), Stat.of(rss["serve"])
    n = f"{plan.scripts:,}"
    listed = paired_ratio(got["list"], got["list_peer"])
    return [
        Row(
            f"6 `quest serve` start-up, {n} scripts, vs APScheduler importing {n} job modules",
            spread(up_q, "s"),
            spread(Stat.of(up["peer"]), "s"),
            ratio_text(paired_ratio(up["serve"], up["peer"])),
            "≤ 5 s",
            up_q.median <= 5.0,
        ),
        Row(
            f"6 `quest serve` RSS after start-up, {n} scripts",
            spread(rss_q, "MB"),
            spread(Stat.of(rss["peer"]), "MB"),
            ratio_text(paired_ratio(rss["serve"], rss["peer"])),
            "≤ 300 MB",
            rss_q.median <= 300,
        ),
        Row(
            f"6 `quest list` wall, {n} scripts, vs APScheduler listing its jobs",
            spread(Stat.of(got["list"]), "s"),
            spread(Stat.of(got["list_peer"]), "s"),
            ratio_text(listed),
            "≤ 1.5x",
            listed <= 1.5,
        ),
    ]


# -- 7: a big JobLog ----------------------------------------------------------------------------


def figure_7(plan: Plan, scratch: Path) -> list[Row]:
    say(f"7: quest history with {plan.rows:,} JobLog rows")
    small_rows = 5_000
    big = _projects.project(scratch / "big")
    small = _projects.project(scratch / "small")
    envs = {"big": project_env(big), "small": project_env(small)}
    for name, folder, count in (("big", big, plan.rows), ("small", small, small_rows)):
        check([QUEST, "db", "upgrade"], env=envs[name], cwd=folder)
        check(
            [
                PYTHON,
                "-m",
                "bench.cases.history",
                "seed",
                str(folder / "quest.sqlite3"),
                str(count),
            ],
            env=bench_env(),
            cwd=folder,
        )
    database = big / "quest.sqlite3"
    command = [QUEST, "history", "script-042", "--limit", "20"]
    cli = interleaved(
        {
            "big": lambda r: timed(command, env=envs["big"], cwd=big).seconds * 1000,
            "small": lambda r: timed(command, env=envs["small"], cwd=small).seconds * 1000,
        },
        plan.cheap_rounds,
    )
    query_env = dict(envs["big"], PYTHONPATH=str(ROOT))
    inproc = interleaved(
        {
            "quest": lambda r: json.loads(
                check(
                    [PYTHON, "-m", "bench.cases.history", "quest", str(big), "script-042"],
                    env=query_env,
                    cwd=big,
                )
            )["ms"],
            "sqlite": lambda r: json.loads(
                check(
                    [PYTHON, "-m", "bench.cases.history", "sqlite", str(database), "script-042"],
                    env=query_env,
                    cwd=big,
                )
            )["ms"],
        },
        plan.cheap_rounds,
    )
    added = statistics.median(b - e for b, e in zip(cli["big"], cli["small"], strict=True))
    query = Stat.of(inproc["quest"])
    rows = f"{plan.rows:,}"
    return [
        Row(
            f"7 `quest history NAME --limit 20` wall, {rows} rows, vs the same on "
            f"{small_rows:,} rows (same output)",
            spread(Stat.of(cli["big"]), "ms"),
            spread(Stat.of(cli["small"]), "ms"),
            ratio_text(paired_ratio(cli["big"], cli["small"])),
            f"≤ 100 ms added by the rows (added: {added:+.0f} ms)",
            added <= 100,
        ),
        Row(
            f"7 the history query in-process (`Store.history`), {rows} rows, vs sqlite3",
            spread(query, "ms"),
            spread(Stat.of(inproc["sqlite"]), "ms"),
            ratio_text(paired_ratio(inproc["quest"], inproc["sqlite"])),
            "≤ 100 ms",
            query.median <= 100,
        ),
    ]


# -- 11: the dashboard ---------------------------------------------------------------------------


def _dashboard(command: list[str]) -> dict[str, Any]:
    """``python -m bench.dashboard ... --json``, its progress on our stderr; its JSON."""
    done = subprocess.run(
        [PYTHON, "-m", "bench.dashboard", *command, "--json"],
        env=bench_env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"bench: python -m bench.dashboard {' '.join(command)} failed")
    return dict(json.loads(done.stdout))


def figure_11(plan: Plan, scratch: Path) -> list[Row]:
    rounds = 5 if plan.quick else 20
    say(f"11: dashboard pages, {plan.rows:,} JobLog rows, {plan.scripts:,} scripts, x{rounds}")
    rows: list[Row] = []
    sizes = ["--rows", str(plan.rows), "--scripts", str(plan.scripts), "--rounds", str(rounds)]
    for backend, label in (("sqlite", "SQLite"), ("postgres", "PostgreSQL")):
        got = _dashboard(["pages", backend, *sizes])["pages"]
        for page, times in got.items():
            server = times["server"]
            own = [max(0.0, s - g) for s, g in zip(server, times["gc"], strict=True)]
            rows.append(
                Row(
                    f"11 dashboard {page}, {label}: server time",
                    spread(Stat.of(server), "ms"),
                    f"p95 {show(percentile(server, 95), 'ms')}; max less GC {show(max(own), 'ms')}",
                    "—",
                    "≤ 150 ms (max)",
                    max(server) <= 150,
                )
            )
    found = _dashboard(["imports"])
    loaded = sorted({*found["run"], *found["serve"]})
    rows.append(
        Row(
            "11 dashboard modules (quest.dashboard, starlette, jinja2, anyio, ...) loaded by "
            "`quest run noop` and by `quest serve` running a script",
            ", ".join(loaded) or "none",
            f"{found['run_count'][0]} / {found['serve_count'][0]} modules in all",
            "—",
            "none",
            not loaded,
        )
    )
    return rows


FIGURES = {
    "1": figure_1,
    "2": figure_2,
    "3": figure_3,
    "4": figure_4,
    "5": figure_5,
    "6": figure_6,
    "7": figure_7,
    "8": _queues.figure_8,
    "9": _queues.figure_9,
    "10": _queues.figure_10,
    "11": figure_11,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Fewer runs and shorter windows; finishes in under 10 minutes.",
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"Comma-separated figures to run (e.g. 1,2; of {','.join(FIGURES)}).",
    )
    args = parser.parse_args()
    plan = Plan.make(args.quick)
    wanted = [f.strip() for f in args.only.split(",") if f.strip()] or list(FIGURES)
    unknown = [f for f in wanted if f not in FIGURES]
    if unknown:
        parser.error(f"no figure {', '.join(unknown)}; the figures are {', '.join(FIGURES)}")
    source = quest_source()
    if not source.is_relative_to(ROOT):
        raise SystemExit(
            f"bench: the bench venv imports quest from {source}, not from this checkout ({ROOT}); "
            "remove bench/.work/venv and run again"
        )
    began = time.monotonic()
    header = ["## quest benchmarks", "", *machine(), f"- {plan.describe()}", ""]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="quest-bench-") as tmp:
        scratch = Path(tmp)
        for key in wanted:
            rows += FIGURES[key](plan, scratch)
    took = time.monotonic() - began
    print("\n".join(header))
    print(table(rows))
    print()
    missed = [r for r in rows if r.met is False]
    print(
        f"Medians over interleaved rounds, (min–max) in brackets; ratios are the median of "  # noqa: RUF001
        f"per-round ratios quest/comparison. Took {took:.0f} s. "
        + (f"{len(missed)} target(s) missed." if missed else "Every target met.")
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
