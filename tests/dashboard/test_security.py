"""Who gets in and what they may do: closed by default, a password, an authorize callback,
read-only access, CSRF on every POST, and no secret on any page."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from starlette.requests import Request

from quest import Input, Quest, script
from quest.dashboard import Access, Grant, create_app
from quest.dashboard.security import CSRF_COOKIE
from quest.testing import FrozenClock, temporary_quest
from tests.dashboard._support import (
    LOOPBACK,
    NOW,
    SCRIPTS,
    SECRET,
    TestClient,
    basic,
    browser,
    running,
)

PAGES = ["/", "/scripts", "/scripts/cleanup", "/runs", "/queue", "/nodes"]


def state(quest: Quest) -> tuple[Any, ...]:
    """Everything an action could change."""
    runs = sorted(
        (row["id"], str(row["status"]), row["reason"]) for row in quest.store.history(limit=None)
    )
    return (
        runs,
        sorted(quest.store.paused()),
        quest.store.recent_actions(100),
        sorted(quest.store.cancel_requests(r[0] for r in runs).items()),
    )


def post_routes(quest: Quest) -> list[str]:
    failed = quest.run("report").run_id
    queued = quest.enqueue("cleanup")
    live = running(quest, "cleanup")
    return [
        "/scripts/cleanup/run",
        "/scripts/cleanup/pause",
        "/scripts/report/resume",
        f"/runs/{failed}/retry",
        f"/runs/{queued}/cancel",
        f"/runs/{live}/cancel",
        f"/runs/{queued}/discard",
        "/runs/bulk",
    ]


# -- closed by default ----------------------------------------------------------------------------


def test_without_authorize_or_password_only_loopback_gets_in(quest: Quest) -> None:
    app = create_app(quest)
    outsider = TestClient(app)  # its client host is "testclient"
    for path in [*PAGES, "/static/htmx.min.js", "/no-such-page"]:
        response = outsider.get(path)
        if path.startswith("/static"):
            continue
        assert response.status_code == 403, path
        assert "not granted" in response.text
    for host in ("10.0.0.8", "192.168.1.2", "::ffff:10.0.0.1", "", "localhost.evil.example"):
        assert TestClient(app, client=(host, 1)).get("/").status_code == 403, host
    for host in ("127.0.0.1", "127.8.9.10", "::1", "localhost"):
        assert TestClient(app, client=(host, 123)).get("/").status_code == 200, host


def test_an_outsider_cannot_act_either(quest: Quest) -> None:
    routes = post_routes(quest)
    before = state(quest)
    outsider = TestClient(create_app(quest), follow_redirects=False, cookies={CSRF_COOKIE: "x"})
    for path in routes:
        assert outsider.post(path, data={"csrf": "x"}).status_code == 403
    assert state(quest) == before


# -- password -------------------------------------------------------------------------------------


def test_a_password_is_asked_with_http_basic(quest: Quest) -> None:
    app = create_app(quest, password="s3cret pass")
    anyone = TestClient(app, client=("203.0.113.5", 999))
    response = anyone.get("/")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Basic ")
    assert "s3cret" not in response.text
    for headers in (
        basic("admin", "wrong"),
        basic("admin", "s3cret pass "),
        basic("admin", ""),
        {"Authorization": "Basic !!!notbase64"},
        {"Authorization": "Bearer s3cret pass"},
        {"Authorization": "Basic " + "YQ=="},  # "a": no colon
    ):
        assert anyone.get("/", headers=headers).status_code == 401, headers
    for path in PAGES:
        assert anyone.get(path, headers=basic("admin", "s3cret pass")).status_code == 200
        assert anyone.get(path, headers=basic("", "s3cret pass")).status_code == 200


def test_a_password_also_applies_to_loopback(quest: Quest) -> None:
    local = TestClient(create_app(quest, password="pw"), client=LOOPBACK)
    assert local.get("/").status_code == 401
    assert local.get("/", headers=basic("me", "pw")).status_code == 200


def test_the_password_comes_from_the_environment(
    quest: Quest, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUEST_DASHBOARD_PASSWORD", "from-env")
    local = TestClient(create_app(quest), client=LOOPBACK)
    assert local.get("/").status_code == 401
    assert local.get("/", headers=basic("me", "from-env")).status_code == 200


def test_a_wrong_password_cannot_act(quest: Quest) -> None:
    routes = post_routes(quest)
    before = state(quest)
    client = TestClient(
        create_app(quest, password="pw"),
        client=LOOPBACK,
        follow_redirects=False,
        cookies={CSRF_COOKIE: "t"},
    )
    for path in routes:
        response = client.post(path, data={"csrf": "t"}, headers=basic("a", "bad"))
        assert response.status_code == 401, path
    assert state(quest) == before


# -- authorize ------------------------------------------------------------------------------------


def by_header(request: Request) -> Access:
    return Access(request.headers.get("x-access", "none"))


async def by_header_async(request: Request) -> Grant:
    return Grant(Access(request.headers.get("x-access", "none")), who="async-user")


@pytest.mark.parametrize("authorize", [by_header, by_header_async])
def test_authorize_decides_full_read_or_none(quest: Quest, authorize: Any) -> None:
    app = create_app(quest, authorize=authorize)
    # Any client may come in: the mounting application decides.
    client = TestClient(app, client=("198.51.100.7", 1), follow_redirects=False)
    for path in PAGES:
        assert client.get(path, headers={"x-access": "none"}).status_code == 403
        assert client.get(path, headers={"x-access": "read"}).status_code == 200
        assert client.get(path, headers={"x-access": "full"}).status_code == 200
    response = client.post("/scripts/cleanup/pause", headers={"x-access": "full"})
    assert response.status_code == 403, "full access still needs the CSRF token"
    token = client.cookies.get(CSRF_COOKIE)
    assert token
    response = client.post(
        "/scripts/cleanup/pause", data={"csrf": token}, headers={"x-access": "full"}
    )
    assert response.status_code == 303
    assert quest.store.is_paused("cleanup")


@pytest.mark.parametrize("value", [True, False, None, Access.read, Grant(Access.read, "r")])
def test_authorize_may_return_a_bool_none_an_access_or_a_grant(quest: Quest, value: Any) -> None:
    client = TestClient(create_app(quest, authorize=lambda request: value))
    expected = 403 if value in (False, None) else 200
    assert client.get("/").status_code == expected


def test_read_only_hides_every_action(quest: Quest) -> None:
    failed = quest.run("report").run_id
    queued = quest.enqueue("cleanup")
    client = TestClient(create_app(quest, authorize=lambda request: Access.read))
    for path in [*PAGES, "/scripts/report", f"/runs/{failed}", f"/runs/{queued}"]:
        page = client.get(path).text
        for form in re.findall(r'<form method="post".*?</form>', page, re.S):
            assert "<button" not in form, (path, form)
        assert "Run now</button>" not in page and 'name="ids"' not in page, path
        assert '<span class="badge">read-only</span>' in page, path


def test_read_only_posts_are_refused_and_change_nothing(quest: Quest) -> None:
    routes = post_routes(quest)
    before = state(quest)
    client = TestClient(
        create_app(quest, authorize=lambda request: Access.read), follow_redirects=False
    )
    client.get("/")
    token = client.cookies.get(CSRF_COOKIE)
    assert token
    for path in routes:
        response = client.post(path, data={"csrf": token, "action": "retry"})
        assert response.status_code == 403, path
        assert "lets you look, not act" in response.text
    assert state(quest) == before


# -- CSRF -----------------------------------------------------------------------------------------


def test_every_post_without_a_valid_csrf_token_is_refused(quest: Quest) -> None:
    routes = post_routes(quest)
    before = state(quest)
    web = browser(create_app(quest))
    token = web.token()
    attempts: list[dict[str, Any]] = [
        {},  # no token at all, the cookie only
        {"data": {"csrf": ""}},
        {"data": {"csrf": token + "x"}},
        {"data": {"csrf": token.upper()}},
        {"headers": {"X-CSRF-Token": "nope"}},
        {"data": {"csrf": "ü" * 10}},
    ]
    for path in routes:
        for attempt in attempts:
            response = web.client.post(path, **attempt)
            assert response.status_code == 403, (path, attempt)
            assert "security token" in response.text
    # The token without the cookie is refused too (another site cannot read the cookie).
    cookieless = TestClient(create_app(quest), client=LOOPBACK, follow_redirects=False)
    for path in routes:
        assert cookieless.post(path, data={"csrf": token}).status_code == 403
    assert state(quest) == before


def test_the_csrf_header_works_as_the_field_does(quest: Quest) -> None:
    web = browser(create_app(quest))
    token = web.token()
    response = web.client.post("/scripts/cleanup/pause", headers={"X-CSRF-Token": token})
    assert response.status_code == 303
    assert quest.store.is_paused("cleanup")


def test_the_csrf_cookie_is_http_only_strict_and_kept(quest: Quest) -> None:
    client = TestClient(create_app(quest), client=LOOPBACK)
    first = client.get("/")
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    token = client.cookies.get(CSRF_COOKIE)
    assert f'name="csrf" value="{token}"' in client.get("/scripts/cleanup").text
    assert "set-cookie" not in client.get("/runs").headers, "the token is kept once set"
    assert f'"X-CSRF-Token": "{token}"' in client.get("/runs").text


def test_every_response_is_framed_by_no_one_and_not_cached(quest: Quest) -> None:
    client = TestClient(create_app(quest), client=LOOPBACK)
    response = client.get("/")
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["server-timing"].startswith("app;dur=")


def test_get_on_an_action_is_405(quest: Quest) -> None:
    run_id = quest.run("report").run_id
    before = state(quest)
    client = TestClient(create_app(quest), client=LOOPBACK)
    for path in (
        "/scripts/cleanup/run",
        "/scripts/cleanup/pause",
        "/scripts/cleanup/resume",
        f"/runs/{run_id}/retry",
        f"/runs/{run_id}/cancel",
        f"/runs/{run_id}/discard",
        "/runs/bulk",
    ):
        response = client.get(path)
        assert response.status_code == 405, path
        assert "POST" in response.headers.get("allow", "")
    assert state(quest) == before


def test_post_on_a_page_is_405(quest: Quest) -> None:
    client = TestClient(create_app(quest), client=LOOPBACK)
    assert client.post("/scripts").status_code == 405
    assert client.post("/").status_code == 405


# -- secrets --------------------------------------------------------------------------------------

OTHER_SECRET = "pa55-Default-Qx7"


@script(
    quest={"interval": "1 day", "inputs": {"token": SECRET}},
    inputs={
        "token": Input(str, sensitive=True),
        "api_key": Input(str, sensitive=True, default=OTHER_SECRET),
        "level": Input(int, default=1),
    },
)
def nightly_sync(inputs: Any, ctx: Any) -> None:
    ctx.log.info("using %s and %s", inputs.token, inputs.api_key)
    raise RuntimeError(f"token {inputs.token} was refused")


def test_no_secret_is_rendered_on_any_page(
    tmp_path: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FrozenClock(NOW - timedelta(hours=1))
    with temporary_quest(
        tmp_path, scripts=[*SCRIPTS, nightly_sync], database_url=database_url, clock=clock
    ) as quest:
        failed = quest.run("nightly-sync", {"token": SECRET}).run_id
        failed_sync = quest.run("sync-api", {"token": SECRET}).run_id
        queued = quest.enqueue("sync-api", {"token": SECRET}, key="k")
        live = running(quest, "nightly-sync", {"token": SECRET, "api_key": SECRET})
        clock.set(NOW)
        web = browser(create_app(quest))
        pages = [
            *PAGES,
            "/scripts/nightly-sync",
            "/scripts/sync-api",
            "/scripts?q=sync",
            f"/runs/{failed}",
            f"/runs/{failed_sync}",
            f"/runs/{queued}",
            f"/runs/{live}",
            f"/runs/{failed}/logs",
            "/runs?script=nightly-sync",
            "/runs?q=token",
        ]
        for path in pages:
            page = web.get(path)
            assert page.status_code == 200, path
            for secret in (SECRET, OTHER_SECRET):
                assert secret not in page.text, (path, secret)
        for q in (SECRET, OTHER_SECRET, SECRET[3:9]):
            page = web.get("/runs", params={"q": q})
            assert re.findall(r'<tr data-run="', page.text) == [], q
        # A refused Run now shows the form again without the secret typed in.
        page = web.post("/scripts/nightly-sync/run", {"input.token": SECRET, "input.level": "high"})
        assert page.status_code == 400
        assert SECRET not in page.text
        page = web.post("/runs/bulk", [("action", "retry"), ("ids", failed)])
        assert page.status_code == 303
        assert SECRET not in web.get(page.headers["location"]).text
