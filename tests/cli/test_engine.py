"""``quest serve`` as a supervisor of worker processes: crashes, timeouts, recycling, queues.

Every test starts the real command on a throwaway project, on SQLite and on PostgreSQL, and reads
the JobLog. Waiting here is waiting on other processes: the database is polled with a deadline.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest
from test_serve_process import Project, Served, make_project, poll

from quest.app import Quest
from quest.config import load_settings
from quest.enums import RunStatus

pytestmark = pytest.mark.slow

TICK = """\
    from quest import script

    @script(quest={"interval": "1 second"})
    def tick(inputs, ctx):
        return "tock"
    """

EXITER = """\
    import os

    from quest import script

    @script(quest={"interval": "2 seconds"})
    def exiter(inputs, ctx):
        os._exit(1)
    """

SEGFAULT = """\
    import ctypes

    from quest import script

    @script(quest={"interval": "3 seconds"})
    def segfault(inputs, ctx):
        ctypes.string_at(0)
    """

SLEEPER = """\
    import os
    import time
    from pathlib import Path

    from quest import Input, script

    @script(
        quest={"attempts": 2},
        inputs={"seconds": Input(float, default=30.0), "mark": Input(str, default="")},
    )
    def sleeper(inputs, ctx):
        if inputs.mark:
            Path(inputs.mark).write_text(f"{os.getpid()}")
        time.sleep(inputs.seconds)
        return os.getpid()
    """

PID = """\
    import os

    from quest import script

    @script(quest={"without_overlapping": False})
    def pid(inputs, ctx):
        return os.getpid()
    """


def project_on(folder: Path, scripts: dict[str, str], url: str | None = None) -> Project:
    """A throwaway project on *url* (SQLite in *folder* by default), its tables created."""
    project = make_project(folder, scripts, **({"QUEST_DATABASE_URL": url} if url else {}))
    project.url = url or project.url
    upgraded = project.quest("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    return project


def quest_for(project_root: Path, url: str) -> Quest:
    settings = load_settings(project_root, environ={"QUEST_DATABASE_URL": url})
    return Quest(settings)


def statuses(rows: list[dict[str, object]]) -> set[str]:
    return {str(row["status"]) for row in rows}


def test_a_script_that_kills_its_worker_never_stops_serve(
    tmp_path: Path, database_url: str, served: list[Served]
) -> None:
    """The engine issue's check: a tick, an ``os._exit(1)`` and a segfault, 10 s of serve."""
    project = project_on(
        tmp_path, {"tick.py": TICK, "exiter.py": EXITER, "segfault.py": SEGFAULT}, database_url
    )
    serve = project.serve()
    served.append(serve)
    poll(lambda: project.rows("segfault"), 15, "the segfaulting script's first run")
    time.sleep(10)  # let it serve, crashes and all
    code, _ = serve.stop(signal.SIGTERM)

    assert code == 0, serve.output()
    rows = project.rows()
    assert not [r for r in rows if r["status"] is RunStatus.running], "nothing left running"
    ticks = [r for r in project.rows("tick") if r["status"] is RunStatus.succeeded]
    assert len(ticks) >= 8, serve.output()
    exits = project.rows("exiter")
    assert exits and {r["status"] for r in exits} == {RunStatus.failed}
    assert {r["error"] for r in exits} == {"WorkerDied: worker process died: exit code 1"}
    segfaults = project.rows("segfault")
    assert segfaults and {r["status"] for r in segfaults} == {RunStatus.failed}
    assert {r["error"] for r in segfaults} == {"WorkerDied: worker process died: SIGSEGV"}
    assert "Traceback" not in serve.output()


def test_a_worker_killed_mid_run_is_recorded_and_retried(
    tmp_path: Path, database_url: str, served: list[Served]
) -> None:
    project = project_on(tmp_path, {"sleeper.py": SLEEPER}, database_url)
    mark = tmp_path / "worker.pid"
    enqueued = project.quest("enqueue", "sleeper", "--mark", str(mark))
    assert enqueued.returncode == 0, enqueued.stderr
    serve = project.serve("--grace", "1")
    served.append(serve)
    worker = int(poll(lambda: mark.exists() and mark.read_text(), 15, "the run to start"))
    assert worker != serve.process.pid, "the run executes in a worker process"
    mark.unlink()
    os.kill(worker, signal.SIGKILL)

    def retried() -> list[dict[str, object]]:
        rows = project.rows("sleeper")
        return [r for r in rows if r["attempt"] == 2 and r["status"] is RunStatus.running]

    poll(retried, 15, "the second attempt to start")
    second = int(poll(lambda: mark.exists() and mark.read_text(), 15, "the retry's worker"))
    assert second != worker, "a fresh worker took the dead one's place"
    [first] = [r for r in project.rows("sleeper") if r["attempt"] == 1]
    assert first["status"] is RunStatus.failed
    assert first["error"] == "WorkerDied: worker process died: SIGKILL"
    code, _ = serve.stop(signal.SIGTERM, timeout=45)
    assert code == 0
    assert serve.process.poll() == 0


