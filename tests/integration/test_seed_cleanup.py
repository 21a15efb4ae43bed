"""cleanup-temp-files and purge-deleted-records, through quest's runner and CLI."""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from click.testing import CliRunner
from conftest_servers import NOW, pattern_quest
from sqlalchemy import func, select

from app.models import ArchivedRecord, Session
from quest.cli import cli

T0 = datetime.fromisoformat(NOW)


def _touch(path, age: timedelta) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    stamp = (T0 - age).timestamp()
    os.utime(path, (stamp, stamp))


def test_cleanup_temp_files_removes_only_old_uploads(tmp_path, database_url):
    uploads = tmp_path / ".tmp" / "uploads"
    _touch(uploads / "old.bin", timedelta(hours=49))
    _touch(uploads / "just-over.bin", timedelta(hours=24, minutes=1))
    _touch(uploads / "recent.bin", timedelta(hours=23))
    _touch(uploads / "nested" / "old-inside-folder.bin", timedelta(days=10))

    with pattern_quest(tmp_path, database_url) as quest:
        outcome = quest.run("cleanup-temp-files")

    assert outcome.ok, outcome.error
    assert outcome.result == {"deleted": 2, "kept": 1}
    assert sorted(p.name for p in uploads.iterdir()) == ["nested", "recent.bin"]
    assert (uploads / "nested" / "old-inside-folder.bin").exists()


def test_cleanup_temp_files_without_upload_folder_is_a_no_op(tmp_path, database_url):
    with pattern_quest(tmp_path, database_url) as quest:
        outcome = quest.run("cleanup-temp-files")
    assert outcome.ok, outcome.error
    assert outcome.result == {"deleted": 0, "kept": 0}


def _archive(quest, *ages_in_days: int) -> None:
    with quest.store.sessions.begin() as db:
        for n, days in enumerate(ages_in_days):
            db.add(
                ArchivedRecord(
                    record_type="invoice",
                    record_id=n,
                    data={"n": n},
                    archived_at=T0 - timedelta(days=days),
                )
            )


def _remaining(quest) -> int:
    with quest.store.sessions() as db:
        return db.scalar(select(func.count()).select_from(ArchivedRecord))


def test_purge_deleted_records_respects_retention(tmp_path, database_url):
    with pattern_quest(tmp_path, database_url) as quest:
        _archive(quest, 400, 91, 89, 30, 1)

        outcome = quest.run("purge-deleted-records")
        assert outcome.ok, outcome.error
        assert outcome.result == {"purged": 2}
        assert _remaining(quest) == 3

        outcome = quest.run("purge-deleted-records", {"retention_days": 7})
        assert outcome.ok, outcome.error
        assert outcome.result == {"purged": 2}
        assert _remaining(quest) == 1


def test_purge_rejects_a_negative_retention_at_the_cli(tmp_path, database_url):
    with pattern_quest(tmp_path, database_url) as quest:
        _archive(quest, 400)
        result = CliRunner().invoke(
            cli, ["run", "purge-deleted-records", "--retention-days", "-5"], obj=quest
        )
        assert result.exit_code == 2, result.output
        assert "--retention-days" in result.output
        assert _remaining(quest) == 1
        assert quest.store.history("purge-deleted-records") == []


def test_cleanup_sessions_removes_inactive_sessions(tmp_path, database_url):
    with pattern_quest(tmp_path, database_url) as quest:
        with quest.store.sessions.begin() as db:
            for n, days in enumerate([1, 6, 8, 40]):
                db.add(
                    Session(
                        token=f"token-{n}",
                        created_at=T0 - timedelta(days=days + 1),
                        last_active=T0 - timedelta(days=days),
                    )
                )
        outcome = quest.run("cleanup-sessions", {"days_old": 7})
        assert outcome.ok, outcome.error
        assert outcome.result == {"deleted": 2}
        with quest.store.sessions() as db:
            assert sorted(db.scalars(select(Session.token))) == ["token-0", "token-1"]
