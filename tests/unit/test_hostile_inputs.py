"""Hostile input values: every one is InvalidInputs naming the input, short, never a secret."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quest import Input, InvalidInputs
from quest.inputs import INT_MAX, INT_MIN, MAX_JSON_DEPTH, Inputs, build_model, dump, validate


def check(specs: Mapping[str, Input], raw: Mapping[str, Any]) -> Inputs:
    return validate(build_model("hostile", specs), specs, raw, timezone=UTC)


def rejected(specs: Mapping[str, Input], raw: Any) -> InvalidInputs:
    with pytest.raises(InvalidInputs) as caught:
        check(specs, raw)
    error = caught.value
    assert len(str(error)) < 1000, str(error)
    assert len(str(error).splitlines()) <= 12
    return error


def nested(depth: int) -> list[Any]:
    top: list[Any] = []
    current = top
    for _ in range(depth):
        inner: list[Any] = []
        current.append(inner)
        current = inner
    return top


# -- integers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [10**5000, -(10**5000), 2**63, INT_MIN - 1, "1" * 5000, "9" * 20000, "-" + "1" * 25, 1e30],
    ids=["10**5000", "-10**5000", "2**63", "min-1", "5000 digits", "20000 digits", "25", "1e30"],
)
def test_an_int_out_of_the_64_bit_range_is_rejected(value: Any) -> None:
    error = rejected({"n": Input(int)}, {"n": value})
    assert error.errors[0][0] == "n"
    assert "out of range" in error.errors[0][1]
    assert str(INT_MAX) in error.errors[0][1]
    assert "1111111111" not in str(error) and "9999999999999999999999" not in str(error)


@pytest.mark.parametrize("value", [INT_MAX, INT_MIN, "9223372036854775807", 0])
def test_the_64_bit_bounds_are_accepted(value: Any) -> None:
    assert check({"n": Input(int)}, {"n": value}).n == int(value)  # type: ignore[attr-defined]


# -- floats --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "inf", "1e999", "NaN"])
def test_nan_and_infinities_are_rejected_for_a_float(value: Any) -> None:
    error = rejected({"x": Input(float)}, {"x": value})
    assert error.errors[0][0] == "x"
    assert "finite" in error.errors[0][1]
    assert "allow_nan=True" in error.errors[0][1]


def test_an_int_too_large_for_a_float_is_rejected() -> None:
    assert "out of range" in rejected({"x": Input(float)}, {"x": 10**5000}).errors[0][1]


@pytest.mark.parametrize(
    ("value", "stored"),
    [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity"), (1.5, 1.5)],
)
def test_a_float_input_that_allows_nan_stores_it_portably(value: float, stored: Any) -> None:
    specs = {"x": Input(float, allow_nan=True)}
    values = check(specs, {"x": value})
    data = dump(values, specs)
    assert data == {"x": stored}
    json.dumps(data, allow_nan=False)
    again = check(specs, data).x  # type: ignore[attr-defined]
    assert (math.isnan(again) and math.isnan(value)) or again == value


# -- JSON ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"a": nested(100_000)},
        '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}",
        {"a": nested(MAX_JSON_DEPTH + 1)},
    ],
    ids=["python 100,000 deep", "text 100,000 deep", "one level too deep"],
)
def test_json_nested_too_deep_is_rejected(value: Any) -> None:
    error = rejected({"data": Input(dict)}, {"data": value})
    assert error.errors[0][0] == "data"
    assert f"nested more than {MAX_JSON_DEPTH} levels deep" in error.errors[0][1]


def test_json_holding_itself_is_rejected() -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    assert "holds itself" in rejected({"data": Input(dict)}, {"data": cycle}).errors[0][1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": math.nan}, "holds NaN or Infinity at $.a"),
        ('{"a": [1, Infinity]}', "holds NaN or Infinity"),
        ({"a": 10**5000}, "holds an integer out of range at $.a"),
        ('{"a": ' + "7" * 5000 + "}", "holds an integer out of range"),
        ({"a": {1, 2}}, "holds a set at $.a"),
        ({"a": b"bytes"}, "holds a bytes at $.a"),
        ({1: "x"}, "has a key that is not text"),
        ({"a": "\ud800"}, "lone surrogate"),
        ("[1, 2]", "expected a JSON object, got a list"),
        ("{bad", "is not valid JSON"),
    ],
)
def test_json_that_cannot_be_stored_is_rejected(value: Any, expected: str) -> None:
    error = rejected({"data": Input(dict)}, {"data": value})
    assert error.errors[0][0] == "data"
    assert expected in error.errors[0][1]


def test_a_json_input_that_allows_nan_gets_the_stored_spelling() -> None:
    specs = {"data": Input(list, allow_nan=True)}
    values = check(specs, {"data": "[NaN, Infinity, -Infinity, 1.5]"})
    assert values.data == ["NaN", "Infinity", "-Infinity", 1.5]  # type: ignore[attr-defined]
    assert dump(values, specs) == {"data": ["NaN", "Infinity", "-Infinity", 1.5]}


# -- text, dates ---------------------------------------------------------------------------------


def test_text_with_a_lone_surrogate_is_rejected() -> None:
    assert "lone surrogate" in rejected({"s": Input(str)}, {"s": "a\udcffb"}).errors[0][1]


def test_a_datetime_that_cannot_be_stored_in_utc_is_rejected() -> None:
    error = rejected({"at": Input(datetime)}, {"at": "9999-12-31T23:59:59-23:59"})
    assert error.errors[0][0] == "at"
    assert "UTC" in error.errors[0][1]


def test_a_naive_datetime_too_late_in_the_scripts_zone_is_rejected() -> None:
    from zoneinfo import ZoneInfo

    specs = {"at": Input(datetime)}
    with pytest.raises(InvalidInputs) as caught:
        validate(
            build_model("late", specs),
            specs,
            {"at": "9999-12-31T23:59:59"},
            timezone=ZoneInfo("America/New_York"),
        )
    assert caught.value.errors[0][0] == "at"


# -- messages ------------------------------------------------------------------------------------


def test_inputs_that_are_not_a_mapping_are_rejected() -> None:
    assert "dict of name: value" in str(rejected({"n": Input(int)}, [1, 2]))


def test_a_long_unknown_input_name_is_cut() -> None:
    error = rejected({"n": Input(int, default=1)}, {"z" * 20_000: 1})
    assert "(20000 characters)" in str(error)


def test_many_errors_fit_one_screen() -> None:
    specs = {f"n{i}": Input(int) for i in range(40)}
    error = rejected(specs, {})
    assert "and 30 more" in str(error)


def test_a_sensitive_value_is_not_in_a_validator_message() -> None:
    def no_x(value: str) -> str:
        raise ValueError(f"{value} is not allowed")

    specs = {"token": Input(str, sensitive=True, validator=no_x)}
    error = rejected(specs, {"token": "tok-123456"})
    assert "tok-123456" not in str(error)
    assert "*** is not allowed" in str(error)


# -- property: any value either validates into something storable or is InvalidInputs ----------

SPECS: dict[str, Input] = {
    "i": Input(int, required=False),
    "f": Input(float, required=False),
    "nf": Input(float, required=False, allow_nan=True),
    "s": Input(str, required=False),
    "b": Input(bool, required=False),
    "d": Input(date, required=False),
    "t": Input(datetime, required=False),
    "o": Input(dict, required=False),
    "l": Input(list, required=False),
    "nl": Input(list, required=False, allow_nan=True),
    "c": Input(["low", "high", 3], required=False),
}
MODEL = build_model("property", SPECS)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(),
    st.text(),
    st.binary(max_size=4),
    st.dates(),
    st.datetimes(),
    st.just(5000).map(lambda digits: 10**digits),
    st.sampled_from(["nan", "inf", "1e999", "9" * 30, "[NaN]", '{"a": 1}', "[1, 2]", "2026-03-01"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.text(max_size=4), st.integers()), inner, max_size=4),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(key=st.sampled_from(sorted(SPECS)), value=values)
def test_any_value_validates_to_something_storable_or_is_invalid_inputs(
    key: str, value: Any
) -> None:
    try:
        validated = validate(MODEL, SPECS, {key: value}, timezone=UTC)
    except InvalidInputs as exc:
        assert exc.errors and exc.errors[0][0] == key
        assert len(str(exc)) < 1000
        return
    json.dumps(dump(validated, SPECS), allow_nan=False)
