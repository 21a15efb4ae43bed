"""The metrics registry of a serve, fed by JobEvents: names, labels, buckets, bounded labels."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from quest.enums import RunStatus, SkipReason, Trigger
from quest.metrics import DELAY_BUCKETS, DURATION_BUCKETS, NODE_STATES, Metrics, skip_reason
from quest.signals import JobEvent
from quest.store import Gauges

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SCRIPTS = ("tick", "send-digest", "retry-webhooks")


@dataclass
class FakeStore:
    gauges_read: Gauges = field(default_factory=Gauges)
    reads: int = 0
    fail: bool = False

    def gauges(self, names: Iterable[str]) -> Gauges:
        self.reads += 1
        if self.fail:
            raise ConnectionError("database went away")
        return self.gauges_read


def fake_quest(store: FakeStore | None = None) -> Any:
    """What :class:`Metrics` reads of a Quest: its scripts, store, settings and clock."""
    return SimpleNamespace(
        registry=[SimpleNamespace(name=name) for name in SCRIPTS],
        store=store or FakeStore(),
        settings=SimpleNamespace(lease_ttl=30),
        clock=SimpleNamespace(now=lambda: START),
    )


def event(
    name: str = "tick",
    *,
    status: RunStatus = RunStatus.running,
    trigger: Trigger = Trigger.scheduled,
    run_id: str | None = None,
    started: datetime = START,
    duration_ms: int | None = None,
    **fields: Any,
) -> JobEvent:
    return JobEvent(
        name=name,
        run_id=run_id or uuid.uuid4().hex,
        trigger=trigger,
        status=status,
        inputs=fields.pop("inputs", {}),
        timestamp=started,
        started_at=started,
        duration_ms=duration_ms,
        **fields,
    )


def run(metrics: Metrics, end: JobEvent) -> None:
    """A run that starts and ends with *end*."""
    metrics.on_start(None, event=end)
    metrics.on_end(None, event=end)


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(fake_quest())


def test_every_metric_is_named_in_base_units_with_total_on_counters(metrics: Metrics) -> None:
    run(metrics, event(status=RunStatus.succeeded, duration_ms=120))
    text = generate_latest(metrics.registry).decode()
    types = {
        line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE")
    }
    assert {
        "quest_runs_total": "counter",
        "quest_skips_total": "counter",
        "quest_retries_total": "counter",
        "quest_run_duration_seconds": "histogram",
        "quest_fire_lateness_seconds": "histogram",
        "quest_queue_wait_seconds": "histogram",
        "quest_runs_in_progress": "gauge",
        "quest_queue_depth": "gauge",
        "quest_last_success_timestamp_seconds": "gauge",
        "quest_next_run_timestamp_seconds": "gauge",
        "quest_script_paused": "gauge",
        "quest_nodes": "gauge",
    }.items() <= types.items()
    assert 'quest_runs_total{script="tick",status="succeeded",trigger="scheduled"} 1.0' in text


def test_an_ended_run_is_counted_by_script_status_and_trigger(metrics: Metrics) -> None:
    run(metrics, event(status=RunStatus.succeeded, duration_ms=20))
    run(metrics, event(status=RunStatus.succeeded, duration_ms=30))
    run(metrics, event(status=RunStatus.failed, trigger=Trigger.enqueued, duration_ms=5))
    run(metrics, event("send-digest", status=RunStatus.timed_out, duration_ms=60_000))

    runs = "quest_runs_total"
    assert value(metrics, runs, script="tick", status="succeeded", trigger="scheduled") == 2
    assert value(metrics, runs, script="tick", status="failed", trigger="enqueued") == 1
    assert value(metrics, runs, script="send-digest", status="timed_out", trigger="scheduled") == 1
    durations = "quest_run_duration_seconds_sum"
    assert value(metrics, durations, script="tick", status="succeeded") == pytest.approx(0.05)
    assert value(metrics, durations, script="send-digest", status="timed_out") == 60.0


def test_the_duration_buckets_run_from_milliseconds_to_hours(metrics: Metrics) -> None:
    assert DURATION_BUCKETS[0] <= 0.005
    assert DURATION_BUCKETS[-1] >= 4 * 3600
    assert list(DURATION_BUCKETS) == sorted(DURATION_BUCKETS)
    run(metrics, event(status=RunStatus.succeeded, duration_ms=3))
    run(metrics, event(status=RunStatus.succeeded, duration_ms=2 * 3600 * 1000))

    bucket = "quest_run_duration_seconds_bucket"
    labels = {"script": "tick", "status": "succeeded"}
    assert value(metrics, bucket, le="0.005", **labels) == 1
    assert value(metrics, bucket, le="3600.0", **labels) == 1
    assert value(metrics, bucket, le="7200.0", **labels) == 2
    assert value(metrics, bucket, le="+Inf", **labels) == 2


def test_runs_in_progress_follow_the_starts_and_ends_seen_here(metrics: Metrics) -> None:
    first, second = event(), event()
    metrics.on_start(None, event=first)
    metrics.on_start(None, event=second)
    metrics.on_start(None, event=first)  # the same start twice counts once
    assert value(metrics, "quest_runs_in_progress", script="tick") == 2

    metrics.on_end(None, event=_ended(first, RunStatus.succeeded))
    assert value(metrics, "quest_runs_in_progress", script="tick") == 1
    # A run found abandoned by recovery was started by another process: no start seen here.
    metrics.on_end(None, event=event(status=RunStatus.abandoned, duration_ms=90_000))
    assert value(metrics, "quest_runs_in_progress", script="tick") == 1
    assert (
        value(metrics, "quest_runs_total", script="tick", status="abandoned", trigger="scheduled")
        == 1
    )
    # Every script is exported at 0 before its first run.
    assert value(metrics, "quest_runs_in_progress", script="retry-webhooks") == 0


def test_a_failure_whose_retry_is_queued_counts_a_retry(metrics: Metrics) -> None:
    run(metrics, event(status=RunStatus.failed, duration_ms=1, retry_at=START))
    run(metrics, event(status=RunStatus.failed, duration_ms=1))

    assert value(metrics, "quest_retries_total", script="tick") == 1
    assert (
        value(metrics, "quest_runs_total", script="tick", status="failed", trigger="scheduled") == 2
    )


def test_skips_are_counted_by_their_reason_only(metrics: Metrics) -> None:
    holder = uuid.uuid4().hex
    metrics.on_skip(None, event=event(status=RunStatus.skipped, reason=f"overlap: run {holder}"))
    metrics.on_skip(None, event=event(status=RunStatus.skipped, reason="paused: quest pause"))
    metrics.on_skip(None, event=event(status=RunStatus.skipped, reason="missed: 12 slots from"))
    metrics.on_skip(None, event=event(status=RunStatus.skipped, reason=None))

    assert value(metrics, "quest_skips_total", script="tick", reason="overlap") == 1
    assert value(metrics, "quest_skips_total", script="tick", reason="paused") == 1
    assert value(metrics, "quest_skips_total", script="tick", reason="missed") == 1
    assert value(metrics, "quest_skips_total", script="tick", reason="other") == 1
    assert holder not in generate_latest(metrics.registry).decode()
    assert skip_reason("disabled: enabled is false") == "disabled"
    assert skip_reason("not a reason at all") == "other"


def test_fire_lateness_is_observed_for_scheduled_slots_only(metrics: Metrics) -> None:
    slot = START
    metrics.on_start(None, event=event(scheduled_for=slot, started=slot + timedelta(seconds=2)))
    metrics.on_start(
        None,
        event=event(
            trigger=Trigger.catch_up, scheduled_for=slot, started=slot + timedelta(hours=5)
        ),
    )
    # A retry of a scheduled run keeps its slot but is not late for it.
    metrics.on_start(
        None,
        event=event(trigger=Trigger.retry, scheduled_for=slot, started=slot + timedelta(hours=1)),
    )
    # A clock slightly behind the slot's is not negative lateness.
    metrics.on_start(None, event=event(scheduled_for=slot, started=slot - timedelta(seconds=1)))

    assert value(metrics, "quest_fire_lateness_seconds_count", script="tick") == 2
    assert value(metrics, "quest_fire_lateness_seconds_sum", script="tick") == 2.0
    assert value(metrics, "quest_fire_lateness_seconds_bucket", script="tick", le="0.001") == 1
    assert value(metrics, "quest_fire_lateness_seconds_bucket", script="tick", le="2.5") == 2


def test_queue_wait_is_started_minus_due_of_each_claimed_row(metrics: Metrics) -> None:
    metrics.claimed(
        [
            {"name": "send-digest", "run_after": START, "started_at": START + timedelta(seconds=3)},
            {"name": "send-digest", "run_after": START, "started_at": START},
            {"name": "tick", "run_after": None, "started_at": START},
        ]
    )

    assert value(metrics, "quest_queue_wait_seconds_count", script="send-digest") == 2
    assert value(metrics, "quest_queue_wait_seconds_sum", script="send-digest") == 3.0
    assert value(metrics, "quest_queue_wait_seconds_bucket", script="send-digest", le="5.0") == 2
    assert value(metrics, "quest_queue_wait_seconds_count", script="tick") is None
    assert DELAY_BUCKETS[0] <= 0.001 and DELAY_BUCKETS[-1] >= 3600


def test_the_database_gauges_are_read_at_most_once_per_cache_period() -> None:
    store = FakeStore(
        Gauges(
            queued={"send-digest": 7},
            last_success={"tick": START},
            paused={"retry-webhooks"},
            nodes=[
                {"heartbeat_at": START, "stopped_at": None},
                {"heartbeat_at": START - timedelta(minutes=5), "stopped_at": None},
                {"heartbeat_at": START, "stopped_at": START},
                {"heartbeat_at": START - timedelta(seconds=3), "stopped_at": None},
            ],
        )
    )
    metrics = Metrics(fake_quest(store), cache_for=3600)

    generate_latest(metrics.registry)
    generate_latest(metrics.registry)
    assert store.reads == 1
    assert value(metrics, "quest_queue_depth", script="send-digest") == 7
    assert value(metrics, "quest_queue_depth", script="tick") == 0
    assert value(metrics, "quest_last_success_timestamp_seconds", script="tick") == (
        START.timestamp()
    )
    assert value(metrics, "quest_last_success_timestamp_seconds", script="send-digest") is None
    assert value(metrics, "quest_script_paused", script="retry-webhooks") == 1
    assert value(metrics, "quest_script_paused", script="tick") == 0
    assert value(metrics, "quest_nodes", state="alive") == 2
    assert value(metrics, "quest_nodes", state="lost") == 1
    assert value(metrics, "quest_nodes", state="stopped") == 1
    assert store.reads == 1


def test_a_database_that_cannot_be_read_keeps_the_last_values_and_the_run_metrics() -> None:
    store = FakeStore(Gauges(queued={"tick": 2}))
    metrics = Metrics(fake_quest(store), cache_for=0)
    run(metrics, event(status=RunStatus.succeeded, duration_ms=1))
    assert value(metrics, "quest_queue_depth", script="tick") == 2

    store.fail = True
    text = generate_latest(metrics.registry).decode()

    assert store.reads >= 2
    assert 'quest_queue_depth{script="tick"} 2.0' in text
    assert 'quest_runs_total{script="tick",status="succeeded",trigger="scheduled"} 1.0' in text


def test_a_database_never_read_serves_the_run_metrics_alone() -> None:
    metrics = Metrics(fake_quest(FakeStore(fail=True)))
    run(metrics, event(status=RunStatus.succeeded, duration_ms=1))

    text = generate_latest(metrics.registry).decode()

    assert "quest_runs_total" in text
    assert "quest_queue_depth{" not in text


def _ended(start: JobEvent, status: RunStatus, **fields: Any) -> JobEvent:
    return JobEvent(
        **{
            **{name: getattr(start, name) for name in start.__dataclass_fields__},
            "status": status,
            "duration_ms": 10,
            **fields,
        }
    )


ALLOWED = {
    "script": set(SCRIPTS),
    "status": {s.value for s in RunStatus},
    "trigger": {t.value for t in Trigger},
    "reason": {r.value for r in SkipReason} | {"other"},
    "state": set(NODE_STATES),
    "le": {str(float(b)) for b in (*DURATION_BUCKETS, *DELAY_BUCKETS)} | {"+Inf"},
}
texts = st.text(min_size=1, max_size=40)


@settings(max_examples=40, deadline=None)
@given(
    runs=st.lists(
        st.tuples(
            st.sampled_from(SCRIPTS),
            st.sampled_from(list(RunStatus)),
            st.sampled_from(list(Trigger)),
            st.text(alphabet="0123456789abcdef", min_size=12, max_size=32),
            st.none() | texts,
            st.dictionaries(texts, texts, max_size=3),
            st.none() | texts,
            st.integers(min_value=0, max_value=10**9),
        ),
        max_size=12,
    )
)
def test_every_label_value_comes_from_a_bounded_set(runs: list[tuple[Any, ...]]) -> None:
    metrics = Metrics(fake_quest(FakeStore(Gauges(queued={"tick": 1}, last_success={}))))
    for name, status, trigger, run_id, key, inputs, reason, duration in runs:
        one = event(
            name,
            status=status,
            trigger=trigger,
            run_id=run_id,
            key=key,
            inputs=inputs,
            reason=reason,
            duration_ms=duration,
            scheduled_for=START,
            retry_at=START if duration % 2 else None,
        )
        metrics.on_start(None, event=one)
        if status is RunStatus.skipped:
            metrics.on_skip(None, event=one)
        else:
            metrics.on_end(None, event=one)
        metrics.claimed([{"name": name, "run_after": START, "started_at": START, "id": run_id}])

    for family in metrics.registry.collect():
        for sample in family.samples:
            for label, text in sample.labels.items():
                assert label in ALLOWED, (sample.name, label)
                assert text in ALLOWED[label], (sample.name, label, text)
