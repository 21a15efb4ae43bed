"""The command line through click's CliRunner, on a throwaway project from quest.testing."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from quest import Quest, RunStatus
from quest.cli import cli
from quest.testing import FrozenClock, temporary_quest

WIDE = {"COLUMNS": "200"}

SCRIPTS = {
    "cleanup_sessions.py": """\
        from quest import Input, script

        @script(
            friendly_name="Cleanup sessions",
            description="Remove expired sessions and their associated data.",
            quest={"interval": "1 hour", "without_overlapping": True},
            inputs={
                "days_old": Input(
                    int,
                    default=30,
                    min=0,
                    description="Remove sessions inactive for this many days.",
                ),
            },
        )
        def cleanup_sessions(inputs, ctx):
            ctx.log.info("cleaning sessions older than %d days", inputs.days_old)
            return {"days_old": inputs.days_old}
        """,
    "reports/send_digest.py": """\
        from datetime import date, datetime

        from quest import Input, script

        @script(
            friendly_name="Send digest",
            quest={"cron": "0 3 * * *", "timezone": "Europe/Paris", "inputs": {"count": 10}},
            inputs={
                "count": Input(int, description="How many items.", min=1, max=100),
                "dry_run": Input(bool, default=False, description="Only pretend."),
                "ratio": Input(float, default=0.5, min=0, max=1),
                "label": Input(str, default="daily", pattern="^[a-z]+$"),
                "day": Input(date, required=False, description="The day to send."),
                "since": Input(datetime, required=False),
                "level": Input(["low", "high"], default="low", description="Priority."),
                "payload": Input(dict, default={}, description="Extra data."),
                "tags": Input(list, required=False),
                "api_key": Input(str, default="k-default", sensitive=True, description="Key."),
            },
        )
        def send_digest(inputs, ctx):
            return {
                "count": inputs.count,
                "dry_run": inputs.dry_run,
                "ratio": inputs.ratio,
                "label": inputs.label,
                "day": inputs.day.isoformat() if inputs.day else None,
                "since": inputs.since.isoformat() if inputs.since else None,
                "level": inputs.level,
                "payload": inputs.payload,
                "tags": inputs.tags,
            }
        """,
    "explode.py": """\
        from quest import Input, script

        @script(friendly_name="Explode", inputs={"secret": Input(str, default="", sensitive=True)})
        def explode(inputs, ctx):
            raise RuntimeError("the upstream service said no")
        """,
    "quits.py": """\
        import sys
        from quest import script

        @script()
        def quits(inputs, ctx):
            sys.exit(4)
        """,
}

BROKEN = {
    "syntax_error.py": ("def oops(:\n", "syntax error at line 1"),
    "fortnight.py": (
        """\
        from quest import script

        @script(quest={"interval": "every fortnight-ish"})
        def main(inputs, ctx):
            pass
        """,
        "quest.interval: 'every fortnight-ish' is not a time span",
    ),
    "bad_cron.py": (
        """\
        from quest import script

        @script(quest={"cron": "61 * * * *"})
        def main(inputs, ctx):
            pass
        """,
        "quest.cron: ",
    ),
    "mars.py": (
        """\
        from quest import script

        @script(quest={"interval": "1 hour", "timezone": "Mars/Olympus"})
        def main(inputs, ctx):
            pass
        """,
        'quest.timezone: unknown timezone "Mars/Olympus"',
    ),
    "two_schedules.py": (
        """\
        from quest import script

        @script(quest={"interval": "1 hour", "cron": "0 * * * *"})
        def main(inputs, ctx):
            pass
        """,
        "quest: both 'interval' and 'cron' are set",
    ),
}


def write_scripts(folder: Path, files: dict[str, str]) -> Path:
    for relative, source in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    return folder


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock("2026-03-01T12:00:00+00:00")


@pytest.fixture
def app(tmp_path: Path, clock: FrozenClock) -> Iterator[Quest]:
    folder = write_scripts(tmp_path / "scripts", SCRIPTS)
    with temporary_quest(tmp_path, scripts_dir=folder, clock=clock) as instance:
        yield instance


@pytest.fixture
def broken_app(tmp_path: Path, clock: FrozenClock) -> Iterator[Quest]:
    files = dict(SCRIPTS)
    files.update({name: source for name, (source, _) in BROKEN.items()})
    folder = write_scripts(tmp_path / "scripts", files)
    with temporary_quest(tmp_path, scripts_dir=folder, clock=clock) as instance:
        yield instance


def invoke(app: Quest, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), obj=app, env=env)


def assert_usage_error(result: Result, *expected: str) -> None:
    """Exit 2, a short message naming what is wrong, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.output.splitlines()) <= 20, result.output
    for text in expected:
        assert text in result.output, result.output


