"""Shared fixtures: a throwaway SQLite database; PostgreSQL when QUEST_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import logging
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

if "PYTEST_XDIST_WORKER" in os.environ:
    # pytest-xdist's workers are given an 80-column terminal size; the CLI's tables are then
    # folded as on a narrow terminal. Each worker sees the environment a plain run would.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


def _postgres_or_skip() -> str:
    if POSTGRES_URL:
        return POSTGRES_URL
    if IN_CI:
        pytest.fail("QUEST_TEST_POSTGRES_URL is not set; under CI PostgreSQL tests must run")
    pytest.skip(
        "PostgreSQL tests need QUEST_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)"
    )


@pytest.fixture(autouse=True)
def logging_as_found() -> Iterator[None]:
    """Every test starts from the logging set-up the one before it found: a command that
    configures logging in-process (the CLI's ``-v``) changes no later test's levels or handlers."""
    manager = logging.root.manager
    levels = {
        name: logger.level
        for name, logger in manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    root = logging.root
    level, disabled = root.level, manager.disable
    # pytest's own capturing handlers come and go with each phase: they are left to pytest.
    handlers = [h for h in root.handlers if not type(h).__module__.startswith("_pytest")]
    yield
    for name, logger in list(manager.loggerDict.items()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(levels.get(name, logging.NOTSET))
    root.setLevel(level)
    logging.disable(disabled)
    for handler in list(root.handlers):
        if handler not in handlers and not type(handler).__module__.startswith("_pytest"):
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)


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
