"""The dashboard's pages, read through a browser on SQLite and PostgreSQL with a frozen clock."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from quest import Quest, RunStatus, script
from quest.dashboard import create_app
from quest.definition import Script, declaration_of
from quest.discovery import Registry
from quest.testing import FrozenClock, temporary_quest
from tests.dashboard._support import NOW, SECRET, Browser, browser, running


def text_of(html: str) -> str:
    """The page's visible text, tags dropped and spaces folded."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def section(html: str, heading: str) -> str:
    """The HTML from the heading *heading* to the next <h2> or </section>."""
    start = html.index(heading)
    ends = [i for i in (html.find("<h2", start + 1), html.find("</section>", start)) if i != -1]
    return html[start : min(ends) if ends else None]


@pytest.fixture
def seeded(quest: Quest, clock: FrozenClock) -> dict[str, str]:
    """Runs of every kind over the last few hours; the clock is back at NOW afterwards."""
    ids: dict[str, str] = {}
    clock.set(NOW - timedelta(hours=3))
    ids["cleanup"] = quest.run("cleanup", {"days_old": 7}).run_id
    clock.set(NOW - timedelta(hours=2))
    ids["report"] = quest.run("report").run_id
    clock.set(NOW - timedelta(hours=1))
    ids["sync"] = quest.run("sync-api", {"token": SECRET}).run_id
    clock.set(NOW - timedelta(minutes=30))
    ids["ingest"] = quest.run("ingest", {"payload": {"rows": 2}}).run_id
    clock.set(NOW - timedelta(minutes=5))
    ids["queued"] = quest.enqueue("cleanup", {"days_old": 9}, key="tenant-1", delay="10 minutes")
    clock.set(NOW - timedelta(minutes=4))
    ids["running"] = running(quest, "needs-count", {"count": 3})
    quest.store.set_progress(ids["running"], current=40, total=100, message="copying rows", now=NOW)
    ids["node"] = quest.store.register_node(
        host="web-1",
        pid=42,
        version="9.8.7",
        now=NOW - timedelta(minutes=5),
        concurrency=4,
        isolation="thread",
    )
    quest.store.beat_node(ids["node"], NOW - timedelta(seconds=20))
    quest.store.append_logs(
        ids["cleanup"],
        [
            {
                "seq": 1,
                "at": NOW - timedelta(hours=3),
                "level": "INFO",
                "logger": "quest.script.cleanup",
                "message": "deleted 3 sessions",
            }
        ],
        keep_from=1,
    )
    clock.set(NOW)
    return ids


# -- overview -------------------------------------------------------------------------------------


def test_overview_counts_the_last_24_hours_by_status(web: Browser, seeded: dict[str, str]) -> None:
    page = web.get("/")
    assert page.status_code == 200
    text = text_of(page.text)
    counts = text_of(section(page.text, "By status"))
    assert "succeeded 1" in counts
    assert "failed 3" in counts
    assert "queued 1" in counts and "running 1" in counts
    assert "Last 24 h 6 runs" in text
    assert "Success rate 25.0%" in text


def test_overview_leaves_out_runs_older_than_24_hours(
    web: Browser, quest: Quest, clock: FrozenClock
) -> None:
    clock.set(NOW - timedelta(hours=25))
    quest.run("cleanup")
    clock.set(NOW)
    text = text_of(web.get("/").text)
    assert "Last 24 h 0 runs" in text
    assert "No runs in the last 24 hours" in text
    assert "Success rate —" in text


def test_overview_shows_what_runs_now_with_its_progress(
    web: Browser, seeded: dict[str, str]
) -> None:
    page = web.get("/")
    running_now = section(page.text, "Running now")
    assert f'href="/runs/{seeded["running"]}"' in running_now
    assert 'progress value="40.0"' in running_now
    assert "copying rows" in running_now
    assert "web-1:42" in running_now


