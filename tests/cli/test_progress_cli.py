"""Progress on the command line: ``quest run``'s bar and lines, ``quest watch``, list, show and
history.

The in-process tests use click's CliRunner on a throwaway project; the others start real
``quest run`` (under a pseudo-terminal) and ``quest serve`` processes, and wait on them by polling
the database with a deadline.
"""

from __future__ import annotations

import io
import json
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from rich.console import Console
from test_engine import project_on
from test_serve_process import QUEST, Project, Served, make_project, poll

from quest import Quest
from quest.cli import cli
from quest.cli._progress import RunProgress, elapsed_text, progress_text
from quest.store import Store, make_engine
from quest.testing import FrozenClock, temporary_quest

STEPS = """\
    from quest import Input, script

    @script(inputs={"steps": Input(int, default=20)})
    def steps(inputs, ctx):
        for step in range(1, inputs.steps + 1):
            ctx.clock.advance(1)
            ctx.progress(step, inputs.steps, f"item {step}")
        return inputs.steps
    """

QUIET = """\
    from quest import script

    @script
    def quiet(inputs, ctx):
        return "quiet"
    """

FIFTY = """\
    import time

    from quest import script

    @script
    def fifty(inputs, ctx):
        for step in range(1, 51):
            ctx.progress(step, 50, f"item {step}")
            ctx.log.info("step %d", step)
            time.sleep(0.02)
        return "ok"
    """

# Both stop at 25 of 50 until the test writes the file `release` in their working directory.
HELD = """\
    import os
    import time
    from pathlib import Path

    from quest import script

    @script(quest={"without_overlapping": False})
    def held(inputs, ctx):
        for step in range(1, 51):
            ctx.progress(step, 50, f"item {step}")
            if step == 25:
                Path("held.at-25").write_text(str(os.getpid()))
                while not Path("release").exists():
                    time.sleep(0.05)
        return "held"
    """

HELD_ASYNC = """\
    import asyncio
    from pathlib import Path

    from quest import script

    @script(quest={"without_overlapping": False})
    async def held_async(inputs, ctx):
        done = 0
        async for step in ctx.progress.iter(range(1, 51), message="rows"):
            done = step
            if step == 25:
                Path("held-async.at-25").write_text("25")
                while not Path("release").exists():
                    await asyncio.sleep(0.05)
        return done
    """


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Quest]:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "steps.py").write_text(_dedent(STEPS), encoding="utf-8")
    (folder / "quiet.py").write_text(_dedent(QUIET), encoding="utf-8")
    with temporary_quest(
        tmp_path, scripts_dir=folder, clock=FrozenClock("2026-03-01T12:00:00+00:00")
    ) as instance:
        yield instance


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text)


def invoke(app: Quest, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=app, env={"COLUMNS": "200"})


def running_run(app: Quest, name: str, **progress: Any) -> str:
    """Queue a run of *name* and claim it as a serve on host ``node-a`` would: it is running."""
    run_id = app.enqueue(name)
    store = app.store
    [row] = store.claim_queued(
        now=app.clock.now(), limit=1, owner_host="node-a", owner_pid=4242, run_id=run_id
    )
    assert row["id"] == run_id
    if progress:
        store.set_progress(run_id, now=app.clock.now(), **progress)
    return run_id


# -- quest run -------------------------------------------------------------------------------------


def test_quest_run_prints_a_line_per_tenth_when_stderr_is_not_a_terminal(app: Quest) -> None:
    result = invoke(app, "run", "steps")

    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.stderr.splitlines() if "progress" in line]
    tenths = [f"progress {10 * n}% {2 * n}/20 item {2 * n}" for n in range(1, 11)]
    assert lines == ["progress 5% 1/20 item 1", *tenths], result.stderr
    assert "━" not in result.output


def test_quest_run_of_a_script_without_progress_prints_no_progress(app: Quest) -> None:
    result = invoke(app, "run", "quiet")

    assert result.exit_code == 0, result.output
    assert "progress" not in result.output


