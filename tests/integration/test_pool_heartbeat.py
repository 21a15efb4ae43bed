"""Runs in worker processes and the runner's heartbeat: a run that ends within a moment never
wakes it; a longer one is handed to it, and its lease and heartbeat are renewed while it runs,
however much it logs meanwhile."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from quest.app import Quest
from quest.pool import WATCH_AFTER, WorkerPool
from quest.testing import project_settings

pytestmark = pytest.mark.slow

SCRIPTS = {
    "quick.py": """
        from quest import script

        @script()
        def quick(inputs, ctx):
            return "done"
    """,
    "chatty.py": """
        import time
        from quest import script

        @script(quest={"lease_ttl": "1 second"})
        def chatty(inputs, ctx):
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                ctx.log.info("still here")
                time.sleep(0.02)
            return "done"
    """,
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Quest]:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name, source in SCRIPTS.items():
        (scripts / name).write_text(textwrap.dedent(source))
    app = Quest(project_settings(tmp_path, scripts_dir=scripts))
    app.store.ensure_schema()
    app.runner  # noqa: B018 - built before the fork, as serve does
    pool = WorkerPool(app, size=1)
    pool.start()
    app.runner.pool = pool
    try:
        assert pool.wait_ready()
        yield app
    finally:
        pool.close()
        app.close()


def test_runs_that_end_within_a_moment_never_wake_the_heartbeat(app: Quest) -> None:
    for _ in range(5):
        outcome = app.run("quick", {})
        assert outcome.ok, outcome.error
        assert (outcome.duration_ms or 0) < WATCH_AFTER * 1000
    assert app.runner._heartbeat is None


def test_a_longer_run_has_its_lease_and_heartbeat_renewed_while_it_logs(app: Quest) -> None:
    outcome = app.run("chatty", {})
    assert outcome.ok, outcome.error
    row = app.store.get_run(outcome.run_id)
    assert row is not None
    # A lease of 1 s is renewed every third of a second once the heartbeat looks after the run.
    assert row["heartbeat_at"] - row["started_at"] > timedelta(seconds=0.5), row
    assert app.runner._heartbeat is not None
