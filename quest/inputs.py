"""Typed inputs: declared with :class:`Input`, validated by a pydantic model built per script.

Every value that validates can be stored in the JobLog on SQLite and PostgreSQL:

- an ``int`` input holds a 64-bit signed integer (:data:`INT_MIN` .. :data:`INT_MAX`);
- a ``float`` input is finite unless declared with ``allow_nan=True``; then NaN and infinities
  are accepted and stored as the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` (which
  validate back to the same floats when a queued run starts);
- a JSON input (``dict``/``list``) holds objects with text keys, lists, text, ``true``/``false``,
  ``null``, 64-bit integers and finite floats, nested at most :data:`MAX_JSON_DEPTH` levels; with
  ``allow_nan=True`` its NaN and infinities become those same strings in the value the script
  gets, so a queued run sees exactly what a direct run sees;
- text holds no lone surrogate (it must be encodable as UTF-8).

Error messages name the input and its option and never show a sensitive value; a long value is
shown cut, with its length.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    create_model,
)

from .errors import InvalidDefinition, InvalidInputs
from .results import clip, safe_repr

REDACTED = "***"

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
MAX_JSON_DEPTH = 64
SHOWN_CHARS = 60
MAX_MESSAGE = 300
MAX_ERRORS_SHOWN = 10
HIDDEN = "the value given (sensitive, not shown)"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()

_SAILS_TYPES: dict[str, type] = {
    "number": float,
    "string": str,
    "boolean": bool,
    "json": dict,
    "ref": list,
}
_TYPE_NAMES: dict[type, str] = {
    int: "integer",
    float: "number",
    str: "text",
    bool: "boolean",
    date: "date",
    datetime: "datetime",
    dict: "JSON object",
    list: "JSON list",
}
VALID_TYPES = "int, float, str, bool, date, datetime, dict, list or a list of choices"

#: Sails spellings of :class:`Input` keys, accepted as keyword arguments and in mappings.
SAILS_INPUT_KEYS = {
    "defaultsTo": "default",
    "isIn": "choices",
    "minLength": "min_length",
    "maxLength": "max_length",
    "regex": "pattern",
}
_UNSET: dict[str, Any] = {
    "default": MISSING,
    "choices": None,
    "min_length": None,
    "max_length": None,
    "pattern": None,
}
_LENGTH_TYPES = (str, dict, list)
_RANGE = f"{INT_MIN}..{INT_MAX} (a 64-bit integer)"


def describe_value(value: Any, sensitive: bool = False) -> str:
    """*value* as an error message shows it: hidden when sensitive, cut when long."""
    if sensitive:
        return HIDDEN
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        return f"{value[:SHOWN_CHARS]!r}… ({len(value)} characters)"
    return clip(safe_repr(value, limit=10**7), SHOWN_CHARS)


def _bad(key: str, message: str) -> InvalidDefinition:
    return InvalidDefinition(message, key=f"Input.{key}")


def _valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _finite(value: int | float) -> bool:
    if isinstance(value, int):
        return value.bit_length() <= 1023
    return math.isfinite(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True, init=False)
class Input:
    """One input of a script.

    ``type`` is ``int``, ``float``, ``str``, ``bool``, ``date``, ``datetime``, ``dict`` or
    ``list`` (JSON), or a list of allowed values (a choice). An input without a default is
    required unless ``required=False`` is given, in which case it is ``None`` when omitted.
    ``min``/``max`` bound a number's value and the length of text and JSON. ``validator`` is
    called with the parsed value after the type and bounds are checked; it returns the value
    to use or raises :class:`ValueError`, whose message becomes the input error. ``allow_nan``
    lets a float or JSON input hold NaN and infinities. The Sails spellings ``defaultsTo``,
    ``isIn``, ``minLength``, ``maxLength`` and ``regex`` are accepted too.
    """

    type: Any
    default: Any
    description: str
    required: bool | None
    sensitive: bool
    min: float | None
    max: float | None
    min_length: int | None
    max_length: int | None
    pattern: str | None
    choices: tuple[Any, ...] | None
    validator: Callable[[Any], Any] | None
    allow_nan: bool

    def __init__(
        self,
        type: Any = str,
        default: Any = MISSING,
        description: str = "",
        required: bool | None = None,
        sensitive: bool = False,
        min: float | None = None,
        max: float | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        pattern: str | None = None,
        choices: Sequence[Any] | None = None,
        validator: Callable[[Any], Any] | None = None,
        allow_nan: bool = False,
        **sails: Any,
    ) -> None:
        values: dict[str, Any] = {
            "type": type,
            "default": default,
            "description": description,
            "required": required,
            "sensitive": sensitive,
            "min": min,
            "max": max,
            "min_length": min_length,
            "max_length": max_length,
            "pattern": pattern,
            "choices": choices,
            "validator": validator,
            "allow_nan": allow_nan,
        }
        for alias, value in sails.items():
            name = SAILS_INPUT_KEYS.get(alias)
            if name is None:
                valid = ", ".join([*values, *SAILS_INPUT_KEYS])
                raise _bad(alias, f"unknown key {alias!r}; valid keys: {valid}")
            if values[name] is not _UNSET[name]:
                raise _bad(alias, f"{alias} and {name} are one key; give only one of them")
            values[name] = value
        for name, value in values.items():
            object.__setattr__(self, name, value)
        self._check()

    def _check(self) -> None:
        kind = self.type
        if isinstance(kind, list | tuple):
            if not kind:
                raise _bad("type", "a choice input needs at least one value")
            if self.choices is not None:
                raise _bad("choices", "give the allowed values once: as the type or as choices")
            object.__setattr__(self, "choices", tuple(kind))
            first = kind[0]
            kind = first.__class__ if _is_choice(first) else str
        elif isinstance(kind, str):
            if kind not in _SAILS_TYPES:
                raise _bad("type", f"type {clip(repr(kind))} is not supported; use {VALID_TYPES}")
            number_default = isinstance(self.default, int) and not isinstance(self.default, bool)
            kind = int if kind == "number" and number_default else _SAILS_TYPES[kind]
        elif not (isinstance(kind, type) and kind in _TYPE_NAMES):
            raise _bad("type", f"type {safe_repr(kind, 80)} is not supported; use {VALID_TYPES}")
        object.__setattr__(self, "type", kind)
        for flag in ("sensitive", "allow_nan"):
            if not isinstance(getattr(self, flag), bool):
                raise _bad(
                    flag, f"{flag} is True or False, not {safe_repr(getattr(self, flag), 40)}"
                )
        if self.required is not None and not isinstance(self.required, bool):
            raise _bad("required", f"required is True or False, not {safe_repr(self.required, 40)}")
        if not isinstance(self.description, str):
            raise _bad("description", f"description is text, not {kind_of(self.description)}")
        if not _valid_text(self.description):
            raise _bad("description", "description holds a lone surrogate; it must be valid text")
        self._check_choices(kind)
        self._check_bounds(kind)
        if self.pattern is not None:
            self._check_pattern(kind)
        if self.validator is not None and not callable(self.validator):
            raise _bad("validator", "validator must be a function taking the value")
        if self.allow_nan and kind not in (float, dict, list):
            raise _bad("allow_nan", "allow_nan applies to float and JSON (dict, list) inputs")
        if self.required and self.default is not MISSING:
            raise _bad("required", "an input cannot be both required and have a default")

    def _check_choices(self, kind: type) -> None:
        if self.choices is None:
            return
        if isinstance(self.choices, str | bytes) or not isinstance(self.choices, list | tuple):
            raise _bad("choices", "choices is a list of the allowed values")
        if kind in (dict, list, date, datetime):
            raise _bad(
                "choices",
                f"a {_TYPE_NAMES[kind]} input cannot have choices; choices are text, numbers "
                "or booleans",
            )
        if not self.choices:
            raise _bad("choices", "choices needs at least one value")
        for value in self.choices:
            if not _is_choice(value):
                raise _bad(
                    "choices",
                    f"choice {describe_value(value)} is not allowed; a choice is text, a "
                    "64-bit integer, a finite number or a boolean",
                )
        object.__setattr__(self, "choices", tuple(self.choices))

    def _check_bounds(self, kind: type) -> None:
        for name in ("min", "max"):
            value = getattr(self, name)
            if value is None:
                continue
            if self.choices is not None or kind not in (int, float, *_LENGTH_TYPES):
                raise _bad(
                    name,
                    f"{name} applies to numbers (their value) and to text and JSON inputs "
                    "(their length), not to this input",
                )
            if not _is_number(value) or not _finite(value):
                raise _bad(name, f"{name} must be a finite number, not {describe_value(value)}")
            if kind is int and not INT_MIN <= value <= INT_MAX:
                raise _bad(name, f"{name} of an int input must be within {_RANGE}")
            if kind in _LENGTH_TYPES and (value < 0 or value != int(value)):
                raise _bad(name, f"{name} of a {_TYPE_NAMES[kind]} input is a length: 0 or more")
        for name in ("min_length", "max_length"):
            value = getattr(self, name)
            if value is None:
                continue
            if kind not in _LENGTH_TYPES or self.choices is not None:
                raise _bad(name, f"{name} applies to text and JSON inputs")
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise _bad(
                    name, f"{name} must be an integer, 0 or more, not {describe_value(value)}"
                )
        if self.min is not None and self.max is not None and self.min > self.max:
            raise _bad("min", f"min ({self.min}) is greater than max ({self.max})")
        low, high = self.min_length, self.max_length
        if low is not None and high is not None and low > high:
            raise _bad("min_length", f"min_length ({low}) is greater than max_length ({high})")

    def _check_pattern(self, kind: type) -> None:
        if not isinstance(self.pattern, str):
            raise _bad(
                "pattern", f"pattern is a regular expression (text), not {kind_of(self.pattern)}"
            )
        if kind is not str or self.choices is not None:
            raise _bad("pattern", "pattern applies to text inputs")
        try:
            re.compile(self.pattern)
        except (re.error, OverflowError, RecursionError, ValueError, MemoryError) as exc:
            raise _bad(
                "pattern",
                f"pattern {describe_value(self.pattern)} is not a regular expression Python can "
                f"compile: {clip(str(exc), 120)}",
            ) from None

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> Input:
        """Build an input from a Sails-style mapping (``type``, ``defaultsTo``, ``isIn``...)."""
        known = list(cls.__dataclass_fields__)
        data: dict[str, Any] = {}
        given: dict[str, Any] = {}
        for key, value in spec.items():
            name = SAILS_INPUT_KEYS.get(key, key) if isinstance(key, str) else key
            if name not in known:
                valid = ", ".join([*known, *SAILS_INPUT_KEYS])
                raise _bad(str(key), f"unknown input key {safe_repr(key, 40)}; valid keys: {valid}")
            if name in data:
                raise _bad(str(key), f"{given[name]} and {key} are one key; give only one of them")
            data[name] = value
            given[name] = key
        return cls(**data)

    @property
    def is_required(self) -> bool:
        if self.required is not None:
            return self.required
        return self.default is MISSING

    @property
    def type_name(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        return _TYPE_NAMES[self.type]

    def annotation(self) -> Any:
        base: Any
        if self.choices is not None:
            base = Literal[self.choices]
        elif self.type is int:
            base = Annotated[int, BeforeValidator(_int_before), AfterValidator(_int_range)]
        elif self.type is float:
            finite = Annotated[float, Field(allow_inf_nan=self.allow_nan)]
            base = Annotated[finite, BeforeValidator(_float_before)]
            if self.allow_nan:
                base = Annotated[base, PlainSerializer(_float_json, when_used="json")]
        elif self.type is str:
            base = Annotated[str, AfterValidator(_text)]
        elif self.type is datetime:
            base = Annotated[datetime, AfterValidator(_in_utc_range)]
        elif self.type in (dict, list):
            inner = dict[str, Any] if self.type is dict else list[Any]
            base = Annotated[inner, BeforeValidator(_JsonCheck(self.type, self.allow_nan))]
        else:
            base = self.type
        if self.validator is not None:
            return Annotated[base, AfterValidator(self.validator)]
        return base

    def field_info(self) -> Any:
        constraints: dict[str, Any] = {}
        numeric = self.type in (int, float) and self.choices is None
        if self.min is not None:
            constraints["ge" if numeric else "min_length"] = self.min if numeric else int(self.min)
        if self.max is not None:
            constraints["le" if numeric else "max_length"] = self.max if numeric else int(self.max)
        if self.min_length is not None:
            constraints["min_length"] = self.min_length
        if self.max_length is not None:
            constraints["max_length"] = self.max_length
        if self.pattern is not None:
            constraints["pattern"] = self.pattern
        if self.is_required:
            default: Any = ...
        elif self.default is MISSING:
            default = None
        else:
            default = self.default
        return Field(default, description=self.description or None, **constraints)


def kind_of(value: Any) -> str:
    return type(value).__name__


def _is_choice(value: Any) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, int):
        return INT_MIN <= value <= INT_MAX
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) and _valid_text(value)


# -- value checks, run by pydantic ----------------------------------------------------------------


def _int_before(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT_MIN <= value <= INT_MAX:
            raise ValueError(f"is out of range: an int input holds {_RANGE}")
    elif isinstance(value, str):
        digits = value.strip().lstrip("+-").replace("_", "").lstrip("0")
        if len(digits) > 19 and digits.isdigit():
            raise ValueError(f"is out of range: an int input holds {_RANGE}")
    return value


def _int_range(value: int) -> int:
    if not INT_MIN <= value <= INT_MAX:
        raise ValueError(f"is out of range: an int input holds {_RANGE}")
    return value


def _float_before(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1023:
        raise ValueError("is out of range for a float")
    if isinstance(value, str) and len(value) > 1000:
        raise ValueError(f"is not a number of a sensible length ({len(value)} characters)")
    return value


def _float_json(value: float) -> Any:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _text(value: str) -> str:
    if not _valid_text(value):
        raise ValueError("holds a lone surrogate; give valid Unicode text")
    return value


def _in_utc_range(value: datetime) -> datetime:
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is outside the range of dates that can be stored in UTC") from None
    return value


class _NotFinite(Exception):
    pass


def _reject_constant(name: str) -> Any:
    raise _NotFinite(name)


class _JsonCheck:
    """Parse JSON text if given and check that the value is storable JSON (see the module)."""

    def __init__(self, kind: type, allow_nan: bool) -> None:
        self.kind = kind
        self.allow_nan = allow_nan

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            value = load_json(value, allow_nan=self.allow_nan)
        if isinstance(value, tuple) and self.kind is list:
            value = list(value)
        if not isinstance(value, self.kind):
            want = _TYPE_NAMES[self.kind]
            names: dict[type, str] = {dict: "an object", list: "a list"}
            got = names.get(type(value), kind_of(value))
            raise ValueError(f"expected a {want}, got {got}")
        return self._value(value, 0, "")

    def _value(self, value: Any, depth: int, where: str) -> Any:
        if value is None or isinstance(value, bool | str):
            if isinstance(value, str) and not _valid_text(value):
                raise ValueError(f"holds text with a lone surrogate{_at(where)}")
            return value
        if isinstance(value, int):
            if not INT_MIN <= value <= INT_MAX:
                raise ValueError(
                    f"holds an integer out of range{_at(where)}; JSON inputs hold {_RANGE}"
                )
            return value
        if isinstance(value, float):
            if math.isfinite(value):
                return value
            if not self.allow_nan:
                raise ValueError(
                    f"holds NaN or Infinity{_at(where)}; give allow_nan=True to accept them"
                )
            return _float_json(value)
        if isinstance(value, dict | list | tuple):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(
                    f"is nested more than {MAX_JSON_DEPTH} levels deep (or holds itself)"
                )
            if isinstance(value, dict):
                out = {}
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise ValueError(
                            f"has a key that is not text{_at(where)}: {describe_value(key)}"
                        )
                    out[key] = self._value(item, depth + 1, f"{where}.{clip(key, 20)}")
                return out
            return [self._value(item, depth + 1, f"{where}[{i}]") for i, item in enumerate(value)]
        raise ValueError(
            f"holds a {kind_of(value)}{_at(where)}; JSON holds objects, lists, text, numbers, "
            "true, false and null"
        )


def _at(where: str) -> str:
    return f" at {clip('$' + where, 60)}" if where else ""


def load_json(text: str, *, allow_nan: bool = False) -> Any:
    """Parse JSON text from the command line or the API; :class:`ValueError` says why not."""
    try:
        return json.loads(text, parse_constant=None if allow_nan else _reject_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"is not valid JSON ({exc.msg} at position {exc.pos})") from None
    except _NotFinite:
        raise ValueError("holds NaN or Infinity; give allow_nan=True to accept them") from None
    except RecursionError:
        raise ValueError(f"is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError:
        raise ValueError(f"holds an integer out of range; JSON inputs hold {_RANGE}") from None


class Inputs(BaseModel):
    """The validated inputs of one run; attribute access by input name."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, regex_engine="python-re"
    )