def test_overview_lists_late_and_failing_scripts(web: Browser, seeded: dict[str, str]) -> None:
    page = web.get("/")
    late = text_of(section(page.text, "Late"))
    failing = text_of(section(page.text, "Failing"))
    # cleanup runs every hour and last succeeded 3 h ago; report (daily) has only failed.
    assert "cleanup" in late and "every 1 h, last success 3 h ago" in late
    assert "report" in late
    assert "sync-api" not in late, "an on-demand script is never late"
    for name in ("report", "sync-api", "ingest"):
        assert name in failing
    assert "cleanup" not in failing


def test_a_scheduled_script_that_never_ran_is_not_late(web: Browser) -> None:
    late = text_of(section(web.get("/").text, "Late"))
    assert "None." in late, late


def test_a_paused_script_is_not_late(web: Browser, quest: Quest, seeded: dict[str, str]) -> None:
    quest.store.set_paused("cleanup", True, now=NOW)
    late = text_of(section(web.get("/").text, "Late"))
    assert "cleanup" not in late


def test_overview_chart_has_a_bar_per_hour_with_the_hours_runs(
    web: Browser, seeded: dict[str, str]
) -> None:
    page = web.get("/")
    chart = page.text[page.text.index('<svg class="chart"') : page.text.index("</svg>")]
    titles = re.findall(r"<title>([^<]*)</title>", chart)
    assert len(titles) == 25
    assert "09:00 UTC: 1 runs, 0 failed, mean 0 ms" in titles
    assert "10:00 UTC: 1 runs, 1 failed, mean 0 ms" in titles
    assert "11:00 UTC: 4 runs, 2 failed, mean 0 ms" in titles
    assert "12:00 UTC: 0 runs, 0 failed, mean —" in titles
    assert "<polyline" in chart


# -- scripts --------------------------------------------------------------------------------------


def row_of(html: str, name: str) -> str:
    found = re.search(rf'<tr data-script="{re.escape(name)}">(.*?)</tr>', html, re.S)
    assert found, f"no row for {name}"
    return found.group(1)


def test_scripts_lists_schedule_next_run_last_outcome_and_strip(
    web: Browser, seeded: dict[str, str]
) -> None:
    page = web.get("/scripts")
    assert page.status_code == 200
    cleanup = row_of(page.text, "cleanup")
    assert "Clean up old sessions" in cleanup
    assert "every 1 hour" in text_of(cleanup)
    assert "in 1 h" in cleanup and "2026-03-09 13:00:00 UTC" in cleanup
    assert "s-succeeded" in cleanup and "3 h ago" in cleanup
    assert cleanup.count('class="tick') == 1
    report = row_of(page.text, "report")
    assert "at 06:00 AM" in report and "Europe/Paris" in report
    assert "2026-03-10 05:00:00 UTC" in report, "06:00 in Paris is 05:00 UTC in March"
    assert "s-failed" in report
    assert "on demand" in row_of(page.text, "sync-api")
    assert "never run" in row_of(page.text, "needs-count") or "running" in row_of(
        page.text, "needs-count"
    )


def test_the_strip_holds_the_last_30_outcomes_oldest_first(
    web: Browser, quest: Quest, clock: FrozenClock
) -> None:
    for minute in range(35):
        clock.set(NOW - timedelta(hours=6) + timedelta(minutes=minute))
        quest.run("report" if minute == 34 else "cleanup")
    clock.set(NOW)
    strip = re.findall(
        r'class="tick s-(\w+)" href="/runs/(\w+)"', row_of(web.get("/scripts").text, "cleanup")
    )
    assert len(strip) == 30
    assert all(status == "succeeded" for status, _ in strip)
    history = [row["id"] for row in quest.store.history("cleanup", limit=30)]
    assert [run_id for _, run_id in strip] == list(reversed(history))


