"""Property: a random declaration loads, or fails with InvalidDefinition naming file, line, key."""

from __future__ import annotations

import base64
import math
import pickle
from datetime import date, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quest import Input, InvalidDefinition, script
from quest.definition import QuestBlock
from quest.discovery import discover

BLOCK_KEYS = sorted(
    {*QuestBlock.model_fields, *(f.alias for f in QuestBlock.model_fields.values() if f.alias)}
)
INNER_KEYS = ["max", "per", "per_key", "type", "delay", "max_delay", "jitter", "policy", "window"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(
        [
            "1 hour",
            "5m",
            "30 seconds",
            "0 3 * * *",
            "@daily",
            "Europe/Paris",
            "Mars/Olympus",
            "once",
            "skip",
            "fixed",
            "exponential",
            "2026-03-01T00:00:00Z",
            math.nan,
            math.inf,
            ValueError,
            KeyboardInterrupt,
            SystemExit,
            object,
        ]
    ),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(INNER_KEYS), inner, max_size=3),
    ),
    max_leaves=6,
)
blocks = st.one_of(
    st.none(),
    st.dictionaries(
        st.one_of(st.sampled_from(BLOCK_KEYS), st.text(max_size=6)), values, max_size=4
    ),
)

types = st.sampled_from(
    [
        int,
        float,
        str,
        bool,
        date,
        datetime,
        dict,
        list,
        "number",
        "string",
        "json",
        "ref",
        set,
        "bogus",
        (),
        ("a", "b"),
        (1, 2.5),
        ({"a": 1},),
    ]
)
input_keywords = st.fixed_dictionaries(
    {},
    optional={
        "default": values,
        "defaultsTo": values,
        "description": st.one_of(st.text(max_size=8), st.just("\ud800"), st.integers()),
        "required": st.one_of(st.none(), st.booleans(), st.integers()),
        "sensitive": st.one_of(st.booleans(), st.just(1)),
        "min": scalars,
        "max": scalars,
        "min_length": scalars,
        "maxLength": scalars,
        "pattern": st.one_of(
            st.text(max_size=6), st.sampled_from(["a{99999999999}", "(", "(?<=a)b", "^[a-z]+$"])
        ),
        "isIn": st.one_of(st.lists(scalars, max_size=3), st.just([])),
        "allow_nan": st.one_of(st.booleans(), st.none()),
        "surprise": st.integers(),
    },
)
input_names = st.one_of(
    st.from_regex(r"\A[a-z_][a-zA-Z0-9_]{0,6}\Z"),
    st.sampled_from(["json", "model_dump", "_x", "daysOld", "days_old", "class"]),
    st.text(max_size=5),
)
inputs = st.dictionaries(input_names, st.tuples(types, input_keywords), max_size=3)


def _declare(block: Any, specs: dict[str, tuple[Any, dict[str, Any]]]) -> None:
    declared = {name: Input(kind, **keywords) for name, (kind, keywords) in specs.items()}

    @script(quest=block, inputs=declared)
    def job(inputs: Any, ctx: Any) -> None:
        return None


@settings(max_examples=200, deadline=None)
@given(block=blocks, specs=inputs)
def test_a_random_declaration_loads_or_names_its_key(block: Any, specs: Any) -> None:
    try:
        _declare(block, specs)
    except InvalidDefinition as exc:
        assert exc.key, str(exc)
        assert str(exc).startswith(exc.key)


SOURCE = """\
import pickle, base64
from quest import Input, script

BLOCK, SPECS = pickle.loads(base64.b64decode({payload!r}))
INPUTS = {{name: Input(kind, **keywords) for name, (kind, keywords) in SPECS.items()}}


@script(quest=BLOCK, inputs=INPUTS)
def job(inputs, ctx):
    return None
"""

GOOD = """\
from quest import script

@script
def good(inputs, ctx):
    return None
"""


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(block=blocks, specs=inputs)
def test_a_random_script_file_loads_or_fails_naming_file_line_and_key(
    tmp_path: Path, block: Any, specs: Any
) -> None:
    payload = base64.b64encode(pickle.dumps((block, specs))).decode()
    (tmp_path / "good.py").write_text(GOOD, encoding="utf-8")
    path = tmp_path / "random_job.py"
    path.write_text(SOURCE.format(payload=payload), encoding="utf-8")
    registry = discover(tmp_path)
    assert "good" in registry
    if "random-job" in registry:
        return
    [error] = registry.errors
    message = str(error)
    assert message.startswith(f"{path}: line "), message
    assert "failed to import" not in message, message
    head = message[len(f"{path}: line ") :]
    line, _, rest = head.partition(": ")
    assert line.isdigit()
    key = rest.split(": ", 1)[0]
    assert key.split(".")[0] in ("quest", "inputs", "Input", "description", "friendly_name")
