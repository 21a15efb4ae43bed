"""``quest demo seed`` gives every script work; seeding twice and --reset both work."""

from __future__ import annotations

from datetime import datetime

from click.testing import CliRunner
from conftest_servers import NOW, http_fixture, pattern_quest  # noqa: F401
from sqlalchemy import func, select

from app import demo
from app.models import EmailQueue, User, WebhookDelivery
from quest.cli import cli

T0 = datetime.fromisoformat(NOW)


def _count(quest, model) -> int:
    with quest.store.sessions() as db:
        return db.scalar(select(func.count()).select_from(model))


def test_demo_data_gives_every_script_work(tmp_path, database_url, http_server):
    with pattern_quest(tmp_path, database_url) as quest:
        counts = demo.seed(quest.store.sessions, now=T0, root=tmp_path)
        assert all(count > 0 for count in counts.values()), counts

        results = {}
        for name in sorted(quest.registry.scripts):
            inputs = {}
            if name == "health-check":
                inputs = {"endpoints": [{"name": "local", "url": http_server.route("/up")}]}
            outcome = quest.run(name, inputs)
            assert outcome.ok, f"{name}: {outcome.error}"
            results[name] = outcome.result

    assert results["cleanup-sessions"]["deleted"] > 0
    assert results["cleanup-temp-files"]["deleted"] == 3
    assert results["purge-deleted-records"]["purged"] == 4
    assert results["process-email-queue"] == {"sent": 5, "failed": 2}
    assert results["send-daily-digest"]["sent"] > 0
    assert results["aggregate-analytics"]["page_views"] > 0
    assert results["aggregate-analytics"]["signups"] == 2
    assert results["export-monthly-report"]["orders"] > 0
    assert (
        results["retry-webhooks"]["failed"] + results["retry-webhooks"]["permanently_failed"] == 5
    )
    assert results["warm-dashboard-cache"]["total_orders"] == 40
    assert results["health-check"]["down"] == 0
    assert results["monitor-stale-data"]["feeds"] == ["crm-contacts"]
    mailed = 5 + results["send-daily-digest"]["sent"] + 1  # queue, digests, monthly report
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == mailed


def test_demo_seed_twice_then_reset_from_the_cli(tmp_path, database_url):
    with pattern_quest(tmp_path, database_url) as quest:
        runner = CliRunner()
        first = runner.invoke(cli, ["demo", "seed"], obj=quest)
        assert first.exit_code == 0, first.output
        assert "users" in first.output
        second = runner.invoke(cli, ["demo", "seed"], obj=quest)
        assert second.exit_code == 0, second.output
        assert _count(quest, User) == 8
        assert _count(quest, EmailQueue) == 16
        assert _count(quest, WebhookDelivery) == 10

        reset = runner.invoke(cli, ["demo", "seed", "--reset"], obj=quest)
        assert reset.exit_code == 0, reset.output
        assert "Emptied the sample tables." in reset.output
        assert _count(quest, User) == 8
        assert _count(quest, EmailQueue) == 8
        assert _count(quest, WebhookDelivery) == 5
        assert sorted(p.name for p in (tmp_path / ".tmp" / "uploads").iterdir()) == sorted(
            name for name, _ in demo._UPLOADS
        )