_MODELS: dict[tuple[tuple[str, Input], ...], type[Inputs]] = {}
_RESERVED = frozenset(dir(Inputs))


def check_name(key: Any) -> None:
    """An input name must be a Python identifier that the inputs object does not already use."""
    shown = safe_repr(key, 40)
    if not isinstance(key, str) or not key.isidentifier():
        raise InvalidDefinition(
            f"input name {shown} is not a Python identifier (letters, digits and _, "
            "not starting with a digit)",
            key=f"inputs.{clip(str(key), 40)}",
        )
    if key.startswith("_") or key.startswith("model_") or key in _RESERVED:
        raise InvalidDefinition(
            f"input name {shown} is reserved (names starting with _ or model_ and the names of "
            f"the inputs object's own methods); rename it, for example to {_rename(key)!r}",
            key=f"inputs.{key}",
        )


def _rename(key: str) -> str:
    bare = key.lstrip("_")
    if bare and bare.isidentifier() and not bare.startswith("model_") and bare not in _RESERVED:
        return bare
    return f"{bare or 'value'}_value".removeprefix("model_")


def build_model(name: str, inputs: Mapping[str, Input]) -> type[Inputs]:
    """The pydantic model that validates *inputs*, with every default checked against it.

    Scripts declaring the same inputs share one model, so a project of many similar scripts
    builds few.
    """
    try:
        key: tuple[tuple[str, Input], ...] | None = tuple(inputs.items())
        cached = _MODELS.get(key)  # type: ignore[arg-type]
    except TypeError:
        key, cached = None, None
    if cached is not None:
        return cached
    model = _build_model(name, inputs)
    if key is not None:
        _MODELS[key] = model
    return model


