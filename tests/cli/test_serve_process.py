"""Real ``quest serve`` processes on a throwaway project: the checks of the serve and queue issues.

Each test starts the command as a user would, lets it work for a few seconds, signals it and
reads the JobLog. Waiting here is waiting on another process: the database is polled with a
deadline.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy.exc import OperationalError

from quest.store import Store, make_engine

pytestmark = pytest.mark.slow

QUEST = str(Path(sys.executable).with_name("quest"))
SECRET = "s3cr3t-t0ken-4242"
T = TypeVar("T")

NOOP = """\
    from quest import script

    @script(quest={"interval": "1 second"})
    def noop(inputs, ctx):
        return "ok"
    """

SLOW = """\
    import time

    from quest import script

    @script(quest={"interval": "1 second", "without_overlapping": True})
    def slow(inputs, ctx):
        time.sleep(3)
        return "slept"
    """

EXPLODE = """\
    from quest import script

    @script(quest={"interval": "1 second", "without_overlapping": False})
    def explode(inputs, ctx):
        raise RuntimeError("boom")
    """


@dataclass
class Project:
    root: Path
    url: str
    env: dict[str, str]

    def quest(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [QUEST, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def serve(self, *args: str, name: str = "serve") -> Served:
        log = self.root / f"{name}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [QUEST, "serve", *args],
                cwd=self.root,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        return Served(process, log)

    def history(self) -> list[dict[str, Any]]:
        result = self.quest("history", "--json", "--limit", "1000")
        assert result.returncode == 0, result.stderr
        runs: list[dict[str, Any]] = json.loads(result.stdout)
        return runs

    def rows(self, name: str | None = None) -> list[dict[str, Any]]:
        store = Store(make_engine(self.url))
        try:
            return store.history(name, limit=None)
        except OperationalError:
            return []  # serve has not created the tables yet
        finally:
            store.dispose()


@dataclass
class Served:
    process: subprocess.Popen[str]
    log: Path

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 15) -> tuple[int, float]:
        """Signal the process; return its exit code and how long it took to exit."""
        began = time.monotonic()
        self.process.send_signal(signum)
        code = self.process.wait(timeout)
        return code, time.monotonic() - began

    def output(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def make_project(folder: Path, scripts: dict[str, str], **env: str) -> Project:
    (folder / "scripts").mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "shop"\nversion = "0"\n\n[tool.quest]\nscripts_dir = "scripts"\n'
        "models = false\n",
        encoding="utf-8",
    )
    for name, source in scripts.items():
        (folder / "scripts" / name).write_text(textwrap.dedent(source), encoding="utf-8")
    url = f"sqlite:///{folder / 'quest.sqlite3'}"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QUEST_")}
    environ.update({"QUEST_DATABASE_URL": url, "PYTHONUNBUFFERED": "1", **env})
    return Project(folder, url, environ)


def poll(condition: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


def assert_no_overlap(runs: list[dict[str, Any]]) -> None:
    spans = sorted((instant(r["started_at"]), instant(r["finished_at"])) for r in runs)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, f"runs overlap: one ended {end}, the next started {start}"


# -- serve ---------------------------------------------------------------------------------------


def test_the_serve_check(tmp_path: Path, served: list[Served]) -> None:
    """No-op and 3-second scripts every second; about 8 s of serve; SIGTERM."""
    project = make_project(tmp_path, {"noop.py": NOOP, "slow.py": SLOW})
    serve = project.serve("--grace", "10")
    served.append(serve)
    poll(lambda: project.rows("noop"), 10, "the first run")
    time.sleep(8)  # let it serve for a while
    code, took = serve.stop(signal.SIGTERM)

    assert code == 0, serve.output()
    assert took < 10, "exits within the grace period"
    runs = project.history()
    noop = [r for r in runs if r["name"] == "noop"]
    assert len([r for r in noop if r["status"] == "succeeded"]) >= 6
    slow = [r for r in runs if r["name"] == "slow"]
    ran = [r for r in slow if r["status"] == "succeeded"]
    skipped = [r for r in slow if r["status"] == "skipped"]
    assert ran and skipped
    assert all(r["reason"].startswith("overlap") for r in skipped)
    assert_no_overlap(ran)
    assert all(r["trigger"] == "scheduled" and r["scheduled_for"] for r in runs)
    assert not [r for r in runs if r["status"] == "running"]
    assert {r["status"] for r in runs} <= {"succeeded", "skipped"}


def test_two_serves_on_one_database_never_run_a_slot_twice(
    tmp_path: Path, served: list[Served]
) -> None:
    project = make_project(tmp_path, {"noop.py": NOOP, "slow.py": SLOW, "explode.py": EXPLODE})
    first, second = project.serve(name="first"), project.serve(name="second")
    served += [first, second]
    poll(lambda: project.rows("noop"), 10, "the first run")
    time.sleep(8)  # both serve side by side
    for serve in (first, second):
        serve.process.send_signal(signal.SIGTERM)
    codes = [first.process.wait(15), second.process.wait(15)]

    assert codes == [0, 0], first.output() + second.output()
    runs = project.history()
    slots = [(r["name"], r["scheduled_for"]) for r in runs]
    assert len(slots) == len(set(slots)), "a (name, scheduled_for) pair appears twice"
    owners = {r["owner_pid"] for r in runs}
    assert owners == {first.process.pid, second.process.pid}, "both serves took slots"
    assert len([r for r in runs if r["name"] == "noop" and r["status"] == "succeeded"]) >= 6
    assert_no_overlap([r for r in runs if r["name"] == "slow" and r["status"] == "succeeded"])
    failed = [r for r in runs if r["name"] == "explode"]
    assert len(failed) >= 6, "a script that raises never stops serve"
    assert {r["status"] for r in failed} == {"failed"}
    assert not [r for r in runs if r["status"] == "running"]


def test_sigint_stops_runs_still_going_after_the_grace_period(
    tmp_path: Path, served: list[Served]
) -> None:
    stuck = """\
        import time

        from quest import script

        @script(quest={"interval": "1 hour", "run_on_start": True})
        def stuck(inputs, ctx):
            time.sleep(60)
        """
    project = make_project(tmp_path, {"stuck.py": stuck})
    serve = project.serve("--grace", "1")
    served.append(serve)
    poll(lambda: project.rows("stuck"), 10, "the run to start")
    code, took = serve.stop(signal.SIGINT)
    assert code == 0, serve.output()
    assert took < 5, "about the grace period, not more"
    [row] = project.rows("stuck")
    assert row["status"].value == "interrupted"
    assert row["finished_at"] is not None
    assert "interrupted" in serve.output()


def test_quest_run_of_a_script_in_progress(tmp_path: Path) -> None:
    busy = """\
        import time
        from pathlib import Path

        from quest import script

        @script(quest={"without_overlapping": True})
        def busy(inputs, ctx):
            release = Path(__file__).resolve().parent.parent / "release"
            deadline = time.monotonic() + 60
            while not release.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            return "done"
        """
    project = make_project(tmp_path, {"busy.py": busy})

    def start(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [QUEST, "run", "busy", *args],
            cwd=project.root,
            env=project.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    first = start()
    waiting: subprocess.Popen[str] | None = None
    try:
        poll(lambda: project.rows("busy"), 30, "the first run to start")
        refused = project.quest("run", "busy")
        assert refused.returncode == 1
        assert "busy is already running" in refused.stderr
        assert "--wait" in refused.stderr
        waiting = start("--wait")
        (project.root / "release").touch()
        _, err = waiting.communicate(timeout=60)
        assert waiting.returncode == 0, err
    finally:
        (project.root / "release").touch()
        first.communicate(timeout=60)
        if waiting is not None and waiting.poll() is None:
            waiting.kill()
    assert first.returncode == 0
    runs = project.rows("busy")
    assert [r["status"].value for r in runs] == ["succeeded", "succeeded"]
    assert runs[0]["started_at"] >= runs[1]["finished_at"]


def test_an_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    project = make_project(
        tmp_path, {"noop.py": NOOP}, QUEST_DATABASE_URL="postgresql://postgres@127.0.0.1:1/x"
    )
    result = project.quest("serve", timeout=20)
    assert result.returncode != 0
    assert "cannot reach the database" in result.stderr
    assert "127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


# -- the queue -----------------------------------------------------------------------------------


FLAKY = """\
    from quest import Input, script

    @script(
        quest={"attempts": 3, "backoff": {"type": "fixed", "delay": "1 second"}},
        inputs={"token": Input(str, sensitive=True)},
    )
    def flaky(inputs, ctx):
        ctx.log.info("attempt %d", ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"refused {inputs.token}")
        return {"attempt": ctx.attempt}
    """

DISCARDED = """\
    from quest import Discard, script

    @script(quest={"attempts": 5})
    def discarded(inputs, ctx):
        raise Discard("the customer was deleted")
    """

WORK = """\
    import time

    from quest import Input, script

    @script(quest={"without_overlapping": False}, inputs={"n": Input(int)})
    def work(inputs, ctx):
        with open(ctx.settings.root / "executions.txt", "a") as out:
            print(inputs.n, file=out)
        time.sleep(0.05)
        return inputs.n
    """

LONG_FIRST = """\
    import time

    from quest import script

    @script(quest={"attempts": 2, "backoff": {"delay": "1 second"}})
    def long_first(inputs, ctx):
        if ctx.attempt == 1:
            time.sleep(60)
        return {"attempt": ctx.attempt}
    """


def test_the_queue_check_retries_and_discard(tmp_path: Path, served: list[Served]) -> None:
    project = make_project(tmp_path, {"flaky.py": FLAKY, "discarded.py": DISCARDED})
    queued = project.quest("enqueue", "flaky", "--token", SECRET)
    assert queued.returncode == 0, queued.stderr
    assert project.quest("enqueue", "discarded").returncode == 0
    serve = project.serve()
    served.append(serve)

    def settled() -> bool:
        statuses = {r["status"].value for r in project.rows("flaky")}
        return "succeeded" in statuses and bool(project.rows("discarded"))

    poll(settled, 15, "the third attempt")
    assert serve.stop()[0] == 0

    runs = project.history()
    flaky = sorted((r for r in runs if r["name"] == "flaky"), key=lambda r: r["attempt"])
    assert [(r["attempt"], r["trigger"], r["status"]) for r in flaky] == [
        (1, "enqueued", "failed"),
        (2, "retry", "failed"),
        (3, "retry", "succeeded"),
    ]
    assert {r["root_id"] for r in flaky} == {queued.stdout.strip()}
    assert flaky[0]["error"] == "ConnectionError: refused ***"
    [discarded] = [r for r in runs if r["name"] == "discarded"]
    assert discarded["status"] == "discarded"
    assert discarded["attempt"] == 1

    assert SECRET not in json.dumps(runs)
    assert SECRET not in serve.output()
    assert SECRET not in queued.stdout + queued.stderr


def enqueue_work(project: Project, count: int) -> set[str]:
    """Queue *count* runs of ``work`` (``n`` from 0), as a web app would; their ids."""
    from quest.app import Quest
    from quest.config import load_settings

    app = Quest(load_settings(project.root, environ=project.env))
    try:
        return {app.enqueue("work", {"n": n}) for n in range(count)}
    finally:
        app.close()


def serve_until(project: Project, served: list[Served], succeeded: int, *args: str) -> None:
    """Run ``quest serve *args`` until *succeeded* runs of ``work`` have succeeded, then stop it
    with SIGTERM (exit 0)."""
    serve = project.serve(*args)
    served.append(serve)
    poll(
        lambda: sum(r["status"].value == "succeeded" for r in project.rows("work")) >= succeeded,
        20,
        f"{succeeded} succeeded runs",
    )
    assert serve.stop()[0] == 0


def test_fifty_queued_runs_drained_with_concurrency_4(tmp_path: Path, served: list[Served]) -> None:
    project = make_project(tmp_path, {"work.py": WORK})
    ids = enqueue_work(project, 50)
    serve_until(project, served, 50, "--concurrency", "4")

    runs = project.history()
    assert len(runs) == 50
    assert {r["run_id"] for r in runs} == ids
    assert {r["status"] for r in runs} == {"succeeded"}
    assert sorted(r["result"] for r in runs) == list(range(50))
    executions = (project.root / "executions.txt").read_text().split()
    assert sorted(map(int, executions)) == list(range(50)), "each run executed exactly once"
    edges = sorted(
        [(instant(r["started_at"]), 1) for r in runs]
        + [(instant(r["finished_at"]), -1) for r in runs]
    )
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert 1 < peak <= 4


def test_a_grace_0_stop_mid_drain_leaves_nothing_running_and_loses_no_run(
    tmp_path: Path, served: list[Served]
) -> None:
    """``--grace 0`` stops a draining serve at once: the runs it had begun are recorded
    ``interrupted``, the runs it had claimed but not begun are back in the queue, nothing is left
    ``running``; the next serve runs every queued run once."""
    project = make_project(tmp_path, {"work.py": WORK})
    ids = enqueue_work(project, 120)
    serve_until(project, served, 8, "--concurrency", "4", "--grace", "0")
    statuses = [r["status"].value for r in project.rows("work")]
    assert "running" not in statuses
    assert statuses.count("interrupted") <= 4
    assert "queued" in statuses

    second = project.serve("--concurrency", "4", name="second")
    served.append(second)
    poll(
        lambda: all(r["status"].value != "queued" for r in project.rows("work")),
        30,
        "the queue drained",
    )
    assert second.stop()[0] == 0
    runs = project.rows("work")
    assert {r["id"] for r in runs} == ids
    assert {r["status"].value for r in runs} <= {"succeeded", "interrupted"}
    executions = sorted(map(int, (project.root / "executions.txt").read_text().split()))
    assert len(executions) == len(set(executions)), "no run executed twice"
    succeeded = {r["inputs"]["n"] for r in runs if r["status"].value == "succeeded"}
    assert succeeded <= set(executions)
    assert len(succeeded) >= 120 - 4


def test_a_killed_serve_s_run_is_abandoned_and_retried_by_the_next(
    tmp_path: Path, served: list[Served]
) -> None:
    project = make_project(tmp_path, {"long_first.py": LONG_FIRST}, QUEST_LEASE_TTL="3")
    queued = project.quest("enqueue", "long-first")
    assert queued.returncode == 0, queued.stderr
    first = project.serve(name="first")
    served.append(first)
    poll(
        lambda: [r for r in project.rows("long-first") if r["status"].value == "running"],
        10,
        "the first attempt to start",
    )
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)

    second = project.serve(name="second")
    served.append(second)
    poll(
        lambda: [r for r in project.rows("long-first") if r["status"].value == "succeeded"],
        15,
        "the retry to succeed",
    )
    assert second.stop()[0] == 0

    runs = sorted(project.history(), key=lambda r: r["attempt"])
    assert [(r["attempt"], r["trigger"], r["status"]) for r in runs] == [
        (1, "enqueued", "abandoned"),
        (2, "retry", "succeeded"),
    ]
    assert runs[0]["owner_pid"] == first.process.pid
    assert "stopped heartbeating" in runs[0]["error"]
    assert runs[1]["owner_pid"] == second.process.pid
    assert runs[1]["root_id"] == runs[0]["run_id"]
    assert "abandoned long-first" in second.output()
