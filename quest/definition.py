"""Script declarations: the ``@script`` decorator, the quest block and the :class:`Script` value."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FunctionType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from .enums import BackoffType, CatchUp, Isolation
from .errors import InvalidDefinition
from .inputs import Input, Inputs, build_model, check_name, option_name
from .results import clip, exception_text, safe_repr
from .timespan import MAX_SPAN, parse_timespan

if TYPE_CHECKING:
    from .schedule import Schedule

ScriptFn = Callable[..., Any]
ATTRIBUTE = "__quest_script__"

#: Upper bound of ``attempts``.
MAX_ATTEMPTS = 1_000_000
#: Upper bound of the counts of the quest block (``rate_limit.max``, ``concurrency``, ...).
MAX_COUNT = 2**31 - 1

#: Sails spellings of the ``@script`` arguments; the quest block's camelCase keys are its aliases.
SAILS_SCRIPT_KEYS = {"friendlyName": "friendly_name"}


def _span(value: Any) -> timedelta:
    return parse_timespan(value)


class _Block(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        arbitrary_types_allowed=True,
        defer_build=True,
    )


class Backoff(_Block):
    """How long to wait before the next attempt."""

    type: BackoffType = BackoffType.fixed
    delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta | None = Field(None, alias="maxDelay")
    jitter: float = Field(0.0, ge=0.0, le=1.0)

    _spans = field_validator("delay", "max_delay", mode="before")(
        lambda v: None if v is None else _span(v)
    )

    def delay_for(self, attempt: int) -> timedelta:
        """The wait after failed attempt number *attempt* (counting from 1), before jitter."""
        if self.type is BackoffType.fixed:
            wait = self.delay
        else:  # doubling, capped at MAX_SPAN so a late attempt never overflows
            factor = 2 ** min(max(0, attempt - 1), 64)
            wait = self.delay * factor if factor < MAX_SPAN / self.delay else MAX_SPAN
        if self.max_delay is not None:
            wait = min(wait, self.max_delay)
        return wait


class RateLimit(_Block):
    """At most ``max`` runs per ``per``, for the script or for each key."""

    max: int = Field(gt=0, le=MAX_COUNT)
    per: timedelta
    per_key: bool = Field(False, alias="perKey")

    _per = field_validator("per", mode="before")(_span)


class Concurrency(_Block):
    """At most ``max`` runs at once, for the script or for each key."""

    max: int = Field(gt=0, le=MAX_COUNT)
    per_key: bool = Field(False, alias="perKey")


class CatchUpPolicy(_Block):
    """What to do with slots missed while no serve was running."""

    policy: CatchUp = CatchUp.skip
    window: timedelta | None = None

    _window = field_validator("window", mode="before")(lambda v: None if v is None else _span(v))


class Keep(_Block):
    age: timedelta | None = None
    count: int | None = Field(None, gt=0, le=MAX_COUNT)

    _age = field_validator("age", mode="before")(lambda v: None if v is None else _span(v))


class Retention(_Block):
    succeeded: Keep = Keep(age=timedelta(days=30), count=1000)
    failed: Keep = Keep(age=timedelta(days=90), count=5000)


class QuestBlock(_Block):
    """When and how a script runs. Every key is optional; an absent block means on demand only."""

    interval: timedelta | None = None
    cron: str | None = Field(None, alias="cronTime")
    at: datetime | str | None = None
    timezone: str | None = None
    without_overlapping: bool = Field(True, alias="withoutOverlapping")
    lease_ttl: timedelta | None = Field(None, alias="leaseTtl")
    timeout: timedelta | None = None
    attempts: int = Field(1, gt=0, le=MAX_ATTEMPTS)
    backoff: Backoff | None = None
    jitter: timedelta | None = None
    catch_up: CatchUpPolicy = Field(CatchUpPolicy(), alias="catchUp")
    run_on_start: bool = Field(False, alias="runOnStart")
    enabled: bool = Field(True, alias="isActive")
    environments: tuple[str, ...] | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    rate_limit: RateLimit | None = Field(None, alias="rateLimit")
    concurrency: Concurrency | None = None
    retention: Retention | None = None
    discard_on: tuple[type[BaseException], ...] = Field((), alias="discardOn")
    isolation: Isolation | None = None

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, value: Any) -> Any:
        from .schedule import parse_interval

        return None if value is None else parse_interval(value)

    @field_validator("lease_ttl", "timeout", "jitter", mode="before")
    @classmethod
    def _spans(cls, value: Any) -> Any:
        return None if value is None else _span(value)

    @field_validator("lease_ttl")
    @classmethod
    def _lease_ttl(cls, value: timedelta | None) -> timedelta | None:
        from .config import LEASE_TTL_MAX, LEASE_TTL_MIN

        if value is not None and not LEASE_TTL_MIN <= value.total_seconds() <= LEASE_TTL_MAX:
            raise ValueError(
                f"a lease of {value.total_seconds():g} seconds; use between {LEASE_TTL_MIN:g} "
                f"second and a day: heartbeats go at a third of it, and a dead serve's runs "
                f"are recovered after it"
            )
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from .schedule import parse_cron

        if value is not None:
            parse_cron(value)
            value = " ".join(value.split())
        return value

    @field_validator("at")
    @classmethod
    def _at(cls, value: datetime | str | None) -> datetime | str | None:
        from .schedule import parse_at

        if value is not None:
            parse_at(value, ZoneInfo("UTC"))
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        from .schedule import parse_timezone

        if value is not None:
            parse_timezone(value)
        return value

    @field_validator("catch_up", mode="before")
    @classmethod
    def _catch_up(cls, value: Any) -> Any:
        if isinstance(value, str | CatchUp):
            return {"policy": value}
        if value is True:
            return {"policy": "once"}
        if value is False:
            return {"policy": "skip"}
        return value

    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: Any) -> Any:
        return {"max": value} if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("environments", mode="before")
    @classmethod
    def _environments(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("discard_on", mode="before")
    @classmethod
    def _discard_on(cls, value: Any) -> Any:
        items = value if isinstance(value, list | tuple) else (value,)
        for item in items:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise ValueError(
                    f"{safe_repr(item, 60)} is not an exception class; give classes like "
                    "ValueError or your own exception classes"
                )
            if not issubclass(item, Exception):
                raise ValueError(
                    f"{item.__name__} is not a subclass of Exception; KeyboardInterrupt, "
                    "SystemExit and GeneratorExit stop a run (interrupted), they cannot discard "
                    "it; give classes derived from Exception"
                )
        return tuple(items)

    @model_validator(mode="after")
    def _one_schedule(self) -> QuestBlock:
        given = [k for k in ("interval", "cron", "at") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(
                f"both {given[0]!r} and {given[1]!r} are set; a script has one schedule: "
                "interval, cron or at"
            )
        return self

    _interval_note: str | None = PrivateAttr(None)

    @model_validator(mode="wrap")
    @classmethod
    def _milliseconds(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        from .schedule import interval_note

        block = handler(data)
        raw = data.get("interval") if isinstance(data, Mapping) else None
        note = interval_note(raw) if raw is not None else None
        if note is not None and isinstance(block, QuestBlock):
            block._interval_note = note  # @script logs it, with the file and line
        return block

    @property
    def interval_note(self) -> str | None:
        """Why a bare-number interval may have been meant as milliseconds (``None`` if not)."""
        return self._interval_note

    def zone(self, default: str) -> ZoneInfo:
        from .schedule import parse_timezone

        return parse_timezone(self.timezone or default)

    def schedule(self, default_timezone: str) -> Schedule | None:
        """The schedule this block declares, or ``None`` for an on-demand script."""
        from .schedule import AtSchedule, CronSchedule, IntervalSchedule, parse_at

        zone = self.zone(default_timezone)
        if self.interval is not None:
            return IntervalSchedule(self.interval, zone)
        if self.cron is not None:
            return CronSchedule(self.cron, zone)
        if self.at is not None:
            return AtSchedule(parse_at(self.at, zone), zone)
        return None


_BLOCK_KEYS = sorted(
    {name for name in QuestBlock.model_fields}
    | {f.alias for f in QuestBlock.model_fields.values() if f.alias}
)


#: Validated quest blocks by their declaration: many scripts declare the same block.
_BLOCKS: dict[tuple[Any, ...], QuestBlock] = {}
_BLOCKS_KEPT = 4096
_PLAIN_TYPES = (str, int, float, bool, type(None))


def parse_block(data: Mapping[str, Any] | None) -> QuestBlock | None:
    """Validate a quest block; the error names the key and what would be valid.

    A block declared with plain values (text, numbers, lists and dicts of them) is validated
    once; scripts that declare the same one share the (frozen) result.
    """
    key = _frozen(data) if type(data) is dict else None
    if key is not None:
        found = _BLOCKS.get(key)
        if found is not None:
            return found
    block = _parse_block(data)
    if key is not None and block is not None:
        if len(_BLOCKS) >= _BLOCKS_KEPT:
            _BLOCKS.clear()
        _BLOCKS[key] = block
    return block


def _frozen(value: Any, depth: int = 0) -> tuple[Any, ...] | None:
    """*value* as a hashable key that tells apart every value validation tells apart (``1``,
    ``1.0`` and ``True`` differ), or ``None`` when it holds anything else."""
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return (kind, value)
    if depth > 8 or kind not in (dict, list, tuple):
        return None
    items: list[Any] = []
    for item in value.items() if kind is dict else value:
        frozen = (
            (_frozen(item[0], depth + 1), _frozen(item[1], depth + 1))
            if kind is dict
            else _frozen(item, depth + 1)
        )
        if frozen is None or (kind is dict and None in frozen):
            return None
        items.append(frozen)
    return (kind, tuple(items))


def _parse_block(data: Mapping[str, Any] | None) -> QuestBlock | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise InvalidDefinition("the quest block must be a dict of keys", key="quest")
    for name in data:
        if not isinstance(name, str):
            raise InvalidDefinition(
                f"the keys of the quest block are text, not {safe_repr(name, 40)}", key="quest"
            )
    _no_double_spelling(data)
    for name, value in data.items():
        if _has_lone_surrogate(value):
            raise InvalidDefinition(
                "holds text with a lone surrogate; it must be valid Unicode text",
                key=f"quest.{name}",
            )
    try:
        return QuestBlock.model_validate(dict(data))
    except ValidationError as exc:
        raise _definition_error(exc) from None
    except InvalidDefinition as exc:
        raise InvalidDefinition(
            _strip(exc), key=f"quest.{exc.key}" if exc.key else "quest"
        ) from None
    except Exception as exc:
        raise InvalidDefinition(f"{clip(exception_text(exc), 200)}", key=_culprit(data)) from None


def _has_lone_surrogate(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if depth > 20:
        return False
    if isinstance(value, Mapping):
        return any(_has_lone_surrogate(k, depth + 1) for k in value) or any(
            _has_lone_surrogate(v, depth + 1) for v in value.values()
        )
    if isinstance(value, list | tuple):
        return any(_has_lone_surrogate(item, depth + 1) for item in value)
    return False


def _no_double_spelling(data: Mapping[str, Any]) -> None:
    for name, field_info in QuestBlock.model_fields.items():
        alias = field_info.alias
        if alias and alias != name and alias in data and name in data:
            raise InvalidDefinition(
                f"{alias} and {name} are one key; give only one of them", key=f"quest.{alias}"
            )


def _culprit(data: Mapping[str, Any]) -> str:
    """The key of *data* that does not validate on its own, for an error no check foresaw."""
    for name, value in data.items():
        try:
            QuestBlock.model_validate({name: value})
        except Exception:
            return f"quest.{name}"
    return "quest"


def _strip(exc: InvalidDefinition) -> str:
    return exc.reason


def _definition_error(exc: ValidationError) -> InvalidDefinition:
    error = exc.errors()[0]
    loc = ".".join(str(part) for part in error["loc"])
    key = f"quest.{loc}" if loc else "quest"
    if error["type"] == "extra_forbidden":
        name = str(error["loc"][-1])
        from difflib import get_close_matches

        close = get_close_matches(name, _BLOCK_KEYS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return InvalidDefinition(
            f"unknown key{hint}; valid keys: {', '.join(_BLOCK_KEYS)}", key=key
        )
    cause = error.get("ctx", {}).get("error")
    if isinstance(cause, InvalidDefinition):
        return InvalidDefinition(_strip(cause), key=key)
    message = str(cause) if cause is not None else error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return InvalidDefinition(message, key=key)


@dataclass(frozen=True, slots=True)
class Declaration:
    """What ``@script`` declares, before discovery gives it a name and a path."""

    fn: ScriptFn
    friendly_name: str
    description: str
    inputs: Mapping[str, Input]
    quest: QuestBlock | None
    model: type[Inputs] = Inputs


@dataclass(frozen=True)
class Script:
    """A discovered script: its name, declaration and validated-input model."""

    name: str
    declaration: Declaration
    path: str = ""
    model: type[Inputs] = field(default=Inputs, repr=False)

    @classmethod
    def build(cls, name: str, declaration: Declaration, path: str = "") -> Script:
        try:
            model = declaration.model
            block = declaration.quest
            scheduled = block is not None and any(
                value is not None for value in (block.interval, block.cron, block.at)
            )
            if block is not None and (block.inputs or scheduled):
                from .inputs import validate

                validate(model, declaration.inputs, block.inputs)
        except InvalidDefinition as exc:
            raise InvalidDefinition(_strip(exc), path=path or None, key=exc.key) from None
        except Exception as exc:
            problems = getattr(exc, "errors", None)
            if problems:
                message = "; ".join(f"{key}: {reason}" for key, reason in problems)
            else:
                message = getattr(exc, "message", str(exc)).replace("\n", " ")
            raise InvalidDefinition(
                f"scheduled inputs are invalid: {message} (a scheduled run gets the defaults "
                "and the values in quest.inputs)",
                path=path or None,
                key="quest.inputs",
            ) from None
        return cls(name=name, declaration=declaration, path=path, model=model)

    @property
    def fn(self) -> ScriptFn:
        return self.declaration.fn

    @property
    def friendly_name(self) -> str:
        return self.declaration.friendly_name or self.name

    @property
    def description(self) -> str:
        return self.declaration.description

    @property
    def inputs(self) -> Mapping[str, Input]:
        return self.declaration.inputs

    @property
    def quest(self) -> QuestBlock | None:
        return self.declaration.quest

    @functools.cached_property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.fn)

    def block(self) -> QuestBlock:
        return self.declaration.quest or _ON_DEMAND

    def timezone(self, default: str) -> ZoneInfo:
        return self.block().zone(default)

    def schedule(self, default_timezone: str) -> Schedule | None:
        return self.quest.schedule(default_timezone) if self.quest else None


_ON_DEMAND = QuestBlock()


def script(
    fn: ScriptFn | None = None,
    *,
    friendly_name: str = "",
    description: str = "",
    quest: Mapping[str, Any] | None = None,
    inputs: Mapping[str, Input | Mapping[str, Any]] | None = None,
    **aliases: Any,
) -> Any:
    """Declare a script. Checked now: a bad declaration raises :class:`InvalidDefinition`.

    The decorated function is returned unchanged, so it can still be called directly.
    ``friendlyName`` is accepted for ``friendly_name``.
    """
    for alias, value in aliases.items():
        if alias not in SAILS_SCRIPT_KEYS:
            valid = ", ".join(
                ["friendly_name", "description", "quest", "inputs", *SAILS_SCRIPT_KEYS]
            )
            raise InvalidDefinition(f"unknown argument {alias!r}; valid: {valid}", key=alias)
        if friendly_name:
            raise InvalidDefinition(
                f"{alias} and {SAILS_SCRIPT_KEYS[alias]} are one key; give only one of them",
                key=alias,
            )
        friendly_name = value
    _check_text(friendly_name, "friendly_name")
    _check_text(description, "description")
    block = parse_block(quest)
    declared = _declared_inputs(inputs)

    def decorate(func: ScriptFn) -> ScriptFn:
        if not callable(func):
            raise InvalidDefinition("@script decorates a function taking (inputs, ctx)")
        _check_signature(func)
        doc = description or (inspect.getdoc(func) or "")
        _check_text(doc, "description")
        try:
            model = build_model(getattr(func, "__name__", "script"), declared)
        except InvalidDefinition:
            raise
        except Exception as exc:
            raise InvalidDefinition(
                f"these inputs cannot be validated: {clip(exception_text(exc), 200)}",
                key="inputs",
            ) from None
        declaration = Declaration(
            fn=func,
            friendly_name=friendly_name,
            description=doc,
            inputs=declared,
            quest=_noted(block, func),
            model=model,
        )
        setattr(func, ATTRIBUTE, declaration)
        return func

    return decorate(fn) if fn is not None else decorate


def _check_text(value: Any, key: str) -> None:
    if not isinstance(value, str):
        raise InvalidDefinition(f"{key} is text, not {type(value).__name__}", key=key)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidDefinition(
            f"{key} holds a lone surrogate ({value[exc.start]!a} at position {exc.start}); "
            "it must be valid Unicode text",
            key=key,
        ) from None


def _declared_inputs(inputs: Any) -> dict[str, Input]:
    if inputs is None:
        return {}
    if not isinstance(inputs, Mapping):
        raise InvalidDefinition("inputs must be a dict of name: Input(...)", key="inputs")
    declared: dict[str, Input] = {}
    options: dict[str, str] = {}
    for key, spec in inputs.items():
        check_name(key)
        if not isinstance(spec, Input | Mapping):
            raise InvalidDefinition(
                f"{safe_repr(spec, 60)} is not an input; write Input(type, default=..., "
                "description=...)",
                key=f"inputs.{key}",
            )
        try:
            declared[key] = spec if isinstance(spec, Input) else Input.from_mapping(spec)
        except InvalidDefinition as exc:
            field = (exc.key or "").removeprefix("Input.")
            raise InvalidDefinition(
                _strip(exc), key=f"inputs.{key}.{field}" if field else f"inputs.{key}"
            ) from None
        except TypeError as exc:
            raise InvalidDefinition(clip(str(exc), 200), key=f"inputs.{key}") from None
        option = option_name(key)
        if option in options:
            raise InvalidDefinition(
                f"inputs {options[option]!r} and {key!r} both give the option {option}; rename one",
                key=f"inputs.{key}",
            )
        options[option] = key
    return declared


def _noted(block: QuestBlock | None, func: ScriptFn) -> QuestBlock | None:
    """*block*, after logging a warning when its interval is probably milliseconds."""
    if block is not None and block.interval_note is not None:
        import logging

        code = getattr(func, "__code__", None)
        where = f"{code.co_filename}:{code.co_firstlineno}: " if code is not None else ""
        logging.getLogger("quest").warning("%squest.interval: %s", where, block.interval_note)
    return block


def _check_signature(func: ScriptFn) -> None:
    if _takes_two(func):
        return
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None, None)
    except TypeError:
        name = getattr(func, "__name__", repr(func))
        raise InvalidDefinition(
            f"{name}{signature} cannot be called as {name}(inputs, ctx); "
            "a script function takes two arguments: (inputs, ctx)"
        ) from None


def _takes_two(func: ScriptFn) -> bool:
    """Whether a plain function surely accepts ``(inputs, ctx)``, read from its code object
    (``inspect.signature`` is the judge for anything else, and for the message)."""
    if type(func) is not FunctionType or func.__dict__:  # wrapped, __signature__, ...
        return False
    code = func.__code__
    positional = code.co_argcount
    required = positional - len(func.__defaults__ or ())
    keyword_only = code.co_varnames[positional : positional + code.co_kwonlyargcount]
    defaults = func.__kwdefaults__ or {}
    return (
        required <= 2
        and (positional >= 2 or bool(code.co_flags & inspect.CO_VARARGS))
        and all(name in defaults for name in keyword_only)
    )


def declaration_of(obj: object) -> Declaration | None:
    found = getattr(obj, ATTRIBUTE, None)
    return found if isinstance(found, Declaration) else None


__all__ = [
    "Backoff",
    "Concurrency",
    "Declaration",
    "QuestBlock",
    "RateLimit",
    "Script",
    "declaration_of",
    "script",
]
