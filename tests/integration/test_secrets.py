"""Sensitive inputs never leave a run: logs, errors, tracebacks, results, signals and the JobLog.

Each leak path of the secrets issue is driven through the runner or ``Serve`` on a real database.
"""

from __future__ import annotations

import io
import json
import logging
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from quest import Input, Quest, RunStatus, redact, script
from quest.cli._common import setup_logging
from quest.scheduler import Serve
from quest.signals import JobEvent, job_complete, job_error
from quest.testing import FrozenClock, temporary_quest

SECRET = "s3cr3t\\t0k'en-é"
"""A backslash (doubled by repr), a quote and a non-ASCII letter (escaped by ascii and JSON)."""
KEYS = {"api_key": "k-7c91e0", "region": "eu", "pin": 48213}
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def forms(value: Any) -> set[str]:
    """How the standard library renders *value* (a text or a JSON value's leaves)."""
    texts = [value] if isinstance(value, str) else [str(v) for v in value.values()]
    found = set()
    for text in texts:
        if len(text) >= redact.MIN_LENGTH:
            found |= {
                text,
                repr(text)[1:-1],
                ascii(text)[1:-1],
                json.dumps(text)[1:-1],
                json.dumps(text, ensure_ascii=False)[1:-1],
            }
    return found


def assert_clean(text: str) -> None:
    for form in forms(SECRET) | forms(KEYS):
        assert form not in text, f"{form!r} leaked in {text!r}"


@script(inputs={"token": Input(str, sensitive=True)})
def log_token(inputs: Any, ctx: Any) -> None:
    ctx.log.info("token %s", inputs.token)
    ctx.log.warning("again %r in %s", inputs.token, {"token": inputs.token})
    logging.getLogger("app.client").info("calling with %s", inputs.token)


@script(inputs={"token": Input(str, sensitive=True)})
def key_error(inputs: Any, ctx: Any) -> None:
    raise KeyError(inputs.token)


@script(inputs={"keys": Input(dict, sensitive=True)})
def bad_config(inputs: Any, ctx: Any) -> None:
    raise RuntimeError(f"bad config {inputs.keys!r}")


@script(inputs={"token": Input(str, sensitive=True), "keys": Input(dict, sensitive=True)})
def echo(inputs: Any, ctx: Any) -> dict[str, Any]:
    return {
        "token": inputs.token,
        "note": f"used {inputs.token!r}",
        "keys": inputs.keys,
        "pin": inputs.keys["pin"],
        "kept": "plain",
    }


@script(
    quest={"interval": "1 minute"},
    inputs={"token": Input(str, sensitive=True, default=SECRET)},
)
def scheduled(inputs: Any, ctx: Any) -> str:
    ctx.log.info("token %s", inputs.token)
    try:
        raise ValueError(f"refused {inputs.token}")
    except ValueError:
        ctx.log.exception("call failed")
    return f"done with {inputs.token}"


SCRIPTS = [log_token, key_error, bad_config, echo, scheduled]


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Iterator[Quest]:
    clock = FrozenClock(START)
    with temporary_quest(tmp_path, scripts=SCRIPTS, database_url=database_url, clock=clock) as q:
        yield q


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def events_of(app: Quest, name: str, inputs: dict[str, Any]) -> tuple[Any, list[JobEvent]]:
    """Run *name*; the outcome and the end events receivers got."""
    seen: list[JobEvent] = []

    def receiver(sender: object, event: JobEvent) -> None:
        seen.append(event)

    with job_complete.connected_to(receiver), job_error.connected_to(receiver):
        outcome = app.run(name, inputs)
    return outcome, seen


# -- logs ----------------------------------------------------------------------------------------