def history(app: Quest, *args: str) -> list[dict[str, Any]]:
    result = invoke(app, "history", *args, "--json")
    assert result.exit_code == 0, result.output
    runs: list[dict[str, Any]] = json.loads(result.stdout)
    return runs


# -- quest run -----------------------------------------------------------------------------------


def test_run_succeeds_and_records_one_run(app: Quest) -> None:
    result = invoke(app, "run", "cleanup-sessions", "--days-old", "7")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"days_old": 7}
    assert "cleanup-sessions succeeded" in result.stderr
    runs = history(app, "cleanup-sessions")
    assert len(runs) == 1
    assert runs[0]["status"] == "succeeded"
    assert runs[0]["inputs"] == {"days_old": 7}
    assert runs[0]["trigger"] == "manual"
    assert runs[0]["result"] == {"days_old": 7}


def test_run_uses_defaults(app: Quest) -> None:
    result = invoke(app, "run", "cleanup-sessions")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"days_old": 30}


def test_run_json_prints_the_outcome(app: Quest) -> None:
    result = invoke(app, "run", "cleanup-sessions", "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["status"] == "succeeded"
    assert outcome["result"] == {"days_old": 30}
    assert outcome["run_id"] == history(app)[0]["run_id"]


def test_run_options_of_every_type(app: Quest) -> None:
    result = invoke(
        app,
        "run",
        "reports-send-digest",
        "--count",
        "3",
        "--dry-run",
        "--ratio",
        "0.25",
        "--label",
        "weekly",
        "--day",
        "2026-03-02",
        "--since",
        "2026-03-01T08:00:00",
        "--level",
        "high",
        "--payload",
        '{"to": ["a@example.com"], "n": 1}',
        "--tags",
        '["x", 2]',
        "--api-key",
        "s3cr3t",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "count": 3,
        "dry_run": True,
        "ratio": 0.25,
        "label": "weekly",
        "day": "2026-03-02",
        "since": "2026-03-01T08:00:00+01:00",
        "level": "high",
        "payload": {"to": ["a@example.com"], "n": 1},
        "tags": ["x", 2],
    }
    recorded = history(app)[0]["inputs"]
    assert recorded["api_key"] == "***"
    assert recorded["payload"] == {"to": ["a@example.com"], "n": 1}
    assert "s3cr3t" not in json.dumps(history(app))


@pytest.mark.parametrize(
    ("flags", "expected"), [([], False), (["--dry-run"], True), (["--no-dry-run"], False)]
)
def test_bool_inputs_are_flag_pairs(app: Quest, flags: list[str], expected: bool) -> None:
    result = invoke(app, "run", "reports-send-digest", "--count", "1", *flags)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["dry_run"] is expected


def test_a_failing_script_exits_1_with_message_and_traceback(app: Quest) -> None:
    result = invoke(app, "run", "explode", "--secret", "pa55word")

    assert result.exit_code == 1, result.output
    assert "Traceback" in result.stderr
    assert "RuntimeError: the upstream service said no" in result.stderr
    assert "explode failed" in result.stderr
    assert "pa55word" not in result.output
    runs = history(app, "explode")
    assert [r["status"] for r in runs] == ["failed"]
    assert runs[0]["error"] == "RuntimeError: the upstream service said no"
    assert runs[0]["inputs"] == {"secret": "***"}


def test_a_script_calling_sys_exit_is_a_failed_run_and_exits_1(app: Quest) -> None:
    result = invoke(app, "run", "quits")

    assert result.exit_code == 1, result.output
    assert "quits failed" in result.stderr
    assert "SystemExit: 4" in result.stderr
    [run] = history(app, "quits")
    assert run["status"] == "failed" and run["error"] == "SystemExit: 4"


def test_a_run_interrupted_says_what_was_recorded_and_exits_130(
    tmp_path: Path, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script raising ``KeyboardInterrupt`` (what Ctrl-C raises): the run is recorded
    ``interrupted``, and ``quest run`` says so with its id instead of click's ``Aborted!``. Ctrl-C
    before the run was recorded says that nothing ran."""
    folder = write_scripts(
        tmp_path / "scripts",
        {
            "halts.py": """\
                from quest import script

                @script()
                def halts(inputs, ctx):
                    raise KeyboardInterrupt
                """
        },
    )
    with temporary_quest(tmp_path, scripts_dir=folder, clock=clock) as app:
        result = invoke(app, "run", "halts")

        assert result.exit_code == 130, result.output
        assert "Aborted" not in result.output
        [run] = history(app, "halts")
        assert run["status"] == "interrupted"
        assert f"halts: interrupted; run {run['run_id']} is recorded interrupted" in result.stderr

        def stopped(*args: Any, **kwargs: Any) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(app.runner, "_admit", stopped)
        result = invoke(app, "run", "halts")
        assert result.exit_code == 130, result.output
        assert "halts: interrupted before run " in result.stderr
        assert "was recorded; nothing ran" in result.stderr
        assert len(history(app, "halts")) == 1


# -- bad input: exit 2, one clear screen, nothing recorded --------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "nope"], ["No script named 'nope'", "cleanup-sessions"]),
        (["run", "cleanup-sessions", "--days-old", "abc"], ["--days-old", "'abc'"]),
        (["run", "cleanup-sessions", "--days-old"], ["--days-old", "requires an argument"]),
        (["run", "cleanup-sessions", "--nope", "1"], ["No such option", "--nope"]),
        (["run", "cleanup-sessions", "--days-old", "-1"], ["--days-old", "greater than or equal"]),
        (["run", "reports-send-digest"], ["Missing option '--count'"]),
        (["run", "reports-send-digest", "--count", "0"], ["--count"]),
        (["run", "reports-send-digest", "--count", "101"], ["--count"]),
        (["run", "reports-send-digest", "--count", "1", "--ratio", "1.5"], ["--ratio"]),
        (["run", "reports-send-digest", "--count", "1", "--label", "UP"], ["--label", "pattern"]),
        (["run", "reports-send-digest", "--count", "1", "--level", "mid"], ["--level", "low"]),
        (["run", "reports-send-digest", "--count", "1", "--day", "tomorrow"], ["--day"]),
        (["run", "reports-send-digest", "--count", "1", "--since", "noon"], ["--since"]),
        (
            ["run", "reports-send-digest", "--count", "1", "--payload", "{bad"],
            ["--payload", "not valid JSON"],
        ),
        (
            ["run", "reports-send-digest", "--count", "1", "--payload", "[1, 2]"],
            ["--payload", "JSON object"],
        ),
        (
            ["run", "reports-send-digest", "--count", "1", "--tags", '{"a": 1}'],
            ["--tags", "JSON list"],
        ),
        (["run", "reports-send-digest", "--count", "1", "--dry-run=yes"], ["--dry-run"]),
        (["history", "--status", "happy"], ["--status"]),
        (["history", "--limit", "0"], ["--limit"]),
        (["history", "--since", "last week"], ["--since"]),
    ],
)
def test_bad_input_is_a_usage_error_and_records_nothing(
    app: Quest, args: list[str], expected: list[str]
) -> None:
    result = invoke(app, *args)
    assert_usage_error(result, *expected)
    assert app.store.count_runs() == 0


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_script_is_a_usage_error_with_its_path(broken_app: Quest, name: str) -> None:
    reason = BROKEN[name][1]
    script = name.removesuffix(".py").replace("_", "-")
    path = broken_app.settings.scripts_dir / name

    result = invoke(broken_app, "run", script)

    assert_usage_error(result, f"Script {script!r} could not be loaded", str(path), reason)
    assert broken_app.store.count_runs() == 0


def test_the_other_scripts_still_run_next_to_broken_ones(broken_app: Quest) -> None:
    result = invoke(broken_app, "run", "cleanup-sessions", "--days-old", "1")
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in history(broken_app)] == ["succeeded"]


# -- --help --------------------------------------------------------------------------------------


def test_run_help_lists_options_with_type_default_and_description(app: Quest) -> None:
    result = invoke(app, "run", "cleanup-sessions", "--help", env=WIDE)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Cleanup sessions" in text
    assert "Remove expired sessions and their associated data." in text
    assert "--days-old INTEGER" in text
    assert "Remove sessions inactive for this many days." in text
    assert "default: 30" in text
    assert "min 0" in text


def test_help_of_every_kind_of_input(app: Quest) -> None:
    result = invoke(app, "run", "reports-send-digest", "--help", env=WIDE)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "--count INTEGER How many items. [integer; required; min 1; max 100]" in text
    assert "--dry-run / --no-dry-run Only pretend. [boolean; default: false]" in text
    assert "--ratio FLOAT" in text and "default: 0.5" in text
    assert "pattern ^[a-z]+$" in text
    assert "--day DATE The day to send. [date]" in text
    assert "--since DATETIME" in text
    assert "one of low, high" in text and 'default: "low"' in text
    assert "--payload JSON OBJECT Extra data. [JSON object; default: {}]" in text
    assert "--tags JSON LIST" in text
    assert "--api-key TEXT Key. [text; default: ***; sensitive]" in text
    assert "k-default" not in text


def test_run_help_lists_the_scripts(app: Quest) -> None:
    result = invoke(app, "run", "--help", env=WIDE)
    assert result.exit_code == 0, result.output
    assert "cleanup-sessions" in result.output
    assert "Cleanup sessions" in result.output
    assert "reports-send-digest" in result.output


# -- quest list ----------------------------------------------------------------------------------


def test_list_shows_name_friendly_name_schedule_and_timezone(app: Quest) -> None:
    result = invoke(app, "list", env=WIDE)
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.stdout.splitlines() if "│" in line}
    assert "Cleanup sessions" in lines["cleanup-sessions"]
    assert "every 1 hour" in lines["cleanup-sessions"]
    assert "UTC" in lines["cleanup-sessions"]
    assert "Send digest" in lines["reports-send-digest"]
    assert "at 03:00 AM" in lines["reports-send-digest"]
    assert "Europe/Paris" in lines["reports-send-digest"]
    assert "on demand" in lines["explode"]


def test_list_json(app: Quest) -> None:
    result = invoke(app, "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {"cleanup-sessions", "explode", "quits", "reports-send-digest"}
    digest = rows["reports-send-digest"]
    assert digest["friendly_name"] == "Send digest"
    assert digest["timezone"] == "Europe/Paris"
    assert digest["next_run"] == "2026-03-02T03:00:00+01:00"
    assert rows["cleanup-sessions"]["schedule"] == "every 1 hour"
    assert rows["explode"]["next_run"] is None


def test_list_shows_the_last_outcome(app: Quest) -> None:
    invoke(app, "run", "explode")
    rows = {row["name"]: row for row in json.loads(invoke(app, "list", "--json").stdout)}
    assert rows["explode"]["last_outcome"] == "failed"
    assert rows["cleanup-sessions"]["last_outcome"] is None


def test_list_reports_broken_files_with_their_paths(broken_app: Quest) -> None:
    result = invoke(broken_app, "list", env=WIDE)
    assert result.exit_code == 0, result.output
    assert "cleanup-sessions" in result.stdout
    for name, (_, reason) in BROKEN.items():
        path = broken_app.settings.scripts_dir / name
        assert f"{path}: " in result.stderr
        assert reason in result.stderr
    assert "Traceback" not in result.output


# -- quest history -------------------------------------------------------------------------------


def test_history_json_fields(app: Quest, clock: FrozenClock) -> None:
    invoke(app, "run", "cleanup-sessions", "--days-old", "7")
    [run] = history(app)
    for key in (
        "name",
        "run_id",
        "status",
        "trigger",
        "inputs",
        "started_at",
        "finished_at",
        "duration_ms",
        "attempt",
        "scheduled_for",
        "result",
        "error",
    ):
        assert key in run
    assert run["name"] == "cleanup-sessions"
    assert run["started_at"] == "2026-03-01T12:00:00+00:00"
    assert run["finished_at"] == "2026-03-01T12:00:00+00:00"
    assert run["duration_ms"] == 0
    assert run["attempt"] == 1
    assert run["scheduled_for"] is None
    assert run["error"] is None


def test_history_filters_and_limits(app: Quest, clock: FrozenClock) -> None:
    for args in (
        ["cleanup-sessions", "--days-old", "1"],
        ["explode"],
        ["cleanup-sessions", "--days-old", "2"],
        ["explode"],
        ["cleanup-sessions", "--days-old", "3"],
    ):
        invoke(app, "run", *args)
        clock.advance(60)

    everything = history(app)
    assert len(everything) == 5
    assert [r["name"] for r in everything] == [
        "cleanup-sessions",
        "explode",
        "cleanup-sessions",
        "explode",
        "cleanup-sessions",
    ]
    assert [r["inputs"]["days_old"] for r in history(app, "cleanup-sessions")] == [3, 2, 1]
    assert {r["status"] for r in history(app, "--status", "failed")} == {"failed"}
    assert len(history(app, "--status", "failed")) == 2
    assert len(history(app, "--status", "failed", "--status", "succeeded")) == 5
    assert [r["inputs"]["days_old"] for r in history(app, "cleanup-sessions", "--limit", "2")] == [
        3,
        2,
    ]
    assert len(history(app, "--limit", "1")) == 1
    assert history(app, "nope") == []
    since = history(app, "--since", "2026-03-01T12:03:00+00:00")
    assert len(since) == 2


def test_history_table(app: Quest) -> None:
    invoke(app, "run", "cleanup-sessions")
    invoke(app, "run", "explode")
    result = invoke(app, "history", env=WIDE)
    assert result.exit_code == 0, result.output
    assert "cleanup-sessions" in result.stdout
    assert "succeeded" in result.stdout
    assert "failed" in result.stdout
    assert "RuntimeError: the upstream service said no" in result.stdout


def test_history_when_nothing_ran(app: Quest) -> None:
    result = invoke(app, "history", "cleanup-sessions")
    assert result.exit_code == 0
    assert "No runs recorded for cleanup-sessions." in result.output
    assert history(app) == []


def test_rejected_invocations_leave_history_empty(app: Quest) -> None:
    invoke(app, "run", "cleanup-sessions", "--days-old", "abc")
    invoke(app, "run", "reports-send-digest")
    invoke(app, "run", "nope")
    assert history(app) == []
    assert app.store.count_runs(status=RunStatus.running) == 0