def test_memory_errors_and_forks_inside_a_script(
    tmp_path: Path, database_url: str, served: list[Served]
) -> None:
    hungry = """\
        from quest import script

        @script()
        def hungry(inputs, ctx):
            return len(bytearray(1 << 60))
        """
    forks = """\
        import os

        from quest import script

        @script(quest={"without_overlapping": False})
        def forks(inputs, ctx):
            child = os.fork()
            if child == 0:
                return "from the child"
            os.waitpid(child, 0)
            return "from the parent"
        """
    project = project_on(tmp_path, {"hungry.py": hungry, "forks.py": forks}, database_url)
    for name in ("hungry", "forks", "forks"):
        assert project.quest("enqueue", name).returncode == 0
    serve = project.serve("--concurrency", "2")
    served.append(serve)

    def ended() -> bool:
        rows = project.rows()
        return len(rows) == 3 and all(r["status"].finished for r in rows)

    poll(ended, 20, "the three runs to end")
    code, _ = serve.stop(signal.SIGTERM)
    assert code == 0, serve.output()
    [hungry_row] = project.rows("hungry")
    assert hungry_row["status"] is RunStatus.failed
    assert hungry_row["error"].startswith("MemoryError")
    fork_rows = project.rows("forks")
    assert len(fork_rows) == 2, "a fork inside a script does not record a second run"
    assert [r["result"] for r in fork_rows] == ["from the parent", "from the parent"]


def test_enqueued_runs_run_in_parallel(tmp_path: Path, served: list[Served]) -> None:
    """The engine issue's check: 40 runs of a 0.5 s script under --concurrency 4 overlap."""
    project = project_on(tmp_path, {"sleeper.py": SLEEPER})
    app = quest_for(tmp_path, project.url)
    try:
        for _ in range(40):
            app.enqueue("sleeper", {"seconds": 0.5})
    finally:
        app.close()
    serve = project.serve("--concurrency", "4")
    served.append(serve)

    def drained() -> bool:
        rows = project.rows("sleeper")
        return len(rows) == 40 and all(r["status"] is RunStatus.succeeded for r in rows)

    poll(drained, 60, "the 40 runs to succeed")
    code, _ = serve.stop(signal.SIGTERM)
    assert code == 0
    rows = project.rows("sleeper")
    events: list[tuple[datetime, int]] = []
    for row in rows:
        events += [(row["started_at"], 1), (row["finished_at"], -1)]
    running = most = 0
    for _, change in sorted(events, key=lambda e: (e[0], e[1])):
        running += change
        most = max(most, running)
    assert most >= 3, f"at most {most} ran at once"
    assert most <= 4, "never more than --concurrency"
    assert len({r["result"] for r in rows}) >= 3, "several worker processes took runs"


def test_a_timeout_is_enforced_on_sync_and_async_scripts(
    tmp_path: Path, served: list[Served]
) -> None:
    stuck_sync = """\
        import time

        from quest import script

        @script(quest={"timeout": "1 second"})
        def stuck_sync(inputs, ctx):
            time.sleep(60)
        """
    stuck_async = """\
        import asyncio

        from quest import script

        @script(quest={"timeout": "1 second"})
        async def stuck_async(inputs, ctx):
            await asyncio.sleep(60)
        """
    project = make_project(
        tmp_path, {"stuck_sync.py": stuck_sync, "stuck_async.py": stuck_async, "pid.py": PID}
    )
    for name in ("stuck-sync", "stuck-async", "pid"):
        assert project.quest("enqueue", name).returncode == 0
    serve = project.serve("--concurrency", "1")
    served.append(serve)

    def ended() -> bool:
        rows = project.rows()
        return len(rows) == 3 and all(r["status"].finished for r in rows)

    poll(ended, 30, "the runs to end")
    code, _ = serve.stop(signal.SIGTERM)
    assert code == 0
    by_name = {r["name"]: r for r in project.rows()}
    for name in ("stuck-sync", "stuck-async"):
        assert by_name[name]["status"] is RunStatus.timed_out, by_name[name]
        assert by_name[name]["duration_ms"] < 10_000
    assert by_name["pid"]["status"] is RunStatus.succeeded


