"""Typed inputs: types, defaults, required, bounds, choices, JSON, dates, sensitive values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from quest import Input, InvalidDefinition, InvalidInputs
from quest.inputs import (
    REDACTED,
    Inputs,
    build_model,
    dump,
    option_name,
    redact,
    scrub,
    sensitive_values,
    validate,
)

PARIS = ZoneInfo("Europe/Paris")


def check(specs: Mapping[str, Input], raw: Mapping[str, Any], tz: Any = UTC) -> Inputs:
    return validate(build_model("test", specs), specs, raw, timezone=tz)


def rejected(specs: Mapping[str, Input], raw: Mapping[str, Any]) -> InvalidInputs:
    with pytest.raises(InvalidInputs) as caught:
        check(specs, raw)
    return caught.value


# -- types ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "raw", "expected"),
    [
        (int, 7, 7),
        (int, "7", 7),
        (float, 0.25, 0.25),
        (float, "2.5", 2.5),
        (float, 3, 3.0),
        (str, "hello", "hello"),
        (bool, True, True),
        (bool, "false", False),
        (date, "2026-03-01", date(2026, 3, 1)),
        (date, date(2026, 3, 1), date(2026, 3, 1)),
        (dict, {"a": [1, 2]}, {"a": [1, 2]}),
        (dict, '{"a": 1}', {"a": 1}),
        (list, [1, "two"], [1, "two"]),
        (list, "[1, 2]", [1, 2]),
    ],
)
def test_each_type_validates(kind: Any, raw: Any, expected: Any) -> None:
    value = check({"x": Input(kind)}, {"x": raw}).x  # type: ignore[attr-defined]
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("kind", "raw"),
    [
        (int, "abc"),
        (int, 5.5),
        (float, "abc"),
        (bool, "maybe"),
        (date, "03/01/2026"),
        (datetime, "yesterday"),
        (dict, [1, 2]),
        (list, {"a": 1}),
    ],
)
def test_each_type_rejects_a_wrong_value_naming_the_input(kind: Any, raw: Any) -> None:
    error = rejected({"some_value": Input(kind)}, {"some_value": raw})
    assert [key for key, _ in error.errors] == ["some_value"]
    assert "--some-value" in str(error)


def test_sails_type_names() -> None:
    assert Input("string").type is str
    assert Input("number").type is float
    assert Input("boolean").type is bool
    assert Input("json").type is dict
    assert Input.from_mapping({"type": "number", "defaultsTo": 3}).type is int


def test_type_names_for_help() -> None:
    assert Input(int).type_name == "integer"
    assert Input(float).type_name == "number"
    assert Input(str).type_name == "text"
    assert Input(bool).type_name == "boolean"
    assert Input(date).type_name == "date"
    assert Input(datetime).type_name == "datetime"
    assert Input(dict).type_name == "JSON object"
    assert Input(list).type_name == "JSON list"
    assert Input(["low", "high"]).type_name == "one of low, high"


def test_unsupported_type() -> None:
    with pytest.raises(InvalidDefinition, match="use int, float, str, bool, date, datetime"):
        Input(bytes)


# -- defaults and required ------------------------------------------------------------------------


def test_an_input_without_a_default_is_required() -> None:
    spec = Input(int, description="How many.")
    assert spec.is_required
    error = rejected({"count": spec}, {})
    assert error.errors == [("count", "is required")]
    assert "--count (count): is required" in str(error)


def test_defaults_fill_missing_inputs() -> None:
    values = check({"days_old": Input(int, default=30), "mode": Input(str, default="fast")}, {})
    assert values.days_old == 30  # type: ignore[attr-defined]
    assert values.mode == "fast"  # type: ignore[attr-defined]


def test_optional_without_default_is_none() -> None:
    spec = Input(str, required=False)
    assert not spec.is_required
    assert check({"note": spec}, {}).note is None  # type: ignore[attr-defined]


def test_required_with_a_default_is_a_declaration_error() -> None:
    with pytest.raises(InvalidDefinition, match="both required and have a default"):
        Input(int, default=1, required=True)


def test_an_invalid_default_is_a_declaration_error_naming_the_input() -> None:
    with pytest.raises(InvalidDefinition) as caught:
        build_model("x", {"size": Input(int, default="big")})
    assert caught.value.key == "inputs.size"


def test_several_problems_are_all_reported() -> None:
    error = rejected({"a": Input(int), "b": Input(int)}, {})
    assert sorted(key for key, _ in error.errors) == ["a", "b"]


def test_an_unknown_input_lists_the_valid_ones() -> None:
    error = rejected({"days_old": Input(int, default=1)}, {"days": 3})
    assert error.errors[0][0] == "days"
    assert "valid inputs: days_old" in str(error)


def test_validated_inputs_are_frozen() -> None:
    values = check({"n": Input(int, default=1)}, {})
    with pytest.raises(Exception, match="frozen"):
        values.n = 2  # type: ignore[attr-defined]


# -- bounds --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "ok"), [(1, True), (10, True), (0, False), (11, False)])
def test_numeric_bounds_are_inclusive(raw: int, ok: bool) -> None:
    specs = {"days_old": Input(int, default=5, min=1, max=10)}
    if ok:
        assert check(specs, {"days_old": raw}).days_old == raw  # type: ignore[attr-defined]
    else:
        error = rejected(specs, {"days_old": raw})
        assert error.errors[0][0] == "days_old"
        assert "than or equal to" in error.errors[0][1]


def test_float_bounds() -> None:
    specs = {"ratio": Input(float, default=0.5, min=0, max=1)}
    assert check(specs, {"ratio": 1.0}).ratio == 1.0  # type: ignore[attr-defined]
    assert rejected(specs, {"ratio": 1.01}).errors[0][0] == "ratio"


def test_text_bounds_and_pattern() -> None:
    specs = {"code": Input(str, min_length=2, max_length=4, pattern=r"^[A-Z]+$")}
    assert check(specs, {"code": "ABC"}).code == "ABC"  # type: ignore[attr-defined]
    assert "at least 2" in rejected(specs, {"code": "A"}).errors[0][1]
    assert "at most 4" in rejected(specs, {"code": "ABCDE"}).errors[0][1]
    assert "pattern" in rejected(specs, {"code": "abc"}).errors[0][1]


def test_min_and_max_on_text_are_lengths() -> None:
    specs = {"name": Input(str, min=2, max=3)}
    assert rejected(specs, {"name": "a"}).errors[0][0] == "name"
    assert rejected(specs, {"name": "abcd"}).errors[0][0] == "name"


def test_bad_bounds_are_declaration_errors() -> None:
    with pytest.raises(InvalidDefinition, match="min"):
        Input(int, min=5, max=1)
    with pytest.raises(InvalidDefinition, match="regular expression"):
        Input(str, pattern="(")


# -- choices -------------------------------------------------------------------------------------


def test_choices_of_text() -> None:
    specs = {"level": Input(["low", "high"], default="low")}
    assert check(specs, {}).level == "low"  # type: ignore[attr-defined]
    assert check(specs, {"level": "high"}).level == "high"  # type: ignore[attr-defined]
    error = rejected(specs, {"level": "medium"})
    assert error.errors[0][0] == "level"
    assert "'low' or 'high'" in error.errors[0][1]


def test_choices_of_numbers_keep_their_type() -> None:
    specs = {"size": Input([10, 50, 100], default=10)}
    assert check(specs, {"size": 50}).size == 50  # type: ignore[attr-defined]
    assert rejected(specs, {"size": 60}).errors[0][0] == "size"


def test_choices_given_as_a_keyword() -> None:
    spec = Input(str, choices=["a", "b"])
    assert spec.choices == ("a", "b")
    assert rejected({"x": spec}, {"x": "c"}).errors[0][0] == "x"


def test_an_empty_choice_list_is_a_declaration_error() -> None:
    with pytest.raises(InvalidDefinition, match="at least one value"):
        Input([])


# -- JSON ----------------------------------------------------------------------------------------


def test_invalid_json_names_the_option_and_the_position() -> None:
    error = rejected({"payload": Input(dict, default={})}, {"payload": '{"a": '})
    assert error.errors[0][0] == "payload"
    assert "not valid JSON" in error.errors[0][1]
    assert "--payload" in str(error)
    assert "position" in str(error)


def test_json_of_the_wrong_shape() -> None:
    assert rejected({"payload": Input(dict)}, {"payload": "[1, 2]"}).errors[0][0] == "payload"
    assert rejected({"items": Input(list)}, {"items": '{"a": 1}'}).errors[0][0] == "items"


def test_json_dumps_back_to_json() -> None:
    specs = {"payload": Input(dict), "items": Input(list, default=[])}
    values = check(specs, {"payload": {"nested": {"n": 1}}})
    assert dump(values, specs) == {"payload": {"nested": {"n": 1}}, "items": []}


# -- dates ---------------------------------------------------------------------------------------


def test_a_naive_datetime_is_read_in_the_scripts_timezone() -> None:
    specs = {"since": Input(datetime)}
    value = check(specs, {"since": "2026-03-01T10:00:00"}, tz=PARIS).since  # type: ignore[attr-defined]
    assert value.tzinfo is not None
    assert value == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_a_naive_datetime_object_is_read_in_the_scripts_timezone() -> None:
    specs = {"since": Input(datetime)}
    value = check(specs, {"since": datetime(2026, 7, 1, 10)}, tz=PARIS).since  # type: ignore[attr-defined]
    assert value.utcoffset() == timedelta(hours=2)


def test_an_aware_datetime_keeps_its_offset() -> None:
    specs = {"since": Input(datetime)}
    value = check(specs, {"since": "2026-03-01T10:00:00-05:00"}, tz=PARIS).since  # type: ignore[attr-defined]
    assert value == datetime(2026, 3, 1, 15, 0, tzinfo=UTC)


def test_dates_dump_as_iso_text() -> None:
    specs = {"day": Input(date), "at": Input(datetime)}
    values = check(specs, {"day": "2026-03-01", "at": "2026-03-01T10:00:00+00:00"})
    dumped = dump(values, specs)
    assert dumped["day"] == "2026-03-01"
    assert datetime.fromisoformat(dumped["at"]) == datetime(2026, 3, 1, 10, tzinfo=UTC)


def test_a_date_default() -> None:
    specs = {"day": Input(date, default=date(2026, 1, 1))}
    assert check(specs, {}).day == date(2026, 1, 1)  # type: ignore[attr-defined]


# -- sensitive -----------------------------------------------------------------------------------


def test_sensitive_inputs_are_redacted_in_dumps() -> None:
    specs = {"token": Input(str, sensitive=True), "user": Input(str, default="ann")}
    values = check(specs, {"token": "s3cr3t"})
    assert values.token == "s3cr3t"  # type: ignore[attr-defined]
    assert dump(values, specs) == {"token": REDACTED, "user": "ann"}


def test_a_missing_sensitive_input_stays_none() -> None:
    specs = {"token": Input(str, sensitive=True, required=False)}
    assert dump(check(specs, {}), specs) == {"token": None}


def test_redact_and_scrub() -> None:
    specs = {"token": Input(str, sensitive=True), "keys": Input(dict, sensitive=True)}
    raw = {"token": "s3cr3t", "keys": {"a": 1}, "other": 1}
    assert redact(raw, specs) == {"token": REDACTED, "keys": REDACTED, "other": 1}
    secrets = sensitive_values(raw, specs)
    assert "s3cr3t" in secrets
    assert scrub("failed with token s3cr3t", secrets) == f"failed with token {REDACTED}"


def test_a_rejected_sensitive_value_is_not_echoed() -> None:
    error = rejected({"pin": Input(str, sensitive=True, pattern=r"^\d{4}$")}, {"pin": "hunter2"})
    assert "hunter2" not in str(error)


# -- option names --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "option"),
    [("days_old", "--days-old"), ("daysOld", "--days-old"), ("n", "--n"), ("dry_run", "--dry-run")],
)
def test_option_names(key: str, option: str) -> None:
    assert option_name(key) == option