def test_a_paused_script_says_so_and_has_no_next_run(web: Browser, quest: Quest) -> None:
    quest.store.set_paused("cleanup", True, now=NOW)
    cleanup = row_of(web.get("/scripts").text, "cleanup")
    assert "paused" in cleanup
    assert "in 1 h" not in cleanup


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?q=sync", {"sync-api"}),
        ("?q=MORNING", {"report"}),
        ("?state=scheduled", {"cleanup", "report"}),
        ("?state=on-demand", {"sync-api", "ingest", "needs-count"}),
        ("?state=failing", {"report", "sync-api", "ingest"}),
        ("?state=running", {"needs-count"}),
        ("?state=late", {"cleanup", "report"}),
        ("?state=never", {"needs-count"}),
        ("?state=paused", {"cleanup"}),
        ("?state=failing&q=inges", {"ingest"}),
        ("?state=bogus", {"cleanup", "report", "sync-api", "ingest", "needs-count"}),
    ],
)
def test_scripts_filter_by_name_and_state(
    web: Browser, quest: Quest, seeded: dict[str, str], query: str, expected: set[str]
) -> None:
    quest.store.set_paused("cleanup", "paused" in query, now=NOW)
    page = web.get("/scripts" + query)
    assert page.status_code == 200
    assert set(re.findall(r'<tr data-script="([^"]+)"', page.text)) == expected


def many_scripts(count: int) -> Registry:
    registry = Registry()
    for i in range(count):

        @script(friendly_name=f"Job number {i}")
        def job(inputs: Any, ctx: Any) -> None:
            pass

        declared = declaration_of(job)
        assert declared is not None
        registry.add(Script.build(f"job-{i:03d}", declared, __name__))
    return registry


def test_scripts_are_paged_50_at_a_time(tmp_path: Path, database_url: str) -> None:
    with temporary_quest(tmp_path, database_url=database_url, clock=FrozenClock(NOW)) as quest:
        quest.__dict__["registry"] = many_scripts(120)
        web = browser(create_app(quest))
        seen: list[str] = []
        for number in (1, 2, 3):
            page = web.get(f"/scripts?page={number}")
            assert page.status_code == 200
            assert f"120 scripts, page {number} of 3" in text_of(page.text)
            seen += re.findall(r'<tr data-script="([^"]+)"', page.text)
        assert seen == [f"job-{i:03d}" for i in range(120)]
        assert 'page=2">next' in web.get("/scripts?page=1").text
        last = web.get("/scripts?page=99")
        assert "page 3 of 3" in text_of(last.text), "a page past the end shows the last"
        assert web.get("/scripts?page=abc").status_code == 200


# -- one script -----------------------------------------------------------------------------------


def test_script_page_shows_declaration_inputs_and_next_ten_fires(
    web: Browser, seeded: dict[str, str]
) -> None:
    page = web.get("/scripts/cleanup")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "Clean up old sessions" in text and "Deletes sessions older" in text
    assert "Runs every 1 hour (UTC)" in text
    decl = unescape(re.search(r'<pre class="decl">(.*?)</pre>', page.text, re.S).group(1))
    assert '"interval"' in decl and '"concurrency"' in decl
    fires = re.findall(r"<li>([^<]+) <span", page.text[page.text.index('<ol class="fires">') :])
    assert fires[:10] == [f"2026-03-09 {hour:02d}:00:00 UTC" for hour in range(13, 23)], (
        "every hour from the last run, the next ten"
    )
    assert len(re.findall(r"<li>", section(page.text, "Next fire times"))) == 10
    inputs = text_of(section(page.text, "<h2>Inputs"))
    assert "days_old integer 30 Age in days" in inputs
    assert f'href="/runs/{seeded["cleanup"]}"' in page.text, "history"


