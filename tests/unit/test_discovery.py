"""Discovery of the scripts folder: names, ignore rules, duplicates and broken files."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from quest import ScriptNotFound
from quest.discovery import discover, is_script_file, script_name

GOOD = """\
from quest import Input, script


@script(friendly_name={friendly!r}, inputs={{"n": Input(int, default=1)}})
def main(inputs, ctx):
    return inputs.n
"""


def write(folder: Path, relative: str, source: str | None = None) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    text = GOOD.format(friendly=relative) if source is None else textwrap.dedent(source)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("relative", "name"),
    [
        ("cleanup_sessions.py", "cleanup-sessions"),
        ("cleanup-sessions.py", "cleanup-sessions"),
        ("cleanupSessions.py", "cleanup-sessions"),
        ("CleanupSessions.py", "cleanup-sessions"),
        ("digest.py", "digest"),
        ("product_invoice/transmit.py", "product-invoice-transmit"),
        ("productInvoice/send_all.py", "product-invoice-send-all"),
        ("a/b/c.py", "a-b-c"),
        ("report2pdf.py", "report2pdf"),
    ],
)
def test_script_names_are_kebab_case_paths(relative: str, name: str) -> None:
    assert script_name(Path(relative)) == name


@pytest.mark.parametrize(
    ("relative", "is_script"),
    [
        ("cleanup.py", True),
        ("reports/weekly.py", True),
        ("_helpers.py", False),
        ("__init__.py", False),
        ("reports/__init__.py", False),
        ("test_cleanup.py", False),
        ("cleanup_test.py", False),
        ("_shared/thing.py", False),
        (".hidden/thing.py", False),
        ("notes.txt", False),
        ("cleanup.pyc", False),
    ],
)
def test_ignore_rules(relative: str, is_script: bool) -> None:
    assert is_script_file(Path(relative)) is is_script


def test_discover_a_folder_with_subfolders(tmp_path: Path) -> None:
    write(tmp_path, "cleanup_sessions.py")
    write(tmp_path, "sendDigest.py")
    write(tmp_path, "queue-worker.py")
    write(tmp_path, "product_invoice/transmit.py")
    write(tmp_path, "product_invoice/__init__.py", "")
    write(tmp_path, "_helpers.py", "def helper():\n    return 1\n")
    write(tmp_path, "test_cleanup.py", "raise RuntimeError('not a script')\n")
    write(tmp_path, "README.md", "not python")

    registry = discover(tmp_path)

    assert registry.errors == []
    assert [s.name for s in registry] == [
        "cleanup-sessions",
        "product-invoice-transmit",
        "queue-worker",
        "send-digest",
    ]
    transmit = registry.get("product-invoice-transmit")
    assert transmit.path == str(tmp_path / "product_invoice" / "transmit.py")
    assert transmit.friendly_name == "product_invoice/transmit.py"
    assert "send-digest" in registry
    assert len(registry) == 4


def test_a_discovered_script_runs_its_function(tmp_path: Path) -> None:
    write(tmp_path, "double.py")
    found = discover(tmp_path).get("double")
    assert found.fn(found.model.model_validate({"n": 21}), None) == 21


def test_an_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    write(tmp_path, "cleanup.py")
    with pytest.raises(ScriptNotFound) as caught:
        discover(tmp_path).get("nope")
    assert "'nope'" in str(caught.value)
    assert "cleanup" in str(caught.value)


def test_a_missing_folder_has_no_scripts(tmp_path: Path) -> None:
    registry = discover(tmp_path / "absent")
    assert len(registry) == 0
    assert registry.errors == []


@pytest.mark.parametrize(
    "other", ["cleanup-sessions.py", "cleanupSessions.py", "cleanup/sessions.py"]
)
def test_two_scripts_with_one_name_are_an_error(tmp_path: Path, other: str) -> None:
    first = write(tmp_path, "cleanup_sessions.py")
    second = write(tmp_path, other)
    write(tmp_path, "unrelated.py")

    registry = discover(tmp_path)

    assert "cleanup-sessions" not in registry
    assert "unrelated" in registry
    assert len(registry.errors) == 1
    message = str(registry.errors[0])
    assert "'cleanup-sessions'" in message
    assert str(first) in message and str(second) in message
    assert "rename one" in message


def test_a_syntax_error_is_reported_with_its_path_and_the_others_load(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(tmp_path, "good.py")
    broken = write(tmp_path, "broken.py", "def oops(:\n    pass\n")

    with caplog.at_level(logging.ERROR, logger="quest.discovery"):
        registry = discover(tmp_path)

    assert [s.name for s in registry] == ["good"]
    assert [e.path for e in registry.errors] == [str(broken)]
    message = str(registry.errors[0])
    assert message.startswith(f"{broken}: ")
    assert "syntax error at line 1" in message
    assert str(broken) in caplog.text


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            """\
            from quest import script

            @script(quest={"interval": "every fortnight-ish"})
            def main(inputs, ctx):
                pass
            """,
            "quest.interval: 'every fortnight-ish' is not a time span",
        ),
        (
            """\
            from quest import script

            @script(quest={"cron": "61 * * * *"})
            def main(inputs, ctx):
                pass
            """,
            "quest.cron: ",
        ),
        (
            """\
            from quest import script

            @script(quest={"interval": "1 hour", "timezone": "Mars/Olympus"})
            def main(inputs, ctx):
                pass
            """,
            'quest.timezone: unknown timezone "Mars/Olympus"',
        ),
        (
            """\
            from quest import script

            @script(quest={"interval": "1 hour", "cron": "0 * * * *"})
            def main(inputs, ctx):
                pass
            """,
            "quest: both 'interval' and 'cron' are set",
        ),
        (
            """\
            from quest import script

            @script(quest={"every": "1 hour"})
            def main(inputs, ctx):
                pass
            """,
            "quest.every: unknown key",
        ),
        (
            """\
            from quest import Input, script

            @script(inputs={"days_old": Input(int, default="many")})
            def main(inputs, ctx):
                pass
            """,
            "inputs.days_old: default 'many' is invalid",
        ),
        (
            """\
            from quest import Input, script

            @script(inputs={"when": Input(set)})
            def main(inputs, ctx):
                pass
            """,
            "line 3: inputs.when.type: type <class 'set'> is not supported",
        ),
        (
            """\
            from quest import Input, script

            @script(quest={"interval": 60, "inputs": {"n": "x"}}, inputs={"n": Input(int)})
            def main(inputs, ctx):
                pass
            """,
            "quest.inputs: scheduled inputs are invalid",
        ),
        (
            """\
            import not_a_module_anywhere
            """,
            "failed to import: ModuleNotFoundError",
        ),
        (
            """\
            def main(inputs, ctx):
                pass
            """,
            "no script found",
        ),
        (
            """\
            from quest import script

            @script
            def one(inputs, ctx):
                pass

            @script
            def two(inputs, ctx):
                pass
            """,
            "2 @script functions found",
        ),
    ],
)
def test_a_bad_file_is_reported_with_its_path_and_key(
    tmp_path: Path, source: str, expected: str
) -> None:
    write(tmp_path, "good.py")
    bad = write(tmp_path, "bad.py", source)

    registry = discover(tmp_path)

    assert [s.name for s in registry] == ["good"]
    assert len(registry.errors) == 1
    assert registry.errors[0].path == str(bad)
    assert str(registry.errors[0]).startswith(f"{bad}: ")
    assert expected in str(registry.errors[0])


def test_a_failed_import_does_not_leave_a_half_module_behind(tmp_path: Path) -> None:
    import sys

    write(tmp_path, "explodes.py", "raise RuntimeError('boom')\n")
    registry = discover(tmp_path)
    assert "line 1" in str(registry.errors[0])
    assert not any(name.endswith(".explodes") for name in sys.modules)


def test_two_discoveries_do_not_share_scripts(tmp_path: Path) -> None:
    write(tmp_path / "one", "alpha.py")
    write(tmp_path / "two", "beta.py")
    first = discover(tmp_path / "one")
    second = discover(tmp_path / "two")
    assert [s.name for s in first] == ["alpha"]
    assert [s.name for s in second] == ["beta"]
