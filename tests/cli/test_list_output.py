"""``quest list`` prints exactly what it always printed, table and JSON, for a varied project.

The table of a console that prints no styles is built without rich (see quest/cli/_table.py);
these tests pin its text to what rich's table gives, and the listing's content to the expected
rows: schedules of every kind, shared schedules, disabled, paused, environment-bound, an interval
note, last outcomes, wide characters, markup-like and emoji-code names.
"""

# ruff: noqa: E501 (the expected table is wider than a line of code)

from __future__ import annotations

import io
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from quest import Quest
from quest.cli import cli
from quest.cli._table import plain_table
from quest.testing import FrozenClock, temporary_quest


def _script(name: str, quest: str, body: str = "return None", friendly: str = "") -> str:
    friendly_line = f"    friendly_name={friendly!r},\n" if friendly else ""
    return (
        "from quest import script\n\n\n"
        f"@script(\n{friendly_line}    quest={quest},\n)\n"
        f"def {name}(inputs, ctx):\n    {body}\n"
    )


PROJECT = {
    "cleanup.py": _script("cleanup", '{"interval": "1 hour"}', friendly="Cleanup [1/2] :calendar:"),
    "reports/send_digest.py": _script(
        "digest", '{"cron": "0 3 * * *", "timezone": "Europe/Paris"}', friendly="Send digest"
    ),
    "reports/weekly_a.py": _script("weekly_a", '{"cron": "30 8 * * 1"}', friendly="週次レポート"),
    "reports/weekly_b.py": _script("weekly_b", '{"cron": "30 8 * * 1"}'),
    "reports/weekly_c.py": _script(
        "weekly_c", '{"cron": "30  8 * * MON", "timezone": "America/New_York"}'
    ),
    "once.py": _script("once", '{"at": "2026-05-01T03:00:00+02:00"}'),
    "past.py": _script("past", '{"at": "2026-01-01T00:00:00+00:00"}'),
    "disabled.py": _script("disabled", '{"interval": "1 hour", "enabled": False}'),
    "staging_only.py": _script(
        "staging_only", '{"cron": "*/15 * * * *", "environments": ["staging"]}'
    ),
    "paused_job.py": _script("paused_job", '{"interval": "1 hour"}'),
    "millis.py": _script("millis", '{"interval": 300000}'),
    "millis_too.py": _script("millis_too", '{"interval": 300000}'),
    "last_day.py": _script("last_day", '{"cron": "0 0 L * *"}'),
    "on_demand.py": _script("on_demand", "None", friendly="[bold]Loud[/bold] job"),
    "explode.py": _script("explode", "None", body="raise RuntimeError('boom')"),
}

# What the listing printed before it was made faster, for PROJECT at 2026-03-01 12:00 UTC (the
# first line, the title, is checked on its own: it holds the test's folder).
TABLE = """\
┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━┓
┃ Name                ┃ Friendly name    ┃ Schedule                                  ┃ Timezone         ┃ Next run                  ┃ Last outcome ┃
┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━┩
│ cleanup             │ Cleanup [1/2] 📆 │ every 1 hour                              │ UTC              │ 2026-03-01 13:00:00+00:00 │ —            │
│ disabled            │ disabled         │ every 1 hour (disabled)                   │ UTC              │ —                         │ —            │
│ explode             │ explode          │ on demand                                 │ UTC              │ —                         │ failed       │
│ last-day            │ last-day         │ at 12:00 AM, on the last day of the month │ UTC              │ 2026-03-31 00:00:00+00:00 │ —            │
│ millis              │ millis           │ every 3 days 11 hours 20 minutes          │ UTC              │ 2026-03-01 21:20:00+00:00 │ —            │
│ millis-too          │ millis-too       │ every 3 days 11 hours 20 minutes          │ UTC              │ 2026-03-01 21:20:00+00:00 │ —            │
│ on-demand           │ Loud job         │ on demand                                 │ UTC              │ —                         │ succeeded    │
│ once                │ once             │ once at 2026-05-01 01:00:00+00:00         │ UTC              │ 2026-05-01 01:00:00+00:00 │ —            │
│ past                │ past             │ once at 2026-01-01 00:00:00+00:00         │ UTC              │ —                         │ —            │
│ paused-job          │ paused-job       │ every 1 hour (paused)                     │ UTC              │ —                         │ —            │
│ reports-send-digest │ Send digest      │ at 03:00 AM                               │ Europe/Paris     │ 2026-03-02 03:00:00+01:00 │ —            │
│ reports-weekly-a    │ 週次レポート     │ at 08:30 AM, only on Monday               │ UTC              │ 2026-03-02 08:30:00+00:00 │ —            │
│ reports-weekly-b    │ reports-weekly-b │ at 08:30 AM, only on Monday               │ UTC              │ 2026-03-02 08:30:00+00:00 │ —            │
│ reports-weekly-c    │ reports-weekly-c │ at 08:30 AM, only on Monday               │ America/New_York │ 2026-03-02 08:30:00-05:00 │ —            │
│ staging-only        │ staging-only     │ every 15 minutes (only in staging)        │ UTC              │ —                         │ —            │
└─────────────────────┴──────────────────┴───────────────────────────────────────────┴──────────────────┴───────────────────────────┴──────────────┘
! millis: interval 300000 is read as seconds (3 days 11 hours 20 minutes); if you meant milliseconds (5 minutes), write "300000ms" or "5 minutes"
! millis-too: interval 300000 is read as seconds (3 days 11 hours 20 minutes); if you meant milliseconds (5 minutes), write "300000ms" or "5 minutes"
"""

