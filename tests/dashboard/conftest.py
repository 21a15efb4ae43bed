"""Fixtures of the dashboard tests: a Quest on SQLite or PostgreSQL with a frozen clock, and a
browser on the loopback interface."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from quest import Quest
from quest.dashboard import create_app
from quest.testing import FrozenClock, temporary_quest
from tests.dashboard._support import NOW, SCRIPTS, Browser, browser


@pytest.fixture(autouse=True)
def no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUEST_DASHBOARD_PASSWORD", raising=False)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(NOW)


@pytest.fixture
def quest(tmp_path: Path, database_url: str, clock: FrozenClock) -> Iterator[Quest]:
    with temporary_quest(
        tmp_path, scripts=SCRIPTS, database_url=database_url, clock=clock
    ) as instance:
        instance.store.ensure_schema()
        yield instance


@pytest.fixture
def web(quest: Quest) -> Iterator[Browser]:
    """A browser on 127.0.0.1 with full access (the default policy lets loopback in)."""
    b = browser(create_app(quest))
    with b.client:
        yield b
