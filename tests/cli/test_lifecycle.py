"""What an invocation opens it closes: the quest a command or the dashboard built, the runner's
heartbeat once closed, the store of a quest whose schema check failed, a listener once closed;
and options in seconds refuse what is not a finite number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from quest import script
from quest.app import Quest
from quest.cli import cli
from quest.store import Store
from quest.testing import temporary_quest


@script()
def tick(inputs: Any, ctx: Any) -> str:
    return "ok"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty project in the working folder, its settings from the environment."""
    (tmp_path / "scripts").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUEST_SCRIPTS_DIR", str(tmp_path / "scripts"))
    monkeypatch.setenv("QUEST_DATABASE_URL", f"sqlite:///{tmp_path / 'quest.sqlite3'}")
    monkeypatch.setenv("QUEST_MODELS", "")
    monkeypatch.setenv("QUEST_BOOTSTRAP", "")
    return tmp_path


def calls_to(monkeypatch: pytest.MonkeyPatch, cls: type, name: str) -> list[Any]:
    """The instances of *cls* whose method *name* is called from now on (it still runs)."""
    seen: list[Any] = []
    method = getattr(cls, name)

    def spying(self: Any) -> None:
        seen.append(self)
        method(self)

    monkeypatch.setattr(cls, name, spying)
    return seen


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> list[Quest]:
    """Every quest closed from now on."""
    return calls_to(monkeypatch, Quest, "close")


def test_a_command_closes_the_quest_it_built(project: Path, closed: list[Quest]) -> None:
    result = CliRunner().invoke(cli, ["history"])
    assert result.exit_code == 0, result.output
    assert len(closed) == 1


def test_the_dashboard_closes_the_quest_it_built_when_it_stops(
    project: Path, closed: list[Quest]
) -> None:
    from quest.dashboard import create_app
    from tests.dashboard._support import TestClient

    app = create_app(password="pw")
    with TestClient(app) as client:
        assert client.get("/", auth=("admin", "pw")).status_code == 200
        assert closed == []
    assert len(closed) == 1


def test_the_dashboard_leaves_a_quest_it_was_given_to_its_owner(
    tmp_path: Path, closed: list[Quest]
) -> None:
    from quest.dashboard import create_app
    from tests.dashboard._support import TestClient

    with temporary_quest(tmp_path, scripts=[tick]) as quest:
        with TestClient(create_app(quest, password="pw")):
            pass
        assert closed == []


def test_a_closed_runner_starts_no_heartbeat(tmp_path: Path) -> None:
    with temporary_quest(tmp_path, scripts=[tick]) as app:
        app.runner.close()
        assert app.run("tick").ok
        assert app.runner._heartbeat is None


def test_a_quest_whose_schema_check_fails_closes_its_store(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disposed: list[Store] = calls_to(monkeypatch, Store, "dispose")
    Quest().close()  # the schema, in place
    disposed.clear()
    broken = Quest()
    with broken.store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'q9999'"))
    broken.close()
    disposed.clear()
    app = Quest()
    with pytest.raises(Exception, match="q9999"):
        app.store  # noqa: B018
    assert len(disposed) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--grace", "nan"],
        ["serve", "--grace", "inf"],
        ["cancel", "abc", "--timeout", "nan"],
        ["watch", "--interval", "nan"],
        ["dashboard", "--poll", "nan"],
    ],
)
def test_seconds_options_refuse_what_is_not_a_finite_number(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "is not a finite number of seconds" in result.output
    assert "Traceback" not in result.output
