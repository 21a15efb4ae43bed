"""A stopped run leaves nothing behind: the processes its script started end with its worker,
those that left the worker's process group for a session of their own included; what earlier
runs started and left running is theirs, and lives on; a worker leaves its scripts' children to
them."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from quest import Quest
from quest.enums import RunStatus
from tests.integration.conftest import pooled_quest, scripted_quest

pytestmark = pytest.mark.slow

SCRIPTS = {
    "escapee.py": """
        import subprocess, sys, time
        from pathlib import Path
        from quest import Input, script

        @script(
            quest={"without_overlapping": False, "timeout": "2 seconds"},
            inputs={"mark": Input(str), "wait": Input(bool, default=True)},
        )
        def escapee(inputs, ctx):
            alone = subprocess.Popen(
                [sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True
            )
            Path(inputs.mark).write_text(str(alone.pid))
            if inputs.wait:
                time.sleep(60)
            return alone.pid
    """,
    "asyncforker.py": """
        import asyncio, os, subprocess
        from pathlib import Path
        from quest import Input, script

        @script(
            quest={"without_overlapping": False, "timeout": "1 second"},
            inputs={"mark": Input(str)},
        )
        async def asyncforker(inputs, ctx):
            inner = subprocess.Popen(["sleep", "300"])
            alone = subprocess.Popen(["sleep", "300"], start_new_session=True)
            Path(inputs.mark).write_text(f"{inner.pid} {alone.pid}")
            await asyncio.sleep(60)
    """,
    "leaver.py": """
        import os, subprocess
        from quest import script

        @script(quest={"without_overlapping": False})
        def leaver(inputs, ctx):
            return [subprocess.Popen(["sleep", "300"]).pid, os.getpid()]
    """,
    "ignored.py": """
        import subprocess
        from pathlib import Path
        from quest import script

        @script(quest={"without_overlapping": False})
        def ignored(inputs, ctx):
            child = subprocess.Popen(["sleep", "300"])
            try:
                for line in Path(f"/proc/{child.pid}/status").read_text().splitlines():
                    if line.startswith("SigIgn:"):
                        return int(line.split()[1], 16)
            finally:
                child.kill()
                child.wait()
    """,
    "spawner.py": """
        import os, subprocess
        from quest import script

        @script(quest={"without_overlapping": False})
        def spawner(inputs, ctx):
            return [subprocess.Popen(["sh", "-c", "sleep 0.3; sleep 300"]).pid, os.getpid()]
    """,
    "keeper.py": """
        import subprocess, sys
        from quest import script

        KEPT = []

        @script(quest={"without_overlapping": False})
        def keeper(inputs, ctx):
            if not KEPT:
                KEPT.append(subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"]))
                KEPT[0].wait()  # it has ended, and this run knows how
                KEPT.append(subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(4)"]))
                return None
            return KEPT[0].returncode, KEPT[1].wait()
    """,
}


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def until(condition: object, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def next_tick() -> None:
    """Let a clock tick (10 ms) pass: start times are read in ticks, and a process started in
    the tick a later run was handed over in is taken for that run's (as documented)."""
    time.sleep(0.03)


def leave_one_running(app: Quest, pids: list[int]) -> None:
    """Run ``leaver``, which ends on its own leaving a process in its worker's group running;
    note that process, and let a tick pass."""
    outcome = app.run("leaver")
    assert outcome.status is RunStatus.succeeded, outcome
    pids.append(outcome.result[0])
    next_tick()


def killed(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("where", ["worker", "child"])
def test_a_timed_out_run_ends_what_it_started_in_a_session_of_its_own(
    tmp_path: Path, where: str
) -> None:
    """In a worker process, or without them (``quest run``, ``isolation = "thread"``) in a child
    process of its own that leads its own process group."""
    mark = tmp_path / "alone.pid"
    pids: list[int] = []
    quest = (
        pooled_quest(tmp_path, SCRIPTS, size=1)
        if where == "worker"
        else scripted_quest(tmp_path, SCRIPTS)
    )
    try:
        with quest as app:
            outcome = app.run("escapee", {"mark": str(mark)})
            assert outcome.status is RunStatus.timed_out, outcome
            pids.append(int(mark.read_text()))
            until(lambda: gone(pids[0]), "the process in a session of its own ended")
    finally:
        killed(pids)


def test_what_an_earlier_run_left_running_outlives_a_later_run_s_timeout(tmp_path: Path) -> None:
    """The worker a timed-out run ends may hold what an earlier run of it started and left
    running on purpose (a detached helper): that is not the stopped run's to end."""
    pids: list[int] = []
    try:
        with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
            earlier = app.run("escapee", {"mark": str(tmp_path / "earlier.pid"), "wait": False})
            assert earlier.status is RunStatus.succeeded, earlier
            pids.append(earlier.result)
            next_tick()
            later = app.run("escapee", {"mark": str(tmp_path / "later.pid")})
            assert later.status is RunStatus.timed_out, later
            pids.append(int((tmp_path / "later.pid").read_text()))
            until(lambda: gone(pids[1]), "the later run's process ended")
            assert not gone(pids[0]), "the earlier run's process was ended with the later run"
    finally:
        killed(pids)


def test_a_script_s_children_are_its_own_to_wait_for_across_runs(tmp_path: Path) -> None:
    """A worker never collects its scripts' children itself: a process a run kept for the next
    one still tells that run how it ended."""
    with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
        first = app.run("keeper")
        assert first.status is RunStatus.succeeded, first
        second = app.run("keeper")
        assert second.status is RunStatus.succeeded, second
        assert second.result == [3, 4]


def test_a_timed_out_async_run_ends_what_it_started_and_its_worker_lives_on(
    tmp_path: Path,
) -> None:
    """An async run stops when asked and answers, and its worker goes on: the processes the run
    started, in the worker's group or in a session of their own, end; an earlier run's do not."""
    mark = tmp_path / "async.pids"
    pids: list[int] = []
    try:
        with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
            leave_one_running(app, pids)
            outcome = app.run("asyncforker", {"mark": str(mark)})
            assert outcome.status is RunStatus.timed_out, outcome
            pids += [int(pid) for pid in mark.read_text().split()]
            until(lambda: gone(pids[1]) and gone(pids[2]), "the async run's processes ended")
            leave_one_running(app, pids)
            assert not gone(pids[0]), "an earlier run's process was ended with the async run"
    finally:
        killed(pids)


def test_what_an_earlier_run_left_in_the_worker_s_group_outlives_a_stop_and_the_close(
    tmp_path: Path,
) -> None:
    """A process an earlier run started and left running stays in its worker's process group:
    neither a later run's timeout (which ends that worker) nor the pool's close ends it."""
    pids: list[int] = []
    try:
        with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
            leave_one_running(app, pids)
            later = app.run("escapee", {"mark": str(tmp_path / "later.pid")})
            assert later.status is RunStatus.timed_out, later
            pids.append(int((tmp_path / "later.pid").read_text()))
            until(lambda: gone(pids[1]), "the later run's process ended")
            assert not gone(pids[0]), "the earlier run's process was ended with the later run"
            leave_one_running(app, pids)
        assert not gone(pids[0]) and not gone(pids[2]), "the pool's close ended them"
    finally:
        killed(pids)


def test_a_program_a_worker_s_script_starts_does_not_ignore_sigint_or_sigterm(
    tmp_path: Path,
) -> None:
    """Workers do not end on SIGINT or SIGTERM (serve decides), by handlers of their own: the
    programs their scripts start get the default dispositions, as they would outside quest."""
    with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
        outcome = app.run("ignored")
        assert outcome.status is RunStatus.succeeded, outcome
        ignored = outcome.result
    assert not ignored & (1 << (signal.SIGINT - 1)), "the program ignores SIGINT"
    assert not ignored & (1 << (signal.SIGTERM - 1)), "the program ignores SIGTERM"


def test_what_an_earlier_run_left_running_may_start_processes_during_a_later_run_s_stop(
    tmp_path: Path,
) -> None:
    """A shell an earlier run left running starts a process while a later run of its worker
    runs: that process is the shell's, and outlives the later run's timeout."""
    mark = tmp_path / "later.pid"
    pids: list[int] = []
    try:
        with pooled_quest(tmp_path, SCRIPTS, size=1) as app:
            # Both scripts once first: a worker that imported what its template lacks is
            # replaced, and the shell must be in the group of the worker the timeout ends.
            for name, inputs in (("spawner", {}), ("escapee", {"mark": str(mark), "wait": False})):
                warm = app.run(name, inputs)
                assert warm.status is RunStatus.succeeded, warm
                pids.append(warm.result[0] if name == "spawner" else warm.result)
            shell = app.run("spawner")
            assert shell.status is RunStatus.succeeded, shell
            [sh, worker] = shell.result
            pids.append(sh)
            next_tick()
            later = app.run("escapee", {"mark": str(mark)})
            assert later.status is RunStatus.timed_out, later
            pids.append(int(mark.read_text()))
            until(lambda: gone(pids[-1]) and gone(worker), "the later run and its worker ended")
            started = psutil.Process(sh).children()
            pids += [child.pid for child in started]
            assert started and not any(gone(child.pid) for child in started), started
    finally:
        killed(pids)


def test_an_interrupt_of_a_timed_child_s_wait_ends_it_and_what_it_started(
    tmp_path: Path,
) -> None:
    """Ctrl-C in ``quest run`` interrupts the wait for a timed child, which leads a process
    group of its own and so was not sent the terminal's SIGINT: the child and what it started
    end with the interrupt."""
    mark = tmp_path / "alone.pid"
    pids: list[int] = []

    def interrupt() -> None:
        until(mark.exists, "the script started its process")
        main = threading.main_thread().ident
        assert main is not None
        signal.pthread_kill(main, signal.SIGINT)

    try:
        with scripted_quest(tmp_path, SCRIPTS) as app:
            threading.Thread(target=interrupt, daemon=True).start()
            with pytest.raises(KeyboardInterrupt):
                app.run("escapee", {"mark": str(mark)})
            pids.append(int(mark.read_text()))
            until(lambda: gone(pids[0]), "the process in a session of its own ended")
    finally:
        killed(pids)
