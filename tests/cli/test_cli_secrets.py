"""A sensitive input's value appears in no output of the command line: run, history, serve.

``quest run`` goes through click's CliRunner; a timed child process and ``quest serve`` (text and
JSON logs) are real processes, as a user starts them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from quest import Quest, redact
from quest.cli import cli
from quest.store import Store, make_engine
from quest.testing import FrozenClock, temporary_quest

SECRET = "s3cr3t\\t0k'en-é"
KEYS = '{"api_key": "k-7c91e0", "pin": 48213}'
LEAVES = ["k-7c91e0", "48213"]
QUEST = str(Path(sys.executable).with_name("quest"))

SCRIPTS = {
    "log_token.py": """\
        import logging

        from quest import Input, script

        @script(inputs={"token": Input(str, sensitive=True)})
        def log_token(inputs, ctx):
            ctx.log.info("token %s", inputs.token)
            logging.getLogger("app").warning("module logger %r", inputs.token)
        """,
    "key_error.py": """\
        from quest import Input, script

        @script(inputs={"token": Input(str, sensitive=True)})
        def key_error(inputs, ctx):
            raise KeyError(inputs.token)
        """,
    "bad_config.py": """\
        from quest import Input, script

        @script(inputs={"keys": Input(dict, sensitive=True)})
        def bad_config(inputs, ctx):
            raise RuntimeError(f"bad config {inputs.keys!r}")
        """,
    "echo.py": """\
        from quest import Input, script

        @script(inputs={"token": Input(str, sensitive=True)})
        def echo(inputs, ctx):
            return {"token": inputs.token, "note": f"used {inputs.token!r}"}
        """,
    "timed.py": """\
        from quest import Input, script

        @script(quest={"timeout": "30 seconds"}, inputs={"token": Input(str, sensitive=True)})
        def timed(inputs, ctx):
            ctx.log.info("child token %s", inputs.token)
            return inputs.token
        """,
}


def forms(text: str) -> set[str]:
    return {
        text,
        repr(text)[1:-1],
        ascii(text)[1:-1],
        json.dumps(text)[1:-1],
        json.dumps(text, ensure_ascii=False)[1:-1],
    }


def assert_clean(text: str) -> None:
    for secret in [SECRET, *LEAVES]:
        for form in forms(secret):
            assert form not in text, f"{form!r} leaked in {text!r}"


def write_project(folder: Path) -> Path:
    scripts = folder / "scripts"
    scripts.mkdir(parents=True)
    for name, source in SCRIPTS.items():
        (scripts / name).write_text(textwrap.dedent(source), encoding="utf-8")
    return scripts


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Quest]:
    scripts = write_project(tmp_path)
    clock = FrozenClock("2026-03-01T12:00:00+00:00")
    with temporary_quest(tmp_path, scripts_dir=scripts, clock=clock) as instance:
        yield instance


def invoke(app: Quest, *args: str) -> Result:
    return CliRunner().invoke(cli, list(args), obj=app, env={"COLUMNS": "200"})


def everything(app: Quest) -> str:
    """What ``quest history`` shows, as a table and as JSON."""
    table = invoke(app, "history")
    listing = invoke(app, "history", "--json")
    assert table.exit_code == 0 and listing.exit_code == 0
    return table.output + listing.output


def test_run_logs_are_scrubbed(app: Quest) -> None:
    result = invoke(app, "run", "log-token", "--token", SECRET)
    assert result.exit_code == 0, result.output
    assert "token ***" in result.stderr
    assert "module logger " in result.stderr
    assert_clean(result.output)


def test_a_key_error_with_a_backslash_in_run_and_history(app: Quest) -> None:
    result = invoke(app, "run", "key-error", "--token", SECRET)
    assert result.exit_code == 1
    assert "Traceback" in result.stderr
    assert 'KeyError: "***"' in result.stderr
    assert_clean(result.output)
    shown = everything(app)
    assert 'KeyError: "***"' in shown
    assert_clean(shown)


def test_a_sensitive_dict_in_an_error(app: Quest) -> None:
    result = invoke(app, "run", "bad-config", "--keys", KEYS)
    assert result.exit_code == 1
    assert "RuntimeError: bad config " in result.stderr
    assert_clean(result.output)
    assert_clean(everything(app))


@pytest.mark.parametrize("flags", [[], ["--json"]])
def test_a_returned_secret_in_run_and_history(app: Quest, flags: list[str]) -> None:
    result = invoke(app, "run", "echo", "--token", SECRET, *flags)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert (printed["result"] if flags else printed) == {"token": "***", "note": 'used "***"'}
    assert_clean(result.output)
    [run] = json.loads(invoke(app, "history", "--json").stdout)
    assert run["result"] == {"token": "***", "note": 'used "***"'}
    assert run["inputs"] == {"token": "***"}
    assert_clean(everything(app))


# -- real processes ------------------------------------------------------------------------------


def project_env(root: Path) -> dict[str, str]:
    (root / "pyproject.toml").write_text(
        '[project]\nname = "shop"\nversion = "0"\n\n[tool.quest]\nscripts_dir = "scripts"\n'
        "models = false\n",
        encoding="utf-8",
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("QUEST_")}
    environ.update(
        {"QUEST_DATABASE_URL": f"sqlite:///{root / 'quest.sqlite3'}", "PYTHONUNBUFFERED": "1"}
    )
    return environ


@pytest.mark.slow
def test_a_log_line_inside_a_timed_child_process(tmp_path: Path) -> None:
    write_project(tmp_path)
    result = subprocess.run(
        [QUEST, "run", "timed", "--token", SECRET],
        cwd=tmp_path,
        env=project_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "child token ***" in result.stderr
    assert json.loads(result.stdout) == "***"
    assert_clean(result.stdout + result.stderr)


SERVED = """\
    from quest import Input, script

    @script(
        quest={"interval": "1 hour", "run_on_start": True},
        inputs={"token": Input(str, sensitive=True, default=%r)},
    )
    def served(inputs, ctx):
        ctx.log.info("token %%s", inputs.token)
        raise KeyError(inputs.token)
    """


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_serve_logs_are_scrubbed(tmp_path: Path, fmt: str) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "served.py").write_text(
        textwrap.dedent(SERVED % SECRET), encoding="utf-8"
    )
    env = project_env(tmp_path)
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [QUEST, "serve", "--log-format", fmt],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        rows = wait_for_a_finished_run(env["QUEST_DATABASE_URL"], process)
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert rows[0]["error"] == 'KeyError: "***"'
    output = log.read_text()
    assert_clean(output)
    if fmt == "json":
        lines = [json.loads(line) for line in output.splitlines()]
        assert any(line["message"] == "token ***" for line in lines)
    else:
        assert "token ***" in output


def wait_for_a_finished_run(url: str, process: subprocess.Popen[Any]) -> list[dict[str, Any]]:
    """Poll the JobLog of another process until its run has finished (with a deadline)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        store = Store(make_engine(url))
        try:
            rows = [r for r in store.history("served", limit=None) if r["finished_at"]]
        except Exception:
            rows = []  # serve has not created the tables yet
        finally:
            store.dispose()
        if rows:
            return rows
        time.sleep(0.1)
    pytest.fail("serve did not finish its run")


