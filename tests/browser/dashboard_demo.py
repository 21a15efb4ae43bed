"""A real ``quest serve`` and ``quest dashboard`` on a copy of the demo project, and headless
Chromium (Debian's, at /usr/bin/chromium) driven by Playwright.

Everything listens on 127.0.0.1: the demo's health check, the one script that would call hosts
on the internet, is paused before serve starts, and alerts go to the discard port of loopback.
Without /usr/bin/chromium the browser tests are skipped, except under CI (``CI=true``), where
that is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from quest.store import Store, make_engine

ROOT = Path(__file__).resolve().parents[2]
QUEST = str(Path(sys.executable).with_name("quest"))
CHROMIUM = Path("/usr/bin/chromium")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
DEMO_SCRIPTS = (
    "aggregate-analytics",
    "cleanup-sessions",
    "cleanup-temp-files",
    "export-monthly-report",
    "health-check",
    "monitor-stale-data",
    "process-email-queue",
    "purge-deleted-records",
    "retry-webhooks",
    "send-daily-digest",
    "warm-dashboard-cache",
)

# Two scripts of the tests' own, next to the demo's eleven.
SLEEPY = """\
    import time

    from quest import script


    @script(friendly_name="Sleepy", description="Sleeps for five minutes, unless cancelled.")
    def sleepy(inputs, ctx):
        ctx.log.info("going to sleep")
        time.sleep(300)
    """

COUNTING = """\
    import time

    from quest import script


    @script(friendly_name="Counting", description="Counts to ten, a step every 0.4 seconds.")
    def counting(inputs, ctx):
        for step in range(10):
            ctx.progress(step, total=10, message=f"step {step + 1} of 10")
            ctx.log.info("step %d of 10", step + 1)
            time.sleep(0.4)
        ctx.progress(10, total=10, message="done")
        return {"counted": 10}
    """


# quest db upgrade, quest demo seed, quest pause health-check: in one process, for speed.
PREPARE = """\
from quest.cli import cli

for args in (["db", "upgrade"], ["demo", "seed"], ["pause", "health-check"]):
    cli.main(args=args, prog_name="quest", standalone_mode=False)
"""


@dataclass
class Demo:
    """The demo project, its serve and its dashboard."""

    root: Path
    url: str
    env: dict[str, str]
    base: str
    serve: subprocess.Popen[bytes]
    dashboard: subprocess.Popen[bytes]

    def quest(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [QUEST, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"quest {' '.join(args)}: {result.stderr}"
        return result

    def store(self) -> Store:
        return Store(make_engine(self.url))

    def run(self, run_id: str) -> dict[str, Any]:
        store = self.store()
        try:
            row = store.get_run(run_id)
        finally:
            store.dispose()
        assert row is not None, f"no run {run_id} in the JobLog"
        return row

    def runs(self, name: str) -> list[dict[str, Any]]:
        store = self.store()
        try:
            return store.history(name, limit=None)
        finally:
            store.dispose()

    def paused(self) -> set[str]:
        store = self.store()
        try:
            return store.paused()
        finally:
            store.dispose()

    def actions(self) -> list[dict[str, Any]]:
        store = self.store()
        try:
            return store.recent_actions(50)
        finally:
            store.dispose()

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}\n{(self.root / name).read_text(errors='replace')[-4000:]}"
            for name in ("serve.log", "dashboard.log")
            if (self.root / name).exists()
        )


def wait_for(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
    """Poll *condition* (another process's doing) until it holds, or fail after *timeout* s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_demo_project(folder: Path) -> tuple[str, dict[str, str]]:
    """A copy of this repository's demo application (pyproject, app/, scripts/) in *folder*,
    with the tests' two scripts; its SQLite URL and the environment to run quest in."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copy(ROOT / "pyproject.toml", folder / "pyproject.toml")
    shutil.copytree(ROOT / "app", folder / "app", ignore=ignore)
    shutil.copytree(ROOT / "scripts", folder / "scripts", ignore=ignore)
    (folder / "scripts" / "sleepy.py").write_text(textwrap.dedent(SLEEPY), encoding="utf-8")
    (folder / "scripts" / "counting.py").write_text(textwrap.dedent(COUNTING), encoding="utf-8")
    url = f"sqlite:///{folder / 'quest.sqlite3'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEST_")}
    env.update(
        QUEST_DATABASE_URL=url,
        QUEST_OUTBOX_DIR=str(folder / "outbox"),
        # the discard port: an alert is refused at once, and the run that sent it fails
        QUEST_ALERT_WEBHOOK_URL="http://127.0.0.1:9/alerts",
        PYTHONUNBUFFERED="1",
        # quest from this checkout, whichever way the environment installed it
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return url, env


def start(root: Path, env: dict[str, str], name: str, *args: str) -> subprocess.Popen[bytes]:
    with (root / f"{name}.log").open("wb") as out:
        return subprocess.Popen(
            [QUEST, *args], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_until_up(demo: Demo, timeout: float = 30) -> None:
    """Poll the dashboard until it answers and serve has registered as a node."""
    deadline = time.monotonic() + timeout
    while True:
        for process in (demo.serve, demo.dashboard):
            if process.poll() is not None:
                pytest.fail(f"{process.args} exited with {process.returncode}\n{demo.logs()}")
        try:
            response = httpx.get(demo.base + "/nodes", timeout=2)
            if response.status_code == 200 and "n-alive" in response.text:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"the dashboard and serve were not up within {timeout} s\n{demo.logs()}")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """``quest db upgrade``, ``quest demo seed``, health-check paused, then ``quest serve`` and
    ``quest dashboard --poll 0.5`` on a free loopback port."""
    with tempfile.TemporaryDirectory(prefix="quest-browser-") as folder:
        root = Path(folder)
        url, env = make_demo_project(root)
        done = subprocess.run(
            [sys.executable, "-c", PREPARE], cwd=root, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"quest db upgrade, demo seed, pause: {done.stderr}"
        port = free_port()
        serve = start(root, env, "serve", "serve", "--grace", "2")
        dashboard = start(
            root,
            env,
            "dashboard",
            "dashboard",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--poll",
            "0.5",
        )
        demo = Demo(root, url, env, f"http://127.0.0.1:{port}", serve, dashboard)
        try:
            wait_until_up(demo)
            yield demo
        finally:
            stop(dashboard)
            stop(serve)


def chromium_or_skip(path: Path, *, in_ci: bool) -> None:
    """Skip the test when there is no Chromium at *path*; under CI, fail it."""
    if path.exists():
        return
    if in_ci:
        pytest.fail(f"{path} is missing; under CI the browser tests must run")
    pytest.skip(f"the browser tests need Chromium at {path} (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from /usr/bin/chromium (never a downloaded one)."""
    chromium_or_skip(CHROMIUM, in_ci=IN_CI)
    if IN_CI:
        from playwright import sync_api
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, demo: Demo) -> Iterator[Any]:
    """A fresh browser context (its own cookies) and page; only loopback requests go out."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=demo.base)
    context.set_default_timeout(15_000)
    context.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith(demo.base) else route.abort()
        ),
    )
    errors: list[str] = []
    tab = context.new_page()
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