def test_the_bar_is_drawn_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    display = RunProgress(terminal=True, console=console)
    for step in (1, 25, 50):
        display.update("a" * 32, {"current": step, "total": 50, "message": f"item {step}"})
    display.update("a" * 32, "not a reading")
    display.close()

    drawn = out.getvalue()
    assert "run aaaaaaaa" in drawn
    assert "━" in drawn
    assert "50/50" in drawn and "100%" in drawn and "item 50" in drawn


def test_quest_run_under_a_terminal_shows_a_live_bar(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"fifty.py": FIFTY})
    env = {**project.env, "COLUMNS": "120", "LINES": "40", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    main, other = pty.openpty()
    process = subprocess.Popen(
        [QUEST, "run", "fifty"], cwd=project.root, env=env, stdin=other, stdout=other, stderr=other
    )
    os.close(other)
    output = _read_all(main, process)

    assert process.returncode == 0, output
    assert "━" in output, output
    assert "50/50" in output and "item 50" in output
    assert "fifty succeeded" in output
    assert "step 50" in output, "log lines are printed above the bar"


def _read_all(fd: int, process: subprocess.Popen[bytes], timeout: float = 60) -> str:
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(fd)
        process.wait(10)
    return b"".join(chunks).decode("utf-8", "replace")


# -- watch, list, show, history in process --------------------------------------------------------


def test_watch_once_shows_a_running_run_with_its_node_and_progress(app: Quest) -> None:
    run_id = running_run(app, "steps", current=5, total=20, message="item 5")
    app.clock.advance(75)  # type: ignore[attr-defined]

    result = invoke(app, "watch", "--once")

    assert result.exit_code == 0, result.output
    assert "1 running" in result.output
    row = next(line for line in result.output.splitlines() if run_id[:8] in line)
    assert "steps" in row and "node-a:4242" in row
    assert "25% 5/20 item 5" in row
    assert "1m 15s" in row
    assert "—" in row, "no log tail without Store.log_tail"


def test_watch_shows_the_last_log_line_when_the_store_keeps_run_logs(
    app: Quest, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = running_run(app, "steps")
    asked: list[list[str]] = []

    def log_tail(self: Store, run_ids: list[str]) -> dict[str, str]:
        asked.append(list(run_ids))
        return {run_id: "first line\nINFO sent 12 of 20 emails"}

    monkeypatch.setattr(Store, "log_tail", log_tail, raising=False)
    result = invoke(app, "watch", "--once")

    assert result.exit_code == 0, result.output
    assert asked == [[run_id]]
    assert "INFO sent 12 of 20 emails" in result.output
    assert "first line" not in result.output
    row = next(line for line in result.output.splitlines() if run_id[:8] in line)
    assert "—" in row, "a run that reported no progress shows a dash"


def test_watch_once_with_nothing_running_says_so(app: Quest) -> None:
    result = invoke(app, "watch", "--once")

    assert result.exit_code == 0, result.output
    assert "No runs are running" in result.output


@pytest.mark.parametrize("interval", ["0", "-1", "soon"])
def test_watch_with_a_bad_interval_is_a_usage_error(app: Quest, interval: str) -> None:
    result = invoke(app, "watch", "--interval", interval)

    assert result.exit_code == 2, result.output
    assert "--interval" in result.output
    assert "Traceback" not in result.output


def test_list_and_show_show_a_running_runs_progress(app: Quest) -> None:
    run_id = running_run(app, "steps", current=15, total=20, message="item 15")

    table = invoke(app, "list")
    listed = json.loads(invoke(app, "list", "--json").stdout)
    shown = invoke(app, "show", "steps")
    shown_json = json.loads(invoke(app, "show", "steps", "--json").stdout)
    quiet = json.loads(invoke(app, "show", "quiet", "--json").stdout)

    assert table.exit_code == 0, table.output
    assert "Running" in table.output
    assert f"{run_id[:8]} 75% 15/20 item 15" in table.output
    steps = next(row for row in listed if row["name"] == "steps")
    [running] = steps["running"]
    assert running["run_id"] == run_id and running["node"] == "node-a:4242"
    assert running["progress"]["current"] == 15 and running["progress"]["percent"] == 75.0
    assert next(row for row in listed if row["name"] == "quiet")["running"] == []
    assert f"running:   run {run_id[:8]} on node-a:4242" in shown.output
    assert "75% 15/20 item 15" in shown.output
    assert shown_json["running"][0]["progress"]["message"] == "item 15"
    assert quiet["running"] == []


def test_list_without_running_runs_has_no_running_column(app: Quest) -> None:
    result = invoke(app, "list")

    assert result.exit_code == 0, result.output
    assert "Running" not in result.output


def test_history_json_gives_each_runs_progress(app: Quest) -> None:
    running = running_run(app, "steps", current=3, total=None, message=None)
    finished = invoke(app, "run", "steps", "--steps", "4")
    assert finished.exit_code == 0, finished.output
    quiet = invoke(app, "run", "quiet")
    assert quiet.exit_code == 0, quiet.output

    runs = {run["name"] + run["status"]: run for run in history(app)}

    assert runs["stepsrunning"]["run_id"] == running
    assert runs["stepsrunning"]["progress"]["current"] == 3
    assert runs["stepsrunning"]["progress"]["total"] is None
    assert runs["stepsrunning"]["progress"]["percent"] is None
    assert runs["stepssucceeded"]["progress"]["current"] == 4
    assert runs["stepssucceeded"]["progress"]["percent"] == 100.0
    assert runs["quietsucceeded"]["progress"] is None


def history(app: Quest) -> list[dict[str, Any]]:
    result = invoke(app, "history", "--json")
    assert result.exit_code == 0, result.output
    runs: list[dict[str, Any]] = json.loads(result.stdout)
    return runs


def test_progress_text_and_elapsed_text() -> None:
    assert progress_text(None) == "—"
    assert progress_text({"current": 12.0, "total": None, "message": None}) == "12 done"
    assert progress_text({"current": 1.5, "total": 4.0, "message": "x"}, bar=False) == (
        "38% 1.5/4 x"
    )
    assert progress_text({"current": 9.0, "total": 0.0, "message": None}) == "9 done"
    assert progress_text({"current": 80.0, "total": 40.0, "message": None}, bar=False) == (
        "100% 80/40"
    )
    assert [elapsed_text(s) for s in (-3, 42, 185, 7260, 3 * 86400 + 4 * 3600)] == [
        "0s",
        "42s",
        "3m 05s",
        "2h 01m",
        "3d 04h",
    ]


# -- under a real serve ---------------------------------------------------------------------------


def stored_progress(url: str, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    store = Store(make_engine(url))
    try:
        return store.progress_of(run_ids)
    finally:
        store.dispose()


@pytest.mark.slow
def test_watch_list_show_and_history_show_runs_in_worker_processes(
    tmp_path: Path, database_url: str, served: list[Served]
) -> None:
    project: Project = project_on(
        tmp_path, {"held.py": HELD, "held_async.py": HELD_ASYNC}, database_url
    )
    ids = {}
    for name in ("held", "held-async"):
        queued = project.quest("enqueue", name)
        assert queued.returncode == 0, queued.stderr
        ids[name] = queued.stdout.strip()
    serve = project.serve("--concurrency", "2")
    served.append(serve)
    poll(lambda: (tmp_path / "held.at-25").exists(), 30, "the sync run to reach 25")
    poll(lambda: (tmp_path / "held-async.at-25").exists(), 30, "the async run to reach 25")
    # The async run is at item 25 of progress.iter: 24 items are done.
    expected = {ids["held"]: 25, ids["held-async"]: 24}

    def at_hold() -> dict[str, dict[str, Any]] | None:
        found = stored_progress(project.url, [*ids.values()])
        return found if {k: p["current"] for k, p in found.items()} == expected else None

    progress = poll(at_hold, 15, "both runs' progress in the table")
    assert progress[ids["held"]]["message"] == "item 25"
    assert progress[ids["held-async"]]["message"] == "rows"
    worker = int((tmp_path / "held.at-25").read_text())
    assert worker != serve.process.pid, "the sync run executes in a worker process"

    watched = project.quest("watch", "--once")
    listed = project.quest("list")
    shown = project.quest("show", "held")
    runs = {run["name"]: run for run in project.history() if run["status"] == "running"}

    (tmp_path / "release").write_text("go")
    assert watched.returncode == 0, watched.stderr
    assert "2 running" in watched.stdout
    for name, run_id in ids.items():
        row = next(line for line in watched.stdout.splitlines() if run_id[:8] in line)
        assert name in row
        assert f":{serve.process.pid}" in row, "the node is the serve that owns the run"
        assert f"{2 * expected[run_id]}% {expected[run_id]}/50" in row
    assert listed.returncode == 0, listed.stderr
    assert "50% 25/50 item 25" in listed.stdout
    assert shown.returncode == 0, shown.stderr
    assert f"running:   run {ids['held'][:8]}" in shown.stdout
    assert "50% 25/50 item 25" in shown.stdout
    assert runs["held"]["progress"]["current"] == 25
    assert runs["held-async"]["progress"]["current"] == 24
    assert runs["held-async"]["progress"]["message"] == "rows"

    poll(
        lambda: (
            {r["status"] for r in project.history() if r["run_id"] in ids.values()} == {"succeeded"}
        ),
        30,
        "both runs to end",
    )
    code, _ = serve.stop()
    assert code == 0, serve.output()
    final = stored_progress(project.url, list(ids.values()))
    assert {p["current"] for p in final.values()} == {50}, "the last value before the end"
    assert {p["total"] for p in final.values()} == {50}


@pytest.mark.slow
def test_watch_refreshes_until_ctrl_c_and_exits_0(tmp_path: Path) -> None:
    project = make_project(tmp_path, {"fifty.py": FIFTY})
    upgraded = project.quest("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    main, other = pty.openpty()
    process = subprocess.Popen(
        [QUEST, "watch", "--interval", "0.2"],
        cwd=project.root,
        env={**project.env, "COLUMNS": "100"},
        stdin=other,
        stdout=other,
        stderr=other,
    )
    os.close(other)
    seen = b""
    deadline = time.monotonic() + 30
    while b"No runs are running" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            seen += os.read(main, 65536)
    process.send_signal(signal.SIGINT)
    output = seen.decode("utf-8", "replace") + _read_all(main, process)

    assert "No runs are running" in output
    assert process.returncode == 0, output
    assert "Traceback" not in output


def test_show_works_without_a_database_and_says_the_running_runs_are_unknown(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "quiet.py").write_text(_dedent(QUIET), encoding="utf-8")
    with temporary_quest(
        tmp_path, scripts_dir=folder, database_url="postgresql://nobody@127.0.0.1:1/nothing"
    ) as app:
        result = invoke(app, "show", "quiet")
        as_json = invoke(app, "show", "quiet", "--json")

    assert result.exit_code == 0, result.output
    assert "running:   unknown (the database cannot be read)" in result.output
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["running"] is None


def test_plain_lines_without_a_total_follow_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    display = RunProgress(terminal=False)
    for current, message in ((1, "reading"), (2, "reading"), (3, "reading"), (4, "writing")):
        display.update("b" * 32, {"current": current, "total": None, "message": message})
    display.close()

    lines = [line.strip() for line in capsys.readouterr().err.splitlines()]
    assert lines == ["progress 1 done reading", "progress 4 done writing"]
