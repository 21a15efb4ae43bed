"""A worker reports its own resident memory after every run (what ``--max-worker-memory``
recycles on): read from a descriptor it keeps open, current after each run, and its own after a
fork, not the process it was forked from."""

from __future__ import annotations

import os
import sys

import pytest

from quest import worker

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="/proc/self/statm is Linux's"
)

MB = 2**20


def test_the_reading_follows_what_the_process_holds() -> None:
    before = worker._rss()
    held = bytearray(64 * MB)
    held[:: os.sysconf("SC_PAGE_SIZE")] = b"x" * len(held[:: os.sysconf("SC_PAGE_SIZE")])
    during = worker._rss()
    assert during - before >= 60 * MB
    del held
    assert worker._rss() < during - 32 * MB


def test_the_descriptor_is_opened_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    worker._rss()
    opened: list[str] = []
    real_open = os.open

    def counting_open(path: str, *args: object, **kwargs: object) -> int:
        opened.append(path)
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", counting_open)
    monkeypatch.setattr(worker, "open", counting_open, raising=False)
    for _ in range(5):
        assert worker._rss() > 0
    assert opened == []


def test_a_forked_child_reads_its_own_memory_not_its_parents() -> None:
    parent = worker._rss()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: hold 96 MB the parent does not, then say what it read
        try:
            os.close(read)
            held = bytearray(96 * MB)
            held[:: os.sysconf("SC_PAGE_SIZE")] = b"x" * len(held[:: os.sysconf("SC_PAGE_SIZE")])
            os.write(write, str(worker._rss()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = int(pipe.read())
    os.waitpid(pid, 0)
    assert child - parent >= 48 * MB, "the child read its parent's memory"
    assert worker._rss() < parent + 32 * MB
