"""What every command shares: the application object, logging set-up and error mapping."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, TypeVar

import click

from quest import redact

if TYPE_CHECKING:
    from quest.app import Quest

F = TypeVar("F", bound=Callable[..., Any])


class Seconds(click.FloatRange):
    """A number of seconds within bounds; ``nan`` and infinity, which compare false with every
    bound, are refused too."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds (such as 30)", param, ctx)
        return number


def get_app(ctx: click.Context | None = None) -> Quest:
    """The :class:`~quest.app.Quest` of this invocation (tests pass one as ``obj``)."""
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        from quest.app import Quest
        from quest.errors import ConfigError

        try:
            root.obj = Quest()
        except ConfigError as exc:
            raise click.UsageError(exc.message) from None
        root.call_on_close(root.obj.close)  # built here, so closed here
    app: Quest = root.obj
    return app


def verbosity(ctx: click.Context | None = None) -> int:
    ctx = ctx or click.get_current_context()
    return int(ctx.find_root().meta.get("quest.verbosity", 0))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the run's structured fields."""

    FIELDS = ("script", "run_id", "action", "status", "duration_ms", "trigger")

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created).astimezone().isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in self.FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        return json.dumps(data, default=str)


class DatabaseTrouble(logging.Filter):
    """A record logged with the error of a database that could not be used (a connection lost or
    refused, a lock held past the busy timeout) says it in one line, as a warning at most, instead
    of a traceback: serve retries what failed, and the traceback tells the reader nothing more."""

    def filter(self, record: logging.LogRecord) -> bool:
        from sqlalchemy.exc import InterfaceError, OperationalError

        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, OperationalError | InterfaceError):
            return True
        said = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        record.msg = f"{record.getMessage()}: {short_message(said)}"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def setup_logging(level: int, fmt: str = "text", *, runner_level: int | None = None) -> None:
    """One handler on stderr (text or JSON lines) that scrubs the secrets of active runs and says
    a database's trouble in one line (:class:`DatabaseTrouble`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(DatabaseTrouble())
    redact.install(handler)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    if runner_level is not None:
        logging.getLogger("quest.runner").setLevel(runner_level)


def level_for(verbose: int, default: int = logging.INFO) -> int:
    if verbose < 0:
        return logging.WARNING
    if verbose >= 2:
        return logging.DEBUG
    return default


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn quest's usage errors into click errors (exit 2), other quest errors into exit 1."""
    from quest.errors import DatabaseUnavailable, QuestError, UsageError

    try:
        yield
    except UsageError as exc:
        raise click.UsageError(redact.scrub(exc.message)) from None
    except DatabaseUnavailable as exc:
        click.secho(f"Error: {redact.scrub(exc.message)}", fg="red", err=True)
        raise SystemExit(1) from None
    except QuestError as exc:
        click.secho(f"Error: {redact.scrub(exc.message)}", fg="red", err=True)
        raise SystemExit(1) from None


#: A word of an error message longer than this is shown cut, with its length.
LONGEST_WORD = 200
#: An error message is cut to this many characters.
LONGEST_MESSAGE = 2000


def short_message(text: str) -> str:
    """*text* fit for one screen: each very long word cut, with its length, and the whole capped."""
    import re

    def cut(match: re.Match[str]) -> str:
        word = match.group(0)
        return f"{word[:60]}… ({len(word)} characters)"

    text = re.sub(rf"\S{{{LONGEST_WORD + 1},}}", cut, text)
    if len(text) > LONGEST_MESSAGE:
        text = f"{text[:LONGEST_MESSAGE]}… (message cut at {LONGEST_MESSAGE} characters)"
    return text


@contextmanager
def shortened() -> Iterator[None]:
    """Shorten the message of a click error raised inside, whatever raised it."""
    try:
        yield
    except click.ClickException as exc:
        exc.message = short_message(exc.message)  # type: ignore[misc]
        raise


def to_json(value: Any) -> str:
    """*value* as indented JSON, scrubbed of the secrets of active runs."""
    return redact.scrub(json.dumps(value, indent=2, default=_default))


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "value"):
        return value.value
    return str(value)


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def parse_instant(value: str, param: str, zone: tzinfo | None = None) -> datetime:
    """An ISO 8601 instant from the command line; naive means in *zone* (UTC by default)."""
    from datetime import UTC

    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 date-time (for example 2026-03-07T00:00:00-05:00)",
            param_hint=param,
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone or UTC)


def console() -> Any:
    """A rich console: the terminal's width, or wide enough that piped tables never fold."""
    from rich.console import Console

    out = Console(soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(soft_wrap=False, width=240)
    return out
