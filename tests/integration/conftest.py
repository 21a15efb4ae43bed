"""What the integration tests share: a fresh store on each backend, JobLog rows, and a quest
whose runs execute in worker processes."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from quest.app import Quest
from quest.enums import RunStatus, Trigger
from quest.pool import WorkerPool
from quest.store import Store, make_engine
from quest.testing import project_settings


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


def queued_row(run_id: str, name: str, at: datetime) -> dict[str, Any]:
    """A queued JobLog row *run_id* of *name*, created and due at *at*."""
    return {**job_row(name, RunStatus.queued, at), "id": run_id, "root_id": run_id, "run_after": at}


@contextmanager
def scripted_quest(root: Path, scripts: dict[str, str]) -> Iterator[Quest]:
    """A quest of *scripts* (file name → source) under *root*, its schema in place; its runs
    execute in this process (a sync script with a ``timeout`` in a child process of its own)."""
    folder = root / "scripts"
    folder.mkdir()
    for name, source in scripts.items():
        (folder / name).write_text(textwrap.dedent(source))
    app = Quest(project_settings(root, scripts_dir=folder))
    try:
        app.store.ensure_schema()
        yield app
    finally:
        app.close()


@contextmanager
def pooled_quest(root: Path, scripts: dict[str, str], *, size: int) -> Iterator[Quest]:
    """:func:`scripted_quest`, its runner executing runs in a started pool of *size* worker
    processes, as ``quest serve`` does."""
    with scripted_quest(root, scripts) as app:
        app.runner  # noqa: B018 - built before the fork, as serve does
        pool = WorkerPool(app, size=size)
        pool.start()
        app.runner.pool = pool
        try:
            assert pool.wait_ready()
            yield app
        finally:
            pool.close()


POOL_SCRIPTS = {
    "pid.py": """
        import os
        from quest import script

        @script(quest={"without_overlapping": False})
        def pid(inputs, ctx):
            return os.getpid()
    """,
    "hold.py": """
        import os, time
        from pathlib import Path
        from quest import script

        @script(quest={"without_overlapping": False})
        def hold(inputs, ctx):
            flag = Path(os.environ["QUEST_TEST_RELEASE"])
            for _ in range(3000):
                if flag.exists():
                    break
                time.sleep(0.01)
            return os.getpid()
    """,
}
"""Scripts for runs in worker processes: ``pid`` returns its process's id, ``hold`` does too once
the file named by ``QUEST_TEST_RELEASE`` exists."""
