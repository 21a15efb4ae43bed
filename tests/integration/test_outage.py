"""A database outage while a run ends: the JobLog write is retried and nothing is lost.

PostgreSQL is reached through a small TCP proxy on 127.0.0.1 that the test can cut (every
connection dropped, new ones closed at once) and restore, as a network partition or a database
restart would.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from quest import Quest, RunStatus, script
from quest.cli._common import setup_logging
from quest.scheduler import Serve
from quest.store import make_engine
from quest.testing import temporary_quest

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

OUTAGE = 3.0

entered = threading.Event()
release = threading.Event()


@script
def finishing(inputs: Any, ctx: Any) -> dict[str, str]:
    entered.set()
    if not release.wait(20):
        raise RuntimeError("never released")
    return {"report": "sent"}


@script
def quick(inputs: Any, ctx: Any) -> str:
    return "ok"


class Proxy:
    """Forwards 127.0.0.1:<port> to the database until cut."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_off = threading.Event()
        self.closed = threading.Event()
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.cut_off.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
            with self.lock:
                self.sockets.discard(source)
                self.sockets.discard(sink)

    def cut(self) -> None:
        self.cut_off.set()
        with self.lock:
            live = list(self.sockets)
        for end in live:
            with suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.cut_off.clear()

    def close(self) -> None:
        self.closed.set()
        self.cut()
        self.listener.close()


@contextmanager
def schema_through(proxy: Proxy, base_url: str) -> Iterator[str]:
    """A URL through *proxy* whose connections live in a fresh schema, dropped afterwards."""
    url = make_url(base_url).set(host="127.0.0.1", port=proxy.port)
    schema = f"quest_outage_{uuid.uuid4().hex[:12]}"
    direct = make_engine(base_url)
    try:
        with direct.begin() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        text = url.render_as_string(hide_password=False)
        separator = "&" if "?" in text else "?"
        yield f"{text}{separator}options=-csearch_path%3D{schema}"
    finally:
        with direct.begin() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        direct.dispose()


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[Proxy]:
    url = make_url(postgres_url)
    server = Proxy((url.host or "127.0.0.1", url.port or 5432))
    yield server
    server.close()


@pytest.fixture
def app(tmp_path: Path, proxy: Proxy, postgres_url: str) -> Iterator[Quest]:
    entered.clear()
    release.clear()
    with (
        schema_through(proxy, postgres_url) as url,
        temporary_quest(tmp_path, scripts=[finishing, quick], database_url=url) as instance,
    ):
        yield instance


def test_a_run_ending_during_an_outage_is_recorded_once_the_database_is_back(
    app: Quest, proxy: Proxy, caplog: pytest.LogCaptureFixture
) -> None:
    run_id = app.enqueue("finishing")
    serve = Serve(app, poll_every=0.2)
    loop = threading.Thread(target=serve.serve_forever, name="serve", daemon=True)
    loop.start()
    try:
        assert entered.wait(10), "serve picked up the queued run"
        proxy.cut()
        release.set()
        time.sleep(OUTAGE)  # the outage itself, not a wait for something to happen
        assert loop.is_alive(), "serve keeps running through the outage"
        proxy.restore()
        serve.join(30)
        row = app.store.get_run(run_id)
        assert row is not None
        assert row["status"] is RunStatus.succeeded
        assert row["result"] == {"report": "sent"}
        assert row["finished_at"] is not None
        assert row["duration_ms"] is not None

        after = app.enqueue("quick")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done = app.store.get_run(after)
            if done is not None and done["status"] is RunStatus.succeeded:
                break
            time.sleep(0.1)
        assert app.store.get_run(after)["status"] is RunStatus.succeeded  # type: ignore[index]
    finally:
        serve.stop()
        loop.join(10)
        serve.shutdown(grace=5)

    retries = [r for r in caplog.records if getattr(r, "action", None) == "db_retry"]
    assert retries, "the JobLog write was retried while the database was away"
    assert all(r.run_id == run_id for r in retries)  # type: ignore[attr-defined]
    assert app.store.count_runs(status=RunStatus.running) == 0
    assert app.store.count_runs("finishing") == 1
    assert row["finished_at"] - row["started_at"] < timedelta(seconds=OUTAGE), (
        "finished_at is when the script ended, not when the write got through"
    )


def test_serve_says_a_database_outage_in_one_line_a_failure_without_a_traceback(
    app: Quest, proxy: Proxy, capsys: pytest.CaptureFixture[str]
) -> None:
    """What serve's housekeeping logs while the database is away (its node's heartbeat, the
    recovery of abandoned runs, a tick) says the database's error in one line, not a traceback;
    an error of another kind keeps its traceback."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging(logging.INFO)
        serve = Serve(app, inline=True)
        serve.start()
        proxy.cut()
        serve._last_node_beat = serve._last_recovery = float("-inf")
        serve._maintain(app.clock.now())
        try:
            app.store.count_runs()
        except OperationalError:
            logging.getLogger("quest.serve").exception("scheduler tick failed; retrying")
        try:
            raise ValueError("not the database")
        except ValueError:
            logging.getLogger("quest.serve").exception("something else failed")
        proxy.restore()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    lines = err.splitlines()
    for message in ("node heartbeat failed: (", "recovery of abandoned runs failed: ("):
        assert any(message in line and "WARNING" in line for line in lines), err
    [tick] = [line for line in lines if "scheduler tick failed; retrying: (" in line]
    assert "WARNING" in tick and "OperationalError" in tick, "an outage is not an error of quest"
    assert err.count("Traceback") == 1 and "ValueError: not the database" in err
