"""Runs that end off the happy path still end recorded, and nothing is left behind."""

from __future__ import annotations

import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from quest import Input, RunStatus, script
from quest.cli import cli
from quest.models import pending_secrets
from quest.runner import Runner
from quest.scheduler import Serve, limits_of
from quest.testing import FrozenClock, temporary_quest

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
beats: list[float] = []
runner_under_test: list[Runner] = []


@script(quest={"lease_ttl": "2 seconds"})
def short_lease(inputs: Any, ctx: Any) -> None:
    beats.append(runner_under_test[0]._beat_every())


@script(quest={"interval": "1 minute", "without_overlapping": False})
def exits(inputs: Any, ctx: Any) -> None:
    if ctx.scheduled_for == NOW:
        sys.exit(3)


@script(inputs={"how": Input(str, default="exit")})
def quits(inputs: Any, ctx: Any) -> None:
    if inputs.how == "exit":
        sys.exit(4)
    raise KeyboardInterrupt


@script(quest={"concurrency": 1, "without_overlapping": False})
def one_at_a_time(inputs: Any, ctx: Any) -> None:
    return None


@script(quest={"without_overlapping": False})
def other(inputs: Any, ctx: Any) -> None:
    return None


@script(inputs={"token": Input(str, sensitive=True)})
def guarded(inputs: Any, ctx: Any) -> None:
    return None


@script()
def nul_error(inputs: Any, ctx: Any) -> None:
    raise ValueError("bad byte \x00 here")


def test_the_heartbeat_follows_the_shortest_lease(tmp_path: Path) -> None:
    with temporary_quest(tmp_path, scripts=[short_lease]) as app:
        runner_under_test[:] = [app.runner]
        assert app.runner._beat_every() == app.settings.lease_ttl / 3
        assert app.run("short-lease").ok
    assert beats and beats[-1] <= 2 / 3


def test_a_script_calling_sys_exit_is_recorded_and_serve_goes_on(
    tmp_path: Path, database_url: str
) -> None:
    clock = FrozenClock(NOW - timedelta(seconds=1))
    with temporary_quest(tmp_path, scripts=[exits], database_url=database_url, clock=clock) as app:
        serve = Serve(app)
        serve.start(clock.now())
        for minute in range(2):
            clock.set(NOW + timedelta(minutes=minute))
            serve.fire_due(clock.now())
            assert serve._workers.join(20)
        rows = sorted(app.store.history("exits", limit=None), key=lambda r: r["scheduled_for"])
    assert [r["status"] for r in rows] == [RunStatus.failed, RunStatus.succeeded]
    assert rows[0]["error"].startswith("SystemExit: 3")


def test_queued_runs_that_exit_or_interrupt_their_thread_leave_the_queue_draining(
    tmp_path: Path, database_url: str
) -> None:
    """In thread isolation a script's ``sys.exit`` or ``KeyboardInterrupt`` reaches the serve's
    thread: each is recorded, and the slot it held is free again for the runs after it."""
    clock = FrozenClock(NOW)
    with temporary_quest(
        tmp_path, scripts=[quits, other], database_url=database_url, clock=clock
    ) as app:
        quitting = [app.enqueue("quits", {"how": how}) for how in ("exit", "exit", "ki", "ki")]
        clock.advance(1)
        after = [app.enqueue("other") for _ in range(3)]
        serve = Serve(app, concurrency=2)
        serve.start(clock.now())
        for _ in range(len(quitting) + len(after)):
            serve.drain(clock.now())
            assert serve._workers.join(20)
        rows = {run_id: app.store.get_run(run_id) for run_id in quitting + after}
        assert serve._queued_active == 0
    statuses = [rows[run_id]["status"] for run_id in quitting]  # type: ignore[index]
    assert statuses == [RunStatus.failed] * 2 + [RunStatus.interrupted] * 2
    assert rows[quitting[0]]["error"].startswith("SystemExit: 4")  # type: ignore[index]
    assert [rows[run_id]["status"] for run_id in after] == [RunStatus.succeeded] * 3  # type: ignore[index]