def test_cli_error_messages_are_scrubbed(capsys: pytest.CaptureFixture[str]) -> None:
    import click

    from quest.cli._common import user_errors
    from quest.errors import QuestError, UsageError

    with redact.active([SECRET]):
        with pytest.raises(SystemExit), user_errors():
            raise QuestError(f"could not reach {SECRET}")
        with pytest.raises(click.UsageError) as usage, user_errors():
            raise UsageError(f"bad value {SECRET!r}")
    err = capsys.readouterr().err
    assert "could not reach ***" in err
    assert usage.value.message == 'bad value "***"'


def test_quest_show_hides_the_value_a_quest_block_gives_a_sensitive_input(
    tmp_path: Path,
) -> None:
    from quest import Input, script

    @script(
        inputs={"token": Input(str, sensitive=True), "limit": Input(int, default=5)},
        quest={"interval": "1 hour", "inputs": {"token": "blk-9f2e71", "limit": 3}},
    )
    def nightly(inputs: Any, ctx: Any) -> None:
        return None

    with temporary_quest(tmp_path, scripts=[nightly]) as app:
        for args in (["show", "nightly", "--json"], ["show", "nightly"]):
            result = CliRunner().invoke(cli, args, obj=app)
            assert result.exit_code == 0, result.output
            assert "blk-9f2e71" not in result.output
        data = json.loads(CliRunner().invoke(cli, ["show", "nightly", "--json"], obj=app).output)
    assert data["quest"]["inputs"] == {"token": "***", "limit": 3}