def test_run_now_form_is_made_from_the_inputs(web: Browser) -> None:
    page = web.get("/scripts/cleanup").text
    form = page[page.index('<form method="post" action="/scripts/cleanup/run"') :]
    form = form[: form.index("</form>")]
    assert re.search(
        r'<input id="input-days_old" type="text" name="input.days_old" value="30">', form
    )
    assert "integer; default: 30; min 0 — Age in days" in form
    assert "number; default: 0.5; min 0; max 1" in form
    mode = re.search(r'<select id="input-mode".*?</select>', form, re.S).group(0)
    assert re.findall(r'<option value="([^"]*)"', mode) == ["", "fast", "thorough"]
    assert '<option value="fast" selected>' in mode
    dry = re.search(r'<select id="input-dry_run".*?</select>', form, re.S).group(0)
    assert re.findall(r'<option value="([^"]*)"', dry) == ["", "true", "false"]
    assert 'name="delay"' in form and 'name="key"' in form and 'name="csrf"' in form
    ingest = web.get("/scripts/ingest").text
    assert re.search(
        r'<textarea id="input-payload" name="input.payload" rows="3">\{\}</textarea>', ingest
    )
    assert 'placeholder="YYYY-MM-DD"' in ingest


def test_a_sensitive_input_is_a_password_field_never_filled(web: Browser) -> None:
    page = web.get("/scripts/sync-api").text
    assert re.search(
        r'<input id="input-token" type="password" name="input.token" value="" autocomplete="off">',
        page,
    )
    assert "sensitive: never stored in the JobLog" in page


def test_a_script_with_a_cron_schedule_lists_fires_in_utc(web: Browser) -> None:
    page = web.get("/scripts/report").text
    assert 'Runs <strong>at 06:00 AM</strong> <span class="muted">(Europe/Paris)</span>' in page
    fires = re.findall(r"<li>([^<]+) <span", page[page.index('<ol class="fires">') :])[:10]
    assert fires[0] == "2026-03-10 05:00:00 UTC"
    assert len(fires) == 10
    # Paris moves to summer time on 29 March 2026: 06:00 is then 04:00 UTC.
    assert "2026-03-19 05:00:00 UTC" in fires


def test_a_paused_script_has_no_next_fires(web: Browser, quest: Quest) -> None:
    quest.store.set_paused("cleanup", True, now=NOW)
    page = web.get("/scripts/cleanup").text
    assert "None while paused." in page
    assert '<span class="badge paused">paused</span>' in page


# -- runs -----------------------------------------------------------------------------------------


def run_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-run="([0-9a-f]+)">', html)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["running", "queued", "ingest", "sync", "report", "cleanup"]),
        ("?script=cleanup", ["queued", "cleanup"]),
        ("?status=failed", ["ingest", "sync", "report"]),
        ("?status=failed&status=succeeded", ["ingest", "sync", "report", "cleanup"]),
        ("?trigger=enqueued", ["running", "queued"]),
        ("?trigger=manual&script=report", ["report"]),
        ("?key=tenant-1", ["queued"]),
        ("?since=90m", ["running", "queued", "ingest", "sync"]),
        ("?since=2026-03-09T10:00&until=2026-03-09T11:30", ["sync", "report"]),
        ("?until=2026-03-09T10:00:00%2B00:00", ["cleanup"]),
        ("?q=rows", ["ingest"]),
        ("?q=acme", ["sync"]),
        ("?q=%25", []),
        ("?status=bogus&trigger=bogus&since=bogus", []),
    ],
)
def test_runs_filter(web: Browser, seeded: dict[str, str], query: str, expected: list[str]) -> None:
    page = web.get("/runs" + query)
    assert page.status_code == 200
    names = {run_id: name for name, run_id in seeded.items()}
    found = [names.get(run_id, run_id) for run_id in run_ids(page.text)]
    if query.startswith("?status=bogus"):
        # Unknown values filter nothing out.
        assert len(found) == 6
    else:
        assert found == expected


def test_runs_search_never_matches_a_sensitive_input(web: Browser, seeded: dict[str, str]) -> None:
    for q in (SECRET, SECRET[:6], "hunter2"):
        page = web.get("/runs", params={"q": q})
        assert page.status_code == 200
        assert run_ids(page.text) == []
        assert "No run matches." in page.text


