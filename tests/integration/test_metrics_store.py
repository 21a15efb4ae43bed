"""The metrics of a serve on a real database: runs counted through the signals, queue wait from
claimed rows, and the scrape-time gauges read from the JobLog, pauses and nodes.

Every test runs on SQLite and PostgreSQL, with ``Serve(quest, inline=True)`` and a frozen clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from quest import Input, Quest, script
from quest.metrics import Metrics
from quest.scheduler import Serve
from quest.testing import FrozenClock, temporary_quest

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "hunter2-metrics-secret"


@script(quest={"interval": "1 minute"})
def tick(inputs: Any, ctx: Any) -> str:
    return "tock"


@script(quest={"attempts": 2}, inputs={"token": Input(str, sensitive=True), "fail": Input(bool)})
def digest(inputs: Any, ctx: Any) -> str:
    if inputs.fail:
        raise RuntimeError("the mail server said no")
    return "sent"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(START)


@pytest.fixture
def app(tmp_path: Path, database_url: str, clock: FrozenClock) -> Iterator[Quest]:
    with temporary_quest(
        tmp_path, scripts=[tick, digest], database_url=database_url, clock=clock
    ) as instance:
        instance.store.ensure_schema()
        yield instance


@pytest.fixture
def metrics(app: Quest) -> Iterator[Metrics]:
    exported = Metrics(app, cache_for=0).connect(app.runner)
    yield exported
    exported.disconnect()


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_serve_counts_its_runs_and_reads_the_shared_state_at_scrape_time(
    app: Quest, metrics: Metrics, clock: FrozenClock
) -> None:
    serve = Serve(app, inline=True)
    metrics.attach(serve)
    serve.start(START)
    serve.tick(START)  # tick's slot at 09:00
    due = app.enqueue("digest", {"token": SECRET, "fail": False})
    app.enqueue("digest", {"token": SECRET, "fail": False}, delay="1 hour")
    failing = app.enqueue("digest", {"token": SECRET, "fail": True})
    clock.advance(5)
    serve.drain(clock.now())  # both due digests waited 5 s; the failing one queues its retry

    assert (
        sample(metrics, "quest_runs_total", script="tick", status="succeeded", trigger="scheduled")
        == 1
    )
    assert (
        sample(metrics, "quest_runs_total", script="digest", status="succeeded", trigger="enqueued")
        == 1
    )
    assert (
        sample(metrics, "quest_runs_total", script="digest", status="failed", trigger="enqueued")
        == 1
    )
    assert sample(metrics, "quest_retries_total", script="digest") == 1
    assert sample(metrics, "quest_queue_wait_seconds_count", script="digest") == 2
    assert sample(metrics, "quest_queue_wait_seconds_sum", script="digest") == 10.0
    assert sample(metrics, "quest_fire_lateness_seconds_count", script="tick") == 1
    assert sample(metrics, "quest_runs_in_progress", script="digest") == 0

    # The gauges every serve of the database shares.
    assert sample(metrics, "quest_queue_depth", script="digest") == 2  # delayed + the retry
    assert sample(metrics, "quest_queue_depth", script="tick") == 0
    assert sample(metrics, "quest_last_success_timestamp_seconds", script="tick") == (
        START.timestamp()
    )
    assert sample(metrics, "quest_last_success_timestamp_seconds", script="digest") == (
        (START + timedelta(seconds=5)).timestamp()
    )
    assert sample(metrics, "quest_next_run_timestamp_seconds", script="tick") == (
        (START + timedelta(minutes=1)).timestamp()
    )
    assert sample(metrics, "quest_schedule_interval_seconds", script="tick") == 60
    assert sample(metrics, "quest_next_run_timestamp_seconds", script="digest") is None
    assert sample(metrics, "quest_script_paused", script="digest") == 0
    assert sample(metrics, "quest_nodes", state="alive") == 1

    text = generate_latest(metrics.registry).decode()
    for private in (due, failing, SECRET, "mail server"):
        assert private not in text


NODE: dict[str, Any] = {"pid": 1, "version": "0", "concurrency": 1, "isolation": "thread"}


def test_paused_scripts_and_node_states_come_from_the_database(
    app: Quest, metrics: Metrics, clock: FrozenClock
) -> None:
    store = app.store
    store.set_paused("digest", True, now=START)
    ttl = timedelta(seconds=app.settings.lease_ttl)
    for host, seen, stopped, own in (
        ("a", START, False, None),
        ("b", START - ttl - timedelta(seconds=1), False, None),
        ("c", START, True, None),
        ("d", START - timedelta(days=1), True, None),
        # As silent as b, but by its own, longer lease TTL still alive.
        ("e", START - ttl - timedelta(seconds=1), False, 4 * ttl.total_seconds()),
    ):
        node = store.register_node(host=host, now=seen, lease_ttl=own, **NODE)
        if stopped:
            store.stop_node(node, seen)

    assert sample(metrics, "quest_script_paused", script="digest") == 1
    assert sample(metrics, "quest_script_paused", script="tick") == 0
    assert sample(metrics, "quest_nodes", state="alive") == 2
    assert sample(metrics, "quest_nodes", state="lost") == 1
    assert sample(metrics, "quest_nodes", state="stopped") == 2
    assert sample(metrics, "quest_queue_depth", script="digest") == 0
    assert sample(metrics, "quest_last_success_timestamp_seconds", script="digest") is None

    store.set_paused("digest", False, now=START)
    assert sample(metrics, "quest_script_paused", script="digest") == 0


def test_the_gauges_are_read_once_per_cache_period(app: Quest, monkeypatch: Any) -> None:
    metrics = Metrics(app, cache_for=3600)
    reads: list[int] = []
    real = app.store.gauges

    def counted(names: Any) -> Any:
        reads.append(1)
        return real(names)

    monkeypatch.setattr(app.store, "gauges", counted)
    app.enqueue("digest", {"token": SECRET, "fail": False})
    for _ in range(3):
        generate_latest(metrics.registry)

    assert len(reads) == 1
    assert sample(metrics, "quest_queue_depth", script="digest") == 1


def test_the_latest_success_is_found_past_later_failures_for_many_scripts(
    app: Quest, clock: FrozenClock
) -> None:
    store = app.store
    rows = []
    for n in range(120):  # more scripts than one lookup statement takes
        for minute, status in ((1, "succeeded"), (2, "succeeded"), (3, "failed")):
            at = START + timedelta(minutes=minute, seconds=n)
            rows.append((f"job-{n}", status, at))
    rows.append(("always-fails", "failed", START))
    for name, status, at in rows:
        store.insert_run(
            {
                "id": f"{name}-{at:%H%M%S}",
                "name": name,
                "status": status,
                "trigger": "scheduled",
                "created_at": at,
                "started_at": at,
                "finished_at": at + timedelta(seconds=1),
            }
        )

    gauges = store.gauges([f"job-{n}" for n in range(120)] + ["always-fails", "unknown"])

    assert len(gauges.last_success) == 120
    assert gauges.last_success["job-7"] == START + timedelta(minutes=2, seconds=8)
    assert "always-fails" not in gauges.last_success
    assert "unknown" not in gauges.last_success
