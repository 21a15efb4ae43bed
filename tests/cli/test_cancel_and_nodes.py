"""``quest cancel`` and ``quest nodes`` against real serves, and three serves on one PostgreSQL.

Waiting here is waiting on other processes: the database is polled with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from test_engine import project_on, quest_for
from test_serve_process import Served, poll

from quest.enums import RunStatus

pytestmark = pytest.mark.slow

SLEEPY_SYNC = """\
    import time

    from quest import script

    @script(quest={"attempts": 3})
    def sleepy_sync(inputs, ctx):
        time.sleep(60)
    """

SLEEPY_ASYNC = """\
    import asyncio

    from quest import script

    @script(quest={"attempts": 3})
    async def sleepy_async(inputs, ctx):
        await asyncio.sleep(60)
    """

QUICK = """\
    from quest import script

    @script(quest={"without_overlapping": False})
    def quick(inputs, ctx):
        return "done"
    """


def running(project: Any, run_id: str) -> bool:
    rows = [r for r in project.rows() if r["id"] == run_id]
    return bool(rows) and rows[0]["status"] is RunStatus.running


def row_of(project: Any, run_id: str) -> dict[str, Any]:
    [row] = [r for r in project.rows() if r["id"] == run_id]
    return row


@pytest.mark.parametrize("name", ["sleepy-sync", "sleepy-async"])
def test_cancel_stops_a_running_run_and_it_is_not_retried(
    tmp_path: Path, database_url: str, served: list[Served], name: str
) -> None:
    project = project_on(
        tmp_path, {"sleepy_sync.py": SLEEPY_SYNC, "sleepy_async.py": SLEEPY_ASYNC}, database_url
    )
    enqueued = project.quest("enqueue", name)
    assert enqueued.returncode == 0, enqueued.stderr
    run_id = enqueued.stdout.split()[-1]
    serve = project.serve()
    served.append(serve)
    poll(lambda: running(project, run_id), 15, "the run to start")

    result = project.quest("cancel", run_id, "--timeout", "5")
    assert result.returncode == 0, "stopped within the command's 5 s: " + result.stdout
    assert "cancelled" in result.stdout
    row = row_of(project, run_id)
    assert row["status"] is RunStatus.cancelled
    assert "cancelled by" in (row["error"] or "")
    serve.stop(signal.SIGTERM)
    rows = project.rows(name)
    assert len(rows) == 1, "a cancelled run is not retried"
    again = project.quest("cancel", run_id)
    assert again.returncode == 1
    assert "already finished" in again.stdout


def test_cancel_of_a_queued_run_and_of_unknown_ids(tmp_path: Path, database_url: str) -> None:
    project = project_on(tmp_path, {"quick.py": QUICK}, database_url)
    enqueued = project.quest("enqueue", "quick", "--delay", "1h")
    run_id = enqueued.stdout.split()[-1]
    result = project.quest("cancel", run_id)
    assert result.returncode == 0, result.stderr
    assert row_of(project, run_id)["status"] is RunStatus.cancelled
    unknown = project.quest("cancel", "f" * 32)
    assert unknown.returncode == 2
    assert "f" * 32 in unknown.stderr
    assert "Traceback" not in unknown.stderr
    # An id in capitals, whole or its beginning, names the same run on every database.
    for given in (lambda i: i.upper(), lambda i: i[:8].upper()):
        other = project.quest("enqueue", "quick", "--delay", "1h").stdout.split()[-1]
        result = project.quest("cancel", given(other))
        assert result.returncode == 0, result.stderr
        assert row_of(project, other)["status"] is RunStatus.cancelled
    # Bytes that decode to no text (a lone surrogate) name no run.
    for command in ("cancel", "logs"):
        odd = project.quest(command, "\udcff")
        assert odd.returncode == 2, odd.stderr
        assert "no run with id '\\udcff'" in odd.stderr
        assert "Traceback" not in odd.stderr


def test_nodes_lists_each_serve_and_a_silent_one_is_lost(
    tmp_path: Path, served: list[Served]
) -> None:
    project = project_on(tmp_path, {"sleepy_sync.py": SLEEPY_SYNC})
    first = project.serve(name="first")
    project.env["QUEST_LEASE_TTL"] = "2"
    second = project.serve("--concurrency", "2", name="second")
    del project.env["QUEST_LEASE_TTL"]
    served += [first, second]

    def listed() -> list[dict[str, Any]]:
        result = project.quest("nodes", "--json")
        nodes: list[dict[str, Any]] = json.loads(result.stdout) if result.returncode == 0 else []
        return nodes if len([n for n in nodes if n["state"] == "alive"]) == 2 else []

    nodes = poll(listed, 15, "both serves to register")
    assert {n["pid"] for n in nodes} == {first.process.pid, second.process.pid}
    assert {n["concurrency"] for n in nodes} == {4, 2}
    assert {n["lease_ttl"] for n in nodes} == {30.0, 2.0}
    # A serve with a 2 s lease TTL heartbeats often enough to be alive at every look.
    for _ in range(4):
        looked = json.loads(project.quest("nodes", "--json").stdout)
        assert {n["state"] for n in looked} == {"alive"}, looked
        time.sleep(0.5)
    first.stop(signal.SIGTERM)
    second.process.kill()
    second.process.wait(10)

    def states() -> dict[int, str]:
        result = project.quest("nodes", "--json")
        return {n["pid"]: n["state"] for n in json.loads(result.stdout)}

    poll(lambda: states().get(second.process.pid) == "lost", 15, "the killed serve to be lost")
    assert states()[first.process.pid] == "stopped"


DRAIN = """\
    import time

    from quest import Input, script

    @script(quest={"attempts": 3}, inputs={"n": Input(int)})
    def drain(inputs, ctx):
        time.sleep(0.02)
        return inputs.n
    """

MINUTELY = """\
    from quest import script

    @script(quest={"interval": "1 second"})
    def every_second(inputs, ctx):
        return "tick"
    """


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_three_serves_on_postgres_survive_kill_9_mid_drain(
    tmp_path: Path, database_url: str, served: list[Served]
) -> None:
    """Every enqueued run succeeds exactly once, every slot runs once, nothing stays running."""
    url = database_url
    project = project_on(tmp_path, {"drain.py": DRAIN, "every_second.py": MINUTELY}, url)
    project.env["QUEST_LEASE_TTL"] = "2"
    app = quest_for(tmp_path, url)
    try:
        ids = [app.enqueue("drain", {"n": n}) for n in range(600)]
    finally:
        app.close()
    serves = [project.serve("--concurrency", "2", name=f"serve{i}") for i in range(3)]
    served += serves

    def succeeded() -> int:
        return len([r for r in project.rows("drain") if r["status"] is RunStatus.succeeded])

    poll(lambda: succeeded() >= 100, 60, "the drain to get going")
    victim = serves[0]
    [template] = psutil.Process(serves[1].process.pid).children()
    busy = template.children()
    os.kill(victim.process.pid, signal.SIGKILL)
    victim.process.wait(10)
    assert busy, "the second serve has worker processes"
    os.kill(busy[-1].pid, signal.SIGKILL)

    poll(lambda: succeeded() >= 600, 120, "every enqueued run to succeed")
    time.sleep(3)  # the survivors fire a few more slots
    for serve in serves[1:]:
        code, _ = serve.stop(signal.SIGTERM, timeout=30)
        assert code == 0, serve.output()

    rows = project.rows()
    assert not [r for r in rows if r["status"] is RunStatus.running], "nothing left running"
    drained = [r for r in project.rows("drain") if r["status"] is RunStatus.succeeded]
    by_chain: dict[str, int] = {}
    for row in drained:
        by_chain[row["root_id"]] = by_chain.get(row["root_id"], 0) + 1
    assert set(by_chain) == set(ids), "every enqueued run succeeded"
    assert set(by_chain.values()) == {1}, "and exactly once"
    slots = [r["scheduled_for"] for r in project.rows("every-second")]
    assert len(slots) == len(set(slots)), "every scheduled slot ran once"
