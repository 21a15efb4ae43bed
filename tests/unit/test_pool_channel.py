"""The supervisor's end of a worker's socket reads and writes what a worker's
``multiprocessing`` connection writes and reads, whatever the message's size."""

from __future__ import annotations

import pickle
import socket
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from quest.pool import READ_SIZE, SMALL_FRAME, Channel
from quest.worker import Done, Job, Report


@pytest.fixture
def ends() -> Iterator[tuple[Channel, Connection]]:
    ours, theirs = socket.socketpair()
    channel, worker = Channel(ours.detach()), Connection(theirs.detach())
    yield channel, worker
    channel.close()
    worker.close()


def test_an_answer_and_the_reports_sent_before_it_arrive_in_order(
    ends: tuple[Channel, Connection],
) -> None:
    channel, worker = ends
    sent = [Report("r1", "log", {"lines": ["a"]}), Done("r1", result={"n": 1}, rss=7)]
    for message in sent:
        worker.send_bytes(pickle.dumps(message))

    assert channel.poll(0)
    assert [channel.recv(), channel.recv()] == sent
    assert not channel.poll(0)


@pytest.mark.parametrize("size", [SMALL_FRAME + 1, 3 * READ_SIZE + 5])
def test_large_messages_both_ways(ends: tuple[Channel, Connection], size: int) -> None:
    channel, worker = ends
    job = Job("r2", "noop", {"blob": "x" * size}, {"run_id": "r2"})
    channel.send(job)
    assert worker.recv() == job

    answer = Done("r2", result="y" * size)
    worker.send_bytes(pickle.dumps(answer))
    assert channel.recv() == answer


def test_a_closed_worker_end_is_the_end_of_the_channel(ends: tuple[Channel, Connection]) -> None:
    channel, worker = ends
    worker.send_bytes(pickle.dumps("last"))
    worker.close()

    assert channel.recv() == "last"
    assert channel.poll(0), "the end of the channel can be read"
    with pytest.raises(EOFError):
        channel.recv()


def test_a_message_that_cannot_be_read_is_dropped_and_the_next_one_read(
    ends: tuple[Channel, Connection],
) -> None:
    channel, worker = ends
    worker.send_bytes(b"not a pickle")
    worker.send_bytes(pickle.dumps(Done("r1", result=1, rss=0)))
    with pytest.raises(pickle.UnpicklingError):
        channel.recv()
    assert channel.recv() == Done("r1", result=1, rss=0)
    assert not channel.buffered()