ROWS: list[dict[str, Any]] = [
    {
        "name": "cleanup",
        "friendly_name": "Cleanup [1/2] :calendar:",
        "schedule": "every 1 hour",
        "timezone": "UTC",
        "next_run": "2026-03-01T13:00:00+00:00",
        "last_outcome": None,
        "last_run_at": None,
        "note": None,
    },
    {
        "name": "disabled",
        "friendly_name": "disabled",
        "schedule": "every 1 hour (disabled)",
        "timezone": "UTC",
        "next_run": None,
        "last_outcome": None,
        "last_run_at": None,
        "note": None,
    },
    {
        "name": "explode",
        "friendly_name": "explode",
        "schedule": "on demand",
        "timezone": "UTC",
        "next_run": None,
        "last_outcome": "failed",
        "last_run_at": "2026-03-01T12:00:00+00:00",
        "note": None,
    },
    {
        "name": "last-day",
        "friendly_name": "last-day",
        "schedule": "at 12:00 AM, on the last day of the month",
        "timezone": "UTC",
        "next_run": "2026-03-31T00:00:00+00:00",
        "last_outcome": None,
        "last_run_at": None,
        "note": None,
    },
    {
        "name": "millis",
        "friendly_name": "millis",
        "schedule": "every 3 days 11 hours 20 minutes",
        "timezone": "UTC",
        "next_run": "2026-03-01T21:20:00+00:00",
        "last_outcome": None,
        "last_run_at": None,
        "note": '300000 is read as seconds (3 days 11 hours 20 minutes); if you meant milliseconds (5 minutes), write "300000ms" or "5 minutes"',
    },
    {
        "name": "millis-too",
        "friendly_name": "millis-too",
        "schedule": "every 3 days 11 hours 20 minutes",
        "timezone": "UTC",
        "next_run": "2026-03-01T21:20:00+00:00",
        "last_outcome": None,
        "last_run_at": None,
        "note": '300000 is read as seconds (3 days 11 hours 20 minutes); if you meant milliseconds (5 minutes), write "300000ms" or "5 minutes"',
    },
    {
        "name": "on-demand",
        "friendly_name": "[bold]Loud[/bold] job",
        "schedule": "on demand",
        "timezone": "UTC",
        "next_run": None,
        "last_outcome": "succeeded",
        "last_run_at": "2026-03-01T12:00:00+00:00",
        "note": None,
    },
    {
        "name": "once",
        "friendly_name": "once",
        "schedule": "once at 2026-05-01 01:00:00+00:00",
        "timezone": "UTC",
        "next_run": "2026-05-01T01:00:00+00:00",
        "last_outcome": None,
        "last_run_at": None,
        "note": None,
    },
    {
        "name": "past",
        "friendly_name": "past",
        "schedule": "once at 2026-01-01 00:00:00+00:00",
        "timezone": "UTC",
        "next_run": None,
        "last_outcome": None,
        "last_run_at": None,
        "note": None,
    },
    {
        "name": "paused-job",
        "friendly_name": "paused-job",
        "schedule": "every 1 hour (paused)",
        "timezone": "UTC",
        "next_run": None,
        "last_outcome": None,
        "last_run_at": None,
        "note": None,
    },
    {
        "name": "reports-send-digest",
        "friendly_name": "Send digest",
        "schedule": "at 03:00 AM",
        "timezone": "Europe/Paris",
        "next_run": "2026-03-02T03:00:00+01:00",
        "last_outcome": None,
        "last_run_at": None,
        "note": None,
    },
    {
        "name": "reports-weekly-a",
        "friendly_name": "週次レポート",
        "schedule": "at 08:30 AM, only on Monday",
        "timezone": "UTC",
        "next_run": "2026-03-02T08:30:00+00:00",
        "last_outcome": None,
        "last_run_at": None,
        "note": None,
    },
    {
        "name": "reports-weekly-b",
        "friendly_name": "reports-weekly-b",
        "schedule": "at 08:30 AM, only on Monday",
        "timezone": "UTC",
        "next_run": "2026-03-02T08:30:00+00:00",
        "last_outcome": None,
        "last_run_at": None,
        "note": None,
    },
    {
        "name": "reports-weekly-c",
        "friendly_name": "reports-weekly-c",
        "schedule": "at 08:30 AM, only on Monday",
        "timezone": "America/New_York",
        "next_run": "2026-03-02T08:30:00-05:00",
        "last_outcome": None,
        "last_run_at": None,
        "note": None,
    },
    {
        "name": "staging-only",
        "friendly_name": "staging-only",
        "schedule": "every 15 minutes (only in staging)",
        "timezone": "UTC",
        "next_run": None,
        "last_outcome": None,
        "last_run_at": None,
        "note": None,
    },
]


