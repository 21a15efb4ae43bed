"""What the store's integration tests share: a fresh store on each backend, and JobLog rows."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from quest.enums import RunStatus, Trigger
from quest.store import Store, make_engine


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    instance = Store(make_engine(database_url))
    instance.ensure_schema()
    yield instance
    instance.dispose()


def job_row(name: str, status: RunStatus, at: datetime, **extra: Any) -> dict[str, Any]:
    """A JobLog row of *name* created at *at*; a finished one ended then too."""
    run_id = uuid.uuid4().hex
    return {
        "id": run_id,
        "name": name,
        "status": status,
        "trigger": Trigger.enqueued,
        "attempt": 1,
        "max_attempts": 1,
        "root_id": run_id,
        "created_at": at,
        "finished_at": at if status.finished else None,
        **extra,
    }
