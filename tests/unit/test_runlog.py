"""Capturing a run's log lines where it executes: attribution, the bound at the source, batches."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from quest import redact, runlog
from quest.runlog import MAX_BYTES, MAX_LINE, MAX_LINES, Capture, RunLogs


@pytest.fixture(autouse=True)
def info_level() -> Iterator[None]:
    logger = logging.getLogger("test.runlog")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


log = logging.getLogger("test.runlog")


def lines_of(batches: list[dict[str, Any]]) -> list[list[Any]]:
    return [line for batch in batches for line in batch["lines"]]


def test_only_what_the_run_s_thread_logs_while_captured_is_the_run_s() -> None:
    batches: list[dict[str, Any]] = []
    log.info("before")
    with runlog.capture("run-1", batches.append):
        log.info("during %s", "this run")
        other = threading.Thread(target=lambda: log.info("another thread"))
        other.start()
        other.join()
    log.info("after")

    assert [line[4] for line in lines_of(batches)] == ["during this run"]
    assert batches[-1]["final"] is True
    assert batches[-1]["seen"] == 1


def test_a_run_that_logs_nothing_sends_nothing() -> None:
    batches: list[dict[str, Any]] = []
    with runlog.capture("run-quiet", batches.append):
        pass
    assert batches == [], "no batch, not even a final empty one"


def test_a_run_whose_lines_were_sent_still_ends_with_a_final_batch() -> None:
    batches: list[dict[str, Any]] = []
    with runlog.capture("run-sent", batches.append) as run:
        log.info("one line")
        run.flush()
    assert [batch["final"] for batch in batches] == [False, True]
    assert batches[-1]["lines"] == [] and batches[-1]["seen"] == 1


def test_a_process_capture_takes_every_thread_s_lines() -> None:
    batches: list[dict[str, Any]] = []
    with runlog.capture("run-2", batches.append, process=True):
        other = threading.Thread(target=lambda: log.warning("another thread"))
        other.start()
        other.join()
    log.info("after")
    assert [line[4] for line in lines_of(batches)] == ["another thread"]


def test_the_source_keeps_at_most_the_bound_between_batches() -> None:
    sent: list[dict[str, Any]] = []
    run = Capture("run-3", sent.append, flush_every=3600)
    record = logging.LogRecord("lib", logging.INFO, __file__, 1, "line %d", (0,), None)
    for i in range(20_000):
        record.args = (i,)
        run.add(record)
        assert len(run._pending) <= MAX_LINES
        assert run._pending_bytes <= MAX_BYTES
    assert sent == [], "nothing is sent before its time"
    run.flush(final=True)
    [batch] = sent
    assert [line[0] for line in batch["lines"]] == list(range(19_001, 20_001))
    assert batch["seen"] == 20_000
    assert batch["final"] is True
    run.add(record)
    run.flush()
    assert len(sent) == 1, "a closed capture sends nothing more"


def test_a_line_is_scrubbed_before_it_is_cut() -> None:
    secret = "k" * 10 + "-secret"
    sent: list[dict[str, Any]] = []
    with redact.active([secret]), runlog.capture("run-4", sent.append):
        log.info("%s%s%s", "a" * (MAX_LINE - 5), secret, "b" * 100)
    [line] = lines_of(sent)
    assert "kkkkk" not in line[4]
    assert line[4].startswith("a" * (MAX_LINE - 5) + "***bb")
    assert line[4].endswith("[... 98 more characters cut]")


def test_a_failing_sender_never_fails_the_run() -> None:
    def broken(batch: dict[str, Any]) -> None:
        raise OSError("channel closed")

    with runlog.capture("run-5", broken):
        log.info("still fine")


class FakeStore:
    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}

    def append_logs(
        self,
        run_id: str,
        rows: list[dict[str, Any]],
        *,
        keep_from: int,
        marker: dict[str, Any] | None = None,
    ) -> None:
        for row in rows:
            self.rows[row["seq"]] = row
        for seq in [s for s in self.rows if 0 < s < keep_from]:
            del self.rows[seq]
        if marker is not None:
            self.rows[0] = marker


def test_the_runner_keeps_the_bound_across_batches_and_counts_what_was_dropped() -> None:
    store = FakeStore()
    logs = RunLogs(store, max_lines=3, max_bytes=1000)  # type: ignore[arg-type]
    for start in (1, 4):
        batch = [[seq, 0.0, "INFO", "x", f"m{seq}"] for seq in range(start, start + 3)]
        logs.receive("r", {"lines": batch, "seen": start + 2, "bytes": (start + 2) * 2})
    assert sorted(store.rows) == [0, 4, 5, 6]
    assert store.rows[0]["message"].startswith("[3 earlier lines (6 bytes) dropped")
    # A batch whose first lines were dropped at the source counts them too.
    logs.receive("r", {"lines": [[10, 0.0, "INFO", "x", "m10"]], "seen": 10, "bytes": 20})
    assert sorted(store.rows) == [0, 5, 6, 10]
    assert store.rows[0]["message"].startswith("[7 earlier lines")


def test_a_malformed_batch_is_refused() -> None:
    logs = RunLogs(FakeStore())  # type: ignore[arg-type]
    with pytest.raises((TypeError, ValueError)):
        logs.receive("r", ["not", "a", "batch"])


def _waiting_on(condition: threading.Condition) -> bool:
    return bool(getattr(condition, "_waiters", ()))


def test_the_flusher_waits_without_waking_while_no_run_captures() -> None:
    with runlog.capture("run-idle", lambda batch: None):
        log.info("a line")
    import time

    deadline = time.monotonic() + 10
    while not _waiting_on(runlog._flusher_wanted) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not list(runlog._captures)
    # Blocked on the condition: nothing but the next capture wakes it.
    assert _waiting_on(runlog._flusher_wanted)


def test_a_run_that_logs_nothing_does_not_wake_the_flusher() -> None:
    with runlog.capture("run-warm", lambda batch: None):
        log.info("a line")
    import time

    deadline = time.monotonic() + 10
    while not _waiting_on(runlog._flusher_wanted) and time.monotonic() < deadline:
        time.sleep(0.01)
    waiters = list(runlog._flusher_wanted._waiters)  # type: ignore[attr-defined]
    assert waiters
    with runlog.capture("run-silent", lambda batch: None):
        # A notify would have taken the flusher off the condition's waiters at once.
        assert list(runlog._flusher_wanted._waiters) == waiters  # type: ignore[attr-defined]
    assert list(runlog._flusher_wanted._waiters) == waiters  # type: ignore[attr-defined]
    sent: list[dict[str, Any]] = []
    with runlog.capture("run-talks", sent.append):
        log.info("a line")
        assert list(runlog._flusher_wanted._waiters) != waiters  # type: ignore[attr-defined]
    assert sent and sent[-1]["final"]


def test_a_forked_process_starts_a_flusher_of_its_own() -> None:
    """The parent's flusher thread does not survive a fork: a run in the child that logs and
    then goes quiet still has its lines sent while it runs, by the child's own flusher."""
    import os

    with runlog.capture("parent-run", lambda batch: None):
        pass  # the parent's flusher is running
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            sent = threading.Event()
            with runlog.capture("child-run", lambda batch: sent.set()):
                log.info("one line, then quiet")
                code = 0 if sent.wait(10 * runlog.FLUSH_EVERY) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