def test_a_script_at_its_limit_does_not_stall_the_rest_of_the_queue(
    tmp_path: Path, database_url: str
) -> None:
    clock = FrozenClock(NOW)
    with temporary_quest(
        tmp_path, scripts=[one_at_a_time, other], database_url=database_url, clock=clock
    ) as app:
        for _ in range(40):
            app.enqueue("one-at-a-time")
        clock.advance(1)
        app.enqueue("other")
        clock.advance(1)
        limits = {"one-at-a-time": limits_of(app.registry.get("one-at-a-time"))}
        taken = []
        for _ in range(2):
            rows = app.store.claim_queued(
                now=clock.now(), limit=4, owner_host="h", owner_pid=1, limits=limits
            )
            taken += [row["name"] for row in rows]
    assert taken.count("one-at-a-time") == 1
    assert "other" in taken


def test_the_secrets_of_an_abandoned_chain_are_forgotten(tmp_path: Path, database_url: str) -> None:
    clock = FrozenClock(NOW)
    with temporary_quest(
        tmp_path, scripts=[guarded], database_url=database_url, clock=clock
    ) as app:
        app.enqueue("guarded", {"token": "s3cr3t-abc"})
        [row] = app.store.claim_queued(now=clock.now(), limit=1, owner_host="dead", owner_pid=1)
        with app.store.engine.connect() as connection:
            assert connection.execute(select(pending_secrets)).all()
        clock.advance(app.settings.lease_ttl + 1)
        assert Serve(app, inline=True).recover(clock.now()) == [row["id"]]
        with app.store.engine.connect() as connection:
            assert connection.execute(select(pending_secrets)).all() == []
        assert app.store.get_run(row["id"])["status"] is RunStatus.abandoned  # type: ignore[index]


def test_an_error_with_a_nul_byte_is_recorded(tmp_path: Path, database_url: str) -> None:
    with temporary_quest(tmp_path, scripts=[nul_error], database_url=database_url) as app:
        outcome = app.run("nul-error")
        row = app.store.get_run(outcome.run_id)
    assert outcome.status is RunStatus.failed
    assert row is not None and row["status"] is RunStatus.failed
    assert row["error"] == "ValueError: bad byte \\x00 here"


def test_a_script_with_a_timeout_keeps_its_own_error(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "timed.py").write_text(
        textwrap.dedent(
            """\
            from quest import script

            @script(quest={"timeout": "30 seconds"})
            def timed(inputs, ctx):
                raise ValueError("bad row 17")
            """
        ),
        encoding="utf-8",
    )
    with temporary_quest(tmp_path, scripts_dir=scripts, models=None, bootstrap=None) as app:
        outcome = app.run("timed")
    assert outcome.status is RunStatus.failed
    assert outcome.error == "ValueError: bad row 17"
    assert outcome.traceback is not None and "timed.py" in outcome.traceback


def test_a_sqlite_folder_that_cannot_be_made_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        ["list"],
        env={
            "QUEST_DATABASE_URL": "sqlite:////proc/no-such-folder/quest.sqlite3",
            "QUEST_SCRIPTS_DIR": str(tmp_path),
            "QUEST_MODELS": "",
            "QUEST_BOOTSTRAP": "",
        },
    )
    assert result.exit_code == 1
    assert "cannot create the folder" in result.output
    assert "Traceback" not in result.output


def test_an_idle_runner_s_heartbeat_waits_without_waking(tmp_path: Path) -> None:
    import threading
    import time

    with temporary_quest(tmp_path, scripts=[other]) as app:
        assert app.run("other").ok
        beat = app.runner._heartbeat
        assert beat is not None and beat.is_alive()
        wanted: threading.Condition = app.runner._beat_wanted
        deadline = time.monotonic() + 10
        while not getattr(wanted, "_waiters", None) and time.monotonic() < deadline:
            time.sleep(0.01)
        # No run is active: the thread is parked on the condition until the next run starts.
        assert getattr(wanted, "_waiters", None)
        assert app.run("other").ok
        assert app.runner._heartbeat is beat
