"""Running scripts inside tests: a frozen clock, captured signals and a throwaway database.

::

    from quest.testing import FrozenClock, captured_signals, temporary_quest

    def test_cleanup(tmp_path):
        with temporary_quest(tmp_path, clock=FrozenClock("2026-03-01T12:00:00Z")) as quest:
            with captured_signals() as events:
                outcome = quest.run("cleanup-sessions", {"days_old": 7})
        assert outcome.ok
        assert [e.signal for e in events] == ["job:start", "job:complete"]
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .app import Quest
from .config import Settings, load_settings
from .definition import Script, declaration_of
from .discovery import Registry
from .runner import RunOutcome, RunRequest
from .signals import JobEvent, job_complete, job_error, job_progress, job_skip, job_start
from .store import Store, load_models, make_engine


class FrozenClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime | str = "2026-01-01T00:00:00+00:00") -> None:
        self._now = _instant(now)
        self._monotonic = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._monotonic

    def advance(self, delta: timedelta | float) -> datetime:
        seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._monotonic += seconds
            return self._now

    def set(self, instant: datetime | str) -> None:
        target = _instant(instant)
        with self._lock:
            self._monotonic += max(0.0, (target - self._now).total_seconds())
            self._now = target


def _instant(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("FrozenClock needs an aware datetime")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Captured:
    signal: str
    sender: object
    event: JobEvent


class CapturedSignals(list[Captured]):
    """The events sent while capturing, in order."""

    def names(self) -> list[str]:
        return [c.signal for c in self]

    def events(self, signal: str | None = None) -> list[JobEvent]:
        return [c.event for c in self if signal is None or c.signal == signal]


@contextmanager
def captured_signals() -> Iterator[CapturedSignals]:
    """Collect every ``job:*`` signal sent inside the block."""
    captured = CapturedSignals()
    lock = threading.Lock()

    def receiver_for(name: str) -> Any:
        def receive(sender: object, event: JobEvent) -> None:
            with lock:
                captured.append(Captured(name, sender, event))

        return receive

    signals = (job_start, job_complete, job_error, job_skip, job_progress)
    receivers = [(s, receiver_for(s.name)) for s in signals]
    for signal, receiver in receivers:
        signal.connect(receiver, weak=False)
    try:
        yield captured
    finally:
        for signal, receiver in receivers:
            signal.disconnect(receiver)


def project_settings(
    folder: Path | str,
    *,
    scripts_dir: Path | str | None = None,
    database_url: str | None = None,
    **overrides: Any,
) -> Settings:
    """Settings for a throwaway project in *folder*, with a SQLite file there by default."""
    folder = Path(folder)
    base = load_settings(folder, environ={})
    return base.with_overrides(
        scripts_dir=Path(scripts_dir) if scripts_dir else base.scripts_dir,
        database_url=database_url or f"sqlite:///{folder / 'quest-test.sqlite3'}",
        **overrides,
    )


@contextmanager
def temporary_quest(
    folder: Path | str | None = None,
    *,
    scripts: list[Any] | None = None,
    scripts_dir: Path | str | None = None,
    database_url: str | None = None,
    clock: Any = None,
    **overrides: Any,
) -> Iterator[Quest]:
    """A :class:`Quest` on a throwaway database.

    Give *scripts* (decorated functions) to run just those, or *scripts_dir* to discover a folder;
    by default the project's own scripts folder is used.
    """
    with tempfile.TemporaryDirectory(prefix="quest-") as scratch:
        here = Path(folder) if folder is not None else Path(scratch)
        settings = project_settings(
            here if folder is not None else Path.cwd(),
            scripts_dir=scripts_dir,
            database_url=database_url or f"sqlite:///{here / 'quest-test.sqlite3'}",
            **overrides,
        )
        registry = registry_of(*scripts) if scripts is not None else None
        kwargs: dict[str, Any] = {"registry": registry}
        if clock is not None:
            kwargs["clock"] = clock
        quest = Quest(settings, **kwargs)
        try:
            yield quest
        finally:
            quest.close()


def registry_of(*functions: Any) -> Registry:
    """A registry of decorated functions, named from the function names in kebab-case."""
    registry = Registry()
    for function in functions:
        declaration = declaration_of(function)
        if declaration is None:
            raise TypeError(f"{function!r} is not decorated with @script")
        name = function.__name__.strip("_").replace("_", "-")
        registry.add(Script.build(name, declaration, getattr(function, "__module__", "")))
    return registry


def run_script(
    quest: Quest,
    name: str,
    inputs: Mapping[str, Any] | None = None,
    **request: Any,
) -> RunOutcome:
    """Run *name* through the real runner and return its outcome."""
    return quest.run(name, inputs, RunRequest(**request) if request else None)


def reset_database(url: str, settings: Settings) -> None:
    """Drop every table quest and the app's models know about (PostgreSQL test isolation)."""
    _, metadatas = load_models(settings)
    engine = make_engine(url)
    try:
        for metadata in reversed(metadatas):
            metadata.drop_all(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    finally:
        engine.dispose()


__all__ = [
    "CapturedSignals",
    "FrozenClock",
    "Store",
    "captured_signals",
    "project_settings",
    "registry_of",
    "reset_database",
    "run_script",
    "temporary_quest",
]