def test_runs_are_paged_by_a_cursor_without_gaps_or_repeats(
    web: Browser, quest: Quest, clock: FrozenClock
) -> None:
    made = []
    for i in range(120):
        # Runs share instants in threes: the cursor breaks ties by id.
        clock.set(NOW - timedelta(minutes=200 - i // 3))
        made.append(quest.enqueue("cleanup", {"days_old": i}))
    clock.set(NOW)
    expected = [row["id"] for row in quest.store.history("cleanup", limit=None)]
    assert sorted(expected) == sorted(made)
    seen: list[str] = []
    url = "/runs?script=cleanup"
    pages = 0
    while url:
        page = web.get(url)
        assert page.status_code == 200
        ids = run_ids(page.text)
        assert len(ids) == (50 if pages < 2 else 20)
        seen += ids
        pages += 1
        older = re.search(r'<a href="(\?[^"]*before=[^"]+)" rel="next">', page.text)
        url = "/runs" + unescape(older.group(1)) if older else ""
        if pages > 1:
            assert "newest</a>" in page.text
    assert pages == 3
    assert len(seen) == len(set(seen)) == 120
    created = {
        row["id"]: (row["created_at"], row["id"])
        for row in quest.store.history("cleanup", limit=None)
    }
    assert seen == sorted(seen, key=lambda run_id: created[run_id], reverse=True)


def test_a_bad_cursor_shows_the_first_page(web: Browser, seeded: dict[str, str]) -> None:
    for cursor in ("nonsense", "%%%", "MjAyNi0wMy0wOXxh" * 40, "fA"):
        page = web.get("/runs", params={"before": cursor})
        assert page.status_code == 200
        assert len(run_ids(page.text)) == 6


# -- one run --------------------------------------------------------------------------------------


def test_run_page_shows_inputs_result_logs_and_owner(
    web: Browser, quest: Quest, seeded: dict[str, str]
) -> None:
    page = web.get(f"/runs/{seeded['cleanup']}")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "succeeded" in text and "Clean up old sessions" in text
    assert '"days_old": 7' in text and '"mode": "fast"' in text
    assert '"deleted": 3' in text, "the result"
    assert "INFO quest.script.cleanup: deleted 3 sessions" in text
    assert "2026-03-09 09:00:00 UTC" in text


def test_run_page_of_a_failed_run_shows_error_and_traceback(
    web: Browser, seeded: dict[str, str]
) -> None:
    page = web.get(f"/runs/{seeded['report']}").text
    assert "RuntimeError: the report server said no" in page
    assert "<summary>Traceback</summary>" in page and "Traceback (most recent call last)" in page


def test_run_page_of_a_running_run_shows_progress_node_and_heartbeat(
    web: Browser, quest: Quest, seeded: dict[str, str], clock: FrozenClock
) -> None:
    page = web.get(f"/runs/{seeded['running']}").text
    text = text_of(page)
    assert "running" in text
    assert 'progress value="40.0"' in page and "copying rows" in page
    assert f"web-1:42 node {seeded['node'][:8]} (version 9.8.7)" in text
    assert "Heartbeat 4 min ago" in text
    assert "No lines logged yet." in text
    assert 'hx-get="/runs/' in page, "a live run refreshes itself"


def test_run_page_lists_the_chain_of_attempts(
    web: Browser, quest: Quest, clock: FrozenClock
) -> None:
    first = quest.run("report").run_id
    second = quest.store.get_run(first)
    assert second is not None
    retry = web.post(f"/runs/{first}/retry")
    assert retry.status_code == 303
    new_id = retry.headers["location"].split("/runs/")[1].split("?")[0]
    page = web.get(f"/runs/{new_id}").text
    assert "queued" in page
    # A retry from the dashboard is a new run, not an attempt of the same chain.
    assert "<h2>Attempts</h2>" not in page


def test_run_page_redacts_sensitive_inputs(web: Browser, seeded: dict[str, str]) -> None:
    page = web.get(f"/runs/{seeded['sync']}").text
    assert SECRET not in page
    assert "&#34;token&#34;: &#34;***&#34;" in page


def test_run_logs_fragment(web: Browser, seeded: dict[str, str]) -> None:
    page = web.get(f"/runs/{seeded['cleanup']}/logs")
    assert page.status_code == 200
    assert page.text.startswith('<div class="logs" id="logs">')
    assert "deleted 3 sessions" in page.text


# -- queue and nodes ------------------------------------------------------------------------------


def test_queue_groups_runs_by_script_and_key_with_their_limits(
    web: Browser, quest: Quest, seeded: dict[str, str]
) -> None:
    quest.enqueue("cleanup", key="tenant-1")
    quest.enqueue("cleanup")
    quest.enqueue("ingest", delay="2 hours")
    page = web.get("/queue")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "4 queued runs." in text
    assert "cleanup — 1 due now at most 2 at once, 5 per minute" in text
    assert "cleanup tenant-1 2 due now at most 2 at once, 5 per minute" in text
    assert "tenant-1 in 5 min Discard" in text
    assert "ingest — 1 in 2 h none" in text
    assert len(re.findall(r'action="/runs/\w+/discard"', page.text)) == 4


def test_an_empty_queue_says_so(web: Browser) -> None:
    assert "The queue is empty." in web.get("/queue").text


def test_nodes_show_heartbeat_version_concurrency_and_runs(
    web: Browser, quest: Quest, seeded: dict[str, str]
) -> None:
    stopped = quest.store.register_node(
        host="web-2",
        pid=7,
        version="1.0.0",
        now=NOW - timedelta(hours=2),
        concurrency=1,
        isolation="process",
    )
    quest.store.stop_node(stopped, NOW - timedelta(hours=1))
    page = web.get("/nodes")
    assert page.status_code == 200
    text = text_of(page.text)
    assert f"{seeded['node'][:8]} alive web-1:42 9.8.7 4 (thread) 5 min ago 20 s ago" in text
    assert f"{seeded['running'][:8]} needs-count" in text
    assert "web-2:7 1.0.0 1 (process)" in text and "stopped" in text and "idle" in text


def test_no_nodes_says_so(web: Browser) -> None:
    assert "No quest serve has registered" in web.get("/nodes").text


def test_every_page_answers_head(web: Browser, seeded: dict[str, str]) -> None:
    for path in (
        "/",
        "/scripts",
        "/scripts/cleanup",
        "/runs",
        f"/runs/{seeded['sync']}",
        "/queue",
        "/nodes",
    ):
        response = web.client.head(path)
        assert response.status_code == 200, path


def test_static_files_are_served(web: Browser) -> None:
    assert web.get("/static/htmx.min.js").status_code == 200
    assert web.get("/static/quest.css").status_code == 200


def test_status_enum_values_are_all_filterable(web: Browser) -> None:
    page = web.get("/runs").text
    for status in RunStatus:
        assert f'<option value="{status.value}"' in page


def test_a_search_reads_a_bounded_window_and_goes_on_from_its_end(
    web: Browser, quest: Quest, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quest.dashboard import queries

    monkeypatch.setattr(queries, "SEARCH_SCAN", 10)
    made = []
    for i in range(25):
        clock.set(NOW - timedelta(minutes=100 - i))
        made.append(quest.enqueue("cleanup", {"days_old": 7000 + i if i in (2, 20) else i}))
    clock.set(NOW)
    found: list[str] = []
    url = "/runs?q=" + "70"
    windows = 0
    while url:
        page = web.get(url)
        assert page.status_code == 200
        found += run_ids(page.text)
        windows += 1
        more = re.search(r'<a href="(\?[^"]*before=[^"]+)">search older runs', page.text)
        if more:
            assert "Searched the 10 newest runs" in page.text
        url = "/runs" + unescape(more.group(1)) if more else ""
    # 25 runs, 10 a window: three windows; the matches of each come back, newest first.
    assert windows == 3
    assert found == [made[20], made[2]]
