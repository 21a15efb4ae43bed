"""capture() is total: whatever a script returns, the stored result is JSON within the limit."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quest.results import (
    MAX_DEPTH,
    MAX_RESULT_BYTES,
    REPR_MARKER,
    TRUNCATED_MARKER,
    capture,
    exception_text,
)


class RaisingRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    def __str__(self) -> str:
        raise RuntimeError("no str")


class RaisingStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


def stored(value: Any) -> Any:
    result = capture(value)
    json.dumps(result, allow_nan=False)
    return result


def deep(depth: int) -> list[Any]:
    top: list[Any] = []
    current = top
    for _ in range(depth):
        inner: list[Any] = []
        current.append(inner)
        current = inner
    return top


@pytest.mark.parametrize(
    "value", [None, True, 7, 2**70, 1.5, "text", [1, "a"], {"a": {"b": [None]}}]
)
def test_plain_json_is_kept(value: Any) -> None:
    assert stored(value) == value


def test_a_tuple_becomes_a_list() -> None:
    assert stored((1, 2)) == [1, 2]


def test_an_integer_too_long_for_json_is_described() -> None:
    assert stored(10**5000) == {REPR_MARKER: "<an integer of about 5001 digits>"}
    assert stored({"n": -(10**5000)}) == {"n": {REPR_MARKER: "<an integer of about 5001 digits>"}}


@pytest.mark.parametrize(
    ("value", "expected"),
    [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")],
)
def test_nan_and_infinities_become_strings(value: float, expected: str) -> None:
    assert stored(value) == expected
    assert stored({"x": [value]}) == {"x": [expected]}


def test_what_json_cannot_hold_becomes_a_marked_repr() -> None:
    assert stored({1, 2}) == {REPR_MARKER: "{1, 2}"}
    assert stored(b"ab") == {REPR_MARKER: "b'ab'"}
    assert stored({"when": {1}}) == {"when": {REPR_MARKER: "{1}"}}
    assert stored({(1, 2): "x"}) == {"(1, 2)": "x"}


def test_a_cycle_is_cut() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    assert stored(cycle) == [{REPR_MARKER: "<the list holding it (a cycle)>"}]


def test_a_100000_deep_list_is_cut_at_the_depth_limit() -> None:
    result = stored(deep(100_000))
    depth = 0
    while isinstance(result, list):
        result = result[0]
        depth += 1
    assert depth == MAX_DEPTH
    assert "nested deeper" in result[REPR_MARKER]


def test_an_object_whose_repr_raises_is_described() -> None:
    assert stored(RaisingRepr()) == {
        REPR_MARKER: "<RaisingRepr object; repr() raised RuntimeError>"
    }


def test_a_large_result_is_truncated() -> None:
    result = stored("x" * (MAX_RESULT_BYTES * 2))
    assert result[TRUNCATED_MARKER] is True
    assert len(result["preview"]) == MAX_RESULT_BYTES


def test_exception_text_never_raises() -> None:
    assert exception_text(ValueError("bad")) == "ValueError: bad"
    assert exception_text(ValueError()) == "ValueError"
    assert (
        exception_text(RaisingStr()) == "RaisingStr: <RaisingStr object; str() raised RuntimeError>"
    )
    assert exception_text(ValueError("x" * 500), 10) == "ValueError: xxxxxxxxxx… (500 characters)"


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(),
    st.binary(max_size=8),
    st.dates(),
    st.just(4400).map(lambda digits: 10**digits),
    st.builds(RaisingRepr),
    st.builds(object),
)
trees = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner),
        st.dictionaries(
            st.one_of(st.text(max_size=5), st.integers(), st.none()), inner, max_size=5
        ),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=25,
)


@settings(max_examples=200, deadline=None)
@given(value=trees)
def test_capture_always_returns_storable_json(value: Any) -> None:
    json.dumps(capture(value), allow_nan=False)
