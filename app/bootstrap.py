"""Connected when quest starts: the application's own signal receivers."""

from __future__ import annotations

from typing import Any


def bootstrap(quest: Any, runner: Any) -> None:
    """Connect the application's receivers to quest's signals."""
