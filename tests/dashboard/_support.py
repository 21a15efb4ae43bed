"""Scripts, a browser and helpers shared by the dashboard tests."""

from __future__ import annotations

import re
import warnings
from datetime import UTC, date, datetime
from html import unescape
from typing import Any

from quest import Input, Quest, script
from quest.dashboard.security import CSRF_COOKIE

with warnings.catch_warnings():
    # Starlette asks for httpx2 where only httpx is installed; the client works the same.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NOW = datetime(2026, 3, 9, 12, 0, tzinfo=UTC)
SECRET = "hunter2-Zq8vX1"
LOOPBACK = ("127.0.0.1", 50123)


@script(
    friendly_name="Clean up old sessions",
    description="Deletes sessions older than a number of days.",
    quest={"interval": "1 hour", "concurrency": 2, "rate_limit": {"max": 5, "per": "1 minute"}},
    inputs={
        "days_old": Input(int, min=0, default=30, description="Age in days"),
        "mode": Input(["fast", "thorough"], default="fast"),
        "dry_run": Input(bool, default=False),
        "ratio": Input(float, min=0, max=1, default=0.5),
    },
)
def cleanup(inputs: Any, ctx: Any) -> dict[str, int]:
    ctx.log.info("deleting sessions older than %s days", inputs.days_old)
    return {"deleted": 3}


@script(
    friendly_name="Morning report",
    quest={"cron": "0 6 * * *", "timezone": "Europe/Paris"},
)
def report(inputs: Any, ctx: Any) -> None:
    raise RuntimeError("the report server said no")


@script(
    friendly_name="Sync the API",
    inputs={
        "token": Input(str, sensitive=True),
        "account": Input(str, default="acme"),
    },
)
def sync_api(inputs: Any, ctx: Any) -> str:
    ctx.log.info("syncing %s", inputs.account)
    raise ConnectionError("the API refused us")


@script(
    inputs={
        "payload": Input(dict, default={}),
        "items": Input(list, required=False),
        "day": Input(date, required=False),
        "name": Input(str, required=False, max=40),
    }
)
def ingest(inputs: Any, ctx: Any) -> None:
    raise ValueError("bad rows")


@script(inputs={"count": Input(int, min=0, max=100)})
def needs_count(inputs: Any, ctx: Any) -> int:
    return int(inputs.count)


SCRIPTS = [cleanup, report, sync_api, ingest, needs_count]


class Browser:
    """A TestClient that keeps the CSRF cookie and sends its token with every form."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def token(self, path: str = "/") -> str:
        if not self.client.cookies.get(CSRF_COOKIE):
            self.client.get(path)
        value = self.client.cookies.get(CSRF_COOKIE)
        assert value, "the dashboard set no CSRF cookie"
        return str(value)

    def post(
        self, path: str, data: dict[str, Any] | list[tuple[str, str]] | None = None, **kwargs: Any
    ) -> Any:
        token = self.token()
        if isinstance(data, list):
            body: Any = [*data, ("csrf", token)]
            return self.client.post(
                path,
                content=_encode(body),
                headers={"content-type": "application/x-www-form-urlencoded"},
                **kwargs,
            )
        return self.client.post(path, data={**(data or {}), "csrf": token}, **kwargs)


def _encode(pairs: list[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    return urlencode(pairs)


def browser(app: Any, client: tuple[str, int] = LOOPBACK, **kwargs: Any) -> Browser:
    return Browser(TestClient(app, client=client, follow_redirects=False, **kwargs))


def run_id_from(location: str) -> str:
    found = re.search(r"/runs/([0-9a-f]+)", location)
    assert found, location
    return found.group(1)


def running(quest: Quest, name: str, inputs: dict[str, Any] | None = None) -> str:
    """A run of *name* claimed by a serve on host web-1, pid 42: it is ``running``."""
    run_id = quest.enqueue(name, inputs)
    [row] = quest.store.claim_queued(
        now=quest.clock.now(), limit=1, owner_host="web-1", owner_pid=42, run_id=run_id
    )
    assert row["id"] == run_id
    return run_id


def field_error(html: str, key: str) -> str | None:
    """The error shown next to field *key* of the Run-now form, if any."""
    found = re.search(rf'id="error-{re.escape(key)}">([^<]*)<', html)
    return unescape(found.group(1)) if found else None


def basic(user: str, password: str) -> dict[str, str]:
    """The header of HTTP Basic credentials."""
    import base64

    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
