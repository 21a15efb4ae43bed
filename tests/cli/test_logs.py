"""``quest logs`` and the lines of runs in worker processes, timed children and serve's threads.

Real ``quest serve`` and ``quest`` processes on a throwaway project, on SQLite and PostgreSQL.
Waiting here is waiting on other processes: the database is polled with a deadline.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest
from test_engine import project_on
from test_serve_process import QUEST, Project, Served, poll

from quest.enums import RunStatus

pytestmark = pytest.mark.slow

SECRET = "p4ss-w0rd-9876"

CHATTY = """\
    import logging

    from quest import Input, script

    @script(
        quest={"without_overlapping": False},
        inputs={"token": Input(str, sensitive=True, default="none-given")},
    )
    def chatty(inputs, ctx):
        for i in range(50):
            ctx.log.info("item %d of 50", i)
        logging.getLogger("somelib.client").warning("connecting with %s", inputs.token)
        ctx.log.info("done")
        return "ok"
    """

IN_THREAD = """\
    import logging

    from quest import script

    @script(quest={"isolation": "thread", "without_overlapping": False})
    def in_thread(inputs, ctx):
        ctx.log.info("in serve's own process")
        logging.getLogger("somelib").info("and a library")
    """

TIMED = """\
    import logging
    import os

    from quest import Input, script

    @script(
        quest={"timeout": "60 seconds"},
        inputs={"token": Input(str, sensitive=True, default="none-given")},
    )
    def timed(inputs, ctx):
        ctx.log.info("child %s", os.getpid())
        logging.getLogger("somelib").warning("token %s", inputs.token)
        return os.getpid()
    """

WAITER = """\
    import time
    from pathlib import Path

    from quest import Input, script

    @script(quest={"without_overlapping": False}, inputs={"go": Input(str)})
    def waiter(inputs, ctx):
        ctx.log.info("waiting for %s", inputs.go)
        while not Path(inputs.go).exists():
            time.sleep(0.05)
        ctx.log.info("went")
    """

HOG = """\
    import logging

    from quest import Input, script

    def peak():
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        return 0

    @script(quest={"without_overlapping": False}, inputs={"mb": Input(int, default=1)})
    def hog(inputs, ctx):
        before = peak()
        block = "x" * (1 << 20)
        big = logging.getLogger("bulk")
        for _ in range(inputs.mb * 3 // 4):
            big.info("%s", block)
        kib = "y" * 1024
        for i in range(inputs.mb * 256):
            ctx.log.info("%d %s", i, kib)
        ctx.log.info("the end")
        return peak() - before
    """


def body(line: str) -> str:
    """A printed line without its date, time and level: ``logger: message``."""
    return line.split(None, 3)[3]


def quest_ok(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    result = project.quest(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def ended(project: Project, name: str, count: int = 1) -> list[dict[str, object]]:
    def done() -> list[dict[str, object]]:
        rows = project.rows(name)
        finished = [r for r in rows if r["status"].finished]  # type: ignore[attr-defined]
        return finished if len(finished) >= count else []

    return poll(done, 30, f"{count} run(s) of {name} to end")


def test_a_worker_run_s_lines_reach_quest_logs_redacted(
    tmp_path: Path, database_url: str, served: list[Served]
) -> None:
    project = project_on(tmp_path, {"chatty.py": CHATTY, "in_thread.py": IN_THREAD}, database_url)
    run_id = quest_ok(project, "enqueue", "chatty", "--token", SECRET).stdout.strip()
    thread_id = quest_ok(project, "enqueue", "in-thread").stdout.strip()
    serve = project.serve()
    served.append(serve)
    [row] = ended(project, "chatty")
    ended(project, "in-thread")
    serve.stop(signal.SIGTERM)
    assert row["status"] is RunStatus.succeeded

    printed = quest_ok(project, "logs", run_id[:10]).stdout.splitlines()
    assert len(printed) == 52
    assert [body(line) for line in printed[:50]] == [
        f"quest.script.chatty: item {i} of 50" for i in range(50)
    ]
    assert printed[0].split()[2] == "INFO"
    assert body(printed[50]) == "somelib.client: connecting with ***"
    assert printed[50].split()[2] == "WARNING"
    assert printed[51].endswith("quest.script.chatty: done")
    assert SECRET not in "\n".join(printed)

    [run] = json.loads(quest_ok(project, "history", "chatty", "--json", "--logs").stdout)
    assert len(run["logs"]) == 52
    assert run["logs"][50]["message"] == "connecting with ***"

    in_thread = quest_ok(project, "logs", thread_id).stdout
    assert "quest.script.in-thread: in serve's own process" in in_thread
    assert "somelib: and a library" in in_thread


def test_a_timed_child_s_lines_are_kept(tmp_path: Path, database_url: str) -> None:
    project = project_on(tmp_path, {"timed.py": TIMED}, database_url)
    ran = quest_ok(project, "run", "timed", "--token", SECRET, "--json")
    outcome = json.loads(ran.stdout)
    child = outcome["result"]
    printed = quest_ok(project, "logs", outcome["run_id"]).stdout.splitlines()
    assert [body(line) for line in printed] == [
        f"quest.script.timed: child {child}",
        "somelib: token ***",
    ]
    assert SECRET not in ran.stdout + ran.stderr


def test_quest_logs_of_an_unknown_run_exits_2_naming_it(tmp_path: Path, database_url: str) -> None:
    project = project_on(tmp_path, {"chatty.py": CHATTY}, database_url)
    for given in ("nosuchrun", "ab"):
        result = project.quest("logs", given)
        assert result.returncode == 2
        assert f"no run with id {given!r}" in result.stderr
        assert "Traceback" not in result.stderr
    followed = project.quest("logs", "--follow", "nosuchrun")
    assert followed.returncode == 2


def test_follow_prints_lines_as_they_come_and_exits_when_the_run_ends(
    tmp_path: Path, database_url: str, served: list[Served]
) -> None:
    project = project_on(tmp_path, {"waiter.py": WAITER}, database_url)
    go = tmp_path / "go"
    run_id = quest_ok(project, "enqueue", "waiter", "--go", str(go)).stdout.strip()
    follower = subprocess.Popen(
        [QUEST, "logs", "--follow", run_id],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        serve = project.serve()
        served.append(serve)
        assert follower.stdout is not None
        first = follower.stdout.readline()  # blocks until the run has logged and it printed
        assert first.rstrip().endswith(f"quest.script.waiter: waiting for {go}")
        assert follower.poll() is None, "it keeps following a running run"
        go.touch()
        rest, errors = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.wait(10)
    assert follower.returncode == 0, errors
    assert rest.rstrip().endswith("quest.script.waiter: went")
    assert project.rows("waiter")[0]["status"] is RunStatus.succeeded
    serve.stop(signal.SIGTERM)


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_run_logging_200_mb_keeps_its_bound_and_serve_s_memory_stays_flat(
    tmp_path: Path, served: list[Served]
) -> None:
    project = project_on(tmp_path, {"hog.py": HOG})
    quest_ok(project, "enqueue", "hog", "--mb", "1")
    # serve's own output (every line goes to its stderr too) is not what is measured here.
    process = subprocess.Popen(
        [QUEST, "serve", "--concurrency", "1"],
        cwd=project.root,
        env=project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    serve = Served(process, tmp_path / "none.log")  # type: ignore[arg-type]
    served.append(serve)
    ended(project, "hog")
    baseline = _status_kib(process.pid, "VmRSS")

    run_id = quest_ok(project, "enqueue", "hog", "--mb", "200").stdout.strip()
    rows = ended(project, "hog", 2)
    peak = _status_kib(process.pid, "VmHWM")
    serve.stop(signal.SIGTERM)

    [row] = [r for r in rows if r["id"] == run_id]
    assert row["status"] is RunStatus.succeeded, row["error"]
    assert peak - baseline < 24 * 1024, f"serve grew from {baseline} KiB to a peak of {peak} KiB"
    worker_growth = int(row["result"])  # type: ignore[call-overload]
    assert worker_growth < 16 * 1024 * 1024, f"the worker grew by {worker_growth} bytes"
    printed = quest_ok(project, "logs", run_id).stdout.splitlines()
    assert body(printed[0]).startswith("quest: [")
    assert "earlier lines" in printed[0]
    assert printed[-1].endswith("quest.script.hog: the end")
    assert len(printed) <= 1001
    assert sum(len(line) for line in printed) < 2 * 256 * 1024
