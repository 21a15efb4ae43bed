"""retry-webhooks against a real local HTTP server and a refused port."""

from __future__ import annotations

from datetime import datetime, timedelta

from conftest_servers import NOW, http_fixture, pattern_quest, refused_fixture  # noqa: F401
from sqlalchemy import select

from app.models import WebhookDelivery, WebhookStatus

T0 = datetime.fromisoformat(NOW)


def _deliveries(quest, *rows: dict) -> None:
    with quest.store.sessions.begin() as db:
        for values in rows:
            db.add(
                WebhookDelivery(
                    **{
                        "payload": {"event": "order.paid"},
                        "headers": {"X-Signature": "sig"},
                        "status": WebhookStatus.failed,
                        "created_at": T0 - timedelta(hours=2),
                        **values,
                    }
                )
            )


def _by_url(quest) -> dict[str, WebhookDelivery]:
    with quest.store.sessions() as db:
        return {w.url: w for w in db.scalars(select(WebhookDelivery))}


def test_retry_webhooks_delivers_fails_and_gives_up(
    tmp_path, database_url, http_server, refused_url
):
    ok = http_server.route("/ok")
    broken = http_server.route("/broken", status=500)
    last_chance = http_server.route("/last-chance", status=503)
    too_soon = http_server.route("/too-soon")
    with pattern_quest(tmp_path, database_url) as quest:
        _deliveries(
            quest,
            {"url": ok, "attempts": 1, "last_attempt_at": T0 - timedelta(minutes=2)},
            {"url": broken, "attempts": 0, "last_attempt_at": None},
            {"url": last_chance, "attempts": 4, "last_attempt_at": T0 - timedelta(minutes=16)},
            # 2^3 = 8 minutes of backoff have not passed yet.
            {"url": too_soon, "attempts": 3, "last_attempt_at": T0 - timedelta(minutes=7)},
            {"url": refused_url, "attempts": 2, "last_attempt_at": T0 - timedelta(minutes=5)},
            {"url": ok + "?done", "status": WebhookStatus.delivered, "attempts": 1},
            {"url": ok + "?dead", "status": WebhookStatus.permanently_failed, "attempts": 5},
        )

        outcome = quest.run("retry-webhooks")
        assert outcome.ok, outcome.error
        assert outcome.result == {
            "delivered": 1,
            "failed": 2,
            "permanently_failed": 1,
            "waiting": 1,
        }
        rows = _by_url(quest)

    assert rows[ok].status is WebhookStatus.delivered
    assert rows[ok].response_code == 200
    assert rows[ok].delivered_at == T0
    assert rows[ok].attempts == 2

    assert rows[broken].status is WebhookStatus.failed
    assert rows[broken].attempts == 1
    assert rows[broken].response_code == 500
    assert rows[broken].last_attempt_at == T0
    assert "HTTP 500" in rows[broken].last_error

    assert rows[last_chance].status is WebhookStatus.permanently_failed
    assert rows[last_chance].attempts == 5

    assert rows[too_soon].status is WebhookStatus.failed
    assert rows[too_soon].attempts == 3
    assert rows[too_soon].last_attempt_at == T0 - timedelta(minutes=7)

    assert rows[refused_url].status is WebhookStatus.failed
    assert rows[refused_url].attempts == 3
    assert "connection failed" in rows[refused_url].last_error

    delivered = http_server.to("/ok")
    assert len(delivered) == 1
    assert delivered[0].method == "POST"
    assert delivered[0].json() == {"event": "order.paid"}
    assert delivered[0].headers["x-signature"] == "sig"
    assert http_server.to("/too-soon") == []


def test_retry_webhooks_honours_max_attempts_and_batch_size(tmp_path, database_url, http_server):
    broken = http_server.route("/broken", status=500)
    with pattern_quest(tmp_path, database_url) as quest:
        _deliveries(
            quest,
            *[
                {
                    "url": f"{broken}?n={n}",
                    "attempts": 1,
                    "last_attempt_at": T0 - timedelta(hours=n + 1),
                }
                for n in range(3)
            ],
        )
        outcome = quest.run("retry-webhooks", {"max_attempts": 2, "batch_size": 2})
        assert outcome.ok, outcome.error
        assert outcome.result["permanently_failed"] == 2
        rows = _by_url(quest)
    # The two that waited longest were retried; the third is left for the next run.
    assert rows[f"{broken}?n=2"].status is WebhookStatus.permanently_failed
    assert rows[f"{broken}?n=1"].status is WebhookStatus.permanently_failed
    assert rows[f"{broken}?n=0"].attempts == 1
