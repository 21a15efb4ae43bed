"""What a run in another process (a worker, a timed child) ends with is recorded as in a thread:
a result over the size limit is cut once, its size the real one; a ``KeyboardInterrupt``, a
subclass included, is an interrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from quest.enums import RunStatus
from quest.results import MAX_RESULT_BYTES, TRUNCATED_MARKER
from tests.integration.conftest import pooled_quest, scripted_quest

pytestmark = pytest.mark.slow

BIG = 100_000
SCRIPTS = {
    "big.py": f"""
        from quest import script

        @script()
        def big(inputs, ctx):
            return "b" * {BIG}
    """,
    "big_timed.py": f"""
        from quest import script

        @script(quest={{"timeout": "30 seconds"}})
        def big_timed(inputs, ctx):
            return "b" * {BIG}
    """,
    "halt.py": """
        from quest import script

        class Halt(KeyboardInterrupt):
            pass

        @script()
        def halt(inputs, ctx):
            raise Halt("stop here")
    """,
    "halt_timed.py": """
        from quest import script

        class Halt(KeyboardInterrupt):
            pass

        @script(quest={"timeout": "30 seconds"})
        def halt_timed(inputs, ctx):
            raise Halt("stop here")
    """,
}


def cut_once(result: object) -> None:
    assert isinstance(result, dict), result
    assert result[TRUNCATED_MARKER] is True
    assert result["size"] == len(json.dumps("b" * BIG))
    assert result["preview"] == json.dumps("b" * BIG)[:MAX_RESULT_BYTES]


@pytest.mark.parametrize("name", ["big", "big-timed"])
def test_a_large_result_from_a_worker_is_cut_once(tmp_path: Path, name: str) -> None:
    with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
        outcome = app.run(name)
        assert outcome.ok, outcome.error
        cut_once(outcome.result)
        row = app.store.get_run(outcome.run_id)
        assert row is not None
        cut_once(row["result"])


def test_a_large_result_from_a_timed_child_process_is_cut_once(tmp_path: Path) -> None:
    """Without a pool, a sync script with a timeout runs in a child process of its own."""
    with scripted_quest(tmp_path, SCRIPTS) as app:
        outcome = app.run("big-timed")
        assert outcome.ok, outcome.error
        cut_once(outcome.result)
        row = app.store.get_run(outcome.run_id)
        assert row is not None
        cut_once(row["result"])


@pytest.mark.parametrize("name", ["halt", "halt-timed"])
def test_a_keyboard_interrupt_subclass_in_a_worker_is_an_interrupted_run(
    tmp_path: Path, name: str
) -> None:
    with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
        outcome = app.run(name)
        assert outcome.status is RunStatus.interrupted, outcome.error


def test_a_keyboard_interrupt_subclass_in_a_timed_child_is_an_interrupted_run(
    tmp_path: Path,
) -> None:
    with scripted_quest(tmp_path, SCRIPTS) as app:
        outcome = app.run("halt-timed")
        assert outcome.status is RunStatus.interrupted, outcome.error
