"""The dashboard's actions: each changes what it says, is recorded in quest_actions and is sent
as the ``action`` signal with who did it. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from quest import Quest, RunStatus, Trigger, signals
from quest.dashboard import Access, Grant, create_app
from quest.testing import FrozenClock
from tests.dashboard._support import (
    NOW,
    SECRET,
    Browser,
    basic,
    browser,
    run_id_from,
    running,
)


@pytest.fixture
def sent() -> Iterator[list[signals.ActionEvent]]:
    """Every ``action`` signal sent during the test."""
    events: list[signals.ActionEvent] = []

    def receive(sender: object, event: signals.ActionEvent) -> None:
        events.append(event)

    signals.action.connect(receive, weak=False)
    try:
        yield events
    finally:
        signals.action.disconnect(receive)


def recorded(quest: Quest) -> list[tuple[str, str, str]]:
    """The recorded actions, oldest first: (who, action, target)."""
    rows = quest.store.recent_actions(100)
    return [(row["who"], row["action"], row["target"]) for row in reversed(rows)]


WHO = "dashboard@127.0.0.1"


def test_run_now_queues_a_run_with_delay_and_key(
    web: Browser, quest: Quest, sent: list[signals.ActionEvent]
) -> None:
    response = web.post(
        "/scripts/cleanup/run",
        {
            "input.days_old": "5",
            "input.mode": "thorough",
            "input.dry_run": "true",
            "input.ratio": "",
            "delay": "10 minutes",
            "key": "tenant-7",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"].endswith("?notice=queued")
    run_id = run_id_from(response.headers["location"])
    row = quest.store.get_run(run_id)
    assert row is not None
    assert row["status"] is RunStatus.queued and row["trigger"] is Trigger.enqueued
    assert row["inputs"] == {"days_old": 5, "mode": "thorough", "dry_run": True, "ratio": 0.5}
    assert row["key"] == "tenant-7"
    assert row["run_after"] == NOW + timedelta(minutes=10)
    assert recorded(quest) == [(WHO, "run_now", "cleanup")]
    [event] = sent
    assert (event.action, event.who, event.target, event.timestamp) == (
        "run_now",
        WHO,
        "cleanup",
        NOW,
    )
    assert event.detail == {"run_id": run_id, "delay": "10 minutes", "key": "tenant-7"}
    page = web.get(response.headers["location"])
    assert "Run queued: serve will start it." in page.text


def test_run_now_with_the_defaults(web: Browser, quest: Quest) -> None:
    response = web.post("/scripts/cleanup/run", {})
    assert response.status_code == 303
    row = quest.store.get_run(run_id_from(response.headers["location"]))
    assert row is not None and row["inputs"]["days_old"] == 30
    assert row["key"] is None and row["run_after"] == NOW


def test_run_now_keeps_a_sensitive_input_out_of_the_joblog(
    web: Browser, quest: Quest, sent: list[signals.ActionEvent]
) -> None:
    response = web.post("/scripts/sync-api/run", {"input.token": SECRET})
    assert response.status_code == 303
    run_id = run_id_from(response.headers["location"])
    row = quest.store.get_run(run_id)
    assert row is not None and row["inputs"] == {"token": "***", "account": "acme"}
    assert quest.store.secrets_for(row["root_id"]) == {"token": SECRET}
    assert SECRET not in repr(quest.store.recent_actions(10))
    assert SECRET not in repr(sent)
    assert SECRET not in web.get(f"/runs/{run_id}").text


def test_pause_and_resume(web: Browser, quest: Quest, sent: list[signals.ActionEvent]) -> None:
    response = web.post("/scripts/cleanup/pause")
    assert response.status_code == 303
    assert response.headers["location"] == "/scripts/cleanup?notice=paused"
    assert quest.store.is_paused("cleanup")
    assert "Paused: its scheduled fires" in web.get(response.headers["location"]).text
    response = web.post("/scripts/cleanup/resume")
    assert response.headers["location"] == "/scripts/cleanup?notice=resumed"
    assert not quest.store.is_paused("cleanup")
    assert recorded(quest) == [(WHO, "pause", "cleanup"), (WHO, "resume", "cleanup")]
    assert [(e.action, e.target) for e in sent] == [("pause", "cleanup"), ("resume", "cleanup")]


def test_retry_of_a_failed_run_queues_a_new_one_with_its_inputs_and_key(
    web: Browser, quest: Quest, clock: FrozenClock, sent: list[signals.ActionEvent]
) -> None:
    failed = quest.run("ingest", {"payload": {"rows": [1, 2]}, "name": "feed"}).run_id
    response = web.post(f"/runs/{failed}/retry")
    assert response.status_code == 303
    new_id = run_id_from(response.headers["location"])
    assert new_id != failed
    row = quest.store.get_run(new_id)
    old = quest.store.get_run(failed)
    assert row is not None and old is not None
    assert row["status"] is RunStatus.queued
    assert row["inputs"] == old["inputs"]
    assert old["status"] is RunStatus.failed, "the failed run stays as it was"
    assert recorded(quest) == [(WHO, "retry", failed)]
    assert sent[0].detail == {"run_id": new_id}


def test_retry_is_refused_for_a_script_with_sensitive_inputs(
    web: Browser, quest: Quest, sent: list[signals.ActionEvent]
) -> None:
    failed = quest.run("sync-api", {"token": SECRET}).run_id
    before = quest.store.count_runs()
    response = web.post(f"/runs/{failed}/retry")
    assert response.status_code == 403
    assert "sensitive inputs (token)" in response.text
    assert "Run now" in response.text
    assert SECRET not in response.text
    assert quest.store.count_runs() == before
    assert recorded(quest) == [] and sent == []


@pytest.mark.parametrize("status", ["succeeded", "queued", "running"])
def test_retry_is_refused_for_a_run_that_did_not_fail(
    web: Browser, quest: Quest, status: str
) -> None:
    if status == "succeeded":
        run_id = quest.run("cleanup").run_id
    elif status == "queued":
        run_id = quest.enqueue("cleanup")
    else:
        run_id = running(quest, "cleanup")
    before = quest.store.count_runs()
    response = web.post(f"/runs/{run_id}/retry")
    assert response.status_code == 403
    assert f"is {status}" in response.text
    assert quest.store.count_runs() == before
    assert recorded(quest) == []


def test_cancel_a_queued_run(web: Browser, quest: Quest, sent: list[signals.ActionEvent]) -> None:
    run_id = quest.enqueue("cleanup")
    response = web.post(f"/runs/{run_id}/cancel")
    assert response.status_code == 303
    assert response.headers["location"] == f"/runs/{run_id}?notice=cancelled"
    row = quest.store.get_run(run_id)
    assert row is not None and row["status"] is RunStatus.cancelled
    assert WHO in row["reason"]
    assert recorded(quest) == [(WHO, "cancel", run_id)]
    assert sent[0].detail == {"outcome": "cancelled"}


def test_cancel_a_running_run_asks_its_serve(web: Browser, quest: Quest) -> None:
    run_id = running(quest, "cleanup")
    response = web.post(f"/runs/{run_id}/cancel")
    assert response.headers["location"] == f"/runs/{run_id}?notice=cancel-requested"
    assert quest.store.cancel_requests([run_id]) == {run_id: WHO}
    page = web.get(response.headers["location"]).text
    assert f"Cancel requested by {WHO}." in page
    assert recorded(quest) == [(WHO, "cancel", run_id)]


def test_cancel_a_finished_run_changes_nothing(web: Browser, quest: Quest) -> None:
    run_id = quest.run("cleanup").run_id
    response = web.post(f"/runs/{run_id}/cancel")
    assert response.headers["location"] == f"/runs/{run_id}?notice=finished"
    row = quest.store.get_run(run_id)
    assert row is not None and row["status"] is RunStatus.succeeded
    assert recorded(quest) == []


def test_discard_a_queued_run_forgets_its_secrets(
    web: Browser, quest: Quest, sent: list[signals.ActionEvent]
) -> None:
    run_id = quest.enqueue("sync-api", {"token": SECRET})
    response = web.post(f"/runs/{run_id}/discard")
    assert response.headers["location"] == f"/runs/{run_id}?notice=discarded"
    row = quest.store.get_run(run_id)
    assert row is not None and row["status"] is RunStatus.discarded
    assert row["finished_at"] == NOW and WHO in row["error"]
    assert quest.store.secrets_for(row["root_id"]) == {}
    assert recorded(quest) == [(WHO, "discard", run_id)]
    assert [e.action for e in sent] == ["discard"]


def test_discard_of_a_run_no_longer_queued_changes_nothing(web: Browser, quest: Quest) -> None:
    run_id = running(quest, "cleanup")
    response = web.post(f"/runs/{run_id}/discard")
    assert response.headers["location"] == f"/runs/{run_id}?notice=not-queued"
    row = quest.store.get_run(run_id)
    assert row is not None and row["status"] is RunStatus.running
    assert recorded(quest) == []


def test_bulk_retry_retries_the_failed_runs_and_skips_the_others(
    web: Browser, quest: Quest
) -> None:
    failed = [quest.run("report").run_id, quest.run("ingest").run_id]
    succeeded = quest.run("cleanup").run_id
    secret = quest.run("sync-api", {"token": SECRET}).run_id
    before = quest.store.count_runs()
    response = web.post(
        "/runs/bulk",
        [("action", "retry"), *[("ids", i) for i in [*failed, succeeded, secret, "f" * 32]]],
    )
    assert response.status_code == 303, response.text
    assert quest.store.count_runs() == before + 2
    assert sorted(target for _, action, target in recorded(quest) if action == "retry") == sorted(
        failed
    )
    page = web.get(response.headers["location"]).text
    assert "2 of 5 selected runs retried" in page


def test_bulk_discard_discards_the_queued_runs(web: Browser, quest: Quest) -> None:
    queued = [quest.enqueue("cleanup"), quest.enqueue("cleanup", key="k")]
    other = running(quest, "cleanup")
    response = web.post(
        "/runs/bulk",
        [("action", "discard"), ("back", "status=queued"), *[("ids", i) for i in [*queued, other]]],
    )
    assert response.status_code == 303
    assert response.headers["location"].startswith("/runs?status=queued&")
    for run_id in queued:
        row = quest.store.get_run(run_id)
        assert row is not None and row["status"] is RunStatus.discarded
    row = quest.store.get_run(other)
    assert row is not None and row["status"] is RunStatus.running
    assert [action for _, action, _ in recorded(quest)] == ["discard", "discard"]
    assert "2 of 3 selected runs discarded" in web.get(response.headers["location"]).text


def test_bulk_with_an_unknown_action_is_refused(web: Browser, quest: Quest) -> None:
    run_id = quest.run("report").run_id
    before = quest.store.count_runs()
    for action in ("delete", ""):
        response = web.post("/runs/bulk", [("action", action), ("ids", run_id)])
        assert response.status_code == 400
        assert "Choose retry or discard" in response.text
    assert quest.store.count_runs() == before


def test_bulk_back_link_stays_on_the_dashboard(web: Browser, quest: Quest) -> None:
    for back in ("//evil.example/x", "\\\\evil", "@evil.example"):
        response = web.post("/runs/bulk", [("action", "discard"), ("back", back)])
        assert response.status_code == 303
        location = response.headers["location"]
        assert location.startswith("/runs?"), location
        assert "evil" not in location.split("?")[0]


def test_the_grant_says_who_acted(quest: Quest, sent: list[signals.ActionEvent]) -> None:
    app = create_app(quest, authorize=lambda request: Grant(Access.full, who="alice@example"))
    web = browser(app, client=("203.0.113.9", 4000))
    response = web.post("/scripts/cleanup/pause")
    assert response.status_code == 303
    assert recorded(quest) == [("alice@example", "pause", "cleanup")]
    assert sent[0].who == "alice@example"


def test_a_password_user_is_recorded_by_name(quest: Quest, sent: list[signals.ActionEvent]) -> None:
    web = browser(create_app(quest, password="pw"), headers=basic("bob", "pw"))
    assert web.post("/scripts/cleanup/pause").status_code == 303
    assert recorded(quest) == [("bob@127.0.0.1", "pause", "cleanup")]


def test_a_signal_receiver_that_raises_does_not_undo_the_action(web: Browser, quest: Quest) -> None:
    def broken(sender: object, event: Any) -> None:
        raise RuntimeError("receiver broke")

    signals.action.connect(broken, weak=False)
    try:
        response = web.post("/scripts/cleanup/pause")
    finally:
        signals.action.disconnect(broken)
    assert response.status_code == 303
    assert quest.store.is_paused("cleanup")
    assert recorded(quest) == [(WHO, "pause", "cleanup")]


def test_recent_actions_appear_on_the_overview(web: Browser, quest: Quest) -> None:
    web.post("/scripts/cleanup/pause")
    page = web.get("/").text
    assert "Recent actions" in page and f"{WHO} — pause cleanup" in page


def test_an_action_on_an_unknown_script_or_run_is_404(web: Browser, quest: Quest) -> None:
    for path in (
        "/scripts/nope/run",
        "/scripts/nope/pause",
        "/scripts/nope/resume",
        "/runs/0123456789abcdef/cancel",
        "/runs/0123456789abcdef/discard",
        "/runs/0123456789abcdef/retry",
    ):
        response = web.post(path)
        assert response.status_code == 404, path
        assert "There is no" in response.text
    assert recorded(quest) == []
