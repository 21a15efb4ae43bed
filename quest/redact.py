"""Redaction: the values of sensitive inputs never leave a process in any rendering.

One mechanism, used at every boundary where text or values leave a run (log records, the error and
traceback of a failed run, its result, the signal payload, the command line's output):

- :func:`forms` lists every way a Python program commonly renders a value: ``str``, ``repr`` (quotes
  and backslashes escaped, non-printable or non-ASCII characters as ``\\xNN``/``\\uNNNN``), JSON
  (``ensure_ascii`` either way), the same once more escaped (a ``repr`` of a JSON text, a JSON of a
  ``repr``...), the UTF-8 bytes' ``repr``; for a JSON input (a dict or list) every leaf string or
  number and the whole value's renderings.
- A process-wide registry holds the values of the runs active in this process: :func:`active` (a
  context manager) or :func:`register`/:func:`unregister` around a run.
- :func:`scrub` replaces every form of every active (and explicitly given) value with ``***`` in a
  text; :func:`scrub_value` does it to every string, number and key inside a JSON-like value.
- :class:`RedactingFilter` is a :class:`logging.Filter` that scrubs a record's message, arguments,
  exception text, stack text and extra fields; :func:`install` puts it on loggers or handlers and
  :func:`install_process` on the root logger's handlers and on :data:`logging.lastResort`.

Limits: a form shorter than :data:`MIN_LENGTH` (4) characters is not scrubbed from free text (a
two-digit PIN would wipe every digit of every log line); booleans and ``None`` never are. Such a
value is still never stored or shown as an input (``inputs.dump`` replaces it with ``***``). A
secret split by the program itself (sliced, reversed, hashed, encoded in base64) is not recognised.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

REDACTED = "***"
MIN_LENGTH = 4
"""Forms shorter than this many characters are not scrubbed from free text."""

_MAX_DEPTH = 50

# -- the forms of a value ------------------------------------------------------------------------


def _py(text: str) -> str:
    """What ``repr`` puts between the quotes, when no quote needs escaping."""
    return "".join(repr(char)[1:-1] for char in text)


def _py_quoted(text: str) -> str:
    """The same when ``repr`` chose single quotes for a text holding both kinds."""
    return _py(text).replace("'", "\\'")


def _ascii(text: str) -> str:
    return "".join(ascii(char)[1:-1] for char in text)


def _ascii_quoted(text: str) -> str:
    return _ascii(text).replace("'", "\\'")


def _json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _json_ascii(text: str) -> str:
    return json.dumps(text)[1:-1]


_ESCAPES: tuple[Callable[[str], str], ...] = (
    _py,
    _py_quoted,
    _ascii,
    _ascii_quoted,
    _json,
    _json_ascii,
)


def _bytes_forms(text: str) -> set[str]:
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError:
        return set()
    plain = "".join(repr(bytes([byte]))[2:-1] for byte in raw)
    return {plain, plain.replace("'", "\\'")}


def _text_forms(text: str) -> set[str]:
    """*text* as written, escaped once by each renderer, and escaped twice."""
    once = {escape(text) for escape in _ESCAPES}
    twice = {escape(form) for form in once for escape in _ESCAPES}
    return {text} | once | twice | _bytes_forms(text)


def _leaves(value: Any, depth: int = 0) -> Iterator[Any]:
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _leaves(item, depth + 1)
    else:
        yield value


def _renderings(value: Any) -> set[str]:
    """The texts *value* itself is written as (before any escaping)."""
    if value is None or isinstance(value, bool):
        return set()
    if isinstance(value, str):
        return {value}
    if isinstance(value, int | float):
        found = set()
        for render in (str, repr, json.dumps):
            with suppress(ValueError):  # an int too long to print, a NaN for JSON
                found.add(render(value))
        return found
    if isinstance(value, datetime | date | time):
        return {str(value), value.isoformat(), repr(value)}
    found = set()
    for render in (str, repr):
        try:
            found.add(render(value))
        except Exception:
            continue
    if isinstance(value, Mapping | list | tuple):
        choices = itertools.product((True, False), (None, (",", ":")), (None, 2), (False, True))
        for ensure_ascii, separators, indent, sort_keys in choices:
            try:
                found.add(
                    json.dumps(
                        value,
                        ensure_ascii=ensure_ascii,
                        separators=separators,
                        indent=indent,
                        sort_keys=sort_keys,
                        default=str,
                    )
                )
            except (TypeError, ValueError, RecursionError):
                continue
        for leaf in _leaves(value):
            if not isinstance(leaf, Mapping | list | tuple | set | frozenset):
                found |= _renderings(leaf)
    return found


def forms(value: Any) -> frozenset[str]:
    """Every text, at least :data:`MIN_LENGTH` long, that renders *value* or a part of it."""
    found: set[str] = set()
    for text in _renderings(value):
        if len(text) >= MIN_LENGTH:
            found |= _text_forms(text)
    return frozenset(form for form in found if len(form) >= MIN_LENGTH)


# -- the process-wide registry -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What is scrubbed right now: the forms, longest first, and the containers matched whole."""

    ordered: tuple[str, ...]
    wholes: tuple[Any, ...]
    texts: frozenset[str] = frozenset()


