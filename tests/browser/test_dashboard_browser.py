"""The dashboard in a real browser: headless Chromium against ``quest dashboard`` and ``quest
serve`` on a copy of the demo project (see conftest.py).

Live updates are checked without reloading: each test marks the page's ``window`` after it
loads, and a reload (or any navigation) would lose the mark. Waits are Playwright's, each with a
deadline.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from dashboard_demo import DEMO_SCRIPTS, ROOT, Demo, wait_for
from playwright.sync_api import Page, expect

from quest.enums import RunStatus, Trigger

pytestmark = pytest.mark.slow

RUN_URL = re.compile(r"/runs/([0-9a-f]{32})(\?|$)")
FINISH = 30_000  # ms: how long a run may take to be picked up and to end


def mark(page: Page) -> None:
    """Tag the loaded document; :func:`assert_not_reloaded` checks the tag is still there."""
    page.evaluate("window.questMark = 'still here'")


def assert_not_reloaded(page: Page) -> None:
    assert page.evaluate("window.questMark") == "still here", "the page was reloaded"


def run_id_of(page: Page) -> str:
    found = RUN_URL.search(page.url)
    assert found, f"not a run's page: {page.url}"
    return found.group(1)


def run_now(page: Page, script: str, **fields: str) -> str:
    """Click Run now on *script*'s page, its fields (by element id) filled in; the new run's id."""
    page.goto(f"/scripts/{script}")
    if "delay" in fields or "key" in fields:
        page.click(".run-now summary")
    for element, text in fields.items():
        page.locator(f"#{element}").fill(text)
    page.click("#run-now-button")
    page.wait_for_url(RUN_URL)
    expect(page.locator(".notice")).to_contain_text("Run queued")
    return run_id_of(page)


def run_status(page: Page) -> Any:
    return page.locator("#live h1 .status")


def enqueued_runs(demo: Demo, name: str) -> list[dict[str, Any]]:
    return [row for row in demo.runs(name) if row["trigger"] is not Trigger.scheduled]


def test_run_now_refuses_bad_inputs_next_to_the_field_then_queues_and_follows_the_run(
    demo: Demo, page: Page
) -> None:
    before = len(enqueued_runs(demo, "cleanup-sessions"))
    page.goto("/scripts/cleanup-sessions")
    field = page.locator("#input-days_old")
    expect(field).to_have_value("30")

    for text, message in (("-1", "greater than or equal to 0"), ("abc", "'abc' is not an integer")):
        field.fill(text)
        with page.expect_navigation() as navigation:
            page.click("#run-now-button")
        assert navigation.value is not None and navigation.value.status == 400
        assert page.url.endswith("/scripts/cleanup-sessions/run")
        error = page.locator("#error-days_old")
        expect(error).to_contain_text(message)
        expect(page.locator(".field.invalid #input-days_old")).to_have_value(text)
        # the message sits with its field
        expect(page.locator(".field.invalid")).to_contain_text(message)
        field = page.locator("#input-days_old")
    assert len(enqueued_runs(demo, "cleanup-sessions")) == before, "a refused form queued a run"

    field.fill("7")
    page.click("#run-now-button")
    page.wait_for_url(RUN_URL)
    run_id = run_id_of(page)
    mark(page)
    expect(page.locator(".notice")).to_contain_text("Run queued")
    expect(run_status(page)).to_have_text("succeeded", timeout=FINISH)
    assert_not_reloaded(page)
    expect(page.locator("#live")).to_contain_text("Cleaned up")  # its log line, followed live

    row = demo.run(run_id)
    assert row["status"] is RunStatus.succeeded
    assert row["inputs"] == {"days_old": 7}
    assert len(enqueued_runs(demo, "cleanup-sessions")) == before + 1
    [action] = [
        a for a in demo.actions() if a["action"] == "run_now" and a["target"] == "cleanup-sessions"
    ]
    assert action["detail"]["run_id"] == run_id
    assert action["who"] == "dashboard@127.0.0.1"


def test_pause_and_resume_by_their_buttons(demo: Demo, page: Page) -> None:
    name = "warm-dashboard-cache"
    page.goto(f"/scripts/{name}")
    badge = page.locator("h1 .badge.paused")
    expect(badge).to_have_count(0)

    page.get_by_role("button", name="Pause", exact=True).click()
    page.wait_for_url(re.compile(rf"/scripts/{name}\?notice=paused$"))
    expect(badge).to_have_text("paused")
    expect(page.locator(".notice")).to_contain_text("Paused")
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible()
    assert name in demo.paused()

    page.get_by_role("button", name="Resume", exact=True).click()
    page.wait_for_url(re.compile(rf"/scripts/{name}\?notice=resumed$"))
    expect(badge).to_have_count(0)
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_visible()
    assert name not in demo.paused()

    done = [a["action"] for a in demo.actions() if a["target"] == name]
    assert done[:2] == ["resume", "pause"], done  # newest first


def test_a_running_run_is_on_the_overview_and_cancel_stops_it_live(demo: Demo, page: Page) -> None:
    run_id = run_now(page, "sleepy")
    mark(page)
    expect(run_status(page)).to_have_text("running", timeout=FINISH)
    assert_not_reloaded(page)

    overview = page.context.new_page()
    overview.goto("/")
    row = overview.locator("section", has_text="Running now").locator(
        f"tr:has(a[href$='/runs/{run_id}'])"
    )
    expect(row).to_contain_text("sleepy")
    overview.close()

    page.get_by_role("button", name="Cancel", exact=True).click()
    page.wait_for_url(re.compile(rf"/runs/{run_id}\?notice=cancel-requested$"))
    mark(page)
    expect(run_status(page)).to_have_text("cancelled", timeout=FINISH)
    assert_not_reloaded(page)
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_have_count(0)
    assert demo.run(run_id)["status"] is RunStatus.cancelled


def test_the_progress_bar_moves_without_reloading(demo: Demo, page: Page) -> None:
    run_now(page, "counting")
    mark(page)
    bar = "#live .progress progress"
    first = page.wait_for_function(
        f"() => {{ const p = document.querySelector('{bar}'); "
        f"return p && p.value > 0 && p.value < 100 ? p.value : null }}",
        timeout=FINISH,
    ).json_value()
    second = page.wait_for_function(
        f"(before) => {{ const p = document.querySelector('{bar}'); "
        f"return p && p.value > before ? p.value : null }}",
        arg=first,
        timeout=FINISH,
    ).json_value()
    assert 0 < first < second <= 100
    expect(run_status(page)).to_have_text("succeeded", timeout=FINISH)
    assert_not_reloaded(page)
    expect(page.locator("#logs")).to_contain_text("step 10 of 10")


def test_the_overview_and_the_scripts_page(demo: Demo, page: Page) -> None:
    page.goto("/")
    expect(page.locator(".card", has_text="Nodes").locator(".big")).to_have_text("1")
    expect(page.locator("section", has_text="Running now")).to_be_visible()

    page.goto("/scripts")
    rows = page.locator("table.scripts tbody tr[data-script]")
    expect(rows).to_have_count(len(DEMO_SCRIPTS) + 2)  # and the tests' sleepy and counting
    shown = rows.evaluate_all("rows => rows.map(row => row.dataset.script)")
    assert set(DEMO_SCRIPTS) <= set(shown)
    expect(page.locator("tr[data-script='health-check'] .badge.paused")).to_be_visible()


def test_live_updates_wait_while_runs_are_ticked_for_a_bulk_action(demo: Demo, page: Page) -> None:
    page.goto("/runs")
    live = page.locator("#live")
    assert (live.get_attribute("hx-get") or "").startswith("/runs"), "refreshes by path, not URL"
    # count the refresh checks, and tag the region: a refresh replaces it, tag and all
    page.evaluate(
        """() => {
            const idle = window.questIdle;
            window.checks = 0;
            window.questIdle = region => { window.checks++; return idle(region) };
            document.querySelector('#live').dataset.tag = 'old';
        }"""
    )
    page.wait_for_function("() => !document.querySelector('#live').dataset.tag")

    box = page.locator("#bulk tbody input[name=ids]").first
    box.check()
    page.evaluate("() => { document.querySelector('#live').dataset.tag = 'ticked' }")
    checks = page.evaluate("window.checks")
    page.wait_for_function(f"() => window.checks >= {checks + 3}")
    expect(page.locator("#live[data-tag=ticked]")).to_have_count(1)
    expect(page.locator("#bulk tbody input[name=ids]").first).to_be_checked()

    box.uncheck()
    page.locator("h1").click()  # focus leaves the region
    page.wait_for_function("() => !document.querySelector('#live').dataset.tag")


SCREENSHOTS = os.environ.get("QUEST_SCREENSHOTS")


def test_screenshots_for_the_docs(demo: Demo, page: Page, tmp_path: Path) -> None:
    """PNGs of every page: into QUEST_SCREENSHOTS (docs/dashboard for docs/dashboard.md) when it
    is set, else into a temporary folder (run last: it uses the runs of the tests above, and
    leaves a run of counting going for the run page)."""
    if SCREENSHOTS:
        folder = ROOT / SCREENSHOTS if not Path(SCREENSHOTS).is_absolute() else Path(SCREENSHOTS)
    else:
        folder = tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def shoot(name: str) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True, animations="disabled")

    started = [
        run_now(page, name)
        for name in (
            "retry-webhooks",
            "warm-dashboard-cache",
            "aggregate-analytics",
            "export-monthly-report",
            "cleanup-temp-files",
            "purge-deleted-records",
            "send-daily-digest",
            "process-email-queue",
        )
    ]
    down = '[{"name": "Payment API", "url": "http://127.0.0.1:9/v1"}]'
    started.append(run_now(page, "health-check", **{"input-endpoints": down}))
    run_now(page, "process-email-queue", delay="10m")
    run_now(page, "cleanup-sessions", delay="1 hour", key="eu-west")
    wait_for(lambda: all(demo.run(run_id)["status"].finished for run_id in started), "the runs")

    page.goto("/scripts/cleanup-sessions")
    page.locator("#input-days_old").fill("-3")
    page.click("#run-now-button")
    expect(page.locator("#error-days_old")).to_be_visible()
    shoot("script")

    counting = run_now(page, "counting")
    page.wait_for_function(
        "() => { const p = document.querySelector('#live .progress progress');"
        " return p && p.value >= 30 }",
        timeout=FINISH,
    )
    page.goto("/")
    shoot("overview")
    page.goto(f"/runs/{counting}")
    shoot("run")

    for name, path in (
        ("scripts", "/scripts"),
        ("runs", "/runs"),
        ("queue", "/queue"),
        ("nodes", "/nodes"),
    ):
        page.goto(path)
        shoot(name)
    for name in ("script", "overview", "run", "scripts", "runs", "queue", "nodes"):
        shot = (folder / f"{name}.png").read_bytes()
        assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 10_000, name
