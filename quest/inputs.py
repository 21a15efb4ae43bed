"""Typed inputs: declared with :class:`Input`, validated by a pydantic model built per script."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

from .errors import InvalidDefinition, InvalidInputs

REDACTED = "***"


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


@dataclass(frozen=True, slots=True)
class Input:
    """One input of a script.

    ``type`` is ``int``, ``float``, ``str``, ``bool``, ``date``, ``datetime``, ``dict`` or
    ``list`` (JSON), or a list of allowed values (a choice). An input without a default is
    required unless ``required=False`` is given, in which case it is ``None`` when omitted.
    ``validator`` is called with the parsed value after the type and bounds are checked; it
    returns the value to use or raises :class:`ValueError`, whose message becomes the input error.
    """

    type: Any = str
    default: Any = MISSING
    description: str = ""
    required: bool | None = None
    sensitive: bool = False
    min: float | None = None
    max: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    choices: tuple[Any, ...] | None = field(default=None)
    validator: Callable[[Any], Any] | None = None

    def __post_init__(self) -> None:
        kind = self.type
        if isinstance(kind, list | tuple):
            if not kind:
                raise InvalidDefinition("a choice input needs at least one value")
            object.__setattr__(self, "choices", tuple(kind))
            object.__setattr__(self, "type", type(kind[0]))
        elif isinstance(kind, str) and kind in _SAILS_TYPES:
            object.__setattr__(self, "type", _SAILS_TYPES[kind])
        elif kind not in _TYPE_NAMES:
            raise InvalidDefinition(f"type {kind!r} is not supported; use {VALID_TYPES}")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise InvalidDefinition(
                    f"pattern {self.pattern!r} is not a regular expression: {exc}"
                ) from None
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InvalidDefinition(f"min ({self.min}) is greater than max ({self.max})")
        if self.required and self.default is not MISSING:
            raise InvalidDefinition("an input cannot be both required and have a default")

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> Input:
        """Build an input from a Sails-style mapping (``type``, ``defaultsTo``, ``isIn``...)."""
        aliases = {
            "defaultsTo": "default",
            "isIn": "choices",
            "minLength": "min_length",
            "maxLength": "max_length",
            "regex": "pattern",
        }
        data = {aliases.get(k, k): v for k, v in spec.items()}
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidDefinition(
                f"unknown input key {unknown[0]!r}; valid keys: {', '.join(sorted(known))}"
            )
        if data.get("type") == "number" and isinstance(data.get("default"), int):
            data["type"] = int
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
        if self.choices is not None:
            base: Any = Literal[self.choices]
        else:
            base = {dict: dict[str, Any], list: list[Any]}.get(self.type, self.type)
        if self.validator is not None:
            return Annotated[base, AfterValidator(self.validator)]
        return base

    def field_info(self) -> Any:
        constraints: dict[str, Any] = {}
        numeric = self.type in (int, float)
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


class Inputs(BaseModel):
    """The validated inputs of one run; attribute access by input name."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


_MODELS: dict[tuple[tuple[str, Input], ...], type[Inputs]] = {}


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


def _build_model(name: str, inputs: Mapping[str, Input]) -> type[Inputs]:
    fields: dict[str, Any] = {}
    for key, spec in inputs.items():
        annotation = spec.annotation()
        if not spec.is_required and spec.default is MISSING:
            annotation = annotation | None
        fields[key] = (annotation, spec.field_info())
    model_name = "".join(part.title() for part in re.split(r"[-_]", name) if part) + "Inputs"
    model: type[Inputs] = create_model(model_name, __base__=Inputs, **fields)
    for key, spec in inputs.items():
        if spec.default is MISSING:
            continue
        try:
            model.__pydantic_validator__.validate_assignment(
                model.model_construct(), key, spec.default
            )
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            raise InvalidDefinition(
                f"default {spec.default!r} is invalid: {reason}", key=f"inputs.{key}"
            ) from None
    return model


def option_name(key: str) -> str:
    """``days_old`` and ``daysOld`` both give ``--days-old``."""
    kebab = re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", key).replace("_", "-").lower()
    return f"--{kebab}"


def validate(
    model: type[Inputs],
    specs: Mapping[str, Input],
    raw: Mapping[str, Any],
    *,
    timezone: tzinfo | None = None,
) -> Inputs:
    """Validate *raw* against *model*; naive datetimes are read in *timezone*."""
    data = dict(raw)
    for key, spec in specs.items():
        value = data.get(key)
        if spec.type is datetime and isinstance(value, datetime) and value.tzinfo is None:
            data[key] = value.replace(tzinfo=timezone)
        elif spec.type in (dict, list) and isinstance(value, str):
            data[key] = _load_json(key, value)
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        raise _inputs_error(exc, specs) from None
    updates = {}
    for key, spec in specs.items():
        value = getattr(validated, key)
        if spec.type is datetime and isinstance(value, datetime) and value.tzinfo is None:
            updates[key] = value.replace(tzinfo=timezone)
    return validated.model_copy(update=updates) if updates else validated


def _load_json(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputs(
            f"Invalid value for {option_name(key)}: "
            f"not valid JSON ({exc.msg} at position {exc.pos})",
            errors=[(key, "not valid JSON")],
        ) from None


def _inputs_error(exc: ValidationError, specs: Mapping[str, Input]) -> InvalidInputs:
    problems: list[tuple[str, str]] = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else "?"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown input; valid inputs: " + (", ".join(specs) or "none")
        elif error["type"] == "missing":
            message = "is required"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        problems.append((key, message))
    lines = [f"{option_name(key)} ({key}): {message}" for key, message in problems]
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
