"""Throwaway quest projects (and the peer's job folders) for the figures."""

from __future__ import annotations

import random
from pathlib import Path

NOOP = """\
from quest import script


@script(friendly_name="No-op", description="Does nothing; the benchmark's trivial run.")
def noop(inputs, ctx):
    return None
"""

TICK = """\
from quest import script


@script(
    friendly_name="Tick",
    description="Does nothing, every second.",
    quest={"interval": "1 second"},
)
def tick(inputs, ctx):
    return None
"""

QUEUED_NOOP = """\
from quest import script


@script(
    friendly_name="No-op",
    description="Does nothing; the drained run. No overlap lease, no limits; every run kept.",
    quest={
        "without_overlapping": False,
        "retention": {"succeeded": {"count": 1_000_000}},
    },
)
def noop(inputs, ctx):
    return None
"""

PING = """\
import os
import socket
import time

from quest import script


@script(
    friendly_name="Ping",
    description="Sends the instant it started to the benchmark, as a UDP datagram.",
    quest={"without_overlapping": False},
)
def ping(inputs, ctx):
    began = time.time()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(repr(began).encode(), ("127.0.0.1", int(os.environ["BENCH_PING_PORT"])))
"""

GENERATED = """\
from quest import Input, script


@script(
    friendly_name="Job {n}",
    description="Generated job {n}: a scheduled script with one input.",
    quest={{{schedule}}},
    inputs={{"batch_size": Input(int, default=100, min=1, description="Rows per batch.")}},
)
def job_{n}(inputs, ctx):
    return {{"batch_size": inputs.batch_size}}
"""

PEER = """\
SCHEDULE = ({kind!r}, {value!r})


def run(batch_size=100):
    return {{"batch_size": batch_size}}
"""


def project(folder: Path, **scripts: str) -> Path:
    """A project folder with a ``scripts/`` of the given ``name=source`` files."""
    (folder / "scripts").mkdir(parents=True, exist_ok=True)
    for name, source in scripts.items():
        (folder / "scripts" / f"{name}.py").write_text(source)
    return folder


def schedules(count: int, seed: int = 11) -> list[tuple[str, str | int]]:
    """*count* schedules that do not fire for a while: daily and weekly crons, long intervals."""
    rng = random.Random(seed)
    found: list[tuple[str, str | int]] = []
    for i in range(count):
        minute, hour = rng.randrange(60), rng.randrange(24)
        kind = i % 4
        if kind in (0, 1):
            found.append(("cron", f"{minute} {hour} * * *"))
        elif kind == 2:
            found.append(("cron", f"{minute} {hour} * * {rng.randrange(7)}"))
        else:
            found.append(("interval", rng.choice([7, 11, 13, 17]) * 3600))
    return found


def generated(folder: Path, count: int) -> tuple[Path, Path]:
    """*count* quest scripts in ``folder/quest/scripts`` and the same jobs for the peer."""
    quest_dir = folder / "quest" / "scripts"
    peer_dir = folder / "peer"
    quest_dir.mkdir(parents=True)
    peer_dir.mkdir()
    for i, (kind, value) in enumerate(schedules(count)):
        n = f"{i:05d}"
        if kind == "cron":
            schedule = f'"cron": "{value}"'
        else:
            schedule = f'"interval": "{int(value) // 3600} hours"'
        (quest_dir / f"job_{n}.py").write_text(GENERATED.format(n=n, schedule=schedule))
        (peer_dir / f"job_{n}.py").write_text(PEER.format(kind=kind, value=value))
    return quest_dir.parent, peer_dir
