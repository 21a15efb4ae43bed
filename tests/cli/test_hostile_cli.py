"""Hostile command lines: exit 2, one short message naming the option, nothing recorded."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from quest import Quest
from quest.cli import cli
from quest.testing import FrozenClock, temporary_quest

SCRIPTS = {
    "take.py": """\
        from quest import Input, script

        @script(
            inputs={
                "n": Input(int, required=False),
                "pin": Input(int, required=False, sensitive=True),
                "data": Input(dict, required=False),
                "blob": Input(dict, required=False, sensitive=True),
                "ratio": Input(float, required=False),
                "odd": Input(float, required=False, allow_nan=True),
                "level": Input(["low", "high"], required=False, sensitive=True),
                "since": Input("string", required=False),
            },
        )
        def take(inputs, ctx):
            return {"n": inputs.n, "odd": inputs.odd}
        """,
    "huge.py": """\
        from quest import script

        @script()
        def huge(inputs, ctx):
            return 10**5000
        """,
    "sails.py": """\
        from quest import Input, script

        @script(friendlyName="Sails style", inputs={"count": Input(int, defaultsTo=3)})
        def sails(inputs, ctx):
            return inputs.count
        """,
    "discards.py": """\
        from quest import script

        class Gone(Exception):
            pass

        @script(quest={"interval": "1 hour", "discard_on": [Gone, LookupError]})
        def discards(inputs, ctx):
            pass
        """,
    "interrupts.py": """\
        from quest import script

        @script(
            quest={
                "interval": "1 hour",
                "discard_on": KeyboardInterrupt,
            }
        )
        def interrupts(inputs, ctx):
            pass
        """,
    "nan_default.py": """\
        from quest import Input, script

        @script(inputs={"odd": Input(float, allow_nan=True, default=float("nan"))})
        def nan_default(inputs, ctx):
            return inputs.odd
        """,
    "bad_min.py": """\
        from quest import Input, script

        @script(inputs={"x": Input(float, min="a")})
        def bad_min(inputs, ctx):
            pass
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
    return CliRunner().invoke(cli, list(args), obj=app)