def test_the_run_logger_scrubs_for_the_applications_own_handlers(app: Quest) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("quest.script.log-token")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        outcome = app.run("log-token", {"token": SECRET})
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
    assert outcome.ok
    lines = stream.getvalue().splitlines()
    assert lines == ["token ***", """again "***" in {'token': "***"}"""]
    assert not redact.is_active(), "the run's secrets are forgotten when it ends"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_the_quest_handler_scrubs_every_logger(
    app: Quest, fmt: str, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    setup_logging(logging.INFO, fmt)
    assert app.run("log-token", {"token": SECRET}).ok
    err = capsys.readouterr().err
    assert_clean(err)
    assert "calling with ***" in err, "a logger of the application's own is scrubbed too"
    if fmt == "json":
        messages = [json.loads(line)["message"] for line in err.splitlines()]
        assert "token ***" in messages


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_serve_logs_are_scrubbed(
    app: Quest, fmt: str, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    setup_logging(logging.INFO, fmt)
    serve = Serve(app, inline=True)
    serve.start(START)
    serve.tick(START)
    [row] = app.store.history("scheduled")
    assert row["status"] is RunStatus.succeeded
    assert row["result"] == "done with ***"
    err = capsys.readouterr().err
    assert_clean(err)
    if fmt == "json":
        lines = [json.loads(line) for line in err.splitlines()]
        [failed] = [line for line in lines if line["message"] == "call failed"]
        assert "ValueError: refused ***" in failed["exception"]
        assert any(line["message"] == "token ***" for line in lines)
    else:
        assert "token ***" in err
        assert "ValueError: refused ***" in err


# -- errors and tracebacks -----------------------------------------------------------------------


def test_a_key_error_holding_the_secret(app: Quest) -> None:
    outcome, events = events_of(app, "key-error", {"token": SECRET})
    assert outcome.status is RunStatus.failed
    assert outcome.error == 'KeyError: "***"'
    assert outcome.traceback is not None and 'KeyError: "***"' in outcome.traceback
    row = app.store.get_run(outcome.run_id)
    assert row is not None
    assert row["error"] == 'KeyError: "***"'
    assert 'KeyError: "***"' in row["traceback"]
    assert_clean(json.dumps(row, default=str))
    [event] = events
    assert event.error == 'KeyError: "***"'
    assert_clean(json.dumps(event.to_dict(), default=str))


def test_a_sensitive_dict_rendered_with_repr(app: Quest) -> None:
    outcome, events = events_of(app, "bad-config", {"keys": KEYS})
    assert outcome.status is RunStatus.failed
    assert outcome.error is not None and outcome.error.startswith("RuntimeError: bad config ")
    row = app.store.get_run(outcome.run_id)
    assert row is not None
    assert row["inputs"] == {"keys": "***"}
    for text in (outcome.error, outcome.traceback, row["error"], row["traceback"]):
        assert text is not None
        assert_clean(text)
    assert_clean(json.dumps(events[0].to_dict(), default=str))


# -- results -------------------------------------------------------------------------------------


def test_a_returned_secret_is_scrubbed_from_the_result(app: Quest) -> None:
    outcome, events = events_of(app, "echo", {"token": SECRET, "keys": KEYS})
    assert outcome.ok
    expected = {
        "token": "***",
        "note": 'used "***"',
        "keys": "***",
        "pin": "***",
        "kept": "plain",
    }
    assert outcome.result == expected
    row = app.store.get_run(outcome.run_id)
    assert row is not None and row["result"] == expected
    [event] = events
    assert event.status is RunStatus.succeeded
    assert event.result == expected
    assert_clean(json.dumps(event.to_dict(), default=str))


def test_a_timed_child_process_scrubs_its_logs_errors_and_result(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    folder = tmp_path / "scripts"
    folder.mkdir()
    (folder / "timed.py").write_text(
        textwrap.dedent(
            """\
            import logging

            from quest import Input, script

            @script(
                quest={"timeout": "30 seconds"},
                inputs={"token": Input(str, sensitive=True), "fail": Input(bool, default=False)},
            )
            def timed(inputs, ctx):
                ctx.log.warning("child token %s", inputs.token)
                logging.getLogger("app").warning("module logger %r", inputs.token)
                if inputs.fail:
                    raise KeyError(inputs.token)
                return {"echo": inputs.token}
            """
        ),
        encoding="utf-8",
    )
    setup_logging(logging.INFO)
    with temporary_quest(tmp_path, scripts_dir=folder, models=None, bootstrap=None) as app:
        ok = app.run("timed", {"token": SECRET})
        failed = app.run("timed", {"token": SECRET, "fail": True})
    assert ok.ok, ok.error
    assert ok.result == {"echo": "***"}
    assert failed.status is RunStatus.failed
    assert failed.error == 'KeyError: "***"'
    assert failed.traceback is not None and 'KeyError: "***"' in failed.traceback
    err = capfd.readouterr().err
    assert "child token ***" in err, "the child logs like its parent"
    assert 'module logger "***"' in err
    assert_clean(err)


@script(inputs={"token": Input(str, sensitive=True), "url": Input(str)})
def call_url(inputs: Any, ctx: Any) -> None:
    pass


def test_a_plain_input_holding_a_secret_is_scrubbed_in_the_joblog(
    tmp_path: Path, database_url: str
) -> None:
    with temporary_quest(tmp_path, scripts=[call_url], database_url=database_url) as app:
        outcome = app.run("call-url", {"token": SECRET, "url": f"https://h/?t={SECRET}"})
        row = app.store.get_run(outcome.run_id)
    assert row is not None
    assert row["inputs"] == {"token": "***", "url": "https://h/?t=***"}
