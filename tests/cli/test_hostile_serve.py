"""``quest serve`` against hostile scripts and operators: what once broke the supervisor.

Each test starts the real command on a throwaway project and reads the JobLog. Waiting here is
waiting on other processes: the database is polled with a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

import psutil
import pytest
from test_engine import project_on
from test_serve_process import QUEST, Project, Served, poll

from quest.enums import RunStatus

pytestmark = pytest.mark.slow

FORKER = """\
    import os
    import time

    from quest import Input, script

    @script(
        quest={"timeout": "2 seconds", "without_overlapping": False},
        inputs={"then": Input(str, default="sleep"), "mark": Input(str, default="")},
    )
    def forker(inputs, ctx):
        child = os.fork()
        if child == 0:
            # A child that would outlive the worker, holding a copy of every descriptor it had.
            with open(inputs.mark + ".tmp", "w") as out:
                out.write(str(os.getpid()))
            os.rename(inputs.mark + ".tmp", inputs.mark)
            time.sleep(60)
            os._exit(0)
        while not os.path.exists(inputs.mark):
            time.sleep(0.01)
        if inputs.then == "exit":
            os._exit(3)
        time.sleep(60)
    """

QUICK = """\
    from quest import script

    @script(quest={"without_overlapping": False})
    def quick(inputs, ctx):
        return "done"
    """

SLEEPER = """\
    import os
    import time

    from quest import Input, script

    @script(
        quest={"attempts": 3, "without_overlapping": False},
        inputs={"seconds": Input(float, default=3.0), "mark": Input(str, default="")},
    )
    def sleeper(inputs, ctx):
        if inputs.mark:
            with open(inputs.mark, "w") as out:
                out.write(str(os.getpid()))
        time.sleep(inputs.seconds)
        return "slept"
    """


def serve_in_own_group(project: Project, *args: str) -> Served:
    """``quest serve`` as a service manager starts it: the leader of its own process group."""
    log = project.root / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [QUEST, "serve", *args],
            cwd=project.root,
            env=project.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    return Served(process, log)


def finished(project: Project, name: str, count: int = 1) -> list[dict[str, object]]:
    rows = project.rows(name)
    done = [r for r in rows if r["status"].finished]  # type: ignore[attr-defined]
    return done if len(done) >= count else []


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def kill_leftover(mark: Path) -> None:
    if mark.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(mark.read_text()), signal.SIGKILL)


@pytest.mark.parametrize("then", ["sleep", "exit"])
def test_a_worker_whose_forked_child_lives_on_is_still_seen_to_end(
    tmp_path: Path, database_url: str, served: list[Served], then: str
) -> None:
    """The child keeps the worker's channel open, so its end-of-file never comes: the run must
    still end (timed out, or the worker's exit code) instead of staying ``running``, and the
    child must end with its worker."""
    project = project_on(tmp_path, {"forker.py": FORKER}, database_url)
    mark = tmp_path / "child.pid"
    enqueued = project.quest("enqueue", "forker", "--then", then, "--mark", str(mark))
    assert enqueued.returncode == 0, enqueued.stderr
    serve = project.serve("--concurrency", "1")
    served.append(serve)
    try:
        [row] = poll(lambda: finished(project, "forker"), 30, "the run to end")
        poll(lambda: gone(int(mark.read_text())), 10, "the forked child to end with its worker")
    finally:
        kill_leftover(mark)
    if then == "sleep":
        assert row["status"] is RunStatus.timed_out, row
    else:
        assert row["status"] is RunStatus.failed, row
        assert row["error"] == "WorkerDied: worker process died: exit code 3"
    code, _ = serve.stop(signal.SIGTERM)
    assert code == 0, serve.output()


def test_a_killed_template_is_replaced_and_runs_go_on(tmp_path: Path, served: list[Served]) -> None:
    project = project_on(tmp_path, {"quick.py": QUICK})
    serve = project.serve("--concurrency", "2")
    served.append(serve)
    supervisor = psutil.Process(serve.process.pid)

    def template() -> psutil.Process | None:
        children = supervisor.children()
        return children[0] if len(children) == 1 and len(children[0].children()) >= 1 else None

    first = poll(template, 20, "the template and its warm worker")
    first.kill()
    first.wait(10)
    second = poll(
        lambda: (t := template()) is not None and t.pid != first.pid and t,
        20,
        "a new template with a warm worker",
    )
    assert second.pid != first.pid
    assert project.quest("enqueue", "quick").returncode == 0
    [row] = poll(lambda: finished(project, "quick"), 20, "the run to end")
    assert row["status"] is RunStatus.succeeded, row
    assert not [p for p in supervisor.children() if p.status() == psutil.STATUS_ZOMBIE]
    code, _ = serve.stop(signal.SIGTERM)
    assert code == 0, serve.output()


def test_a_template_killed_mid_run_ends_the_run_and_its_retry_runs(
    tmp_path: Path, served: list[Served]
) -> None:
    project = project_on(tmp_path, {"sleeper.py": SLEEPER})
    mark = tmp_path / "worker.pid"
    enqueued = project.quest("enqueue", "sleeper", "--seconds", "60", "--mark", str(mark))
    assert enqueued.returncode == 0
    serve = project.serve("--concurrency", "1", "--grace", "1")
    served.append(serve)
    worker = psutil.Process(int(poll(lambda: mark.exists() and mark.read_text(), 20, "a start")))
    mark.unlink()
    worker.parent().kill()  # the template: its workers die with it
    first = poll(
        lambda: [r for r in finished(project, "sleeper") if r["attempt"] == 1],
        20,
        "the first attempt to end",
    )
    assert first[0]["status"] is RunStatus.failed
    assert first[0]["error"] == "WorkerDied: worker process died: its template process died"
    poll(mark.exists, 20, "the retry to start in a new worker")
    code, _ = serve.stop(signal.SIGTERM, timeout=45)
    assert code == 0, serve.output()


def test_sigterm_to_serve_s_process_group_honours_the_grace_period(
    tmp_path: Path, database_url: str, served: list[Served]
) -> None:
    """systemd, ``timeout`` and ``kill -TERM -PGID`` signal every process of the group: the
    workers must not die of it, their runs get the grace period like any other."""
    project = project_on(tmp_path, {"sleeper.py": SLEEPER}, database_url)
    marks = [tmp_path / "short.pid", tmp_path / "long.pid"]
    for seconds, mark in zip(("2", "60"), marks, strict=True):
        enqueued = project.quest("enqueue", "sleeper", "--seconds", seconds, "--mark", str(mark))
        assert enqueued.returncode == 0
    serve = serve_in_own_group(project, "--concurrency", "2", "--grace", "5")
    served.append(serve)
    poll(lambda: all(mark.exists() for mark in marks), 20, "both runs to start")
    os.killpg(serve.process.pid, signal.SIGTERM)
    code = serve.process.wait(30)
    assert code == 0, serve.output()
    rows = {r["inputs"]["seconds"]: r for r in project.rows("sleeper")}
    assert len(project.rows("sleeper")) == 2, "nothing was retried"
    assert rows[2.0]["status"] is RunStatus.succeeded, rows[2.0]
    assert rows[60.0]["status"] is RunStatus.interrupted, rows[60.0]
    assert "WorkerDied" not in serve.output()


STREAMS = """\
    import os
    import sys

    from quest import Input, script

    @script(
        quest={"without_overlapping": False},
        inputs={"close": Input(bool, default=False), "token": Input(str, sensitive=True)},
    )
    def streams(inputs, ctx):
        if inputs.close:
            for fd in (0, 1, 2):
                os.close(fd)
            return "closed"
        print("printed", inputs.token)
        sys.stderr.write(f"written {inputs.token!r}\\n")
        return "printed"
    """

TOKEN = "hunter2-hunter2-hunter2"


def test_a_run_that_closes_its_streams_does_not_break_the_next_and_prints_are_scrubbed(
    tmp_path: Path, served: list[Served]
) -> None:
    """One worker: the first run closes descriptors 0-2, the second prints a sensitive input."""
    project = project_on(tmp_path, {"streams.py": STREAMS})
    closing = project.quest("enqueue", "streams", "--close", "--token", TOKEN)
    assert closing.returncode == 0, closing.stderr
    assert project.quest("enqueue", "streams", "--token", TOKEN).returncode == 0
    serve = project.serve("--concurrency", "1", "--max-runs-per-worker", "100")
    served.append(serve)
    rows = poll(lambda: finished(project, "streams", 2), 20, "both runs to end")
    assert [r["result"] for r in rows] == ["printed", "closed"], rows
    code, _ = serve.stop(signal.SIGTERM)
    assert code == 0
    output = serve.output()
    assert "printed ***" in output and "written '***'" in output, output
    assert TOKEN not in output


INTERRUPTER = """\
    from quest import script

    @script(quest={"attempts": 3, "without_overlapping": False})
    def interrupter(inputs, ctx):
        raise KeyboardInterrupt
    """


@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_a_script_raising_keyboard_interrupt_is_interrupted_in_either_isolation(
    tmp_path: Path, served: list[Served], isolation: str
) -> None:
    project = project_on(tmp_path, {"interrupter.py": INTERRUPTER})
    assert project.quest("enqueue", "interrupter").returncode == 0
    serve = project.serve("--concurrency", "1", "--isolation", isolation)
    served.append(serve)
    [row] = poll(lambda: finished(project, "interrupter"), 20, "the run to end")
    code, _ = serve.stop(signal.SIGTERM)
    assert code == 0, serve.output()
    assert row["status"] is RunStatus.interrupted, row
    assert len(project.rows("interrupter")) == 1, "an interrupted run is not retried"