def test_workers_are_recycled_after_max_runs(tmp_path: Path, served: list[Served]) -> None:
    project = project_on(tmp_path, {"pid.py": PID})
    app = quest_for(tmp_path, project.url)
    try:
        ids = [app.enqueue("pid") for _ in range(6)]
    finally:
        app.close()
    serve = project.serve("--concurrency", "1", "--max-runs-per-worker", "2")
    served.append(serve)
    poll(
        lambda: len([r for r in project.rows("pid") if r["status"] is RunStatus.succeeded]) == 6,
        30,
        "six runs",
    )
    serve.stop(signal.SIGTERM)
    results = {r["id"]: r["result"] for r in project.rows("pid")}
    pids = [results[run_id] for run_id in ids]
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5], pids
    assert len(set(pids)) == 3, "a fresh worker every two runs"


def test_a_worker_above_its_memory_limit_is_replaced(tmp_path: Path, served: list[Served]) -> None:
    hog = """\
        import os

        from quest import script

        KEPT = []

        @script(quest={"without_overlapping": False})
        def hog(inputs, ctx):
            KEPT.append(bytearray(150 * 1024 * 1024))
            return os.getpid()
        """
    project = make_project(tmp_path, {"hog.py": hog, "pid.py": PID})
    app = quest_for(tmp_path, project.url)
    try:
        first = app.enqueue("pid")
        hog_id = app.enqueue("hog")
    finally:
        app.close()
    serve = project.serve("--concurrency", "1", "--max-worker-memory", "120MB")
    served.append(serve)
    poll(
        lambda: (
            len(project.rows()) == 2
            and all(r["status"] is RunStatus.succeeded for r in project.rows())
        ),
        30,
        "both runs",
    )
    app = quest_for(tmp_path, project.url)
    try:
        after = app.enqueue("pid")
    finally:
        app.close()
    poll(
        lambda: any(
            r["id"] == after and r["status"] is RunStatus.succeeded for r in project.rows("pid")
        ),
        30,
        "the run after the hog",
    )
    serve.stop(signal.SIGTERM)
    results = {r["id"]: r["result"] for r in project.rows()}
    assert results[first] == results[hog_id], "one warm worker took both"
    assert results[after] != results[hog_id], "the worker above the limit was replaced"
    assert "recycling worker" in serve.output()


def test_isolation_thread_runs_in_serve_s_own_process(tmp_path: Path, served: list[Served]) -> None:
    in_thread = """\
        import os

        from quest import script

        @script(quest={"isolation": "thread", "without_overlapping": False})
        def in_thread(inputs, ctx):
            return os.getpid()
        """
    project = make_project(tmp_path, {"in_thread.py": in_thread, "pid.py": PID})
    for name in ("in-thread", "pid"):
        assert project.quest("enqueue", name).returncode == 0
    serve = project.serve()
    served.append(serve)
    poll(
        lambda: len([r for r in project.rows() if r["status"] is RunStatus.succeeded]) == 2,
        20,
        "both runs",
    )
    serve.stop(signal.SIGTERM)
    by_name = {r["name"]: r["result"] for r in project.rows()}
    assert by_name["in-thread"] == serve.process.pid
    assert by_name["pid"] != serve.process.pid


@pytest.mark.parametrize(
    "args, wrong",
    [
        (["--concurrency", "0"], "--concurrency"),
        (["--max-runs-per-worker", "-1"], "--max-runs-per-worker"),
        (["--max-runs-per-worker", "0"], "--max-runs-per-worker"),
        (["--max-worker-memory", "lots"], "--max-worker-memory"),
        (["--max-worker-memory", "10KB"], "--max-worker-memory"),
        (["--isolation", "container"], "--isolation"),
    ],
)
def test_bad_serve_options_exit_2(tmp_path: Path, args: list[str], wrong: str) -> None:
    project = make_project(tmp_path, {"pid.py": PID})
    result = project.quest("serve", *args)
    assert result.returncode == 2
    assert wrong in result.stderr
    assert "Traceback" not in result.stderr
