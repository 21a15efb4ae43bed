"""``ctx.progress`` where the script runs: validation, throttling, ``iter`` and the last value."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quest.progress import MESSAGE_LENGTH, Progress, Reading


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Timers:
    """A stand-in for ``threading.Timer``: the test fires what was scheduled."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[float, Callable[[], None]]] = []
        self.cancelled = 0

    def __call__(self, delay: float, function: Callable[[], None]) -> Timers:
        self.scheduled.append((delay, function))
        return self

    def cancel(self) -> None:
        self.cancelled += 1

    def fire(self) -> None:
        _, function = self.scheduled.pop()
        function()


class Sent(list[dict[str, Any]]):
    def __call__(self, kind: str, payload: Any) -> None:
        assert kind == "progress"
        self.append(payload)

    def currents(self) -> list[float]:
        return [p["current"] for p in self]


def make(every: float = 1.0) -> tuple[Progress, Sent, Clock, Timers]:
    sent, clock, timers = Sent(), Clock(), Timers()
    progress = Progress(
        sent, logging.getLogger("test.progress"), monotonic=clock, every=every, schedule=timers
    )
    return progress, sent, clock, timers


def test_the_first_report_leaves_at_once_and_the_next_at_most_once_a_second() -> None:
    progress, sent, clock, _ = make()
    for step in range(1, 41):  # 10 s in steps of 0.25 s
        progress(step, 40, f"item {step}")
        clock.now += 0.25

    assert sent.currents() == [1, 5, 9, 13, 17, 21, 25, 29, 33, 37]
    assert sent[0] == {"current": 1.0, "total": 40.0, "message": "item 1"}


def test_the_last_value_is_always_sent_before_the_end() -> None:
    progress, sent, clock, _ = make()
    progress(1, 3)
    clock.now += 0.1
    progress(2, 3)
    clock.now += 0.1
    progress(3, 3, "done")
    assert sent.currents() == [1]

    progress.flush()

    assert sent.currents() == [1, 3]
    assert sent[-1]["message"] == "done"
    progress(4, 3)  # the script has returned: nothing more leaves
    clock.now += 5
    progress(5, 3)
    assert sent.currents() == [1, 3]


def test_a_value_held_back_leaves_when_its_timer_fires() -> None:
    progress, sent, clock, timers = make()
    progress(1, 10)
    clock.now += 0.3
    progress(2, 10, "a long step starts")
    assert [delay for delay, _ in timers.scheduled] == [pytest.approx(0.7)]
    clock.now += 0.1
    progress(3, 10, "a longer step starts")
    assert len(timers.scheduled) == 1, "one timer per run at a time"

    clock.now += 0.6
    timers.fire()

    assert sent.currents() == [1, 3]
    assert sent[-1]["message"] == "a longer step starts"
    progress.flush()
    assert sent.currents() == [1, 3], "nothing held back: flush sends nothing"


