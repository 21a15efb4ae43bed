"""The Run-now form of a script, made from its inputs and read the way the CLI reads options.

Each field's text goes through :func:`quest.inputs.parse_text` (what ``quest enqueue NAME
--option text`` does), then the whole set through the script's model when the run is queued, so
the form and the command line accept and refuse the same values with the same messages. A
sensitive input is a password field that is never filled in, not even after an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from ..describe import input_facts
from ..inputs import MISSING, describe_value, parse_text

if TYPE_CHECKING:
    from ..definition import Script
    from ..errors import InvalidInputs
    from ..inputs import Input

MAX_FIELD = 100_000
NUL = "\x00"
_NUL_ERROR = "It holds a NUL character, which no input takes."


@dataclass
class Field:
    key: str
    spec: Input
    widget: str
    text: str = ""
    error: str | None = None
    options: list[tuple[str, str]] = field(default_factory=list)

    @property
    def hint(self) -> str:
        facts = input_facts(self.spec)
        if self.spec.sensitive:
            facts[-1] = "sensitive: never stored in the JobLog"
        return "; ".join(facts)


@dataclass
class RunNowForm:
    fields: list[Field]
    delay: str = ""
    key: str = ""
    delay_error: str | None = None
    error: str | None = None
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.delay_error is None
            and not any(f.error for f in self.fields)
        )

    @classmethod
    def blank(cls, script: Script) -> RunNowForm:
        return cls([_field(key, spec) for key, spec in script.inputs.items()])

    def take(self, exc: InvalidInputs) -> None:
        """Put the errors of a refused enqueue next to their fields."""
        by_key = {f.key: f for f in self.fields}
        if not exc.errors:
            self.delay_error = str(exc).removeprefix("Invalid delay: ")
            return
        for key, message in exc.errors:
            target = by_key.get(key)
            if target is None:
                self.error = f"{key}: {message}"
            elif target.error is None:
                target.error = _sentence(message)
        for item in self.fields:
            if item.spec.sensitive:
                item.text = ""


def _field(key: str, spec: Input) -> Field:
    if spec.choices is not None:
        options = [("", "(default)" if not spec.is_required else "(choose)")]
        options += [(str(choice), str(choice)) for choice in spec.choices]
        return Field(key, spec, "select", options=options, text=_default_text(spec))
    if spec.type is bool:
        options = [("", "(default)"), ("true", "true"), ("false", "false")]
        return Field(key, spec, "select", options=options)
    if spec.sensitive:
        return Field(key, spec, "password")
    if spec.type in (dict, list):
        return Field(key, spec, "textarea", text=_default_text(spec))
    if spec.type is date:
        return Field(key, spec, "date", text=_default_text(spec))
    return Field(key, spec, "text", text=_default_text(spec))


def _default_text(spec: Input) -> str:
    if spec.sensitive or spec.default is MISSING or spec.default is None:
        return ""
    value = spec.default
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def _sentence(message: str) -> str:
    if message == "is required":
        return "Required."
    if message.startswith(("is ", "holds ", "has ", "expected ", "must ")):
        return f"The value given {message}."
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def parse_run_now(script: Script, form: dict[str, list[str]]) -> RunNowForm:
    """Read a submitted Run-now form: each field parsed as the CLI parses its option."""
    result = RunNowForm.blank(script)
    result.delay = (form.get("delay") or [""])[0].strip()[:100]
    result.key = (form.get("key") or [""])[0].strip()
    if NUL in result.delay:
        result.delay, result.delay_error = "", _NUL_ERROR
    if NUL in result.key:
        result.key, result.error = "", "The key holds a NUL character, which no key can."
    elif len(result.key) > 200:
        result.error = "A key is at most 200 characters."
    for item in result.fields:
        text = (form.get(f"input.{item.key}") or [""])[0]
        if len(text) > MAX_FIELD:
            item.error = f"At most {MAX_FIELD:,} characters."
            continue
        if NUL in text:
            # No command line can pass one, and no database column of text stores one.
            item.error = _NUL_ERROR
            continue
        item.text = "" if item.spec.sensitive else text
        if text == "":
            continue
        try:
            result.values[item.key] = _parse(item.spec, text)
        except ValueError as exc:
            item.error = _sentence(str(exc))
    return result


def _parse(spec: Input, text: str) -> Any:
    if spec.choices is not None:
        for choice in spec.choices:
            if str(choice) == text:
                return choice
        choices = ", ".join(repr(choice) for choice in spec.choices)
        if len(choices) > 200:
            choices = choices[:200] + f"… ({len(spec.choices)} choices)"
        raise ValueError(f"{describe_value(text, spec.sensitive)} is not one of {choices}")
    if spec.type is bool:
        if text not in ("true", "false"):
            raise ValueError(f"{describe_value(text, spec.sensitive)} is not true or false")
        return text == "true"
    return parse_text(spec, text)
