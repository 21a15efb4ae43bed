"""The one error tree of quest.

Every error quest raises on purpose derives from :class:`QuestError`. The CLI maps
:class:`UsageError` subclasses to exit code 2 and run failures to exit code 1.
"""

from __future__ import annotations


class QuestError(Exception):
    """Something went wrong in quest."""

    def __init__(self, message: str | None = None) -> None:
        text = message or (self.__doc__ or "").strip()
        # A lone surrogate from the user's text cannot be printed or stored: show it escaped.
        super().__init__(text.encode("utf-8", "backslashreplace").decode("utf-8"))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class UsageError(QuestError):
    """The invocation or a declaration is wrong; nothing was run or recorded."""


class InvalidDefinition(UsageError):
    """A script declaration is invalid.

    The message reads ``<file>: line <n>: <key>: <what is wrong and what would be valid>``;
    ``reason`` is the last part alone.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.path = path
        self.key = key
        self.line = line
        self.reason = message
        prefix = f"{path}: " if path else ""
        at = f"line {line}: " if line else ""
        where = f"{key}: " if key else ""
        super().__init__(f"{prefix}{at}{where}{message}")


class ScheduleError(InvalidDefinition):
    """A schedule (interval, cron, at, timezone) is invalid."""


class ScriptNotFound(UsageError):
    """No script has that name."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        self.name = name
        hint = ""
        if known:
            hint = " Known scripts: " + ", ".join(sorted(known)[:20])
        super().__init__(f"No script named {name!r}.{hint}")


class InvalidInputs(UsageError):
    """The inputs given to a script do not validate."""

    def __init__(self, message: str, *, errors: list[tuple[str, str]] | None = None) -> None:
        self.errors = errors or []
        super().__init__(message)


class ConfigError(UsageError):
    """The quest configuration is invalid."""


class DatabaseUnavailable(QuestError):
    """The database cannot be reached."""


class LeaseHeld(QuestError):
    """Another run of this script holds its overlap lease."""


class Discard(QuestError):
    """The run failed permanently; do not retry it."""

    def __init__(self, reason: str = "discarded") -> None:
        self.reason = reason
        super().__init__(reason)


class RunTimeout(QuestError):
    """The run exceeded its timeout."""


class RunInterrupted(QuestError):
    """The run was stopped by a shutdown."""


class RunCancelled(QuestError):
    """Someone asked for the run to stop (``quest cancel``)."""

    def __init__(self, by: str = "") -> None:
        self.by = by
        super().__init__(f"cancelled by {by}" if by else "cancelled")


class WorkerDied(QuestError):
    """The worker process executing the run ended without reporting its outcome."""