def test_a_report_that_leaves_cancels_the_timer() -> None:
    progress, sent, clock, timers = make()
    progress(1)
    clock.now += 0.5
    progress(2)
    clock.now += 0.5
    progress(3)

    assert sent.currents() == [1, 3]
    assert timers.cancelled == 1


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ((-1,), "current is negative (-1)"),
        ((-0.5, 10), "current is negative (-0.5)"),
        ((math.nan, 10), "current is NaN"),
        ((math.inf,), "current is infinite"),
        (("12",), "current is not a number (str '12')"),
        ((None,), "current is not a number (NoneType None)"),
        ((True, 10), "current is not a number (bool True)"),
        ((3, -10), "total is negative (-10)"),
        ((3, "ten"), "total is not a number (str 'ten')"),
        ((3, math.nan), "total is NaN"),
    ],
)
def test_an_invalid_value_is_a_warning_in_the_run_log_and_nothing_else(
    args: tuple[Any, ...], problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    progress, sent, _, _ = make()
    with caplog.at_level(logging.WARNING, "test.progress"):
        progress(*args)

    assert sent == []
    assert progress.last is None
    [record] = caplog.records
    assert record.name == "test.progress"
    assert problem in record.getMessage()
    assert "finite numbers >= 0" in record.getMessage()
    assert "The run goes on" in record.getMessage()


def test_a_long_or_odd_message_is_cut_and_kept_as_text() -> None:
    progress, sent, _, _ = make()
    progress(1, 2, "x" * 2000)
    progress.flush()
    progress2, sent2, _, _ = make()
    progress2(1, 2, 42)
    progress3, sent3, _, _ = make()
    progress3(1, 2, "a\x00b")

    assert len(sent[0]["message"]) == MESSAGE_LENGTH
    assert sent[0]["message"].endswith("…")
    assert sent2[0]["message"] == "42"
    assert sent3[0]["message"] == "a\\x00b"


def test_a_report_that_cannot_be_sent_never_fails_the_run() -> None:
    def broken(kind: str, payload: Any) -> None:
        raise OSError("the channel is closed")

    progress = Progress(broken, monotonic=lambda: 0.0, schedule=None)
    progress(1, 2)
    progress.flush()


def test_iter_reports_how_many_items_are_done_of_the_length() -> None:
    progress, sent, clock, _ = make(every=0)
    seen = []
    for item in progress.iter(["a", "b", "c"], message="letters"):
        seen.append(item)
        clock.now += 0.01

    assert seen == ["a", "b", "c"]
    assert sent.currents() == [0, 1, 2, 3]
    assert {p["total"] for p in sent} == {3.0}
    assert {p["message"] for p in sent} == {"letters"}


def test_iter_of_a_generator_has_no_total_unless_given() -> None:
    progress, sent, _, _ = make(every=0)
    assert list(progress.iter(x for x in range(2))) == [0, 1]
    assert [p["total"] for p in sent] == [None, None, None]

    progress, sent, _, _ = make(every=0)
    assert list(progress.iter((x for x in range(2)), total=2)) == [0, 1]
    assert sent.currents() == [0, 1, 2]
    assert {p["total"] for p in sent} == {2.0}


def test_iter_works_with_async_for_over_sync_and_async_iterables() -> None:
    async def numbers() -> AsyncIterator[int]:
        for value in range(3):
            await asyncio.sleep(0)
            yield value

    async def main() -> tuple[list[int], list[int]]:
        over_list = [item async for item in progress.iter([10, 20])]
        over_async = [item async for item in second.iter(numbers(), total=3)]
        return over_list, over_async

    progress, sent, _, _ = make(every=0)
    second, sent_async, _, _ = make(every=0)
    assert asyncio.run(main()) == ([10, 20], [0, 1, 2])
    assert sent.currents() == [0, 1, 2]
    assert sent_async.currents() == [0, 1, 2, 3]
    assert {p["total"] for p in sent_async} == {3.0}


def test_iter_of_an_async_iterable_with_a_plain_for_says_what_to_write() -> None:
    async def numbers() -> AsyncIterator[int]:
        yield 1

    progress, _, _, _ = make()
    with pytest.raises(TypeError, match="async for"):
        list(progress.iter(numbers()))


@settings(max_examples=60, deadline=None)
@given(
    current=st.one_of(st.integers(0, 10**12), st.floats(0, 1e12, allow_nan=False)),
    total=st.one_of(st.none(), st.integers(0, 10**12), st.floats(0, 1e12, allow_nan=False)),
)
def test_every_finite_value_at_least_zero_is_sent_as_given(current: Any, total: Any) -> None:
    progress, sent, _, _ = make()
    progress(current, total)

    assert sent == [
        {
            "current": float(current),
            "total": None if total is None else float(total),
            "message": None,
        }
    ]
    reading = Reading.of(sent[0])
    assert reading is not None
    fraction = reading.fraction
    assert fraction is None or 0.0 <= fraction <= 1.0


@pytest.mark.parametrize(
    "payload",
    [
        None,
        "50%",
        {"current": -1},
        {"current": "1"},
        {"current": 1, "total": math.inf},
        {"current": 1, "message": 7},
        {},
    ],
)
def test_a_payload_that_is_not_a_reading_is_refused(payload: Any) -> None:
    assert Reading.of(payload) is None
