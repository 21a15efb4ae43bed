"""The dashboard mounted under a prefix, kept out of the other commands, and ``quest
dashboard``'s options."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from quest import Quest
from quest.cli import cli
from quest.dashboard import create_app
from quest.dashboard.security import CSRF_COOKIE
from tests.conftest import ROOT
from tests.dashboard._support import LOOPBACK, Browser, TestClient, basic, run_id_from


@pytest.fixture
def mounted(quest: Quest) -> Browser:
    parent = Starlette(
        routes=[
            Route("/", lambda request: PlainTextResponse("the host application")),
            Mount("/quest", app=create_app(quest)),
        ]
    )
    return Browser(TestClient(parent, client=LOOPBACK, follow_redirects=False))


def test_links_and_static_files_carry_the_prefix(mounted: Browser, quest: Quest) -> None:
    failed = quest.run("report").run_id
    for path in (
        "/quest/",
        "/quest/scripts",
        "/quest/scripts/cleanup",
        "/quest/runs",
        f"/quest/runs/{failed}",
        "/quest/queue",
        "/quest/nodes",
    ):
        page = mounted.get(path)
        assert page.status_code == 200, path
        links = re.findall(r'(?:href|action|src)="(/[^"]*)"', page.text)
        assert links, path
        for link in links:
            assert link.startswith("/quest/"), (path, link)
    assert mounted.get("/quest/static/quest.css").status_code == 200
    assert mounted.get("/quest/static/htmx.min.js").status_code == 200
    assert mounted.get("/").text == "the host application"
    assert mounted.get("/quest/nope").status_code == 404


def test_the_csrf_cookie_is_scoped_to_the_prefix(mounted: Browser) -> None:
    response = mounted.get("/quest/")
    assert "Path=/quest" in response.headers["set-cookie"]
    assert CSRF_COOKIE in mounted.client.cookies


def test_actions_redirect_under_the_prefix(mounted: Browser, quest: Quest) -> None:
    token = mounted.token("/quest/")
    response = mounted.client.post("/quest/scripts/cleanup/pause", data={"csrf": token})
    assert response.status_code == 303
    assert response.headers["location"] == "/quest/scripts/cleanup?notice=paused"
    response = mounted.client.post("/quest/scripts/cleanup/run", data={"csrf": token})
    assert response.headers["location"].startswith("/quest/runs/")
    assert quest.store.get_run(run_id_from(response.headers["location"])) is not None
    response = mounted.client.post(
        "/quest/runs/bulk", data={"csrf": token, "action": "discard", "back": "status=queued"}
    )
    assert response.headers["location"].startswith("/quest/runs?status=queued&notice=bulk")
    assert mounted.get("/quest/scripts/cleanup/run").status_code == 405


# -- the other commands never load the dashboard --------------------------------------------------


def test_run_and_serve_never_import_the_dashboard() -> None:
    code = (
        "import sys\n"
        "import quest, quest.cli, quest.cli.serve, quest.cli.run, quest.scheduler, quest.app\n"
        "from quest.cli import cli\n"
        "for name in ('run', 'enqueue', 'serve', 'dashboard'):\n"
        "    cli.get_command(None, name)\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn')\n"
        "          or m.startswith('quest.dashboard')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# -- quest dashboard ------------------------------------------------------------------------------


def invoke(quest: Quest, *args: str, env: dict[str, Any] | None = None) -> Any:
    return CliRunner().invoke(
        cli, ["dashboard", *args], obj=quest, env={"QUEST_DASHBOARD_PASSWORD": None, **(env or {})}
    )


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.com"])
def test_a_reachable_host_without_a_password_exits_2(quest: Quest, host: str) -> None:
    result = invoke(quest, "--host", host)
    assert result.exit_code == 2
    assert "QUEST_DASHBOARD_PASSWORD" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args", [["--port", "0"], ["--port", "abc"], ["--port", "65536"], ["--poll", "0"]]
)
def test_bad_options_exit_2(quest: Quest, args: list[str]) -> None:
    result = invoke(quest, *args)
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def test_with_a_password_it_serves_an_app_that_asks_for_it(
    quest: Quest, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    served: list[Any] = []
    monkeypatch.setattr(uvicorn.Server, "run", _served_into(served))
    port = _free_port()
    result = invoke(
        quest, "--host", "0.0.0.0", "--port", str(port), env={"QUEST_DASHBOARD_PASSWORD": "pw"}
    )
    assert result.exit_code == 0, result.output
    [(config, address)] = served
    assert address == ("0.0.0.0", port)
    client = TestClient(config.app, client=("203.0.113.1", 5))
    assert client.get("/").status_code == 401
    assert client.get("/", headers=basic("me", "pw")).status_code == 200


def test_on_loopback_it_needs_no_password(quest: Quest, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    served: list[Any] = []
    monkeypatch.setattr(uvicorn.Server, "run", _served_into(served))
    port = _free_port()
    result = invoke(quest, "--poll", "5", "--port", str(port))
    assert result.exit_code == 0, result.output
    assert f"http://127.0.0.1:{port}/" in result.output
    [(config, address)] = served
    assert address == ("127.0.0.1", port)
    assert TestClient(config.app, client=LOOPBACK).get("/").status_code == 200
    assert TestClient(config.app).get("/").status_code == 403


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _served_into(served: list[Any]) -> Any:
    def run(self: Any, sockets: list[Any] | None = None) -> None:
        assert sockets is not None and len(sockets) == 1
        served.append((self.config, sockets[0].getsockname()[:2]))
        sockets[0].close()

    return run


def test_a_port_in_use_is_a_clear_error_before_anything_says_it_is_up(quest: Quest) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = invoke(quest, "--port", str(port))
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.output
    assert "choose another with --port" in result.output
    assert "quest dashboard on" not in result.output
