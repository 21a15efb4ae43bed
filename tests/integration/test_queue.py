"""Queued runs: enqueue, retries with backoff, discard, limits, redaction and results.

``Serve(quest, inline=True).drain(now)`` claims the queued runs due at *now* and runs them before
returning, so every step below is deterministic. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import quest
from quest import (
    Discard,
    Input,
    InvalidInputs,
    Quest,
    RunRequest,
    RunStatus,
    ScriptNotFound,
    Trigger,
    script,
)
from quest.results import REPR_MARKER, TRUNCATED_MARKER
from quest.scheduler import Serve, limits_of
from quest.store import Limits
from quest.testing import FrozenClock, captured_signals, temporary_quest

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SECRET = "tok-9f8e7d6c"

seen: list[dict[str, Any]] = []
broken: set[int] = set()


@script(
    quest={"attempts": 3, "backoff": {"type": "fixed", "delay": "1 second"}},
    inputs={"account": Input(str, default="acme"), "token": Input(str, sensitive=True)},
)
def flaky(inputs: Any, ctx: Any) -> dict[str, Any]:
    seen.append({"attempt": ctx.attempt, "token": inputs.token, "root_id": ctx.root_id})
    ctx.log.info("calling the API for %s", inputs.account)
    if ctx.attempt < 3:
        raise ConnectionError(f"the API refused token {inputs.token}")
    return {"attempt": ctx.attempt}


@script(
    quest={
        "attempts": 4,
        "backoff": {"type": "exponential", "delay": "10 seconds", "max_delay": "25 seconds"},
    }
)
def always_fails(inputs: Any, ctx: Any) -> None:
    raise RuntimeError(f"attempt {ctx.attempt} failed")


@script(quest={"attempts": 2, "backoff": {"delay": "10 seconds", "jitter": 0.5}})
def jittered(inputs: Any, ctx: Any) -> None:
    raise RuntimeError("no")


@script(quest={"attempts": 5})
def discarding(inputs: Any, ctx: Any) -> None:
    raise Discard("the customer was deleted")


@script(quest={"attempts": 5, "discard_on": [LookupError]})
def lookup(inputs: Any, ctx: Any) -> None:
    raise KeyError("invoice-17")


@script(inputs={"n": Input(int, min=0)})
def double(inputs: Any, ctx: Any) -> int:
    seen.append({"name": ctx.name, "n": inputs.n, "trigger": ctx.trigger, "key": ctx.key})
    return inputs.n * 2


@script(inputs={"n": Input(int, default=1)})
def chain(inputs: Any, ctx: Any) -> str:
    return ctx.enqueue("double", {"n": inputs.n + 1}, key="chained")


@script(inputs={"items": Input(list)})
def partial(inputs: Any, ctx: Any) -> dict[str, Any]:
    done = [item for item in inputs.items if item not in broken]
    failed = [item for item in inputs.items if item in broken]
    seen.append({"items": list(inputs.items)})
    if failed:
        ctx.enqueue("partial", {"items": failed}, delay="1 minute")
    return {"done": done, "requeued": failed}


@script(quest={"rate_limit": {"max": 2, "per": "1 minute"}, "without_overlapping": False})
def limited(inputs: Any, ctx: Any) -> None:
    pass


@script(
    quest={
        "rate_limit": {"max": 1, "per": "1 minute", "per_key": True},
        "without_overlapping": False,
    }
)
def per_key_rate(inputs: Any, ctx: Any) -> None:
    pass


@script(quest={"concurrency": 1, "without_overlapping": False})
def one_at_a_time(inputs: Any, ctx: Any) -> None:
    pass


@script(quest={"concurrency": 2, "without_overlapping": False})
def two_at_a_time(inputs: Any, ctx: Any) -> None:
    pass


@script(quest={"concurrency": {"max": 1, "per_key": True}, "without_overlapping": False})
def one_per_key(inputs: Any, ctx: Any) -> None:
    pass


@script(quest={"without_overlapping": True})
def exclusive(inputs: Any, ctx: Any) -> None:
    pass


@script(inputs={"kind": Input(["json", "object", "large"])})
def results(inputs: Any, ctx: Any) -> Any:
    if inputs.kind == "object":
        return object()
    if inputs.kind == "large":
        return ["x" * 1000] * 100
    return {"rows": [1, 2, 3], "ok": True}


SCRIPTS = [
    flaky,
    always_fails,
    jittered,
    discarding,
    lookup,
    double,
    chain,
    partial,
    limited,
    per_key_rate,
    one_at_a_time,
    two_at_a_time,
    one_per_key,
    exclusive,
    results,
]


@pytest.fixture(autouse=True)
def clean() -> None:
    seen.clear()
    broken.clear()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def app(tmp_path: Path, database_url: str, clock: FrozenClock) -> Iterator[Quest]:
    with temporary_quest(
        tmp_path, scripts=SCRIPTS, database_url=database_url, clock=clock
    ) as instance:
        yield instance


@pytest.fixture
def serve(app: Quest) -> Serve:
    server = Serve(app, inline=True, concurrency=10)
    server.start(NOW)
    return server


def drain(serve: Serve, clock: FrozenClock, when: datetime) -> list[str]:
    clock.set(when)
    return serve.drain(when)


def limits_for(app: Quest) -> dict[str, Limits]:
    return {s.name: rule for s in app.registry if (rule := limits_of(s)) is not None}


def chain_of(app: Quest, root_id: str) -> list[dict[str, Any]]:
    rows = [r for r in app.store.history(limit=None) if r["root_id"] == root_id]
    return sorted(rows, key=lambda r: r["attempt"])


# -- retries -------------------------------------------------------------------------------------


def test_a_run_failing_until_its_third_attempt(
    app: Quest, serve: Serve, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    root = app.enqueue("flaky", {"token": SECRET})
    with captured_signals() as events:
        assert drain(serve, clock, NOW) == [root]
        assert drain(serve, clock, NOW + timedelta(seconds=0.5)) == [], "not before the backoff"
        assert len(drain(serve, clock, NOW + timedelta(seconds=1))) == 1
        assert len(drain(serve, clock, NOW + timedelta(seconds=2))) == 1
        assert drain(serve, clock, NOW + timedelta(minutes=5)) == []

    rows = chain_of(app, root)
    assert [(r["attempt"], r["trigger"], r["status"]) for r in rows] == [
        (1, Trigger.enqueued, RunStatus.failed),
        (2, Trigger.retry, RunStatus.failed),
        (3, Trigger.retry, RunStatus.succeeded),
    ]
    assert rows[0]["id"] == root
    assert len({r["id"] for r in rows}) == 3
    assert [r["run_after"] for r in rows[1:]] == [
        NOW + timedelta(seconds=1),
        NOW + timedelta(seconds=2),
    ]
    assert rows[-1]["result"] == {"attempt": 3}
    assert {r["max_attempts"] for r in rows} == {3}
    assert [s["attempt"] for s in seen] == [1, 2, 3]
    assert {s["root_id"] for s in seen} == {root}
    assert [s["token"] for s in seen] == [SECRET] * 3, "each attempt gets the real secret"

    errors = events.events("job:error")
    assert [(e.attempt, e.will_retry, e.retry_at) for e in errors] == [
        (1, True, NOW + timedelta(seconds=1)),
        (2, True, NOW + timedelta(seconds=2)),
    ]
    assert errors[0].error == "ConnectionError: the API refused token ***"
    assert [e.attempt for e in events.events("job:complete")] == [3]

    for row in rows:
        assert row["inputs"] == {"account": "acme", "token": "***"}
        assert SECRET not in repr(row)
    for event in events.events():
        assert SECRET not in repr(event.to_dict())
    assert SECRET not in caplog.text
    assert app.store.secrets_for(root) == {}, "the secret is forgotten once the chain ends"


def test_exponential_backoff_is_capped_and_the_last_error_says_no_retry(
    app: Quest, serve: Serve, clock: FrozenClock
) -> None:
    root = app.enqueue("always-fails")
    with captured_signals() as events:
        when = NOW
        for _ in range(4):
            assert len(drain(serve, clock, when)) == 1
            retry_at = events.events("job:error")[-1].retry_at
            when = retry_at or when
    rows = chain_of(app, root)
    assert [r["status"] for r in rows] == [RunStatus.failed] * 4
    assert [r["run_after"] - NOW for r in rows[1:]] == [
        timedelta(seconds=10),
        timedelta(seconds=30),
        timedelta(seconds=55),
    ]
    errors = events.events("job:error")
    assert [e.will_retry for e in errors] == [True, True, True, False]
    assert errors[-1].retry_at is None


def test_backoff_jitter_spreads_the_delay(app: Quest, serve: Serve, clock: FrozenClock) -> None:
    delays = []
    for _ in range(5):
        root = app.enqueue("jittered")
        drain(serve, clock, NOW)
        retry = chain_of(app, root)[1]
        delays.append((retry["run_after"] - NOW).total_seconds())
    assert all(5 <= d <= 15 for d in delays), delays
    assert len(set(delays)) > 1


def test_pending_retries_live_in_the_database(
    app: Quest, serve: Serve, clock: FrozenClock, tmp_path: Path, database_url: str
) -> None:
    root = app.enqueue("flaky", {"token": SECRET})
    drain(serve, clock, NOW)
    (tmp_path / "other").mkdir()
    with temporary_quest(
        tmp_path / "other", scripts=SCRIPTS, database_url=database_url, clock=clock
    ) as other:
        fresh = Serve(other, inline=True)
        fresh.start(NOW)
        drain(fresh, clock, NOW + timedelta(seconds=1))
        drain(fresh, clock, NOW + timedelta(seconds=2))
    rows = chain_of(app, root)
    assert [r["status"] for r in rows] == [RunStatus.failed, RunStatus.failed, RunStatus.succeeded]
    assert [s["token"] for s in seen] == [SECRET] * 3


def test_a_manual_run_retries_only_when_asked(app: Quest, serve: Serve, clock: FrozenClock) -> None:
    plain = app.run("always-fails")
    assert plain.status is RunStatus.failed
    assert plain.retry_at is None
    assert app.store.count_runs(status=RunStatus.queued) == 0

    asked = app.run("always-fails", request=RunRequest(retry=True))
    assert asked.retry_at == NOW + timedelta(seconds=10)
    [queued] = app.store.history(statuses=[RunStatus.queued])
    assert queued["id"] == asked.retry_run_id
    assert (queued["attempt"], queued["trigger"], queued["root_id"]) == (
        2,
        Trigger.retry,
        asked.run_id,
    )
    drain(serve, clock, NOW + timedelta(seconds=10))
    assert app.store.get_run(queued["id"])["status"] is RunStatus.failed  # type: ignore[index]


# -- discard -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("discarding", "Discard: the customer was deleted"),
        ("lookup", "KeyError: 'invoice-17'"),
    ],
)
def test_discard_ends_the_retries(
    app: Quest, serve: Serve, clock: FrozenClock, name: str, error: str
) -> None:
    root = app.enqueue(name)
    with captured_signals() as events:
        drain(serve, clock, NOW)
        drain(serve, clock, NOW + timedelta(hours=1))
    [row] = app.store.history(name)
    assert row["id"] == root
    assert row["status"] is RunStatus.discarded
    assert row["error"] == error
    [event] = events.events("job:error")
    assert event.status is RunStatus.discarded
    assert not event.will_retry


# -- enqueue -------------------------------------------------------------------------------------


def test_enqueue_validates_now_and_queues_nothing_when_wrong(app: Quest) -> None:
    with pytest.raises(InvalidInputs) as caught:
        app.enqueue("double", {"n": -1})
    assert caught.value.errors[0][0] == "n"
    with pytest.raises(InvalidInputs):
        app.enqueue("double", {})
    with pytest.raises(InvalidInputs):
        app.enqueue("double", {"n": 1, "m": 2})
    with pytest.raises(ScriptNotFound):
        app.enqueue("nope", {})
    with pytest.raises(InvalidInputs):
        app.enqueue("double", {"n": 1}, delay="soon-ish")
    assert app.store.count_runs() == 0


def test_an_enqueued_run_with_a_delay_and_a_key(
    app: Quest, serve: Serve, clock: FrozenClock
) -> None:
    run_id = app.enqueue("double", {"n": 4}, delay="5m", key="company-42")
    row = app.store.get_run(run_id)
    assert row is not None
    assert (row["status"], row["trigger"], row["attempt"]) == (
        RunStatus.queued,
        Trigger.enqueued,
        1,
    )
    assert row["run_after"] == NOW + timedelta(minutes=5)
    assert row["key"] == "company-42"
    assert row["inputs"] == {"n": 4}

    assert drain(serve, clock, NOW + timedelta(minutes=4)) == []
    assert drain(serve, clock, NOW + timedelta(minutes=5)) == [run_id]
    row = app.store.get_run(run_id)
    assert row is not None
    assert row["status"] is RunStatus.succeeded
    assert row["result"] == 8
    assert seen == [{"name": "double", "n": 4, "trigger": Trigger.enqueued, "key": "company-42"}]


def test_a_script_enqueues_another(app: Quest, serve: Serve, clock: FrozenClock) -> None:
    outcome = app.run("chain", {"n": 1})
    assert outcome.ok
    queued = app.store.get_run(outcome.result)
    assert queued is not None
    assert (queued["name"], queued["status"], queued["key"]) == (
        "double",
        RunStatus.queued,
        "chained",
    )
    drain(serve, clock, NOW)
    assert seen == [{"name": "double", "n": 2, "trigger": Trigger.enqueued, "key": "chained"}]
    failed = app.run("chain", {"n": -2})
    assert failed.status is RunStatus.failed
    assert failed.error is not None and failed.error.startswith("InvalidInputs")
    assert app.store.count_runs("double", RunStatus.queued) == 0


def test_the_module_level_enqueue_uses_the_project_of_the_working_folder(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "project"
    (folder / "scripts").mkdir(parents=True)
    (folder / "pyproject.toml").write_text("[tool.quest]\nmodels = false\n", encoding="utf-8")
    (folder / "scripts" / "send_invoice.py").write_text(
        textwrap.dedent(
            """\
            from quest import Input, script

            @script(inputs={"invoice_id": Input(int)})
            def send_invoice(inputs, ctx):
                return inputs.invoice_id
            """
        ),
        encoding="utf-8",
    )
    monkeypatch.chdir(folder)
    monkeypatch.setenv("QUEST_DATABASE_URL", database_url)
    monkeypatch.setattr(quest, "_default", None)
    try:
        run_id = quest.enqueue("send-invoice", {"invoice_id": 17}, key="company-42")
        with pytest.raises(InvalidInputs):
            quest.enqueue("send-invoice", {"invoice_id": "seventeen"})
        app = quest._default
        assert app is not None
        row = app.store.get_run(run_id)
        assert row is not None
        assert (row["name"], row["status"], row["inputs"], row["key"]) == (
            "send-invoice",
            RunStatus.queued,
            {"invoice_id": 17},
            "company-42",
        )
        assert app.store.count_runs() == 1
    finally:
        if quest._default is not None:
            quest._default.close()


def test_serve_drains_at_most_concurrency_runs_at_a_time(app: Quest, clock: FrozenClock) -> None:
    ids = [app.enqueue("double", {"n": n}) for n in range(5)]
    serve = Serve(app, inline=True, concurrency=2)
    serve.start(NOW)
    batches = [drain(serve, clock, NOW) for _ in range(4)]
    assert [len(b) for b in batches] == [2, 2, 1, 0]
    assert sorted(i for batch in batches for i in batch) == sorted(ids)
    assert sorted(s["n"] for s in seen) == list(range(5))
    assert app.store.count_runs("double", RunStatus.succeeded) == 5


def test_the_partial_retry_pattern(app: Quest, serve: Serve, clock: FrozenClock) -> None:
    broken.update({2, 5})
    app.enqueue("partial", {"items": [1, 2, 3, 4, 5]})
    drain(serve, clock, NOW)
    broken.discard(2)
    drain(serve, clock, NOW + timedelta(minutes=1))
    broken.clear()
    drain(serve, clock, NOW + timedelta(minutes=2))
    assert drain(serve, clock, NOW + timedelta(minutes=10)) == []
    assert [s["items"] for s in seen] == [[1, 2, 3, 4, 5], [2, 5], [5]]
    rows = sorted(app.store.history("partial"), key=lambda r: r["run_after"])
    assert [r["result"] for r in rows] == [
        {"done": [1, 3, 4], "requeued": [2, 5]},
        {"done": [2], "requeued": [5]},
        {"done": [5], "requeued": []},
    ]
    assert {r["status"] for r in rows} == {RunStatus.succeeded}


def test_an_enqueued_run_is_not_held_back_by_the_overlap_lease(
    app: Quest, serve: Serve, clock: FrozenClock
) -> None:
    app.store.acquire_lease(
        "exclusive", run_id="e" * 32, owner="web-1:7", now=NOW, ttl=timedelta(seconds=30)
    )
    run_id = app.enqueue("exclusive")
    assert drain(serve, clock, NOW) == [run_id]
    row = app.store.get_run(run_id)
    assert row is not None
    assert row["status"] is RunStatus.succeeded, "without_overlapping governs the schedule only"
    lease = app.store.lease("exclusive")
    assert lease is not None and lease["run_id"] == "e" * 32, "the scheduled run keeps its lease"


# -- limits --------------------------------------------------------------------------------------


def test_a_rate_limit_per_script(app: Quest, serve: Serve, clock: FrozenClock) -> None:
    for _ in range(5):
        app.enqueue("limited")
    assert len(drain(serve, clock, NOW)) == 2
    assert drain(serve, clock, NOW + timedelta(seconds=30)) == []
    assert len(drain(serve, clock, NOW + timedelta(seconds=61))) == 2
    assert len(drain(serve, clock, NOW + timedelta(seconds=122))) == 1
    assert app.store.count_runs("limited", RunStatus.succeeded) == 5


def test_a_rate_limit_per_key(app: Quest, serve: Serve, clock: FrozenClock) -> None:
    for key in ("company-42", "company-42", "company-7", "company-7"):
        app.enqueue("per-key-rate", key=key)
    first = drain(serve, clock, NOW)
    assert sorted(app.store.get_run(i)["key"] for i in first) == [  # type: ignore[index]
        "company-42",
        "company-7",
    ]
    assert drain(serve, clock, NOW + timedelta(seconds=30)) == []
    assert len(drain(serve, clock, NOW + timedelta(seconds=61))) == 2


def test_a_concurrency_limit_per_script(app: Quest, serve: Serve, clock: FrozenClock) -> None:
    for _ in range(3):
        app.enqueue("one-at-a-time")
    elsewhere = app.store.claim_queued(
        now=NOW,
        limit=1,
        owner_host="web-2",
        owner_pid=99,
        limits=limits_for(app),  # another serve took one and is running it
    )
    assert len(elsewhere) == 1
    assert drain(serve, clock, NOW) == [], "one is already running on another host"
    app.store.update_run(elsewhere[0]["id"], {"status": RunStatus.succeeded})
    assert len(drain(serve, clock, NOW + timedelta(seconds=1))) == 1
    assert len(drain(serve, clock, NOW + timedelta(seconds=2))) == 1
    assert app.store.count_runs("one-at-a-time", RunStatus.queued) == 0


def test_claims_made_together_count_once_against_the_limit(app: Quest) -> None:
    for _ in range(3):
        app.enqueue("two-at-a-time")
    claimed = app.store.claim_queued(
        now=NOW, limit=10, owner_host="web-2", owner_pid=99, limits=limits_for(app)
    )
    assert len(claimed) == 2
    assert app.store.count_runs("two-at-a-time", RunStatus.running) == 2


def test_a_concurrency_limit_per_key(app: Quest, serve: Serve, clock: FrozenClock) -> None:
    for key in ("company-42", "company-42", "company-7", "company-7"):
        app.enqueue("one-per-key", key=key)
    batches = [drain(serve, clock, NOW) for _ in range(3)]
    assert [len(b) for b in batches] == [2, 2, 0]
    for batch in batches[:2]:
        keys = sorted(app.store.get_run(i)["key"] for i in batch)  # type: ignore[index]
        assert keys == ["company-42", "company-7"]


# -- results -------------------------------------------------------------------------------------


def test_results_of_queued_runs_are_captured(app: Quest, serve: Serve, clock: FrozenClock) -> None:
    ids = {kind: app.enqueue("results", {"kind": kind}) for kind in ("json", "object", "large")}
    drain(serve, clock, NOW)
    stored = {kind: app.store.get_run(run_id)["result"] for kind, run_id in ids.items()}  # type: ignore[index]
    assert stored["json"] == {"rows": [1, 2, 3], "ok": True}
    assert stored["object"][REPR_MARKER].startswith("<object object at")
    assert stored["large"][TRUNCATED_MARKER] is True
    assert stored["large"]["size"] > 100_000
    assert len(stored["large"]["preview"]) <= 64 * 1024
