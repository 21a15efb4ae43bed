"""What a script raised in another process, carried back as text.

A run executed in a worker process or a timed child reports its exception as a :class:`Failure`
(exceptions need not pickle); the supervisor raises it again as :class:`ScriptFailed`, or as
:class:`~quest.errors.Discard` when the script asked not to be retried.
"""

from __future__ import annotations

import traceback as tb
from dataclasses import dataclass
from typing import NoReturn

from . import redact
from .errors import Discard


@dataclass(frozen=True, slots=True)
class Failure:
    """An exception as its type name, message and traceback, and whether it ends retries."""

    type_name: str
    message: str
    traceback: str
    discard: bool = False
    interrupt: bool = False
    """Whether it was a ``KeyboardInterrupt`` (or a subclass): the run was interrupted."""

    @classmethod
    def of(cls, exc: BaseException, discard_on: tuple[type[BaseException], ...] = ()) -> Failure:
        discard = isinstance(exc, (Discard, *discard_on))
        return cls(
            type(exc).__name__,
            _text(exc),
            "".join(tb.format_exception(exc)),
            discard,
            isinstance(exc, KeyboardInterrupt),
        )

    def scrubbed(self) -> Failure:
        """This failure with the secrets of the process's active runs replaced by ``***``."""
        return Failure(
            self.type_name,
            redact.scrub(self.message),
            redact.scrub(self.traceback),
            self.discard,
            self.interrupt,
        )

    def reraise(self) -> NoReturn:
        if self.discard:
            raise Discard(self.message)
        raise ScriptFailed(self)


class ScriptFailed(Exception):
    """The script raised in another process; :attr:`failure` says what."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(f"{failure.type_name}: {failure.message}")
        self.failure = failure

    def __str__(self) -> str:
        return self.failure.message


def _text(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<{type(exc).__name__} whose str() failed>"
