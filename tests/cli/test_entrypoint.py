"""End to end: the installed ``quest`` command in a subprocess, as a user runs it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def quest_command() -> str:
    beside = Path(sys.executable).parent / "quest"
    if beside.exists():
        return str(beside)
    found = shutil.which("quest")
    if found is None:
        pytest.fail("the quest console script is not installed")
    return found


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEST_")}
    env["QUEST_DATABASE_URL"] = f"sqlite:///{tmp_path / 'x.db'}"
    env.pop("COLUMNS", None)
    env.update(extra)
    return env


def quest(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [quest_command(), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_checked_steps(tmp_path: Path) -> None:
    env = environment(tmp_path, COLUMNS="200")

    ran = quest(env, "run", "cleanup-sessions", "--days-old", "7")
    assert ran.returncode == 0, ran.stderr

    shown = quest(env, "history", "cleanup-sessions", "--json")
    assert shown.returncode == 0, shown.stderr
    runs = json.loads(shown.stdout)
    assert len(runs) == 1
    assert runs[0]["name"] == "cleanup-sessions"
    assert runs[0]["status"] == "succeeded"
    assert runs[0]["inputs"] == {"days_old": 7}
    assert runs[0]["trigger"] == "manual"

    rejected = quest(env, "run", "cleanup-sessions", "--days-old", "abc")
    assert rejected.returncode == 2
    assert "--days-old" in rejected.stderr
    assert "Traceback" not in rejected.stdout + rejected.stderr
    assert len(json.loads(quest(env, "history", "--json").stdout)) == 1

    listed = quest(env, "list")
    assert listed.returncode == 0, listed.stderr
    [line] = [line for line in listed.stdout.splitlines() if "cleanup-sessions" in line]
    assert "every 1 hour" in line
    assert "UTC" in line


def test_list_at_the_default_width_of_a_pipe(tmp_path: Path) -> None:
    listed = quest(environment(tmp_path), "list")
    assert listed.returncode == 0, listed.stderr
    [line] = [line for line in listed.stdout.splitlines() if "cleanup-sessions" in line]
    assert "every 1 hour" in line


def test_a_broken_script_next_to_a_good_one(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "good.py").write_text(
        textwrap.dedent(
            """\
            from quest import Input, script

            @script(
                friendly_name="Good one",
                quest={"interval": "5 minutes"},
                inputs={"name": Input(str, default="world")},
            )
            def good(inputs, ctx):
                return {"hello": inputs.name}
            """
        ),
        encoding="utf-8",
    )
    broken = scripts / "broken.py"
    broken.write_text("from quest import script\n\n@script(\ndef oops(inputs, ctx):\n", "utf-8")
    env = environment(tmp_path, QUEST_SCRIPTS_DIR=str(scripts), COLUMNS="200")

    listed = quest(env, "list")
    assert listed.returncode == 0, listed.stderr
    assert str(broken) in listed.stderr
    assert "syntax error" in listed.stderr
    assert "Traceback" not in listed.stderr
    [line] = [line for line in listed.stdout.splitlines() if " good " in line]
    assert "Good one" in line and "every 5 minutes" in line

    ran = quest(env, "run", "good", "--name", "quest")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == {"hello": "quest"}

    refused = quest(env, "run", "broken")
    assert refused.returncode == 2
    assert str(broken) in refused.stderr
    assert "Traceback" not in refused.stderr

    runs = json.loads(quest(env, "history", "--json").stdout)
    assert [(r["name"], r["status"]) for r in runs] == [("good", "succeeded")]


def test_a_failing_script_exits_1(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "fails.py").write_text(
        "from quest import script\n\n"
        "@script\ndef fails(inputs, ctx):\n    raise ValueError('no')\n",
        encoding="utf-8",
    )
    env = environment(tmp_path, QUEST_SCRIPTS_DIR=str(scripts))
    ran = quest(env, "run", "fails")
    assert ran.returncode == 1
    assert "Traceback" in ran.stderr
    assert "ValueError: no" in ran.stderr
    [run] = json.loads(quest(env, "history", "--json").stdout)
    assert run["status"] == "failed"
    assert run["error"] == "ValueError: no"