_EMPTY = _Snapshot((), ())


def _order(texts: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(texts), key=lambda text: (-len(text), text)))


def _wholes(values: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(v for v in values if isinstance(v, Mapping | list | tuple) and v)


class _Registry:
    """The sensitive values of the runs active in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[frozenset[str], tuple[Any, ...]]] = {}
        self._ids = itertools.count(1)
        self.snapshot = _EMPTY

    def register(self, values: Iterable[Any]) -> int:
        values = [v for v in values if v is not None]
        texts = frozenset().union(*(forms(v) for v in values)) if values else frozenset()
        entry = (texts, _wholes(values))
        with self._lock:
            token = next(self._ids)
            self._entries[token] = entry
            self._rebuild()
        return token

    def unregister(self, token: int) -> None:
        with self._lock:
            if self._entries.pop(token, None) is not None:
                self._rebuild()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.snapshot = _EMPTY

    def _rebuild(self) -> None:
        texts = frozenset().union(*(entry[0] for entry in self._entries.values()))
        wholes = tuple(w for entry in self._entries.values() for w in entry[1])
        self.snapshot = _Snapshot(_order(texts), wholes, texts) if texts or wholes else _EMPTY

    def after_fork(self) -> None:
        self._lock = threading.Lock()


_registry = _Registry()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_registry.after_fork)


def register(values: Iterable[Any]) -> int:
    """Start scrubbing *values* (a run's sensitive values) in this process; returns a token."""
    return _registry.register(values)


def unregister(token: int) -> None:
    """Stop scrubbing the values registered under *token* (unknown tokens are ignored)."""
    _registry.unregister(token)


@contextmanager
def active(values: Iterable[Any]) -> Iterator[None]:
    """Scrub *values* everywhere in this process while the block runs."""
    token = register(values)
    try:
        yield
    finally:
        unregister(token)


def clear() -> None:
    """Forget every registered value (for a process that starts afresh, and for tests)."""
    _registry.clear()


def is_active() -> bool:
    """Whether any value is being scrubbed in this process."""
    return _registry.snapshot is not _EMPTY


def sensitive_values(inputs: Any, specs: Mapping[str, Any]) -> list[Any]:
    """The values of the sensitive inputs in *inputs* (a pydantic model or a mapping)."""
    data = inputs.model_dump() if hasattr(inputs, "model_dump") else inputs
    return [
        data[key]
        for key, spec in specs.items()
        if getattr(spec, "sensitive", False) and data.get(key) not in (None, "")
    ]


# -- scrubbing -----------------------------------------------------------------------------------


def _snapshot(values: Iterable[Any] | None) -> _Snapshot:
    """The registry's snapshot, widened by *values* when some are given."""
    current = _registry.snapshot
    extra = [v for v in values or () if v is not None]
    if not extra:
        return current
    texts = current.texts.union(*(forms(v) for v in extra))
    wholes = current.wholes + _wholes(extra)
    if texts == current.texts and wholes == current.wholes:
        return current
    return _Snapshot(_order(texts), wholes, texts)


def _scrub_text(text: str, ordered: tuple[str, ...]) -> str:
    # Longest forms first, so a form inside a longer one never leaves the rest behind. Each
    # replacement shortens the text, so this ends; repeating the pass catches a form that a
    # replacement joined together from the pieces around it.
    changed = True
    while changed:
        changed = False
        for form in ordered:
            if form in text:
                text = text.replace(form, REDACTED)
                changed = True
    return text


def scrub(text: str, values: Iterable[Any] | None = None) -> str:
    """*text* with every form of every active value, and of *values*, replaced by ``***``."""
    return _scrub_text(text, _snapshot(values).ordered)


def scrub_value(value: Any, values: Iterable[Any] | None = None) -> Any:
    """*value* with every string, number and key that holds a secret scrubbed, recursively.

    A string becomes its scrubbed text; a number whose text holds a secret becomes that text,
    scrubbed; a dict or list equal to a sensitive JSON value becomes ``***``. The result has the
    same shape otherwise (tuples and sets become lists only when something in them changed).
    """
    snapshot = _snapshot(values)
    if not snapshot.ordered and not snapshot.wholes:
        return value
    return _walk(value, snapshot, 0)


def _walk(value: Any, snapshot: _Snapshot, depth: int) -> Any:
    if isinstance(value, str):
        return _scrub_text(value, snapshot.ordered)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        text = _render(value)
        scrubbed = _scrub_text(text, snapshot.ordered)
        return value if scrubbed == text else scrubbed
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        if snapshot.wholes and _is_whole(value, snapshot.wholes):
            return REDACTED
        if depth > _MAX_DEPTH:
            return _scrub_text(_render(value), snapshot.ordered)
    if isinstance(value, Mapping):
        changed = False
        out = {}
        for key, item in value.items():
            new_key = _walk_key(key, snapshot)
            new_item = _walk(item, snapshot, depth + 1)
            changed = changed or new_key is not key or new_item is not item
            out[new_key] = new_item
        return out if changed else value
    if isinstance(value, list | tuple | set | frozenset):
        items = [_walk(item, snapshot, depth + 1) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items if not isinstance(value, tuple) else tuple(items)
    text = _render(value)
    scrubbed = _scrub_text(text, snapshot.ordered)
    return value if scrubbed == text else scrubbed


def _walk_key(key: Any, snapshot: _Snapshot) -> Any:
    if isinstance(key, str):
        return _scrub_text(key, snapshot.ordered)
    text = _render(key)
    scrubbed = _scrub_text(text, snapshot.ordered)
    return key if scrubbed == text else scrubbed


def _is_whole(value: Any, wholes: tuple[Any, ...]) -> bool:
    try:
        return any(value == whole for whole in wholes)
    except Exception:
        return False


def _render(value: Any) -> str:
    try:
        return repr(value)
    except Exception:
        return object.__repr__(value)


# -- logging -------------------------------------------------------------------------------------

_RECORD_FIELDS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class RedactingFilter(logging.Filter):
    """Scrubs the active secrets from a record; it never drops a record.

    The message is rendered (``msg % args``) and, when that shows a secret, replaced by its
    scrubbed text with no arguments left; an exception is rendered into ``exc_text`` and, when it
    shows a secret, ``exc_info`` is dropped so that no formatter renders it again; ``stack_info``
    and every extra field are scrubbed as well.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        ordered = _registry.snapshot.ordered
        if not ordered:
            return True
        try:
            _scrub_record(record, ordered)
        except Exception:  # a record that cannot be rendered must not take the secret with it
            record.msg = "(a log message that could not be rendered; withheld)"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        return True


def _scrub_record(record: logging.LogRecord, ordered: tuple[str, ...]) -> None:
    try:
        message = record.getMessage()
    except Exception:
        message = None
    if message is None:
        record.msg = _scrub_text(str(record.msg), ordered)
        record.args = _scrub_args(record.args, ordered)
    else:
        scrubbed = _scrub_text(message, ordered)
        args_text = _render(record.args) if record.args else ""
        if scrubbed != message or _scrub_text(args_text, ordered) != args_text:
            record.msg = scrubbed
            record.args = None
    if record.exc_info and record.exc_info[0] is not None:
        text = record.exc_text or _format_exception(record.exc_info)
        scrubbed = _scrub_text(text, ordered)
        if scrubbed != text:
            record.exc_text = scrubbed
            record.exc_info = None
    elif record.exc_text:
        record.exc_text = _scrub_text(record.exc_text, ordered)
    if record.stack_info:
        record.stack_info = _scrub_text(record.stack_info, ordered)
    if "message" in record.__dict__:
        record.message = _scrub_text(str(record.message), ordered)
    snapshot = _Snapshot(ordered, ())
    for key, value in list(record.__dict__.items()):
        if key not in _RECORD_FIELDS:
            record.__dict__[key] = _walk(value, snapshot, 0)


def _scrub_args(args: Any, ordered: tuple[str, ...]) -> Any:
    if isinstance(args, Mapping):
        return {key: _scrub_text(_render(value), ordered) for key, value in args.items()}
    if isinstance(args, tuple):
        return tuple(_scrub_text(_render(value), ordered) for value in args)
    return args


def _format_exception(exc_info: Any) -> str:
    text = "".join(traceback.format_exception(*exc_info))
    return text[:-1] if text.endswith("\n") else text


FILTER = RedactingFilter()
"""The one filter instance :func:`install` adds (adding it twice is a no-op)."""


def install(*targets: logging.Logger | logging.Handler | logging.LoggerAdapter[Any]) -> None:
    """Add :data:`FILTER` to each logger, adapter's logger or handler (idempotent)."""
    for target in targets:
        if isinstance(target, logging.LoggerAdapter):
            target = target.logger
        target.addFilter(FILTER)


def install_process() -> None:
    """Scrub everything this process logs through its root handlers and ``logging.lastResort``.

    Call it in a freshly started or forked process after its logging is configured (a handler
    added to the root logger later needs :func:`install` too).
    """
    install(*logging.getLogger().handlers)
    if logging.lastResort is not None:
        install(logging.lastResort)
