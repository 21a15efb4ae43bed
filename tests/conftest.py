"""Shared fixtures: a throwaway SQLite database always, PostgreSQL when QUEST_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from quest.config import Settings
from quest.testing import reset_database, test_settings

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("QUEST_TEST_POSTGRES_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_or_skip() -> str:
    if POSTGRES_URL:
        return POSTGRES_URL
    if IN_CI:
        pytest.fail("QUEST_TEST_POSTGRES_URL is not set; under CI PostgreSQL tests must run")
    pytest.skip("PostgreSQL tests need QUEST_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")


@pytest.fixture
def postgres_url() -> str:
    return _postgres_or_skip()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every storage test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'quest.sqlite3'}"
        return
    url = _postgres_or_skip()
    settings = test_settings(ROOT, database_url=url)
    reset_database(url, settings)
    yield url
    reset_database(url, settings)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings of this repository's project on the test's database."""
    return test_settings(ROOT, database_url=database_url, outbox_dir=tmp_path / "outbox")