def _create(model_name: str, fields: dict[str, Any]) -> type[Inputs]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model: type[Inputs] = create_model(model_name, __base__=Inputs, **fields)
    return model


def _build_model(name: str, inputs: Mapping[str, Input]) -> type[Inputs]:
    fields: dict[str, Any] = {}
    for key, spec in inputs.items():
        annotation = spec.annotation()
        if not spec.is_required and spec.default is MISSING:
            annotation = annotation | None
        fields[key] = (annotation, spec.field_info())
    model_name = "".join(part.title() for part in re.split(r"[-_]", name) if part) + "Inputs"
    try:
        model = _create(model_name or "ScriptInputs", fields)
    except Exception:
        for key, field in fields.items():
            try:
                _create("OneInput", {key: field})
            except Exception as exc:
                first = safe_repr(exc, 10**4).splitlines()[-1] if str(exc) else kind_of(exc)
                raise InvalidDefinition(
                    f"this input cannot be validated: {clip(first, 200)}", key=f"inputs.{key}"
                ) from None
        raise
    for key, spec in inputs.items():
        if spec.default is MISSING:
            continue
        try:
            model.__pydantic_validator__.validate_assignment(
                model.model_construct(), key, spec.default
            )
        except ValidationError as exc:
            reason = _reason(exc.errors()[0], spec)
            shown = (
                "the default (sensitive, not shown)"
                if spec.sensitive
                else f"default {describe_value(spec.default)}"
            )
            raise InvalidDefinition(f"{shown} is invalid: {reason}", key=f"inputs.{key}") from None
    return model


