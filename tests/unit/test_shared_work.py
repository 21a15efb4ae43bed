"""Work shared across scripts so a project of thousands lists and loads fast, and still exact:
cron words from one message catalogue, quest blocks validated once per declaration, signatures
read from code objects."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cron_descriptor import Options, get_description

from quest import InvalidDefinition
from quest import schedule as schedule_module
from quest.definition import _check_signature, _takes_two, parse_block

EXPRESSIONS = [
    "* * * * *",
    "0 3 * * *",
    "30 8 * * 1",
    "*/15 9-17 * * 1-5",
    "5,35 */2 1-15 JAN-MAR MON-FRI",
    "0 0 1 */3 *",
    "15 14 1 * *",
    "0 22 * * 1-5",
    "23 0-20/2 * * *",
    "0 0,12 1 */2 *",
    "*/10 * * * * *",
    "0 4 8-14 * *",
]


@pytest.fixture
def fresh_describer() -> Iterator[None]:
    schedule_module._cron_describer.cache_clear()
    schedule_module._descriptor.cache_clear()
    yield
    schedule_module._cron_describer.cache_clear()
    schedule_module._descriptor.cache_clear()


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_cron_words_are_cron_descriptor_s(fresh_describer: None, expression: str) -> None:
    expected = get_description(expression, Options(locale_code="en_US"))
    assert schedule_module._descriptor(expression) == expected


def test_the_shared_catalogue_is_read_once(
    fresh_describer: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cron_descriptor import GetText as module

    reads: list[str] = []
    load = module.GetText.load_locale

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        reads.append(args[0])
        return load(self, *args, **kwargs)

    monkeypatch.setattr(module.GetText, "load_locale", counted)
    for expression in EXPRESSIONS:
        schedule_module._descriptor(expression)
    assert len(reads) <= 2  # the shared catalogue, and the plain call that checks it


def test_another_cron_descriptor_falls_back_to_the_plain_call(
    fresh_describer: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cron_descriptor import ExpressionParser as module

    monkeypatch.delattr(module, "ExpressionParser")
    assert schedule_module._cron_describer().__name__ == "plain"
    for expression in EXPRESSIONS[:4]:
        expected = get_description(expression, Options(locale_code="en_US"))
        assert schedule_module._descriptor(expression) == expected


# -- quest blocks --------------------------------------------------------------------------------


def test_equal_declarations_share_one_validated_block() -> None:
    first = parse_block({"cron": "0 3 * * *", "timezone": "Europe/Paris", "attempts": 3})
    second = parse_block({"cron": "0 3 * * *", "timezone": "Europe/Paris", "attempts": 3})
    assert first is second
    assert parse_block({"cron": "0 4 * * *"}) is not first


def test_values_validation_tells_apart_are_not_shared() -> None:
    whole = parse_block({"jitter": 2})
    fraction = parse_block({"jitter": 2.5})
    assert whole is not None and fraction is not None
    assert whole.jitter == timedelta(seconds=2)
    assert fraction.jitter == timedelta(seconds=2.5)
    assert parse_block({"without_overlapping": True}) is not parse_block({"without_overlapping": 1})
    assert parse_block({"attempts": 2}) is not None
    with pytest.raises(InvalidDefinition):
        parse_block({"attempts": "two"})


def test_key_order_is_kept_per_declaration() -> None:
    one = parse_block({"inputs": {"a": 1, "b": 2}})
    other = parse_block({"inputs": {"b": 2, "a": 1}})
    assert one is not None and other is not None
    assert list(one.inputs) == ["a", "b"]
    assert list(other.inputs) == ["b", "a"]


def test_a_block_with_other_values_is_validated_each_time() -> None:
    first = parse_block({"interval": timedelta(hours=1)})
    second = parse_block({"interval": timedelta(hours=1)})
    assert first is not None and second is not None
    assert first is not second
    assert first == second


def test_an_invalid_block_fails_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidDefinition, match="cron"):
            parse_block({"cron": "61 * * * *"})


def test_the_interval_note_is_kept_on_a_shared_block() -> None:
    first = parse_block({"interval": 300000})
    second = parse_block({"interval": 300000})
    assert first is second
    assert second is not None and second.interval_note is not None


# -- signatures ----------------------------------------------------------------------------------


def two(inputs: Any, ctx: Any) -> None: ...
def defaults(inputs: Any, ctx: Any = None, extra: int = 1) -> None: ...
def star(*args: Any) -> None: ...
def one_and_star(inputs: Any, *rest: Any) -> None: ...
def keyword_default(inputs: Any, ctx: Any, *, flag: bool = False) -> None: ...
def positional_only(inputs: Any, ctx: Any, /) -> None: ...
def one(inputs: Any) -> None: ...
def three(inputs: Any, ctx: Any, more: Any) -> None: ...
def keyword_required(inputs: Any, ctx: Any, *, flag: bool) -> None: ...
def none() -> None: ...
def keywords(**kwargs: Any) -> None: ...
async def coroutine(inputs: Any, ctx: Any) -> None: ...


@functools.wraps(one)
def wrapped_one(*args: Any) -> None: ...


FUNCTIONS = [two, defaults, star, one_and_star, keyword_default, positional_only, one, three,
             keyword_required, none, keywords, coroutine, wrapped_one, lambda a, b: None,
             lambda a: None]  # fmt: skip


@pytest.mark.parametrize("func", FUNCTIONS)
def test_the_code_object_agrees_with_inspect_signature(func: Any) -> None:
    try:
        inspect.signature(func).bind(None, None)
        accepted = True
    except TypeError:
        accepted = False
    if _takes_two(func):
        assert accepted
    if accepted:
        _check_signature(func)
    else:
        with pytest.raises(InvalidDefinition, match="takes two arguments"):
            _check_signature(func)


def test_plain_two_argument_functions_take_the_fast_path() -> None:
    assert _takes_two(two) and _takes_two(defaults) and _takes_two(star)
    assert not _takes_two(wrapped_one)  # __wrapped__: inspect.signature decides
    assert not _takes_two(one) and not _takes_two(keyword_required)
