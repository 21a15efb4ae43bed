"""Schedules brought from other tools, through ``quest list`` and ``quest show``; out-of-range
instants and spans on the command line."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import datetime
from itertools import pairwise
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from quest import Quest
from quest.cli import cli
from quest.testing import FrozenClock, temporary_quest

SCRIPTS = {
    "berlin_first_monday.py": """\
        from quest import script

        @script(quest={"cron": "0 9 * * MON#1", "timezone": "Europe/Berlin"})
        def main(inputs, ctx):
            pass
        """,
    "month_end.py": """\
        from quest import script

        @script(quest={"cron": "0 0 L * *"})
        def main(inputs, ctx):
            pass
        """,
    "two_days.py": """\
        from quest import script

        @script(quest={"interval": "2 days and 3 hours"})
        def main(inputs, ctx):
            pass
        """,
    "sails_millis.py": """\
        from quest import script

        @script(quest={"interval": 60000})
        def main(inputs, ctx):
            pass
        """,
    "last_friday.py": """\
        from quest import script

        @script(quest={"cron": "30 17 * * FRI#L"})
        def main(inputs, ctx):
            pass
        """,
    "far_future.py": """\
        from quest import script

        @script(quest={"at": "9999-12-29T00:00:00+00:00", "timezone": "Pacific/Kiritimati"})
        def main(inputs, ctx):
            pass
        """,
    "longest.py": """\
        from quest import script

        @script(quest={"interval": "100 years", "timezone": "Pacific/Kiritimati"})
        def main(inputs, ctx):
            pass
        """,
    "on_demand.py": """\
        from quest import script

        @script
        def main(inputs, ctx):
            return 1
        """,
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Quest]:
    folder = tmp_path / "scripts"
    folder.mkdir()
    for name, source in SCRIPTS.items():
        (folder / name).write_text(textwrap.dedent(source), encoding="utf-8")
    clock = FrozenClock("2026-03-01T12:00:00+00:00")
    with temporary_quest(tmp_path, scripts_dir=folder, clock=clock) as instance:
        yield instance


def invoke(app: Quest, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=app, env={"COLUMNS": "200"})


def show_json(app: Quest, name: str, *args: str) -> dict[str, object]:
    result = invoke(app, "show", name, "--json", *args)
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_first_monday_in_berlin_across_the_dst_change(app: Quest) -> None:
    data = show_json(app, "berlin-first-monday", "--after", "2026-03-01T00:00", "--next", "2")
    assert data["next_fire_times"] == ["2026-03-02T09:00:00+01:00", "2026-04-06T09:00:00+02:00"]
    assert data["schedule"] == "at 09:00 AM, on the first Monday of the month"


def test_last_day_of_a_leap_february(app: Quest) -> None:
    data = show_json(app, "month-end", "--after", "2028-02-01T00:00:00+00:00", "--next", "2")
    assert data["next_fire_times"] == ["2028-02-29T00:00:00+00:00", "2028-03-31T00:00:00+00:00"]
    assert data["schedule"] == "at 12:00 AM, on the last day of the month"


def test_an_interval_in_words_fires_51_hours_apart(app: Quest) -> None:
    data = show_json(app, "two-days", "--next", "4")
    times = [datetime.fromisoformat(str(t)) for t in data["next_fire_times"]]  # type: ignore[attr-defined]
    assert len(times) == 4
    assert {(b - a).total_seconds() for a, b in pairwise(times)} == {51 * 3600}
    assert data["schedule"] == "every 2 days 3 hours"
    assert data["note"] is None


def test_last_friday_in_words(app: Quest) -> None:
    result = invoke(app, "show", "last-friday", "--after", "2026-03-01T00:00:00+00:00")
    assert result.exit_code == 0, result.output
    assert "at 05:30 PM, on the last Friday of the month" in result.output
    assert "2026-03-27T17:30:00+00:00" in result.output


def test_a_bare_number_that_looks_like_milliseconds_is_noted(app: Quest) -> None:
    data = show_json(app, "sails-millis")
    note = str(data["note"])
    assert "60000 is read as seconds (16 hours 40 minutes)" in note
    assert '"60000ms"' in note
    text = invoke(app, "show", "sails-millis").output
    assert "note:      interval 60000 is read as seconds" in text
    listed = json.loads(invoke(app, "list", "--json").stdout)
    notes = {row["name"]: row["note"] for row in listed}
    assert notes["sails-millis"] == note
    assert notes["two-days"] is None
    table = invoke(app, "list").output
    assert "! sails-millis: interval 60000 is read as seconds" in table


def test_list_and_show_never_crash_near_the_end_of_the_calendar(app: Quest) -> None:
    result = invoke(app, "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["far-future"]["next_run"] == "9999-12-29T14:00:00+14:00"
    assert rows["longest"]["next_run"] is not None
    assert invoke(app, "list").exit_code == 0
    for name in ("far-future", "longest", "month-end", "two-days", "last-friday"):
        late = show_json(app, name, "--after", "9999-12-30T00:00:00+00:00", "--next", "5")
        times = [datetime.fromisoformat(str(t)) for t in late["next_fire_times"]]  # type: ignore[attr-defined]
        assert all(t <= datetime.fromisoformat("9999-12-30T23:59:59+00:00") for t in times)
        assert len(times) <= 1
    text = invoke(app, "show", "month-end", "--after", "9999-12-30T00:00:00+00:00").output
    assert "next fire times: none" in text


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59"]
)
def test_out_of_range_after_is_a_usage_error(app: Quest, value: str) -> None:
    result = invoke(app, "show", "month-end", "--after", value)
    assert result.exit_code == 2, result.output
    assert "'--after'" in result.output
    assert "out of range" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "value", ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59"]
)
def test_out_of_range_since_is_a_usage_error(app: Quest, value: str) -> None:
    result = invoke(app, "history", "--since", value)
    assert result.exit_code == 2, result.output
    assert "'--since'" in result.output
    assert "between 0001-01-02 and 9999-12-30" in result.output


@pytest.mark.parametrize("value", ["8e13", "1e300", "200 years", "99999999999999999999 days"])
def test_an_out_of_range_delay_is_a_usage_error_and_queues_nothing(app: Quest, value: str) -> None:
    result = invoke(app, "enqueue", "on-demand", "--delay", value)
    assert result.exit_code == 2, result.output
    assert "'--delay'" in result.output
    assert "too long" in result.output
    assert "100 years" in result.output
    assert app.store.history(None, statuses=[], since=None, limit=10) == []


def test_a_delay_in_words_is_accepted(app: Quest) -> None:
    result = invoke(app, "enqueue", "on-demand", "--delay", "three hours and 30 minutes")
    assert result.exit_code == 0, result.output
    (row,) = app.store.history(None, statuses=[], since=None, limit=10)
    assert row["run_after"] - row["created_at"] == (
        datetime.fromisoformat("2026-01-01T03:30") - datetime.fromisoformat("2026-01-01T00:00")
    )
