"""A run's return value and error text as the JobLog stores them: always JSON, always bounded.

:func:`capture` never fails, whatever a script returns. The stored result is:

- the value itself when it is plain JSON (objects with text keys, lists, text, finite numbers,
  ``true``/``false``, ``null``) and its JSON text is at most :data:`MAX_RESULT_BYTES`; tuples
  become lists;
- otherwise the same structure with each part that is not JSON replaced:

  - ``NaN``, ``inf`` and ``-inf`` become the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``
    (as the inputs are stored);
  - any other value (a set, bytes, a date, an object, an integer too long to write in decimal,
    a structure nested deeper than :data:`MAX_DEPTH` levels or holding itself) becomes
    ``{"quest:repr": "<its repr, or a description when repr fails>"}``; a key that is not text
    becomes its repr;

- and when the JSON text is still longer than the limit, ``{"quest:truncated": true,
  "preview": "<the first MAX_RESULT_BYTES characters of the JSON>", "size": <its length>}``.

:func:`exception_text` gives an exception's ``Type: message`` line the same way: it never raises,
even when the exception's ``__str__`` does.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, NamedTuple

MAX_RESULT_BYTES = 64 * 1024
MAX_DEPTH = 100
MAX_ITEMS = 100_000
MAX_REPR = 1000
REPR_MARKER = "quest:repr"
TRUNCATED_MARKER = "quest:truncated"


class Captured(NamedTuple):
    """A result :func:`capture` already made storable, in the process that ran the script (a
    worker, a timed child): capturing it again would wrap a cut result in a second cut."""

    value: Any


def capture(value: Any, *, limit: int = MAX_RESULT_BYTES) -> Any:
    """*value* as a JSON-storable result (see the module's docstring); never raises."""
    try:
        return _capture(value, limit)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return {REPR_MARKER: f"<the result could not be stored: {exception_text(exc)}>"[:limit]}


def _capture(value: Any, limit: int) -> Any:
    if value is None or type(value) is bool:
        return value
    if type(value) is int and -(2**63) <= value < 2**63:
        return value
    try:
        text = json.dumps(value, allow_nan=False)
    except Exception:
        text = None
    if text is None:
        safe = _Converter().convert(value, 0)
        text = json.dumps(safe, allow_nan=False)
    else:
        safe = None
    if len(text.encode("utf-8", "surrogatepass")) > limit:
        return {TRUNCATED_MARKER: True, "preview": text[:limit], "size": len(text)}
    return json.loads(text) if safe is None else safe


class _Converter:
    """A JSON copy of a value, each part that is not JSON replaced by a marked description."""

    def __init__(self) -> None:
        self.path: set[int] = set()
        self.items = 0

    def convert(self, value: Any, depth: int) -> Any:
        self.items += 1
        if value is None or isinstance(value, bool):
            return bool(value) if value is not None else None
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, int):
            number = int.__int__(value)
            digits = int(number.bit_length() * math.log10(2)) + 1
            most = sys.get_int_max_str_digits()
            if most and digits >= most - 1:  # too long for int -> str, so for JSON
                return {REPR_MARKER: f"<an integer of about {digits} digits>"}
            return number
        if isinstance(value, float):
            real = float.__float__(value)
            if math.isnan(real):
                return "NaN"
            if math.isinf(real):
                return "Infinity" if real > 0 else "-Infinity"
            return real
        if not isinstance(value, dict | list | tuple):
            return {REPR_MARKER: safe_repr(value)}
        if depth >= MAX_DEPTH:
            return {REPR_MARKER: f"<{type(value).__name__} nested deeper than {MAX_DEPTH} levels>"}
        if id(value) in self.path:
            return {REPR_MARKER: f"<the {type(value).__name__} holding it (a cycle)>"}
        if self.items > MAX_ITEMS:
            return {REPR_MARKER: f"<{type(value).__name__} left out: over {MAX_ITEMS} values>"}
        self.path.add(id(value))
        try:
            if isinstance(value, dict):
                return {
                    self._key(key): self.convert(item, depth + 1)
                    for key, item in list(dict.items(value))
                }
            items = list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value)
            return [self.convert(item, depth + 1) for item in items]
        finally:
            self.path.discard(id(value))

    def _key(self, key: Any) -> str:
        if isinstance(key, str):
            return str.__str__(key)
        if key is None or isinstance(key, bool):
            return json.dumps(key)
        if isinstance(key, int) and int.__int__(key).bit_length() <= 64:
            return str(int.__int__(key))
        if isinstance(key, float):
            return json.dumps(float.__float__(key))
        return safe_repr(key)


def safe_repr(value: Any, limit: int = MAX_REPR) -> str:
    """``repr(value)`` cut to *limit* characters; a description when ``repr`` itself fails."""
    try:
        text = repr(value)
        if not isinstance(text, str):
            raise TypeError("__repr__ returned a non-string")
    except Exception as exc:
        text = f"<{_type_name(value)} object; repr() raised {_type_name(exc)}>"
    return clip(text, limit)


def safe_str(value: Any, limit: int | None = None) -> str:
    """``str(value)``, or a description when ``str`` fails; cut to *limit* when given."""
    try:
        text = str(value)
        if not isinstance(text, str):
            raise TypeError("__str__ returned a non-string")
        text = str.__str__(text)
    except Exception as exc:
        text = f"<{_type_name(value)} object; str() raised {_type_name(exc)}>"
    return clip(text, limit) if limit is not None else text


def exception_text(exc: BaseException, limit: int | None = None) -> str:
    """``Type: message`` for *exc*, never raising, even when its ``__str__`` does."""
    message = safe_str(exc, limit)
    name = _type_name(exc)
    return f"{name}: {message}" if message else name


def clip(text: str, limit: int = 60) -> str:
    """*text*, or its first *limit* characters and a marker saying how long it was."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def _type_name(value: Any) -> str:
    try:
        return str(type(value).__name__)
    except Exception:
        return "object"