def assert_rejected(app: Quest, result: Result, *expected: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert len(result.output.splitlines()) <= 12, result.output
    assert len(result.output) < 1500, result.output
    for text in expected:
        assert text in result.output, result.output
    assert app.store.count_runs() == 0


DEEP = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
CASES = {
    "5,000 digits": (["--n", "1" * 5000], ["--n", "out of range", "(5000 characters)"]),
    "20,000 digits": (["--n", "9" * 20_000], ["--n", "out of range", "(20000 characters)"]),
    "not an integer": (["--n", "x" * 20_000], ["--n", "is not an integer", "(20000 characters)"]),
    "2**63": (["--n", str(2**63)], ["--n", "-9223372036854775808..9223372036854775807"]),
    "nan float": (["--ratio", "nan"], ["--ratio", "finite", "allow_nan=True"]),
    "inf float": (["--ratio", "1e999"], ["--ratio", "finite"]),
    "long float": (["--ratio", "1" * 20_000], ["--ratio", "(20000 characters)"]),
    "deep JSON": (["--data", DEEP], ["--data", "nested more than 64 levels deep"]),
    "JSON with NaN": (["--data", '{"a": NaN}'], ["--data", "NaN or Infinity"]),
    "JSON with a huge int": (["--data", '{"a": ' + "7" * 5000 + "}"], ["--data", "out of range"]),
    "long bad JSON": (["--data", "{" + "x" * 20_000], ["--data", "not valid JSON"]),
}


@pytest.mark.parametrize("command", ["run", "enqueue"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_value_is_a_short_usage_error(app: Quest, command: str, case: str) -> None:
    args, expected = CASES[case]
    result = invoke(app, command, "take", *args)
    assert_rejected(app, result, *expected)
    assert "1111111111111111111111111111111111111111111111111111111111111111" not in result.output
    assert "9" * 70 not in result.output and "x" * 70 not in result.output


@pytest.mark.parametrize("command", ["run", "enqueue"])
@pytest.mark.parametrize(
    ("args", "secret"),
    [
        (["--pin", "x123"], "x123"),
        (["--pin", "4" * 40], "4" * 40),
        (["--blob", '{"token": "s3cr3t-value", bad'], "s3cr3t-value"),
        (["--blob", '{"token": "s3cr3t-value", "n": NaN}'], "s3cr3t-value"),
        (["--level", "s3cr3t-level"], "s3cr3t-level"),
    ],
)
def test_an_invalid_sensitive_value_is_never_echoed(
    app: Quest, command: str, args: list[str], secret: str
) -> None:
    result = invoke(app, command, "take", *args)
    assert_rejected(app, result, args[0])
    assert secret not in result.output
    assert "not shown" in result.output or "the value given" in result.output


def test_a_float_that_allows_nan_runs_and_is_recorded(app: Quest) -> None:
    result = invoke(app, "run", "take", "--odd", "nan", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["result"] == {"n": None, "odd": "NaN"}
    runs = json.loads(invoke(app, "history", "--json").stdout)
    assert runs[0]["inputs"]["odd"] == "NaN"


def test_a_result_too_large_for_json_still_ends_the_run(app: Quest) -> None:
    result = invoke(app, "run", "huge")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "an integer of about 5001 digits" in result.stdout
    runs = json.loads(invoke(app, "history", "huge", "--json").stdout)
    assert [run["status"] for run in runs] == ["succeeded"]


def test_sails_spellings_run(app: Quest) -> None:
    result = invoke(app, "run", "sails")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "3"
    assert "Sails style" in invoke(app, "list").output


def test_show_serializes_discard_on(app: Quest) -> None:
    result = invoke(app, "show", "discards", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["quest"]["discard_on"] == ["quest_scripts.discards.Gone", "builtins.LookupError"]
    text = invoke(app, "show", "discards")
    assert text.exit_code == 0, text.output
    assert "builtins.LookupError" in text.output


def test_a_bad_declaration_is_reported_with_file_line_and_key(app: Quest) -> None:
    result = invoke(app, "run", "interrupts")
    folder = app.settings.scripts_dir
    assert_rejected(
        app,
        result,
        f"{folder / 'interrupts.py'}: line 6: quest.discard_on: KeyboardInterrupt is not a "
        "subclass of Exception",
    )
    result = invoke(app, "run", "bad-min")
    assert_rejected(
        app, result, f"{folder / 'bad_min.py'}: line 3: inputs.x.min: min must be a finite number"
    )
    listed = invoke(app, "list")
    assert listed.exit_code == 0, listed.output
    assert "Traceback" not in listed.output
    assert "interrupts.py: line 6: quest.discard_on" in listed.output


LONG = "x" * 20_000


@pytest.mark.parametrize(
    "args",
    [
        ["show", LONG],
        ["run", LONG],
        ["enqueue", LONG],
        ["pause", LONG],
        ["show", "take", "--after", LONG],
        ["show", "take", "--next", LONG],
        ["history", "--status", LONG],
        ["history", "--limit", LONG],
        ["run", "take", "--level", LONG],
    ],
    ids=lambda args: " ".join(a[:10] for a in args),
)
def test_a_long_value_anywhere_is_shown_cut(app: Quest, args: list[str]) -> None:
    result = invoke(app, *args)
    assert_rejected(app, result)
    assert "x" * 201 not in result.output


def test_history_of_a_long_name_is_one_line(app: Quest) -> None:
    result = invoke(app, "history", LONG)
    assert result.exit_code == 0, result.output
    assert "(20001 characters)" in result.output


def _no_constants(name: str) -> None:
    raise AssertionError(f"{name} is not JSON")


def test_show_and_run_of_a_nan_default_print_strict_json(app: Quest) -> None:
    shown = invoke(app, "show", "nan-default", "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout, parse_constant=_no_constants)
    assert data["inputs"]["odd"]["default"] == "NaN"
    ran = invoke(app, "run", "nan-default", "--json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout, parse_constant=_no_constants)["result"] == "NaN"
