"""Shared fixtures: a throwaway SQLite database; PostgreSQL when QUEST_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from quest.config import Settings
from quest.store import make_engine
from quest.testing import project_settings

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("QUEST_TEST_POSTGRES_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_or_skip() -> str:
    if POSTGRES_URL:
        return POSTGRES_URL
    if IN_CI:
        pytest.fail("QUEST_TEST_POSTGRES_URL is not set; under CI PostgreSQL tests must run")
    pytest.skip(
        "PostgreSQL tests need QUEST_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)"
    )


@pytest.fixture
def postgres_url() -> str:
    return _postgres_or_skip()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every storage test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'quest.sqlite3'}"
        return
    with postgres_schema(_postgres_or_skip()) as url:
        yield url


@contextmanager
def postgres_schema(base_url: str) -> Iterator[str]:
    """A URL whose connections live in a fresh schema, dropped afterwards: tests never collide."""
    schema = f"quest_test_{uuid.uuid4().hex[:12]}"
    engine = make_engine(base_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        separator = "&" if "?" in base_url else "?"
        yield f"{base_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        try:
            with engine.begin() as connection:
                connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            engine.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings of this repository's project on the test's database."""
    return project_settings(ROOT, database_url=database_url, outbox_dir=tmp_path / "outbox")


HEADER = b"SQLite format 3\x00"
"""The first bytes of every SQLite database file."""


def place_file_at(path: Path, numbers: tuple[int, ...]) -> list[int]:
    """Open *path* on each of the descriptor *numbers* still free, as the process's next opens
    would (the lowest free number first); the numbers it holds now."""
    placed = []
    for number in numbers:
        try:
            os.fstat(number)
            continue  # taken meanwhile: not ours to replace
        except OSError:
            pass
        fd = os.open(path, os.O_RDWR)
        if fd != number:
            os.dup2(fd, number)
            os.close(fd)
        placed.append(number)
    return placed