def _write(folder: Path, files: dict[str, str]) -> Path:
    for relative, source in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Quest]:
    folder = _write(tmp_path / "scripts", PROJECT)
    clock = FrozenClock("2026-03-01T12:00:00+00:00")
    with temporary_quest(tmp_path, scripts_dir=folder, clock=clock, env="production") as app:
        app.store.set_paused("paused-job", True, now=clock.now())
        assert invoke(app, "run", "on-demand").exit_code == 0
        assert invoke(app, "run", "explode").exit_code == 1
        yield app


def invoke(app: Quest, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), obj=app, env=env)


def test_the_table_is_unchanged(project: Quest) -> None:
    result = invoke(project, "list")
    assert result.exit_code == 0, result.output
    title, _, rest = result.stdout.partition("\n")
    assert rest == TABLE
    width = len(rest.partition("\n")[0])
    assert title == f"15 scripts in {project.settings.scripts_dir}".ljust(width)


def test_the_json_is_unchanged(project: Quest) -> None:
    result = invoke(project, "list", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{**row, "running": []} for row in ROWS]


def test_a_narrow_console_gets_rich_s_folded_table_with_the_same_cells(project: Quest) -> None:
    result = invoke(project, "list", env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines if line[:1] in "┏│└") <= 100
    assert sum(1 for line in lines if line.startswith("│ ")) > len(ROWS)  # some cells folded
    for row in ROWS:
        assert row["name"] in result.stdout


def _rich_table(
    title: str, headers: list[str], rows: list[list[str]], width: int
) -> tuple[str, Any]:
    from rich.console import Console
    from rich.table import Table

    out = io.StringIO()
    console = Console(file=out, soft_wrap=False, width=width)
    table = Table(title=title, title_justify="left")
    table.add_column(headers[0], no_wrap=True)
    for header in headers[1:]:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return out.getvalue(), console


_PIECES = st.sampled_from(
    ["a", "job", " ", "  ", ":", "[", "]", "/", "\\", "é", "週", "—", "e\u0301", ":calendar:",
     ":1234:", "[red]", "[/red]", "[green]ok[/green]", "12:30:00", "\t", "\n"]
)  # fmt: skip
_CELLS = st.lists(_PIECES, max_size=5).map("".join)


@settings(max_examples=150, deadline=None)
@given(
    title=_CELLS,
    rows=st.lists(st.lists(_CELLS, min_size=3, max_size=3), max_size=4),
    width=st.sampled_from([30, 80, 240]),
)
def test_the_built_table_is_rich_s_text(title: str, rows: list[list[str]], width: int) -> None:
    headers = ["Name", "Schedule", "Next run"]
    try:
        expected, console = _rich_table(title, headers, rows, width)
    except Exception:  # markup rich rejects: rich must render it, and raises the same
        return
    built = plain_table(console, title, headers, rows)
    if built is not None:  # None: left to rich (too wide, a line break, a tab, ...)
        assert built == expected


def test_a_table_that_fits_is_built_and_one_that_does_not_is_left_to_rich() -> None:
    rows = [["job", "every 1 hour", "2026-03-01 13:00:00+00:00"]]
    _, wide = _rich_table("3 scripts", ["Name", "Schedule", "Next run"], rows, 240)
    _, narrow = _rich_table("3 scripts", ["Name", "Schedule", "Next run"], rows, 40)
    assert plain_table(wide, "3 scripts", ["Name", "Schedule", "Next run"], rows) is not None
    assert plain_table(narrow, "3 scripts", ["Name", "Schedule", "Next run"], rows) is None
    two_lines = [["job", "every\n1 hour", "—"]]
    assert plain_table(wide, "t", ["Name", "Schedule", "Next run"], two_lines) is None
