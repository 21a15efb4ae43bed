"""Hostile declarations: each is a load error naming the file, the user's line and the key.

The other scripts of the folder keep loading.
"""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from quest import Input, InvalidDefinition, script
from quest.definition import Backoff, QuestBlock, Script, declaration_of, parse_block
from quest.discovery import discover
from quest.timespan import MAX_SPAN

GOOD = """\
from quest import script

@script(quest={"interval": "1 hour"})
def good(inputs, ctx):
    return 1
"""


def load_bad(tmp_path: Path, source: str) -> str:
    """Discover a folder of one good and one bad script; the bad one's error text."""
    (tmp_path / "good.py").write_text(GOOD, encoding="utf-8")
    bad = tmp_path / "bad.py"
    bad.write_text(textwrap.dedent(source), encoding="utf-8")
    registry = discover(tmp_path)
    assert [s.name for s in registry] == ["good"], registry.errors
    assert len(registry.errors) == 1
    message = str(registry.errors[0])
    assert message.startswith(f"{bad}: line "), message
    assert "Traceback" not in message
    assert len(message) < 600, message
    return message


# Each case: the script's source, the line the error must point at, the key and a hint of
# what would be valid.
CASES: dict[str, tuple[str, int, str, str]] = {
    "discard_on KeyboardInterrupt": (
        """\
        from quest import script

        @script(
            quest={
                "interval": "1 hour",
                "discard_on": KeyboardInterrupt,
            },
        )
        def main(inputs, ctx):
            pass
        """,
        6,
        "quest.discard_on: KeyboardInterrupt is not a subclass of Exception",
        "give classes derived from Exception",
    ),
    "min is text": (
        """\
        from quest import Input, script

        @script(
            inputs={
                "ratio": Input(
                    float,
                    min="a",
                ),
            },
        )
        def main(inputs, ctx):
            pass
        """,
        7,
        "inputs.ratio.min: min must be a finite number, not 'a'",
        "finite number",
    ),
    "min is nan": (
        """\
        from quest import Input, script

        @script(inputs={"ratio": Input(float, min=float("nan"), default=1.0)})
        def main(inputs, ctx):
            pass
        """,
        3,
        "inputs.ratio.min: min must be a finite number, not nan",
        "finite number",
    ),
    "pattern overflows": (
        """\
        from quest import Input, script

        @script(inputs={"code": Input(str, pattern="a{99999999999}", default="a")})
        def main(inputs, ctx):
            pass
        """,
        3,
        "inputs.code.pattern: pattern 'a{99999999999}' is not a regular expression",
        "the repetition number is too large",
    ),
    "pattern does not compile": (
        """\
        from quest import Input, script

        @script(inputs={"code": Input(str, pattern="(unclosed")})
        def main(inputs, ctx):
            pass
        """,
        3,
        "inputs.code.pattern: pattern '(unclosed' is not a regular expression",
        "missing )",
    ),
    "empty choices for JSON": (
        """\
        from quest import Input, script

        @script(inputs={"payload": Input(dict, choices=[], required=False)})
        def main(inputs, ctx):
            pass
        """,
        3,
        "inputs.payload.choices: a JSON object input cannot have choices",
        "choices are text, numbers or booleans",
    ),
    "empty choices": (
        """\
        from quest import Input, script

        @script(inputs={"level": Input(str, choices=[])})
        def main(inputs, ctx):
            pass
        """,
        3,
        "inputs.level.choices: choices needs at least one value",
        "at least one value",
    ),
    "name starting with _": (
        """\
        from quest import Input, script

        @script(
            inputs={
                "_hidden": Input(int, default=1),
            },
        )
        def main(inputs, ctx):
            pass
        """,
        5,
        "inputs._hidden: input name '_hidden' is reserved",
        "for example to 'hidden'",
    ),
    "name shadowing the model": (
        """\
        from quest import Input, script

        @script(inputs={"model_dump": Input(int, default=1)})
        def main(inputs, ctx):
            pass
        """,
        3,
        "inputs.model_dump: input name 'model_dump' is reserved",
        "rename it",
    ),
    "two names, one option": (
        """\
        from quest import Input, script

        @script(inputs={"days_old": Input(int, default=1), "daysOld": Input(int, default=2)})
        def main(inputs, ctx):
            pass
        """,
        3,
        "inputs.daysOld: inputs 'days_old' and 'daysOld' both give the option --days-old",
        "rename one",
    ),
    "description with a lone surrogate": (
        """\
        from quest import script

        @script(
            friendly_name="Surrogate",
            description="bad \\ud800 text",
        )
        def main(inputs, ctx):
            pass
        """,
        5,
        "description: description holds a lone surrogate",
        "valid Unicode text",
    ),
    "input description with a lone surrogate": (
        """\
        from quest import Input, script

        @script(inputs={"n": Input(int, default=1, description="\\ud800")})
        def main(inputs, ctx):
            pass
        """,
        3,
        "inputs.n.description: description holds a lone surrogate",
        "valid text",
    ),
    "environments with a lone surrogate": (
        """\
        from quest import script

        @script(quest={"interval": "1 hour", "environments": ["prod", "\\ud800"]})
        def main(inputs, ctx):
            pass
        """,
        3,
        "quest.environments: holds text with a lone surrogate",
        "valid Unicode text",
    ),
    "unknown Input key": (
        """\
        from quest import Input, script

        @script(inputs={"n": Input(int, defaultTo=3)})
        def main(inputs, ctx):
            pass
        """,
        3,
        "inputs.n.defaultTo: unknown key 'defaultTo'",
        "defaultsTo",
    ),
    "default and defaultsTo": (
        """\
        from quest import Input, script

        @script(inputs={"n": Input(int, default=1, defaultsTo=3)})
        def main(inputs, ctx):
            pass
        """,
        3,
        "inputs.n.defaultsTo: defaultsTo and default are one key",
        "give only one of them",
    ),
    "default out of the 64-bit range": (
        """\
        from quest import Input, script

        @script(inputs={"n": Input(int, default=10**5000)})
        def main(inputs, ctx):
            pass
        """,
        3,
        "inputs.n: default an integer of about 5001 digits is invalid: is out of range",
        "-9223372036854775808..9223372036854775807",
    ),
    "a quest key given twice": (
        """\
        from quest import script

        @script(quest={"withoutOverlapping": True, "without_overlapping": False})
        def main(inputs, ctx):
            pass
        """,
        3,
        "quest.withoutOverlapping: withoutOverlapping and without_overlapping are one key",
        "give only one of them",
    ),
    "attempts beyond what can be stored": (
        """\
        from quest import script

        @script(
            quest={
                "attempts": 10**5000,
            }
        )
        def main(inputs, ctx):
            pass
        """,
        5,
        "quest.attempts: Input should be less than or equal to 1000000",
        "1000000",
    ),
    "a scheduled input beyond 64 bits": (
        """\
        from quest import Input, script

        @script(
            quest={"interval": "1 hour", "inputs": {"n": 2**64}},
            inputs={"n": Input(int)},
        )
        def main(inputs, ctx):
            pass
        """,
        4,
        "quest.inputs: scheduled inputs are invalid: n: is out of range",
        "64-bit",
    ),
    "an exception raised at import": (
        """\
        from quest import script

        def helper():
            raise ValueError("x" * 5000)

        helper()
        """,
        4,
        "failed to import: ValueError: xxx",
        "characters)",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_hostile_declaration_names_file_line_and_key(tmp_path: Path, case: str) -> None:
    source, line, key_and_reason, valid = CASES[case]
    message = load_bad(tmp_path, source)
    assert f": line {line}: " in message, message
    assert key_and_reason in message, message
    assert valid in message, message


def test_an_invalid_sensitive_default_is_not_printed(tmp_path: Path) -> None:
    message = load_bad(
        tmp_path,
        """\
        from quest import Input, script

        @script(inputs={"pin": Input(int, default="hunter2-secret", sensitive=True)})
        def main(inputs, ctx):
            pass
        """,
    )
    assert "hunter2" not in message
    assert "inputs.pin: the default (sensitive, not shown) is invalid" in message


def test_a_long_invalid_default_is_shown_cut(tmp_path: Path) -> None:
    message = load_bad(
        tmp_path,
        """\
        from quest import Input, script

        @script(inputs={"n": Input(int, default="9" * 20000)})
        def main(inputs, ctx):
            pass
        """,
    )
    assert "(20000 characters)" in message
    assert "9" * 100 not in message


def test_a_script_raising_system_exit_at_import_is_a_load_error(tmp_path: Path) -> None:
    message = load_bad(tmp_path, "import sys\nsys.exit(3)\n")
    assert "line 2: failed to import: SystemExit: 3" in message


# -- discard_on ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [KeyboardInterrupt, SystemExit, GeneratorExit, BaseException])
def test_discard_on_takes_exception_subclasses_only(kind: type[BaseException]) -> None:
    with pytest.raises(InvalidDefinition) as caught:
        parse_block({"discard_on": [ValueError, kind]})
    assert caught.value.key == "quest.discard_on"
    assert f"{kind.__name__} is not a subclass of Exception" in str(caught.value)


def test_discard_on_exceptions_are_kept() -> None:
    block = parse_block({"discardOn": [ValueError, LookupError]})
    assert block is not None
    assert block.discard_on == (ValueError, LookupError)


# -- robustness of the block ---------------------------------------------------------------------


def test_an_unforeseen_error_in_a_key_still_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    import quest.definition

    def explode(value: Any) -> Any:
        raise OverflowError("boom")

    monkeypatch.setattr(quest.definition, "_span", explode)
    with pytest.raises(InvalidDefinition) as caught:
        parse_block({"interval": "1 hour", "timeout": "5 minutes"})
    assert caught.value.key == "quest.timeout"
    assert "OverflowError: boom" in str(caught.value)


def test_an_exponential_backoff_never_overflows() -> None:
    backoff = Backoff(type="exponential", delay=timedelta(seconds=30))
    assert backoff.delay_for(10**6) == MAX_SPAN
    capped = Backoff(type="exponential", delay=timedelta(seconds=30), max_delay=timedelta(hours=1))
    assert capped.delay_for(10**6) == timedelta(hours=1)
    assert capped.delay_for(3) == timedelta(minutes=2)


# -- Sails spellings -----------------------------------------------------------------------------


def declared(**kwargs: Any) -> Script:
    @script(**kwargs)
    def job(inputs: Any, ctx: Any) -> None:
        return None

    declaration = declaration_of(job)
    assert declaration is not None
    return Script.build("job", declaration)


@pytest.mark.parametrize(
    ("sails", "quest", "value"),
    [
        ("defaultsTo", "default", 3),
        ("isIn", "choices", (1, 3)),
        ("minLength", "min_length", 2),
        ("maxLength", "max_length", 9),
        ("regex", "pattern", "^[a-z]+$"),
    ],
)
def test_every_sails_input_key_is_a_keyword_of_input_and_a_mapping_key(
    sails: str, quest: str, value: Any
) -> None:
    kind = str if quest in ("min_length", "max_length", "pattern") else int
    assert getattr(Input(kind, **{sails: value}), quest) == value
    assert getattr(Input.from_mapping({"type": kind, sails: value}), quest) == value
    assert Input(kind, **{sails: value}) == Input(kind, **{quest: value})


def test_input_defaults_to_like_sails() -> None:
    job = declared(inputs={"n": Input(int, defaultsTo=3)})
    assert job.inputs["n"].default == 3
    assert job.model().n == 3  # type: ignore[attr-defined]
    mapping = declared(inputs={"n": {"type": "number", "defaultsTo": 20}})
    assert mapping.inputs["n"].type is int
    assert mapping.model().n == 20  # type: ignore[attr-defined]


def test_friendly_name_in_the_sails_spelling() -> None:
    assert declared(friendlyName="Nightly").friendly_name == "Nightly"


@pytest.mark.parametrize(
    ("sails", "field", "value", "expected"),
    [
        ("withoutOverlapping", "without_overlapping", False, False),
        ("cronTime", "cron", "0 3 * * *", "0 3 * * *"),
        ("isActive", "enabled", False, False),
        ("runOnStart", "run_on_start", True, True),
        ("leaseTtl", "lease_ttl", "2 minutes", timedelta(minutes=2)),
        ("catchUp", "catch_up", "once", None),
        ("rateLimit", "rate_limit", {"max": 2, "perKey": True, "per": "1 second"}, None),
        ("discardOn", "discard_on", [KeyError], (KeyError,)),
    ],
)
def test_every_sails_quest_key(sails: str, field: str, value: Any, expected: Any) -> None:
    block = parse_block({sails: value})
    snake = parse_block({field: value})
    assert isinstance(block, QuestBlock)
    assert getattr(block, field) == getattr(snake, field)
    if expected is not None:
        assert getattr(block, field) == expected


def test_sails_backoff_spelling() -> None:
    block = parse_block({"backoff": {"type": "exponential", "delay": "1s", "maxDelay": "1m"}})
    assert block is not None and block.backoff is not None
    assert block.backoff.max_delay == timedelta(minutes=1)
