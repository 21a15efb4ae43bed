"""What a script returns or is given never breaks the JobLog, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from quest import Input, InvalidInputs, RunStatus, script
from quest.cli import cli
from quest.results import REPR_MARKER
from quest.testing import FrozenClock, temporary_quest


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _cycle() -> list[Any]:
    cycle: list[Any] = []
    cycle.append(cycle)
    return cycle


def _deep() -> list[Any]:
    top: list[Any] = []
    current = top
    for _ in range(100_000):
        inner: list[Any] = []
        current.append(inner)
        current = inner
    return top


RETURNS: dict[str, Any] = {
    "huge_int": lambda: 10**5000,
    "nan": lambda: math.nan,
    "infinity": lambda: {"x": [math.inf]},
    "a_set": lambda: {1, 2, 3},
    "some_bytes": lambda: b"\x00\xff",
    "cyclic": _cycle,
    "deep": _deep,
    "unprintable": Unprintable,
}


def _returning(name: str, make: Any) -> Any:
    def fn(inputs: Any, ctx: Any) -> Any:
        return make()

    fn.__name__ = fn.__qualname__ = name
    return script(fn)


SCRIPTS = [_returning(name, make) for name, make in RETURNS.items()]


@script(
    inputs={
        "odd": Input(float, allow_nan=True, required=False),
        "data": Input(list, allow_nan=True, required=False),
        "n": Input(int, required=False),
    }
)
def takes(inputs: Any, ctx: Any) -> Any:
    return {"odd": inputs.odd, "data": inputs.data, "n": inputs.n}


@pytest.fixture
def app(tmp_path: Path, database_url: str) -> Any:
    with temporary_quest(
        tmp_path,
        scripts=[*SCRIPTS, takes],
        database_url=database_url,
        clock=FrozenClock("2026-03-01T12:00:00+00:00"),
    ) as instance:
        yield instance


@pytest.mark.parametrize("name", [name.replace("_", "-") for name in RETURNS])
def test_any_return_value_ends_the_run_succeeded(app: Any, name: str) -> None:
    outcome = app.run(name)
    assert outcome.status is RunStatus.succeeded
    json.dumps(outcome.result, allow_nan=False)
    row = app.store.get_run(outcome.run_id)
    assert row["status"] is RunStatus.succeeded
    assert row["finished_at"] is not None
    json.dumps(row["result"], allow_nan=False)


def test_a_huge_int_through_quest_run_on_the_command_line(app: Any) -> None:
    result = CliRunner().invoke(cli, ["run", "huge-int", "--json"], obj=app)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    data = json.loads(result.stdout)
    assert data["status"] == "succeeded"
    assert data["result"] == {REPR_MARKER: "<an integer of about 5001 digits>"}
    assert app.store.count_runs(status=RunStatus.running) == 0
    assert app.store.count_runs(status=RunStatus.succeeded) == 1


def test_nan_allowed_by_the_input_is_stored_and_a_queued_run_gets_it_back(app: Any) -> None:
    direct = app.run("takes", {"odd": math.nan, "data": [math.inf, 1]})
    assert direct.status is RunStatus.succeeded
    assert direct.result == {"odd": "NaN", "data": ["Infinity", 1], "n": None}
    row = app.store.get_run(direct.run_id)
    assert row["inputs"] == {"odd": "NaN", "data": ["Infinity", 1], "n": None}

    run_id = app.enqueue("takes", {"odd": "-Infinity", "data": "[NaN]"})
    claimed = app.claim(run_id)
    assert claimed is not None
    queued = app.run_claimed(claimed)
    assert queued is not None and queued.status is RunStatus.succeeded
    assert queued.result == {"odd": "-Infinity", "data": ["NaN"], "n": None}


@pytest.mark.parametrize(
    "inputs",
    [
        {"n": 10**5000},
        {"n": "1" * 5000},
        {"n": 2**63},
        {"data": "[" * 100_000 + "]" * 100_000},
        {"data": [{1, 2}]},
        {"odd": 10**5000},
    ],
    ids=["10**5000", "5000 digits", "2**63", "100,000 deep", "a set", "huge float"],
)
def test_invalid_inputs_are_rejected_before_anything_is_recorded(app: Any, inputs: Any) -> None:
    with pytest.raises(InvalidInputs) as caught:
        app.enqueue("takes", inputs)
    assert caught.value.errors[0][0] in inputs
    assert len(str(caught.value)) < 500
    with pytest.raises(InvalidInputs):
        app.run("takes", inputs)
    assert app.store.count_runs() == 0


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


@script
def raises_unprintable(inputs: Any, ctx: Any) -> None:
    raise UnprintableError()


def test_an_exception_whose_str_raises_still_ends_the_run(tmp_path: Path) -> None:
    with temporary_quest(tmp_path, scripts=[raises_unprintable]) as app:
        outcome = app.run("raises-unprintable")
        assert outcome.status is RunStatus.failed
        assert (
            outcome.error
            == "UnprintableError: <UnprintableError object; str() raised RuntimeError>"
        )
        assert app.store.count_runs(status=RunStatus.running) == 0
