"""health-check, monitor-stale-data and the failure alert of app.bootstrap, with a local webhook."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import pytest
from click.testing import CliRunner
from conftest_servers import NOW, http_fixture, pattern_quest, refused_fixture  # noqa: F401

from app.models import DataFeed
from quest.cli import cli

T0 = datetime.fromisoformat(NOW)


def _alerts(http_server) -> list[dict]:
    return [r.json() for r in http_server.to("/alerts")]


def test_health_check_alerts_on_down_endpoints_only(
    tmp_path, database_url, http_server, refused_url, caplog
):
    hook = http_server.route("/alerts")
    endpoints = [
        {"name": "Fine", "url": http_server.route("/fine")},
        {"name": "Slow", "url": http_server.route("/slow", delay=0.2)},
        {"name": "Broken", "url": http_server.route("/broken", status=500)},
        {"name": "Hanging", "url": http_server.hang("/hang")},
        {"name": "Closed", "url": refused_url},
    ]
    caplog.set_level(logging.WARNING)
    with pattern_quest(tmp_path, database_url, alert_webhook_url=hook) as quest:
        outcome = quest.run(
            "health-check", {"endpoints": endpoints, "timeout_seconds": 0.5, "slow_ms": 100}
        )

    assert outcome.ok, outcome.error
    assert outcome.result["checked"] == 5
    assert outcome.result["down"] == 3
    assert outcome.result["slow"] == 1
    status = {e["name"]: e["ok"] for e in outcome.result["endpoints"]}
    assert status == {
        "Fine": True,
        "Slow": True,
        "Broken": False,
        "Hanging": False,
        "Closed": False,
    }

    alerts = _alerts(http_server)
    assert [a["channel"] for a in alerts] == ["#ops-alerts"] * 3
    texts = [a["text"] for a in alerts]
    assert texts[0].startswith("🚨 Broken is unreachable: HTTP 500")
    assert texts[1].startswith("🚨 Hanging is unreachable: timed out")
    assert texts[2].startswith("🚨 Closed is unreachable: connection failed")
    assert any("[Health] Slow: slow response" in r.getMessage() for r in caplog.records)


def test_health_check_without_webhook_only_logs(tmp_path, database_url, refused_url, caplog):
    caplog.set_level(logging.WARNING, logger="app.alerts")
    with pattern_quest(tmp_path, database_url) as quest:
        outcome = quest.run("health-check", {"endpoints": [{"name": "Closed", "url": refused_url}]})
    assert outcome.ok, outcome.error
    assert outcome.result["down"] == 1
    logged = [r.getMessage() for r in caplog.records if r.name == "app.alerts"]
    assert len(logged) == 1
    assert "Closed is unreachable" in logged[0]


@pytest.mark.parametrize(
    "value",
    [
        '{"a": 1}',
        "[1, 2]",
        '[{"name": "no url"}]',
        '[{"url": "http://127.0.0.1:1/"}]',
        '[{"name": "ftp", "url": "ftp://127.0.0.1/"}]',
        "[]",
        "not json",
    ],
)
def test_health_check_rejects_malformed_endpoints_at_the_cli(tmp_path, value):
    with pattern_quest(tmp_path, f"sqlite:///{tmp_path / 'q.sqlite3'}") as quest:
        result = CliRunner().invoke(cli, ["run", "health-check", "--endpoints", value], obj=quest)
        assert result.exit_code == 2, result.output
        assert "--endpoints" in result.output
        assert quest.store.history("health-check") == []


def test_health_check_accepts_endpoints_at_the_cli(tmp_path, http_server):
    value = json.dumps([{"name": "local", "url": http_server.route("/up")}])
    with pattern_quest(tmp_path, f"sqlite:///{tmp_path / 'q.sqlite3'}") as quest:
        result = CliRunner().invoke(cli, ["run", "health-check", "--endpoints", value], obj=quest)
    assert result.exit_code == 0, result.output
    assert len(http_server.to("/up")) == 1


def test_monitor_stale_data_lists_stale_enabled_feeds(tmp_path, database_url, http_server):
    hook = http_server.route("/alerts")
    with pattern_quest(tmp_path, database_url, alert_webhook_url=hook) as quest:
        with quest.store.sessions.begin() as db:
            for name, enabled, age in [
                ("orders-sync", True, timedelta(minutes=31)),
                ("crm-import", True, timedelta(hours=5)),
                ("fresh-feed", True, timedelta(minutes=29)),
                ("retired-feed", False, timedelta(days=30)),
                ("never-synced", True, None),
            ]:
                db.add(
                    DataFeed(
                        name=name,
                        enabled=enabled,
                        last_sync_at=None if age is None else T0 - age,
                    )
                )
        outcome = quest.run("monitor-stale-data")
        assert outcome.ok, outcome.error
        assert outcome.result == {
            "stale": 3,
            "feeds": ["crm-import", "never-synced", "orders-sync"],
        }

        assert quest.run("monitor-stale-data", {"threshold_minutes": 600}).result["stale"] == 1

    alerts = _alerts(http_server)
    assert alerts[0] == {
        "channel": "#ops-alerts",
        "text": "Data feeds behind schedule: crm-import, never-synced, orders-sync\n"
        "Last sync > 30 minutes ago.",
    }
    assert alerts[1]["text"].startswith("Data feeds behind schedule: never-synced\n")


def test_monitor_stale_data_is_quiet_when_all_fresh(tmp_path, database_url, http_server):
    hook = http_server.route("/alerts")
    with pattern_quest(tmp_path, database_url, alert_webhook_url=hook) as quest:
        with quest.store.sessions.begin() as db:
            db.add(DataFeed(name="fresh", enabled=True, last_sync_at=T0 - timedelta(minutes=5)))
        outcome = quest.run("monitor-stale-data")
    assert outcome.result == {"stale": 0, "feeds": []}
    assert _alerts(http_server) == []


def test_bootstrap_alerts_when_a_job_fails(
    tmp_path, database_url, http_server, refused_url, caplog
):
    caplog.set_level(logging.INFO, logger="app.jobs")
    hook = http_server.route("/alerts")
    port = refused_url.rsplit(":", 1)[1].strip("/")
    with pattern_quest(
        tmp_path,
        database_url,
        alert_webhook_url=hook,
        bootstrap="app.bootstrap",
        smtp_url=f"smtp://127.0.0.1:{port}",
    ) as quest:
        assert quest.run("purge-deleted-records").ok
        outcome = quest.run("export-monthly-report")
        assert not outcome.ok

    alerts = _alerts(http_server)
    assert len(alerts) == 1
    assert alerts[0]["channel"] == "#ops-alerts"
    assert alerts[0]["text"] == (
        f'Job "export-monthly-report" failed after {outcome.duration_ms}ms:\n{outcome.error}'
    )
    assert "ConnectionRefusedError" in alerts[0]["text"]
    logged = [r.getMessage() for r in caplog.records if r.name == "app.jobs"]
    assert logged[0].startswith("job purge-deleted-records started")
    assert logged[1].startswith("job purge-deleted-records completed in")
    assert logged[2].startswith("job export-monthly-report started")
    assert logged[3].startswith("job export-monthly-report failed after")
