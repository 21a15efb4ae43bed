"""Fixtures of the command-line tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """``quest run`` configures the root logger, as a command does; put it back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    runner_level = logging.getLogger("quest.runner").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("quest.runner").setLevel(runner_level)


@pytest.fixture
def served() -> Iterator[list[Any]]:
    """Every ``quest serve`` a test starts; killed at the end if the test did not stop it."""
    started: list[Any] = []
    yield started
    for item in started:
        item.kill()
