"""Real servers on loopback for the pattern tests: SMTP (aiosmtpd), HTTP, a refused port, and a
helper that runs the repository's scripts through quest's runner on a throwaway project folder.

Test modules import the fixtures they need::

    from conftest_servers import http_fixture, smtp_fixture  # noqa: F401
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from quest.app import Quest
from quest.testing import FrozenClock, temporary_quest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
NOW = "2026-03-15T12:00:00+00:00"
"""The frozen instant of every pattern test: a Sunday, noon UTC (08:00 in New York)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- quest ---------------------------------------------------------------------------------------


@contextmanager
def pattern_quest(
    folder: Path, database_url: str, *, now: str = NOW, **overrides: Any
) -> Iterator[Quest]:
    """A Quest over the repository's scripts, rooted in *folder*, its schema created."""
    overrides.setdefault("outbox_dir", folder / "outbox")
    with temporary_quest(
        folder,
        scripts_dir=SCRIPTS,
        database_url=database_url,
        clock=FrozenClock(now),
        **overrides,
    ) as quest:
        quest.store.ensure_schema()
        yield quest


# -- SMTP ----------------------------------------------------------------------------------------


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        return body.get_content() if body is not None else ""

    def attachments(self) -> dict[str, tuple[str, str]]:
        """``{filename: (content type, text)}``."""
        found = {}
        for part in self.message.iter_attachments():
            found[part.get_filename()] = (part.get_content_type(), part.get_content())
        return found


class _Collector:
    def __init__(self) -> None:
        self.messages: list[Received] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"


@dataclass
class SmtpServer:
    url: str
    collector: _Collector

    @property
    def messages(self) -> list[Received]:
        return self.collector.messages


@pytest.fixture(name="smtp")
def smtp_fixture() -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1 that keeps every message it accepts."""
    collector = _Collector()
    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(f"smtp://127.0.0.1:{port}", collector)
    finally:
        controller.stop()


# -- HTTP ----------------------------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Route:
    status: int = 200
    delay: float = 0.0
    body: str = '{"ok": true}'


@dataclass
class HttpServer:
    """Answers each path by its route (200 by default) and records every request."""

    base: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = "/") -> str:
        return self.base + path

    def route(self, path: str, status: int = 200, delay: float = 0.0) -> str:
        self.routes[path] = Route(status, delay)
        return self.url(path)

    def hang(self, path: str) -> str:
        """A path that never answers until the test ends."""
        return self.route(path, delay=float("inf"))

    def to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path.split("?")[0] == path]


def _handler(server: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            server.requests.append(
                Request(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
            )
            route = server.routes.get(self.path.split("?")[0], Route())
            if route.delay:
                # Simulates a slow upstream; a hanging route waits for the end of the test.
                server.release.wait(None if route.delay == float("inf") else route.delay)
            payload = route.body.encode()
            try:
                self.send_response(route.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@pytest.fixture(name="http_server")
def http_fixture() -> Iterator[HttpServer]:
    """An HTTP server on 127.0.0.1, in a thread."""
    state = HttpServer(base="")
    httpd = _Server(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(name="refused_url")
def refused_fixture() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"


@pytest.fixture(name="refused_port")
def refused_port_fixture() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])
