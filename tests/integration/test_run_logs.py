"""A run's log lines in the database: thread runs, bound and marker, secrets, retention.

Every test runs on SQLite and PostgreSQL. Runs here execute in the calling thread (the path of
``quest run`` and of thread isolation); the worker and child paths are in tests/cli/test_logs.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, update

from quest import Input, Quest, RunStatus, script
from quest.retention import prune
from quest.runlog import MAX_LINE, MAX_LINES
from quest.testing import temporary_quest

SECRET = "s3cret-token-value"


@script(inputs={"token": Input(str, sensitive=True, default=SECRET)})
def chatty(inputs: Any, ctx: Any) -> str:
    ctx.log.info("first from ctx.log")
    logging.getLogger("somelib.http").warning("from a library, token=%s", inputs.token)
    ctx.log.info("using %s", inputs.token)
    try:
        raise ValueError(f"refused {inputs.token}")
    except ValueError:
        ctx.log.exception("it failed")
    ctx.log.info("last from ctx.log")
    return "done"


@script(inputs={"lines": Input(int, default=20_000)})
def flood(inputs: Any, ctx: Any) -> None:
    for i in range(inputs.lines):
        ctx.log.info("line %d", i)


@script
def long_line(inputs: Any, ctx: Any) -> None:
    ctx.log.info("x" * (MAX_LINE * 3))
    ctx.log.info("after")


@script
async def async_chatty(inputs: Any, ctx: Any) -> None:
    ctx.log.info("before await")
    await asyncio.sleep(0)
    logging.getLogger("somelib.async").info("inside a task")
    ctx.log.info("after await")


@script
def quiet(inputs: Any, ctx: Any) -> None:
    # Another thread's lines are not this run's (nothing runs there for it)...
    other = threading.Thread(target=lambda: logging.getLogger("elsewhere").warning("not mine"))
    other.start()
    other.join()
    # ... but ctx.log is, from any thread.
    mine = threading.Thread(target=lambda: ctx.log.warning("ctx.log from a thread"))
    mine.start()
    mine.join()


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Quest]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        with temporary_quest(
            tmp_path,
            scripts=[chatty, flood, long_line, async_chatty, quiet],
            database_url=database_url,
        ) as instance:
            yield instance
    finally:
        root.setLevel(level)


def messages(app: Quest, run_id: str) -> list[str]:
    return [line["message"] for line in app.logs(run_id)]


def test_ctx_log_and_library_lines_are_kept_in_order_and_redacted(app: Quest) -> None:
    outcome = app.run("chatty")
    assert outcome.ok

    lines = app.logs(outcome.run_id)
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5]
    assert [line["logger"] for line in lines] == [
        "quest.script.chatty",
        "somelib.http",
        "quest.script.chatty",
        "quest.script.chatty",
        "quest.script.chatty",
    ]
    assert [line["level"] for line in lines] == ["INFO", "WARNING", "INFO", "ERROR", "INFO"]
    text = [line["message"] for line in lines]
    assert text[0] == "first from ctx.log"
    assert text[1] == "from a library, token=***"
    assert text[2] == "using ***"
    assert text[3].startswith("it failed\nTraceback")
    assert "ValueError: refused ***" in text[3]
    assert text[4] == "last from ctx.log"
    assert SECRET not in "".join(text)
    assert all(line["at"].tzinfo is not None for line in lines)
    assert app.store.log_tail([outcome.run_id, "unknown"]) == {outcome.run_id: "last from ctx.log"}


def test_a_run_logging_20000_lines_keeps_the_last_1000_and_a_marker(app: Quest) -> None:
    outcome = app.run("flood", {"lines": 20_000})

    lines = app.logs(outcome.run_id)
    assert len(lines) == MAX_LINES + 1
    marker, kept = lines[0], lines[1:]
    assert marker["seq"] == 0
    assert marker["logger"] == "quest"
    assert marker["message"].startswith("[19,000 earlier lines (")
    assert "dropped" in marker["message"]
    assert [line["message"] for line in kept] == [f"line {i}" for i in range(19_000, 20_000)]
    assert [line["seq"] for line in kept] == list(range(19_001, 20_001))


def test_a_run_under_the_bound_has_no_marker(app: Quest) -> None:
    outcome = app.run("flood", {"lines": MAX_LINES})
    lines = app.logs(outcome.run_id)
    assert len(lines) == MAX_LINES
    assert lines[0]["message"] == "line 0"


def test_a_very_long_line_is_cut(app: Quest) -> None:
    outcome = app.run("long-line")

    first, second = messages(app, outcome.run_id)
    assert first.startswith("x" * MAX_LINE)
    assert first.endswith(f"[... {MAX_LINE * 2:,} more characters cut]")
    assert len(first) < MAX_LINE + 100
    assert second == "after"


def test_an_async_run_keeps_the_lines_of_its_tasks(app: Quest) -> None:
    outcome = app.run("async-chatty")
    assert messages(app, outcome.run_id) == ["before await", "inside a task", "after await"]


def test_lines_of_other_threads_are_not_the_run_s(app: Quest) -> None:
    outcome = app.run("quiet")
    assert messages(app, outcome.run_id) == ["ctx.log from a thread"]


def test_history_json_with_logs(app: Quest, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from quest.cli import cli

    outcome = app.run("chatty")
    monkeypatch.setattr("quest.cli._common.get_app", lambda *args: app)
    monkeypatch.setattr("quest.cli.history.get_app", lambda *args: app)
    result = CliRunner().invoke(cli, ["history", "--json", "--logs"])
    assert result.exit_code == 0, result.output
    [run] = json.loads(result.output)
    assert run["run_id"] == outcome.run_id
    assert run["logs"][0]["message"] == "first from ctx.log"
    assert set(run["logs"][0]) == {"seq", "at", "level", "logger", "message"}
    plain = CliRunner().invoke(cli, ["history", "--json"])
    assert "logs" not in json.loads(plain.output)[0]
    refused = CliRunner().invoke(cli, ["history", "--logs"])
    assert refused.exit_code == 2
    assert "--logs goes with --json" in refused.output


def test_retention_deletes_a_run_s_lines_with_it(app: Quest) -> None:
    old = app.run("chatty")
    new = app.run("chatty")
    long_ago = datetime.now(UTC) - timedelta(days=400)
    with app.store.engine.begin() as connection:
        runs = app.store.runs
        connection.execute(update(runs).where(runs.c.id == old.run_id).values(created_at=long_ago))
    # Lines left behind by a run deleted some other way go too.
    from quest.models import run_logs

    with app.store.engine.begin() as connection:
        connection.execute(
            insert(run_logs),
            [
                {
                    "run_id": "gone" * 8,
                    "seq": 1,
                    "at": long_ago,
                    "level": "INFO",
                    "logger": "x",
                    "message": "orphan",
                }
            ],
        )

    assert prune(app, datetime.now(UTC)) == {"chatty": 1}
    assert app.store.get_run(old.run_id) is None
    assert app.logs(old.run_id) == []
    assert app.logs("gone" * 8) == []
    assert len(app.logs(new.run_id)) == 5
    assert app.store.get_run(new.run_id)["status"] is RunStatus.succeeded  # type: ignore[index]
