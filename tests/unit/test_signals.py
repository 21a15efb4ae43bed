"""Signals: job:start, job:complete, job:error and job:skip, their payload, raising receivers."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import quest
from quest import Input, RunRequest, RunStatus, Trigger, script
from quest.signals import JobEvent, job_complete, job_error, job_skip, job_start, namespace
from quest.testing import FrozenClock, captured_signals, temporary_quest

START = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)


@script(
    friendly_name="Send report",
    inputs={
        "recipient": Input(str, default="ops@example.com"),
        "api_key": Input(str, sensitive=True, required=False),
        "fail": Input(bool, default=False),
    },
)
def send_report(inputs: Any, ctx: Any) -> dict[str, Any]:
    ctx.clock.advance(1.5)
    if inputs.fail:
        raise ValueError(f"could not send with key {inputs.api_key}")
    return {"sent_to": inputs.recipient}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock("2026-03-01T12:00:00+01:00")


@pytest.fixture
def app(tmp_path: Path, clock: FrozenClock) -> Iterator[quest.Quest]:
    with temporary_quest(tmp_path, scripts=[send_report], clock=clock) as instance:
        yield instance


def boom(sender: object, event: JobEvent) -> None:
    raise RuntimeError("receiver exploded")


def test_the_signals_live_in_a_namespace_users_import() -> None:
    assert quest.job_start is job_start
    assert quest.job_complete is job_complete
    assert quest.job_error is job_error
    assert quest.job_skip is job_skip
    assert [s.name for s in (job_start, job_complete, job_error, job_skip)] == [
        "job:start",
        "job:complete",
        "job:error",
        "job:skip",
    ]
    assert namespace.signal("job:start") is job_start


def test_a_successful_run_sends_start_then_complete(app: quest.Quest) -> None:
    with captured_signals() as events:
        outcome = app.run("send-report", {"api_key": "k-123"})

    assert outcome.ok
    assert events.names() == ["job:start", "job:complete"]
    start, complete = events.events()
    for event in (start, complete):
        assert event.name == "send-report"
        assert event.run_id == outcome.run_id
        assert event.trigger is Trigger.manual
        assert event.attempt == 1
        assert event.inputs == {"recipient": "ops@example.com", "api_key": "***", "fail": False}
        assert event.started_at == START

    assert start.status is RunStatus.running
    assert start.timestamp == START
    assert start.finished_at is None
    assert start.duration_ms is None

    assert complete.status is RunStatus.succeeded
    assert complete.finished_at == START + timedelta(seconds=1.5)
    assert complete.timestamp == complete.finished_at
    assert complete.duration_ms == 1500
    assert complete.duration == 1500
    assert complete.result == {"sent_to": "ops@example.com"}
    assert complete.error is None


def test_the_end_carries_what_the_start_said(app: quest.Quest) -> None:
    request = RunRequest(
        attempt=2, root_id="first-run", key="daily", scheduled_for=START, extra={"note": "kept"}
    )
    with captured_signals() as events:
        app.run("send-report", {}, request)

    start, complete = events.events()
    ended = {"status", "timestamp", "finished_at", "duration_ms", "result"}
    ended |= {"error", "error_type", "traceback", "retry_at"}
    for name in JobEvent.__dataclass_fields__:
        if name not in ended:
            assert getattr(complete, name) == getattr(start, name), name
    assert (complete.key, complete.extra, complete.attempt) == ("daily", {"note": "kept"}, 2)


def test_the_sender_is_the_runner(app: quest.Quest) -> None:
    with captured_signals() as events:
        app.run("send-report")
    assert {c.sender for c in events} == {app.runner}


def test_a_failed_run_sends_start_then_error(app: quest.Quest) -> None:
    with captured_signals() as events:
        outcome = app.run("send-report", {"fail": True, "api_key": "k-123"})

    assert outcome.status is RunStatus.failed
    assert events.names() == ["job:start", "job:error"]
    error = events.events("job:error")[0]
    assert error.status is RunStatus.failed
    assert error.run_id == outcome.run_id
    assert error.error == "ValueError: could not send with key ***"
    assert error.error_type == "ValueError"
    assert error.traceback is not None and "ValueError" in error.traceback
    assert "k-123" not in error.traceback
    assert error.result is None
    assert error.duration_ms == 1500
    assert error.finished_at == START + timedelta(seconds=1.5)
    assert not error.will_retry


def test_an_overlap_sends_skip(app: quest.Quest, clock: FrozenClock) -> None:
    app.store.acquire_lease(
        "send-report", run_id="other", owner="elsewhere", now=clock.now(), ttl=timedelta(hours=1)
    )
    with captured_signals() as events:
        outcome = app.run(
            "send-report", {}, RunRequest(trigger=Trigger.scheduled, scheduled_for=START)
        )

    assert outcome.status is RunStatus.skipped
    assert events.names() == ["job:skip"]
    skip = events.events()[0]
    assert skip.status is RunStatus.skipped
    assert skip.trigger is Trigger.scheduled
    assert skip.scheduled_for == START
    assert skip.timestamp == START
    assert skip.reason is not None and skip.reason.startswith("overlap")
    row = app.store.get_run(outcome.run_id)
    assert row is not None and row["status"] is RunStatus.skipped


def test_to_dict_is_json_ready(app: quest.Quest) -> None:
    import json

    with captured_signals() as events:
        app.run("send-report")
    data = events.events("job:complete")[0].to_dict()
    assert json.loads(json.dumps(data))["trigger"] == "manual"
    assert data["status"] == "succeeded"
    assert data["started_at"] == START.isoformat()
    assert data["duration"] == 1500
    assert data["will_retry"] is False
    for key in (
        "name",
        "run_id",
        "inputs",
        "timestamp",
        "finished_at",
        "result",
        "error",
        "attempt",
    ):
        assert key in data


@pytest.mark.parametrize("signal", [job_start, job_complete])
def test_a_raising_receiver_is_logged_and_the_run_still_succeeds(
    app: quest.Quest, caplog: pytest.LogCaptureFixture, signal: Any
) -> None:
    with (
        caplog.at_level(logging.ERROR, logger="quest.signals"),
        signal.connected_to(boom),
        captured_signals() as events,
    ):
        outcome = app.run("send-report")

    assert outcome.ok
    assert outcome.result == {"sent_to": "ops@example.com"}
    assert events.names() == ["job:start", "job:complete"]
    records = [r for r in caplog.records if r.name == "quest.signals"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert signal.name in records[0].getMessage()
    assert "the run is unaffected" in records[0].getMessage()
    assert records[0].exc_info is not None
    assert "receiver exploded" in caplog.text
    row = app.store.get_run(outcome.run_id)
    assert row is not None and row["status"] is RunStatus.succeeded


def test_a_raising_error_receiver_does_not_change_a_failure(
    app: quest.Quest, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="quest.signals"), job_error.connected_to(boom):
        outcome = app.run("send-report", {"fail": True})

    assert outcome.status is RunStatus.failed
    assert outcome.error is not None and outcome.error.startswith("ValueError")
    assert "job:error" in caplog.text
    row = app.store.get_run(outcome.run_id)
    assert row is not None and row["status"] is RunStatus.failed


def test_other_receivers_still_get_the_event_after_one_raises(app: quest.Quest) -> None:
    seen: list[str] = []

    def record(sender: object, event: JobEvent) -> None:
        seen.append(event.run_id)

    with job_complete.connected_to(boom), job_complete.connected_to(record):
        outcome = app.run("send-report")
    assert seen == [outcome.run_id]


def test_receivers_for_one_runner_only(tmp_path: Path, app: quest.Quest) -> None:
    seen: list[str] = []

    def record(sender: object, event: JobEvent) -> None:
        seen.append(event.name)

    with (
        temporary_quest(tmp_path / "other", scripts=[send_report]) as other,
        job_start.connected_to(record, sender=app.runner),
    ):
        other.run("send-report")
        app.run("send-report")
    assert seen == ["send-report"]


def test_an_end_written_in_the_callers_unit_tells_receivers_once_it_has_committed(
    app: quest.Quest,
) -> None:
    """``Runner.finish(later=...)``: the JobLog row is written in the unit the caller commits;
    the other receivers hear of the end only when the caller passes on what was left."""
    from quest.signals import Later, emit_later

    heard: list[tuple[str, str]] = []

    def receiver(sender: object, event: JobEvent) -> None:
        row = app.store.get_run(event.run_id)
        heard.append((event.status.value, row["status"] if row else "missing"))

    job_complete.connect(receiver)
    try:
        runner = app.runner
        begun = runner.begin("send-report", {})
        assert not isinstance(begun, quest.RunOutcome)
        later: list[Later] = []
        with app.store.unit(durable=True):
            outcome = runner.finish(begun, {"sent_to": "x"}, later=later)
            assert heard == []
        assert outcome.ok
        assert heard == []
        assert len(later) == 1
        emit_later(later)
        assert heard == [("succeeded", "succeeded")]
    finally:
        job_complete.disconnect(receiver)
