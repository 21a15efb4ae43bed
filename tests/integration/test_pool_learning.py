"""The worker pool's template learns what workers import; idle workers holding copies are replaced.

A pool is started in this process on a throwaway project whose scripts import modules from a
folder of their own only when they run. Waiting here is waiting on other processes: the pool's
state is polled with a deadline.
"""

from __future__ import annotations

import os
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from quest.pool import WorkerPool
from tests.integration.conftest import pooled_quest

pytestmark = pytest.mark.slow

T = TypeVar("T")


def poll(condition: Callable[[], T], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


SCRIPTS = {
    "lazy.py": """\
        import os
        import sys

        from quest import Input, script

        @script(quest={"without_overlapping": False}, inputs={"module": Input(str)})
        def lazy(inputs, ctx):
            had = inputs.module in sys.modules
            __import__(inputs.module)
            return [os.getpid(), had]
        """,
    "hold.py": """\
        import os
        import time
        from pathlib import Path

        from quest import Input, script

        @script(
            quest={"without_overlapping": False},
            inputs={"module": Input(str), "until": Input(str), "started": Input(str)},
        )
        def hold(inputs, ctx):
            __import__(inputs.module)
            Path(inputs.started).write_text(str(os.getpid()))
            while not Path(inputs.until).exists():
                time.sleep(0.05)
            return os.getpid()
        """,
    "permitted.py": """\
        import os

        from quest import Input, script

        @script(quest={"without_overlapping": False}, inputs={"module": Input(str)})
        def permitted(inputs, ctx):
            os.environ["QUEST_TEST_IMPORT_ALLOWED"] = "1"
            __import__(inputs.module)
            return os.getpid()
        """,
}

MODULES = {
    "plain": "VALUE = 1\n",
    "fussy": textwrap.dedent(
        """\
        import os

        if not os.environ.get("QUEST_TEST_IMPORT_ALLOWED"):
            raise ImportError("only where a script allowed it")
        """
    ),
    "threaded": textwrap.dedent(
        """\
        import threading

        STOP = threading.Event()
        threading.Thread(target=STOP.wait, daemon=True).start()
        """
    ),
}


@pytest.fixture
def pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[WorkerPool, str]]:
    """A started pool of two workers at most; module names carry a suffix unique to the test."""
    suffix = f"_{os.getpid()}_{abs(hash(tmp_path)) % 10**8}"
    lib = tmp_path / "lib"
    lib.mkdir()
    for name, source in MODULES.items():
        (lib / f"quest_lazy_{name}{suffix}.py").write_text(source)
    monkeypatch.syspath_prepend(str(lib))
    with pooled_quest(tmp_path, SCRIPTS, size=2) as app:
        assert app.runner.pool is not None
        yield app.runner.pool, suffix


def run(pool: WorkerPool, name: str, **inputs: Any) -> Any:
    outcome = pool.quest.run(name, inputs)
    assert outcome.ok, outcome.error
    return outcome.result


def test_a_worker_forked_after_the_template_learned_a_module_has_it(
    pool: tuple[WorkerPool, str],
) -> None:
    workers, suffix = pool
    module = f"quest_lazy_plain{suffix}"
    template = workers.template_pid
    first, had = run(workers, "lazy", module=module)
    assert not had, "no process had the module before the first run imported it"
    poll(lambda: module in workers.learned, 20, "the template to learn the module")
    poll(lambda: first not in workers.pids, 20, "the idle worker holding a copy to be replaced")
    assert workers.recycled == 1
    second, had = run(workers, "lazy", module=module)
    assert second != first
    assert had, "the fresh worker had the module before its script imported it"
    assert workers.template_pid == template
    assert workers.recycled == 1, "a worker forked after the learning is never replaced for it"


def test_a_module_the_template_cannot_import_is_skipped_and_the_template_lives_on(
    pool: tuple[WorkerPool, str],
) -> None:
    workers, suffix = pool
    fussy, plain = f"quest_lazy_fussy{suffix}", f"quest_lazy_plain{suffix}"
    template = workers.template_pid
    run(workers, "permitted", module=fussy)  # the worker could import it; the template cannot
    run(workers, "lazy", module=plain)
    poll(lambda: plain in workers.learned, 20, "the template to learn the next module")
    assert fussy not in workers.learned
    assert workers.template_pid == template, "the template never died"
    # A fresh worker (the last one was replaced for the module learned) has no copy of it.
    outcome = workers.quest.run("lazy", {"module": fussy})
    assert not outcome.ok and "only where a script allowed it" in str(outcome.error)


def test_a_module_that_starts_a_thread_is_never_sent_to_the_template(
    pool: tuple[WorkerPool, str],
) -> None:
    workers, suffix = pool
    threaded, plain = f"quest_lazy_threaded{suffix}", f"quest_lazy_plain{suffix}"
    template = workers.template_pid
    pid, _ = run(workers, "lazy", module=threaded)
    assert pid in workers.pids, "a worker whose run left a thread reported nothing to replace it"
    # The same worker imports one more module: still nothing reported while the thread runs.
    assert run(workers, "lazy", module=plain)[0] == pid
    assert workers.learned == []
    assert workers.recycled == 0
    assert workers.template_pid == template


def test_a_busy_worker_is_never_replaced_an_idle_one_once(
    pool: tuple[WorkerPool, str], tmp_path: Path
) -> None:
    workers, suffix = pool
    module = f"quest_lazy_plain{suffix}"
    until, started = tmp_path / "release", tmp_path / "started"
    held: list[Any] = []
    holder = threading.Thread(
        target=lambda: held.append(
            run(workers, "hold", module=module, until=str(until), started=str(started))
        )
    )
    holder.start()
    try:
        busy = int(poll(lambda: started.exists() and started.read_text(), 20, "the held run"))
        idle, _ = run(workers, "lazy", module=module)
        assert idle != busy
        poll(lambda: module in workers.learned, 20, "the template to learn the module")
        poll(lambda: idle not in workers.pids, 20, "the idle worker to be replaced")
        assert busy in workers.pids, "the busy worker holds its run"
        os.kill(busy, 0)
    finally:
        until.write_text("")
        holder.join(30)
    assert held == [busy]
    poll(lambda: busy not in workers.pids, 20, "the worker to be replaced once its run ended")
    assert workers.recycled == 2
