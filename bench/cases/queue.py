"""Figures 8-10: filling a queue, and one enqueue at a time from another process.

    python -m bench.cases.queue enqueue quest N FOLDER     # N runs of ``noop`` (Quest.enqueue)
    python -m bench.cases.queue enqueue procrastinate N    # its schema, then N ``noop.defer()``
    python -m bench.cases.queue enqueue huey N             # N ``noop()`` calls into SqliteHuey
    python -m bench.cases.queue ping quest FOLDER          # the enqueue -> start driver
    python -m bench.cases.queue ping procrastinate

``enqueue`` prints ``{"runs": N, "seconds": S}``. ``ping`` binds a UDP socket on 127.0.0.1,
prints ``{"port": P}``, then for every ``go`` line on stdin takes the time, enqueues one run of
``ping`` and waits for the datagram in which the run reports the instant it started; it prints
``{"ms": started - enqueued}`` (or ``{"error": ...}`` after 30 s).
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _quest(folder: Path):  # type: ignore[no-untyped-def]
    from quest.app import Quest
    from quest.config import load_settings

    return Quest(load_settings(folder))


def enqueue(kind: str, n: int, rest: list[str]) -> None:
    start = time.perf_counter()
    if kind == "quest":
        quest = _quest(Path(rest[0]))
        for _ in range(n):
            quest.enqueue("noop")
        quest.close()
    elif kind == "procrastinate":
        from .peer_procrastinate import app, noop

        with app.open():
            app.schema_manager.apply_schema()
            for _ in range(n):
                noop.defer()
    elif kind == "huey":
        from .peer_huey import huey, noop

        for _ in range(n):
            noop()
        if huey.pending_count() != n:
            raise SystemExit(f"huey: {huey.pending_count()} tasks pending, {n} enqueued")
    else:
        raise SystemExit(f"unknown queue {kind!r}")
    print(json.dumps({"runs": n, "seconds": time.perf_counter() - start}), flush=True)


def ping(kind: str, rest: list[str]) -> None:
    send: Callable[[], object]
    close: Callable[[], object]
    if kind == "quest":
        quest = _quest(Path(rest[0]))
        send, close = (lambda: quest.enqueue("ping")), quest.close
    elif kind == "procrastinate":
        from .peer_procrastinate import app
        from .peer_procrastinate import ping as task

        app.open()
        send, close = task.defer, app.close
    else:
        raise SystemExit(f"unknown queue {kind!r}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
        for line in sys.stdin:
            if line.strip() != "go":
                break
            sock.setblocking(False)
            try:
                while True:
                    sock.recv(256)
            except BlockingIOError:
                pass
            sock.setblocking(True)
            sock.settimeout(30.0)
            enqueued = time.time()
            send()
            try:
                began = float(sock.recv(256).decode())
            except TimeoutError:
                print(json.dumps({"error": "no run started within 30 s"}), flush=True)
                continue
            print(json.dumps({"ms": (began - enqueued) * 1000}), flush=True)
    close()


def main(argv: list[str]) -> None:
    if argv[0] == "enqueue":
        enqueue(argv[1], int(argv[2]), argv[3:])
    elif argv[0] == "ping":
        ping(argv[1], argv[2:])
    else:
        raise SystemExit(f"unknown mode {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
