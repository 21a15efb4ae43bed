"""A serve's sleep until its next slot ends at the slot, not a thousandth of the wait after it:
Linux may end a ``select`` that late (1 ms for a 1 s wait), so a long wait asks for a little less
and finishes with a short one. Driven by a fake ``select`` and a fake clock: nothing sleeps."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from quest.store import wake
from quest.store.wake import SELECT_SLACK, SHORT_WAIT, select_until


class Kernel:
    """A ``select`` that ends each wait as late as Linux may (a thousandth of its timeout), or
    at once when something is ready at the clock's time."""

    def __init__(self, ready_at: float | None = None) -> None:
        self.now = 100.0
        self.asked: list[float] = []
        self.ready_at = ready_at

    def monotonic(self) -> float:
        return self.now

    def select(self, r: list[Any], w: list[Any], x: list[Any], timeout: float) -> tuple:
        self.asked.append(timeout)
        end = self.now + timeout + timeout / 1000
        if self.ready_at is not None and self.ready_at <= end:
            self.now = max(self.now, self.ready_at)
            return r[:1], [], []
        self.now = end
        return [], [], []


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Kernel]:
    fake = Kernel()
    monkeypatch.setattr(wake.time, "monotonic", fake.monotonic)
    monkeypatch.setattr(wake.select, "select", fake.select)
    yield fake


@pytest.mark.parametrize("timeout", [0.05, 0.5, 1.0, 3.7, 60.0])
def test_a_long_wait_ends_at_its_deadline_not_its_slack_after(
    kernel: Kernel, timeout: float
) -> None:
    start = kernel.now
    assert select_until(["fd"], timeout) == []
    over = kernel.now - (start + timeout)
    assert over >= 0, "it never ends before its deadline"
    assert over <= SHORT_WAIT / 1000 + 1e-12, f"{over * 1000:.3f} ms late"
    assert kernel.asked[0] <= timeout * (1 - SELECT_SLACK) + 1e-9
    assert kernel.asked[-1] <= SHORT_WAIT


def test_a_plain_select_is_as_late_as_the_kernel_lets_it(kernel: Kernel) -> None:
    # What the loop did before: one select for the whole wait.
    wake.select.select(["fd"], [], [], 1.0)
    assert kernel.now - 100.0 == pytest.approx(1.001)


def test_a_short_wait_is_one_select_as_asked(kernel: Kernel) -> None:
    assert select_until(["fd"], 0.004) == []
    assert kernel.asked == [pytest.approx(0.004)]
    assert select_until(["fd"], -1.0) == []
    assert kernel.asked[-1] == 0.0


def test_what_becomes_ready_ends_the_wait_at_once(kernel: Kernel) -> None:
    kernel.ready_at = kernel.now + 0.3
    assert select_until(["fd"], 1.0) == ["fd"]
    assert kernel.now == pytest.approx(100.3)
    assert len(kernel.asked) == 1


def test_a_waiter_is_woken_by_its_bell_and_by_its_deadline(tmp_path: Any) -> None:
    if not wake.HAS_UNIX_SOCKETS:
        pytest.skip("Unix sockets")
    waiter = wake.SocketWaiter(tmp_path / "bells")
    try:
        assert waiter.wait(0.0) is False
        waiter.wake()
        assert waiter.wait(30.0) is True
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"!", waiter.path)
        assert waiter.wait(30.0) is True
        assert waiter.wait(0.0) is False
    finally:
        waiter.close()
