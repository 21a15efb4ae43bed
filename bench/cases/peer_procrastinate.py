"""procrastinate, the PostgreSQL peer of figures 8 and 10, loaded by its own worker as shipped:

    procrastinate --app bench.cases.peer_procrastinate.app worker --concurrency 4

The database is ``BENCH_PG_DSN`` (a libpq connection string or URL). ``noop`` is the drained
task; ``ping`` sends the instant it started, as a UDP datagram, to ``127.0.0.1:BENCH_PING_PORT``.
"""

from __future__ import annotations

import os
import socket
import time

from procrastinate import App, PsycopgConnector

app = App(connector=PsycopgConnector(conninfo=os.environ.get("BENCH_PG_DSN", "")))


@app.task(name="noop")
def noop() -> None:
    return None


@app.task(name="ping")
def ping() -> None:
    began = time.time()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(repr(began).encode(), ("127.0.0.1", int(os.environ["BENCH_PING_PORT"])))
