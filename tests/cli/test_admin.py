"""quest list/show/enqueue/pause/resume/prune and run's retry and lease rules, through CliRunner."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import insert

from quest import Quest, RunStatus, Trigger
from quest.cli import cli
from quest.runner import new_run_id
from quest.scheduler import Serve
from quest.testing import FrozenClock, captured_signals, temporary_quest

NOW = datetime(2026, 3, 6, 17, 0, tzinfo=UTC)
"""A Friday: 12:00 in New York, two days before the US switch to daylight saving time."""
SECRET = "pa55-w0rd-xyz"

SCRIPTS = {
    "market_open.py": """\
        from quest import script

        @script(
            friendly_name="Market open",
            quest={"cron": "0 9 * * MON-FRI", "timezone": "America/New_York"},
        )
        def market_open(inputs, ctx):
            return {"at": ctx.scheduled_for.isoformat()}
        """,
    "every_minute.py": """\
        from quest import script

        @script(quest={"interval": "1 minute"})
        def every_minute(inputs, ctx):
            return "tick"
        """,
    "send_invoice.py": """\
        from quest import Input, script

        @script(
            inputs={
                "invoice_id": Input(int, min=1, description="The invoice."),
                "api_key": Input(str, sensitive=True, default="k-default"),
            },
        )
        def send_invoice(inputs, ctx):
            return {"invoice_id": inputs.invoice_id}
        """,
    "flaky.py": """\
        from quest import Input, script

        @script(
            quest={"attempts": 3, "backoff": {"delay": "0.1 seconds"}},
            inputs={"token": Input(str, sensitive=True, default="none")},
        )
        def flaky(inputs, ctx):
            if ctx.attempt < 3:
                raise ConnectionError(f"refused {inputs.token} on attempt {ctx.attempt}")
            return {"attempt": ctx.attempt}
        """,
    "exclusive.py": """\
        from quest import script

        @script(quest={"without_overlapping": True})
        def exclusive(inputs, ctx):
            return "ran"
        """,
}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app(tmp_path: Path, clock: FrozenClock) -> Iterator[Quest]:
    folder = tmp_path / "scripts"
    for name, source in SCRIPTS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(textwrap.dedent(source), encoding="utf-8")
    with temporary_quest(tmp_path, scripts_dir=folder, clock=clock) as instance:
        yield instance


def invoke(app: Quest, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=app, env={"COLUMNS": "200"})


def as_json(app: Quest, *args: str) -> Any:
    result = invoke(app, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def listing(app: Quest) -> dict[str, dict[str, Any]]:
    return {row["name"]: row for row in as_json(app, "list")}


# -- list and show -------------------------------------------------------------------------------


def test_list_gives_the_next_run_and_the_last_outcome(app: Quest, clock: FrozenClock) -> None:
    rows = listing(app)
    assert rows["market-open"]["next_run"] == "2026-03-09T09:00:00-04:00"
    assert rows["market-open"]["timezone"] == "America/New_York"
    assert rows["every-minute"]["next_run"] == "2026-03-06T17:01:00+00:00"
    assert rows["send-invoice"]["next_run"] is None
    assert rows["market-open"]["last_outcome"] is None

    serve = Serve(app, inline=True)
    serve.start(NOW)
    serve.tick(NOW)
    app.run("flaky")
    rows = listing(app)
    assert rows["every-minute"]["last_outcome"] == "succeeded"
    assert rows["flaky"]["last_outcome"] == "failed"

    table = invoke(app, "list")
    assert table.exit_code == 0, table.output
    line = next(x for x in table.stdout.splitlines() if "every-minute" in x)
    assert "succeeded" in line
    assert "2026-03-06 17:01:00+00:00" in line


def test_show_next_fire_times_after_an_instant(app: Quest) -> None:
    data = as_json(app, "show", "market-open", "--next", "3", "--after", "2026-03-06T12:00:00")
    assert data["name"] == "market-open"
    assert data["timezone"] == "America/New_York"
    assert data["next_fire_times"] == [
        "2026-03-09T09:00:00-04:00",
        "2026-03-10T09:00:00-04:00",
        "2026-03-11T09:00:00-04:00",
    ]
    data = as_json(
        app, "show", "market-open", "--next", "1", "--after", "2026-03-06T08:00:00-05:00"
    )
    assert data["next_fire_times"] == ["2026-03-06T09:00:00-05:00"]
    data = as_json(app, "show", "every-minute", "--next", "2")
    assert data["next_fire_times"] == ["2026-03-06T17:01:00+00:00", "2026-03-06T17:02:00+00:00"]

    text = invoke(app, "show", "market-open", "--next", "2")
    assert text.exit_code == 0, text.output
    assert "2026-03-09T09:00:00-04:00" in text.stdout

    bad = invoke(app, "show", "market-open", "--after", "next tuesday")
    assert bad.exit_code == 2
    assert "--after" in bad.output
    assert invoke(app, "show", "nope").exit_code == 2


# -- enqueue -------------------------------------------------------------------------------------


def test_enqueue_with_delay_and_key(app: Quest) -> None:
    result = invoke(
        app,
        "enqueue",
        "send-invoice",
        "--invoice-id",
        "17",
        "--api-key",
        SECRET,
        "--delay",
        "5m",
        "--key",
        "company-42",
    )
    assert result.exit_code == 0, result.output
    run_id = result.stdout.strip()
    row = app.store.get_run(run_id)
    assert row is not None
    assert (row["status"], row["trigger"], row["key"]) == (
        RunStatus.queued,
        Trigger.enqueued,
        "company-42",
    )
    assert row["run_after"] == NOW + timedelta(minutes=5)
    assert row["inputs"] == {"invoice_id": 17, "api_key": "***"}
    assert SECRET not in result.output
    assert SECRET not in json.dumps(as_json(app, "history"))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["send-invoice", "--invoice-id", "0"], "--invoice-id"),
        (["send-invoice", "--invoice-id", "x"], "--invoice-id"),
        (["send-invoice"], "--invoice-id"),
        (["send-invoice", "--invoice-id", "1", "--delay", "whenever"], "--delay"),
        (["nope"], "No script named 'nope'"),
    ],
)
def test_enqueue_rejects_bad_inputs_and_queues_nothing(
    app: Quest, args: list[str], expected: str
) -> None:
    result = invoke(app, "enqueue", *args)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert app.store.count_runs() == 0


# -- run: retries only when asked; the overlap lease ---------------------------------------------


def test_run_does_not_retry_unless_asked(app: Quest) -> None:
    result = invoke(app, "run", "flaky", "--token", SECRET)
    assert result.exit_code == 1
    assert "ConnectionError: refused *** on attempt 1" in result.output
    assert SECRET not in result.output
    runs = as_json(app, "history")
    assert [(r["attempt"], r["status"]) for r in runs] == [(1, "failed")]
    assert app.store.count_runs(status=RunStatus.queued) == 0


def test_run_with_retry_follows_the_attempts(app: Quest) -> None:
    result = invoke(app, "run", "flaky", "--token", SECRET, "--retry")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    runs = sorted(as_json(app, "history"), key=lambda r: r["attempt"])
    assert [(r["attempt"], r["trigger"], r["status"]) for r in runs] == [
        (1, "manual", "failed"),
        (2, "retry", "failed"),
        (3, "retry", "succeeded"),
    ]
    assert len({r["root_id"] for r in runs}) == 1
    assert runs[0]["root_id"] == runs[0]["run_id"]
    assert {json.dumps(r["inputs"]) for r in runs} == {'{"token": "***"}'}
    assert SECRET not in json.dumps(runs)


def test_run_of_a_script_already_running_exits_1_with_a_clear_message(app: Quest) -> None:
    app.store.acquire_lease(
        "exclusive", run_id="a" * 32, owner="web-3:812", now=NOW, ttl=timedelta(minutes=1)
    )
    result = invoke(app, "run", "exclusive")
    assert result.exit_code == 1
    assert "exclusive is already running" in result.output
    assert "web-3:812" in result.output
    assert "--wait" in result.output
    assert "Traceback" not in result.output
    assert app.store.count_runs() == 0


def test_run_takes_over_the_lease_of_a_dead_holder(app: Quest, clock: FrozenClock) -> None:
    app.store.acquire_lease(
        "exclusive", run_id="a" * 32, owner="web-3:812", now=NOW, ttl=timedelta(minutes=1)
    )
    clock.advance(61)
    result = invoke(app, "run", "exclusive")
    assert result.exit_code == 0, result.output


# -- pause and resume ----------------------------------------------------------------------------


def test_pause_skips_fires_on_every_serve_until_resumed(app: Quest, clock: FrozenClock) -> None:
    serve = Serve(app, inline=True)
    serve.start(NOW)
    result = invoke(app, "pause", "every-minute")
    assert result.exit_code == 0, result.output
    assert "every-minute paused" in result.output
    assert listing(app)["every-minute"]["schedule"].endswith("(paused)")
    assert listing(app)["every-minute"]["next_run"] is None

    with captured_signals() as events:
        serve.tick(NOW)
    [skip] = events.events("job:skip")
    assert skip.reason == "paused: quest pause"
    [row] = app.store.history("every-minute")
    assert row["status"] is RunStatus.skipped

    assert invoke(app, "resume", "every-minute").exit_code == 0
    clock.advance(60)
    serve.tick(clock.now())
    statuses = [r["status"] for r in app.store.history("every-minute")]
    assert statuses == [RunStatus.succeeded, RunStatus.skipped]
    assert invoke(app, "pause", "nope").exit_code == 2


# -- prune ---------------------------------------------------------------------------------------


def test_prune_deletes_by_the_retention_rules(app: Quest) -> None:
    def row(status: RunStatus, age_days: int) -> dict[str, Any]:
        created = NOW - timedelta(days=age_days)
        run_id = new_run_id()
        return {
            "id": run_id,
            "name": "every-minute",
            "status": status,
            "trigger": Trigger.scheduled,
            "attempt": 1,
            "max_attempts": 1,
            "root_id": run_id,
            "created_at": created,
            "finished_at": created,
        }

    with app.store.engine.begin() as connection:
        connection.execute(
            insert(app.store.runs),
            [
                row(RunStatus.succeeded, 40),
                row(RunStatus.succeeded, 2),
                row(RunStatus.failed, 40),
                row(RunStatus.failed, 100),
            ],
        )
    assert as_json(app, "prune") == {"every-minute": 2}
    result = invoke(app, "prune")
    assert result.exit_code == 0
    assert "deleted 0 JobLog rows" in result.output
    assert sorted(r["status"] for r in as_json(app, "history")) == ["failed", "succeeded"]