def option_name(key: str) -> str:
    """``days_old`` and ``daysOld`` both give ``--days-old``."""
    kebab = re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", str(key)).replace("_", "-").lower()
    return f"--{kebab}"


def validate(
    model: type[Inputs],
    specs: Mapping[str, Input],
    raw: Mapping[str, Any],
    *,
    timezone: tzinfo | None = None,
) -> Inputs:
    """Validate *raw* against *model*; naive datetimes are read in *timezone*."""
    if not isinstance(raw, Mapping):
        raise InvalidInputs(
            f"inputs are a dict of name: value, not {kind_of(raw)}",
            errors=[("inputs", f"inputs are a dict of name: value, not {kind_of(raw)}")],
        )
    data = dict(raw)
    for key, spec in specs.items():
        value = data.get(key)
        if spec.type is datetime and isinstance(value, datetime) and value.tzinfo is None:
            data[key] = value.replace(tzinfo=timezone)
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        raise _inputs_error(exc, specs) from None
    updates = {}
    for key, spec in specs.items():
        value = getattr(validated, key)
        if spec.type is datetime and isinstance(value, datetime) and value.tzinfo is None:
            updates[key] = value.replace(tzinfo=timezone)
            try:
                _in_utc_range(updates[key])
            except ValueError as exc:
                message = str(exc)
                raise InvalidInputs(
                    f"Invalid inputs:\n  {option_name(key)} ({key}): {message}",
                    errors=[(key, message)],
                ) from None
    return validated.model_copy(update=updates) if updates else validated


