"""quest cancel and quest nodes, through CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from quest import Quest, RunStatus, script
from quest.cli import cli
from quest.testing import FrozenClock, temporary_quest

NOW = datetime(2026, 3, 6, 17, 0, tzinfo=UTC)


@script()
def slow(inputs: Any, ctx: Any) -> None:
    pass


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app(tmp_path: Path, database_url: str, clock: FrozenClock) -> Iterator[Quest]:
    with temporary_quest(
        tmp_path, scripts=[slow], database_url=database_url, clock=clock
    ) as instance:
        yield instance


def invoke(app: Quest, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=app, env={"COLUMNS": "200"})


def running(app: Quest, host: str = "web-1", pid: int = 42) -> str:
    run_id = app.enqueue("slow")
    [row] = app.store.claim_queued(now=NOW, limit=1, owner_host=host, owner_pid=pid)
    assert row["id"] == run_id
    return run_id


def test_cancel_of_an_unknown_run_exits_2_naming_it(app: Quest) -> None:
    result = invoke(app, "cancel", "0123456789abcdef")
    assert result.exit_code == 2
    assert "0123456789abcdef" in result.output
    assert "Traceback" not in result.output


def test_cancel_of_a_finished_run_says_so_and_exits_1(app: Quest) -> None:
    outcome = app.run("slow")
    result = invoke(app, "cancel", outcome.run_id)
    assert result.exit_code == 1
    assert "already finished: succeeded" in result.output


def test_cancel_of_a_queued_run(app: Quest) -> None:
    run_id = app.enqueue("slow")
    result = invoke(app, "cancel", run_id[:8])
    assert result.exit_code == 0, result.output
    assert "cancelled" in result.output
    row = app.store.get_run(run_id)
    assert row is not None and row["status"] is RunStatus.cancelled
    assert "@" in row["reason"], "who asked"


def test_cancel_of_a_running_run_without_waiting(app: Quest) -> None:
    run_id = running(app)
    result = invoke(app, "cancel", run_id, "--no-wait")
    assert result.exit_code == 0, result.output
    assert "cancel requested" in result.output and "web-1:42" in result.output
    assert run_id in app.store.cancel_requests([run_id])


def test_cancel_waits_for_the_serve_to_stop_the_run(app: Quest) -> None:
    run_id = running(app)
    waiter = app.store.waiter()

    def supervisor() -> None:
        """What the serve owning the run does when told: stop it and record it cancelled."""
        while not app.store.cancel_requests([run_id]):
            assert waiter.wait(30)
        app.store.update_run(run_id, {"status": RunStatus.cancelled, "finished_at": NOW})
        app.store.forget_cancel(run_id)

    thread = threading.Thread(target=supervisor)
    thread.start()
    try:
        result = invoke(app, "cancel", run_id, "--timeout", "60")
    finally:
        thread.join()
        waiter.close()
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"run {run_id} cancelled"


def test_cancel_gives_up_waiting_after_the_timeout(app: Quest) -> None:
    run_id = running(app)
    result = invoke(app, "cancel", run_id, "--timeout", "0")
    assert result.exit_code == 1
    assert "still running" in result.output


def test_cancel_rejects_a_negative_timeout(app: Quest) -> None:
    assert invoke(app, "cancel", "abc", "--timeout", "-1").exit_code == 2


def test_nodes_lists_every_serve_with_its_state(app: Quest, clock: FrozenClock) -> None:
    store = app.store
    first = store.register_node(
        host="web-1", pid=42, version="0.1.0", now=NOW, concurrency=4, isolation="process"
    )
    store.register_node(
        host="web-2", pid=43, version="0.1.0", now=NOW, concurrency=2, isolation="thread"
    )
    stopped = store.register_node(
        host="web-3", pid=44, version="0.1.0", now=NOW, concurrency=1, isolation="process"
    )
    run_id = running(app)
    later = NOW + timedelta(seconds=app.settings.lease_ttl + 5)
    store.beat_node(first, later)
    store.stop_node(stopped, later)
    clock.set(later)
    result = invoke(app, "nodes", "--json")
    assert result.exit_code == 0, result.output
    found = {node["host"]: node for node in json.loads(result.stdout)}
    assert {host: node["state"] for host, node in found.items()} == {
        "web-1": "alive",
        "web-2": "lost",
        "web-3": "stopped",
    }
    assert [run["run_id"] for run in found["web-1"]["runs"]] == [run_id]
    assert found["web-2"]["heartbeat_age_s"] == app.settings.lease_ttl + 5
    table = invoke(app, "nodes")
    assert table.exit_code == 0
    for text in ("web-1", "alive", "lost", "stopped", f"slow {run_id[:8]}", "process", "thread"):
        assert text in table.output


def test_nodes_when_none_registered(app: Quest) -> None:
    result = invoke(app, "nodes")
    assert result.exit_code == 0
    assert "No serve" in result.output
