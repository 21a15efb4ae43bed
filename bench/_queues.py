"""Figures 8-10: draining a queue of enqueued runs, and enqueue -> start from another process.

The peers run as shipped, in processes of their own: procrastinate's worker on PostgreSQL,
huey's ``huey_consumer`` on SQLite. Every contender of every round gets a fresh database.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from . import _projects
from ._lib import (
    HUEY_CONSUMER,
    PROCRASTINATE,
    PYTHON,
    QUEST,
    ROOT,
    Row,
    Stat,
    bench_env,
    check,
    interleaved,
    isolation_cost,
    isolation_label,
    paired_ratio,
    percentile,
    project_env,
    ratio_text,
    say,
    serve_command,
    show,
    side_by_side,
    spread,
    stop,
    stop_all,
)

if TYPE_CHECKING:
    from ._suite import Plan

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
PROCRASTINATE_APP = "bench.cases.peer_procrastinate.app"
HUEY_APP = "bench.cases.peer_huey.huey"
# quest's JobLog states that end a run other than success (a drained no-op should have none).
UNFINISHED = ("queued", "running")


# -- PostgreSQL ---------------------------------------------------------------------------------


def postgres_url() -> str:
    return os.environ.get("QUEST_BENCH_POSTGRES_URL") or POSTGRES_URL


def _admin(url: str) -> Any:
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise SystemExit(
            f"bench: cannot reach PostgreSQL at {url} ({exc}).\n"
            "Figures 8 and 10 need one: start it, or set QUEST_BENCH_POSTGRES_URL to a "
            "server where this user may CREATE DATABASE; or leave them out with --only."
        ) from None


@contextlib.contextmanager
def fresh_database(base: str, template: str | None = None) -> Iterator[str]:
    """A new database on *base*'s server, empty or a copy of *template* (a URL from this
    function), dropped afterwards; yields its URL."""
    name = f"quest_bench_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{urlsplit(template).path.lstrip("/")}"' if template else ""
    with _admin(base) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{copy}')
    parts = urlsplit(base)
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with _admin(base) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- watching a drain ---------------------------------------------------------------------------

# (succeeded, ended otherwise, instant the last one finished)
Progress = tuple[int, int, float | None]


def _quest_progress(rows: list[tuple[str, int, Any]]) -> Progress:
    done, bad, last = 0, 0, None
    for status, count, finished in rows:
        if status == "succeeded":
            done = count
            if isinstance(finished, str):
                finished = datetime.fromisoformat(finished).replace(tzinfo=UTC)
            last = finished.timestamp() if finished is not None else None
        elif status not in UNFINISHED:
            bad += count
    return done, bad, last


JOBLOG_PROGRESS = (
    "SELECT status, count(*), max(finished_at) FROM quest_job_log"
    " WHERE name = 'noop' GROUP BY status"
)


def quest_sqlite_watch(database: Path) -> Callable[[], Progress]:
    def progress() -> Progress:
        connection = sqlite3.connect(str(database), timeout=30)
        try:
            return _quest_progress(connection.execute(JOBLOG_PROGRESS).fetchall())
        finally:
            connection.close()

    return progress


def quest_postgres_watch(url: str) -> Callable[[], Progress]:
    def progress() -> Progress:
        with _admin(url) as connection:
            return _quest_progress(connection.execute(JOBLOG_PROGRESS).fetchall())

    return progress


def procrastinate_watch(url: str) -> Callable[[], Progress]:
    def progress() -> Progress:
        with _admin(url) as connection:
            counts = dict(
                connection.execute(
                    "SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status"
                ).fetchall()
            )
            last = connection.execute(
                "SELECT max(at) FROM procrastinate_events WHERE type = 'succeeded'"
            ).fetchone()[0]
        bad = sum(v for k, v in counts.items() if k in ("failed", "cancelled", "aborted"))
        return counts.get("succeeded", 0), bad, last.timestamp() if last else None

    return progress


def huey_watch(done_file: Path) -> Callable[[], Progress]:
    def progress() -> Progress:
        try:
            instant, count = done_file.read_text().split()
        except (OSError, ValueError):
            return 0, 0, None
        return int(count), 0, float(instant)

    return progress


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def drain(
    label: str,
    consumers: list[list[str]],
    *,
    env: dict[str, str],
    cwd: Path,
    runs: int,
    progress: Callable[[], Progress],
) -> float:
    """Start *consumers* together on a filled queue; runs per second from their start until
    the last run finished (that instant read from the database)."""
    logs: list[IO[bytes]] = []
    processes: list[subprocess.Popen[bytes]] = []
    deadline = time.monotonic() + max(120.0, runs / 10)
    began = time.time()
    try:
        for i, command in enumerate(consumers):
            log = (cwd / f"consumer-{i}.log").open("wb")
            logs.append(log)
            processes.append(
                subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
            )
        while True:
            time.sleep(0.25)
            done, bad, last = progress()
            if bad:
                raise SystemExit(f"bench: {label}: {bad} runs did not succeed")
            if done >= runs and last is not None:
                break
            for i, process in enumerate(processes):
                if process.poll() is not None:
                    raise SystemExit(
                        f"bench: {label}: consumer {i} exited {process.returncode} after "
                        f"{done} of {runs} runs:\n{_tail(cwd / f'consumer-{i}.log')}"
                    )
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: {label}: only {done} of {runs} runs after the deadline")
    finally:
        stop_all(processes)
        for log in logs:
            log.close()
    return runs / (last - began)


def _enqueue(kind: str, runs: int, *rest: str, env: dict[str, str], cwd: Path) -> None:
    check([PYTHON, "-m", "bench.cases.queue", "enqueue", kind, str(runs), *rest], env=env, cwd=cwd)


def _quest_env(folder: Path, database_url: str | None = None) -> dict[str, str]:
    """A project's environment, with ``bench.cases`` importable (for the enqueueing process)."""
    env = project_env(folder)
    if database_url is not None:
        env["QUEST_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = str(ROOT)
    return env


def _serve_env(env: dict[str, str]) -> dict[str, str]:
    """What ``quest serve`` runs with: the project's environment, nothing on the path."""
    return {k: v for k, v in env.items() if k != "PYTHONPATH"}


# -- 8: drain, PostgreSQL -----------------------------------------------------------------------


def procrastinate_drain(
    base: str,
    folder: Path,
    runs: int,
    workers: int,
    concurrency: int,
    *,
    label: str,
    python: str = PYTHON,
    procrastinate: str = PROCRASTINATE,
) -> float:
    """*runs* no-ops deferred to a fresh database, then drained by *workers* procrastinate
    workers of *concurrency* each (*python* and *procrastinate*: the venv's executables);
    runs/s from spawning them to the last run's end."""
    folder.mkdir(parents=True)
    with fresh_database(base) as url:
        env = bench_env(BENCH_PG_DSN=url)
        check(
            [python, "-m", "bench.cases.queue", "enqueue", "procrastinate", str(runs)],
            env=env,
            cwd=folder,
        )
        worker = [procrastinate, "--app", PROCRASTINATE_APP, "worker"]
        rate = drain(
            label,
            [[*worker, "--concurrency", str(concurrency)]] * workers,
            env=env,
            cwd=folder,
            runs=runs,
            progress=procrastinate_watch(url),
        )
    shutil.rmtree(folder, ignore_errors=True)
    return rate


def figure_8(plan: Plan, scratch: Path) -> list[Row]:
    runs, rounds = plan.drain_runs, plan.drain_rounds
    base = postgres_url()
    _admin(base).close()
    say(f"8: drain {runs:,} enqueued runs on PostgreSQL x {rounds} rounds x 5 contenders")
    root = scratch / "drain-pg"

    def quest(serves: int, concurrency: int, isolation: str) -> Callable[[int], float]:
        def go(r: int) -> float:
            folder = _projects.project(
                root / f"quest-{serves}x{concurrency}-{isolation}-{r}", noop=_projects.QUEUED_NOOP
            )
            with fresh_database(base, template) as url:
                env = _quest_env(folder, url)
                _enqueue("quest", runs, str(folder), env=env, cwd=folder)
                rate = drain(
                    f"8 quest {serves}x{concurrency} {isolation}",
                    [serve_command(concurrency, isolation)] * serves,
                    env=_serve_env(env),
                    cwd=folder,
                    runs=runs,
                    progress=quest_postgres_watch(url),
                )
            shutil.rmtree(folder, ignore_errors=True)
            return rate

        return go

    def peer(workers: int, concurrency: int) -> Callable[[int], float]:
        def go(r: int) -> float:
            folder = root / f"procrastinate-{workers}x{concurrency}-{r}"
            return procrastinate_drain(
                base,
                folder,
                runs,
                workers,
                concurrency,
                label=f"8 procrastinate {workers}x{concurrency}",
            )

        return go

    with fresh_database(base) as template:
        # Each round's quest database is a copy of this upgraded one (`CREATE DATABASE ...
        # TEMPLATE`): the same tables as `quest db upgrade` makes, without its seconds per copy.
        folder = _projects.project(root / "template", noop=_projects.QUEUED_NOOP)
        check([QUEST, "db", "upgrade"], env=_serve_env(_quest_env(folder, template)), cwd=folder)
        got = interleaved(
            {
                "quest-1x4": quest(1, 4, "process"),
                "peer-1x4": peer(1, 4),
                "quest-3x2": quest(3, 2, "process"),
                "peer-3x2": peer(3, 2),
                "thread-1x4": quest(1, 4, "thread"),
            },
            rounds,
        )
    one = paired_ratio(got["quest-1x4"], got["peer-1x4"])
    three = paired_ratio(got["quest-3x2"], got["peer-3x2"])
    n = f"{runs:,}"
    mode = isolation_label("process")
    return [
        Row(
            f"8 drain of {n} enqueued no-op runs, PostgreSQL, runs/s: 1 `quest serve "
            f"--concurrency 4` ({mode}) vs 1 `procrastinate worker --concurrency 4`",
            spread(Stat.of(got["quest-1x4"]), "/s"),
            spread(Stat.of(got["peer-1x4"]), "/s"),
            ratio_text(one),
            "≥ 2x",
            one >= 2.0,
        ),
        Row(
            "8 drain, PostgreSQL: 3 serves with `--concurrency 2` vs 3 procrastinate workers "
            "with `--concurrency 2`",
            spread(Stat.of(got["quest-3x2"]), "/s"),
            spread(Stat.of(got["peer-3x2"]), "/s"),
            ratio_text(three),
            "≥ 2x",
            three >= 2.0,
        ),
        side_by_side(
            f"8 drain, PostgreSQL, 1 serve, `--concurrency 4`: {isolation_cost()}",
            got["quest-1x4"],
            got["thread-1x4"],
            "/s",
        ),
    ]


# -- 9: drain, SQLite ---------------------------------------------------------------------------


def figure_9(plan: Plan, scratch: Path) -> list[Row]:
    runs, rounds = plan.drain_runs, plan.drain_rounds
    say(f"9: drain {runs:,} enqueued runs on SQLite x {rounds} rounds x 3 contenders")
    root = scratch / "drain-sqlite"

    def quest(isolation: str) -> Callable[[int], float]:
        def go(r: int) -> float:
            folder = _projects.project(root / f"quest-{isolation}-{r}", noop=_projects.QUEUED_NOOP)
            env = _quest_env(folder)
            check([QUEST, "db", "upgrade"], env=_serve_env(env), cwd=folder)
            _enqueue("quest", runs, str(folder), env=env, cwd=folder)
            rate = drain(
                f"9 quest {isolation}",
                [serve_command(4, isolation)],
                env=_serve_env(env),
                cwd=folder,
                runs=runs,
                progress=quest_sqlite_watch(folder / "quest.sqlite3"),
            )
            shutil.rmtree(folder, ignore_errors=True)
            return rate

        return go

    def huey(r: int) -> float:
        folder = root / f"huey-{r}"
        folder.mkdir(parents=True)
        done = folder / "done"
        env = bench_env(
            BENCH_HUEY_FILE=str(folder / "huey.db"),
            BENCH_HUEY_RUNS=str(runs),
            BENCH_HUEY_DONE=str(done),
        )
        _enqueue("huey", runs, env=env, cwd=folder)
        rate = drain(
            "9 huey",
            [[HUEY_CONSUMER, HUEY_APP, "-w", "4", "-k", "thread"]],
            env=env,
            cwd=folder,
            runs=runs,
            progress=huey_watch(done),
        )
        shutil.rmtree(folder, ignore_errors=True)
        return rate

    got = interleaved({"quest": quest("process"), "huey": huey, "thread": quest("thread")}, rounds)
    vs = paired_ratio(got["quest"], got["huey"])
    mode = isolation_label("process")
    return [
        Row(
            f"9 drain of {runs:,} enqueued no-op runs, SQLite, runs/s: `quest serve "
            f"--concurrency 4` ({mode}) vs huey `SqliteHuey` as shipped "
            "(`huey_consumer -w 4 -k thread`)",
            spread(Stat.of(got["quest"]), "/s"),
            spread(Stat.of(got["huey"]), "/s"),
            ratio_text(vs),
            "≥ 1x",
            vs >= 1.0,
        ),
        side_by_side(
            f"9 drain, SQLite, 1 serve, `--concurrency 4`: {isolation_cost()}",
            got["quest"],
            got["thread"],
            "/s",
        ),
    ]


# -- 10: enqueue -> start -----------------------------------------------------------------------


class Pinger:
    """A driver process that enqueues one run at a time, and the consumer that runs them."""

    def __init__(
        self,
        kind: str,
        consumer: list[str],
        *,
        env: dict[str, str],
        consumer_env: dict[str, str],
        cwd: Path,
        args: list[str],
    ) -> None:
        self.cwd = cwd
        self.driver = subprocess.Popen(
            [PYTHON, "-m", "bench.cases.queue", "ping", kind, *args],
            env=env,
            cwd=cwd,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        port = json.loads(self._line())["port"]
        self.log = (cwd / "consumer.log").open("wb")
        self.consumer = subprocess.Popen(
            consumer,
            env=dict(consumer_env, BENCH_PING_PORT=str(port)),
            cwd=cwd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def _line(self) -> str:
        assert self.driver.stdout is not None
        line = self.driver.stdout.readline()
        if not line:
            raise SystemExit(f"bench: 10: the enqueueing driver exited {self.driver.wait()}")
        return line

    def once(self) -> float:
        """Milliseconds from enqueue (in the driver) to the run's first line (in the consumer)."""
        assert self.driver.stdin is not None
        self.driver.stdin.write("go\n")
        self.driver.stdin.flush()
        got = json.loads(self._line())
        if "error" in got:
            log = _tail(self.cwd / "consumer.log")
            raise SystemExit(f"bench: 10: {got['error']}; the consumer's log:\n{log}")
        return float(got["ms"])

    def close(self) -> None:
        if self.driver.stdin is not None:
            self.driver.stdin.close()
        stop(self.driver)
        stop(self.consumer)
        self.log.close()


def figure_10(plan: Plan, scratch: Path) -> list[Row]:
    samples = plan.pings
    base = postgres_url()
    _admin(base).close()
    say(f"10: enqueue -> start, {samples} runs one at a time x 3 contenders")
    root = scratch / "latency"
    with contextlib.ExitStack() as stack:
        pingers: dict[str, Pinger] = {}

        def quest(name: str, url: str | None) -> None:
            folder = _projects.project(root / name, ping=_projects.PING)
            env = _quest_env(folder, url)
            check([QUEST, "db", "upgrade"], env=_serve_env(env), cwd=folder)
            pinger = Pinger(
                "quest",
                serve_command(4, "process"),
                env=env,
                consumer_env=_serve_env(env),
                cwd=folder,
                args=[str(folder)],
            )
            stack.callback(pinger.close)
            pingers[name] = pinger

        quest("quest-pg", stack.enter_context(fresh_database(base)))
        url = stack.enter_context(fresh_database(base))
        folder = root / "procrastinate"
        folder.mkdir(parents=True)
        env = bench_env(BENCH_PG_DSN=url)
        _enqueue("procrastinate", 0, env=env, cwd=folder)
        peer = Pinger(
            "procrastinate",
            [PROCRASTINATE, "--app", PROCRASTINATE_APP, "worker", "--concurrency", "4"],
            env=env,
            consumer_env=env,
            cwd=folder,
            args=[],
        )
        stack.callback(peer.close)
        pingers["procrastinate"] = peer
        quest("quest-sqlite", None)
        for pinger in pingers.values():
            pinger.once()  # waits for the consumer to be up; not counted
        rng = random.Random(10)

        def one(pinger: Pinger) -> Callable[[int], float]:
            def go(r: int) -> float:
                time.sleep(rng.uniform(0.05, 1.05))
                return pinger.once()

            return go

        got = interleaved({k: one(p) for k, p in pingers.items()}, samples)
    pg, peer_ms, lite = got["quest-pg"], got["procrastinate"], got["quest-sqlite"]
    vs = Stat.of(pg).median / Stat.of(peer_ms).median
    mode = isolation_label("process")
    p90 = {k: percentile(v, 90) for k, v in got.items()}
    return [
        Row(
            f"10 enqueue → start, from another process, idle consumer ({samples} runs one at a "
            f"time), PostgreSQL: `quest serve` ({mode}) vs `procrastinate worker`, median",
            spread(Stat.of(pg), "ms"),
            spread(Stat.of(peer_ms), "ms"),
            ratio_text(vs),
            "≤ 2x",
            vs <= 2.0,
        ),
        Row(
            "10 enqueue → start, PostgreSQL, p90",
            show(p90["quest-pg"], "ms"),
            show(p90["procrastinate"], "ms"),
            ratio_text(p90["quest-pg"] / p90["procrastinate"]),
            "—",
            None,
        ),
        Row(
            f"10 enqueue → start, from another process, idle `quest serve` ({mode}), SQLite, "
            "median",
            spread(Stat.of(lite), "ms"),
            "—",
            "—",
            "≤ 50 ms",
            Stat.of(lite).median <= 50,
        ),
        Row(
            "10 enqueue → start, SQLite, p90", show(p90["quest-sqlite"], "ms"), "—", "—", "—", None
        ),
    ]