def parse_text(spec: Input, text: str) -> Any:
    """A value typed on the command line, parsed for *spec*; :class:`ValueError` says why not.

    The message never holds a sensitive value and shows a long one cut.
    """
    shown = describe_value(text, spec.sensitive)
    if spec.choices is not None or spec.type in (str, bool):
        return text
    if spec.type is int:
        stripped = text.strip()
        if not re.fullmatch(r"[+-]?\d+", stripped, flags=re.ASCII):
            raise ValueError(f"{shown} is not an integer")
        if len(stripped.lstrip("+-").lstrip("0")) > 19 or not INT_MIN <= int(stripped) <= INT_MAX:
            raise ValueError(f"{shown} is out of range: an int input holds {_RANGE}")
        return int(stripped)
    if spec.type is float:
        if len(text) > 1000:
            raise ValueError(f"{shown} is not a number of a sensible length")
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{shown} is not a number") from None
    if spec.type in (date, datetime):
        try:
            return date.fromisoformat(text) if spec.type is date else datetime.fromisoformat(text)
        except ValueError:
            example = "2026-03-07" if spec.type is date else "2026-03-07T08:00:00+00:00"
            what = "date" if spec.type is date else "date-time"
            raise ValueError(f"{shown} is not an ISO 8601 {what} (for example {example})") from None
    try:
        return _JsonCheck(spec.type, spec.allow_nan)(text)
    except ValueError as exc:
        what = "the value given" if spec.sensitive else "the JSON given"
        raise ValueError(f"{what} {exc}") from None


def _reason(error: Mapping[str, Any], spec: Input | None) -> str:
    kind = error["type"]
    message = str(error["msg"])
    if kind == "missing":
        return "is required"
    if kind == "int_parsing_size":
        return f"is out of range: an int input holds {_RANGE}"
    if kind == "finite_number":
        return "must be a finite number (NaN and infinities need allow_nan=True)"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if spec is not None and spec.sensitive and kind in ("value_error", "assertion_error"):
        value = error.get("input")
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            secret = value if isinstance(value, str) else safe_repr(value)
            if len(secret) >= 3:
                message = message.replace(secret, REDACTED)
    return clip(message, MAX_MESSAGE)


def _inputs_error(exc: ValidationError, specs: Mapping[str, Input]) -> InvalidInputs:
    problems: list[tuple[str, str]] = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else "?"
        if error["type"] == "extra_forbidden":
            known = ", ".join(specs) or "none"
            message = f"unknown input; valid inputs: {clip(known, MAX_MESSAGE)}"
            key = clip(key, SHOWN_CHARS)
        else:
            message = _reason(error, specs.get(key))
        problems.append((key, message))
    lines = [f"{option_name(key)} ({key}): {message}" for key, message in problems]
    if len(lines) > MAX_ERRORS_SHOWN:
        lines = [*lines[:MAX_ERRORS_SHOWN], f"... and {len(lines) - MAX_ERRORS_SHOWN} more"]
    return InvalidInputs("Invalid inputs:\n  " + "\n  ".join(lines), errors=problems)


def redact(values: Mapping[str, Any], specs: Mapping[str, Input]) -> dict[str, Any]:
    """Return *values* with every sensitive input replaced by ``***``."""
    return {
        key: (REDACTED if key in specs and specs[key].sensitive and value is not None else value)
        for key, value in values.items()
    }


def dump(inputs: Inputs, specs: Mapping[str, Input]) -> dict[str, Any]:
    """JSON-ready, redacted inputs for signals, logs and the JobLog."""
    return redact(inputs.model_dump(mode="json"), specs)


def secrets(inputs: Inputs, specs: Mapping[str, Input]) -> dict[str, Any]:
    """The sensitive inputs given, JSON-ready, to keep beside a queued run."""
    data = inputs.model_dump(mode="json")
    return {
        key: data[key]
        for key, spec in specs.items()
        if spec.sensitive and data.get(key) is not None
    }


def sensitive_values(inputs: Inputs | Mapping[str, Any], specs: Mapping[str, Input]) -> list[Any]:
    """The sensitive values given, to scrub from text (see :mod:`quest.redact`)."""
    from . import redact

    return redact.sensitive_values(inputs, specs)


def scrub(text: str, secrets: Sequence[Any]) -> str:
    """*text* with every rendering of *secrets* replaced by ``***`` (see :mod:`quest.redact`)."""
    from . import redact

    return redact.scrub(text, secrets)
