"""quest.testing: the frozen clock, captured signals and the throwaway database users test with."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from quest import script
from quest.signals import job_start
from quest.testing import FrozenClock, captured_signals, registry_of, run_script, temporary_quest


@script(friendly_name="Tick")
def tick(inputs: Any, ctx: Any) -> str:
    return str(ctx.now.isoformat())


def test_the_frozen_clock_moves_only_when_told() -> None:
    clock = FrozenClock("2026-03-01T12:00:00+01:00")
    assert clock.now() == datetime(2026, 3, 1, 11, tzinfo=UTC)
    assert clock.now().utcoffset() == timedelta(0)
    assert clock.now() == clock.now()
    assert clock.monotonic() == 0.0

    assert clock.advance(timedelta(minutes=1)) == datetime(2026, 3, 1, 11, 1, tzinfo=UTC)
    clock.advance(0.5)
    assert clock.monotonic() == 60.5

    clock.set("2026-03-01T11:10:00Z")
    assert clock.now() == datetime(2026, 3, 1, 11, 10, tzinfo=UTC)
    assert clock.monotonic() == 600.0


def test_setting_the_clock_back_never_runs_monotonic_time_backwards() -> None:
    clock = FrozenClock(datetime(2026, 3, 1, tzinfo=UTC))
    clock.advance(10)
    clock.set(datetime(2026, 2, 1, tzinfo=UTC))
    assert clock.now() == datetime(2026, 2, 1, tzinfo=UTC)
    assert clock.monotonic() == 10.0


def test_the_frozen_clock_needs_aware_times() -> None:
    with pytest.raises(ValueError, match="aware"):
        FrozenClock(datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="aware"):
        FrozenClock("2026-03-01T12:00:00")


def test_registry_of_names_functions_in_kebab_case() -> None:
    @script
    def send_weekly_report(inputs: Any, ctx: Any) -> None:
        return None

    registry = registry_of(tick, send_weekly_report)
    assert [s.name for s in registry] == ["send-weekly-report", "tick"]
    with pytest.raises(TypeError, match="not decorated"):
        registry_of(lambda inputs, ctx: None)


def test_a_throwaway_database_that_is_gone_afterwards(tmp_path: Path) -> None:
    clock = FrozenClock("2026-03-01T00:00:00Z")
    with temporary_quest(scripts=[tick], clock=clock) as app:
        database = Path(app.settings.database_url.removeprefix("sqlite:///"))
        outcome = run_script(app, "tick")
        assert outcome.ok
        assert outcome.result == "2026-03-01T00:00:00+00:00"
        assert database.exists()
    assert not database.exists()


def test_a_throwaway_project_in_a_folder(tmp_path: Path) -> None:
    with temporary_quest(tmp_path, scripts=[tick]) as app:
        assert app.settings.database_url == f"sqlite:///{tmp_path / 'quest-test.sqlite3'}"
        assert app.run("tick").ok
        assert app.store.count_runs("tick") == 1


def test_captured_signals_stop_capturing_after_the_block(tmp_path: Path) -> None:
    before = len(job_start.receivers)
    with temporary_quest(tmp_path, scripts=[tick]) as app:
        app.run("tick")
        with captured_signals() as events:
            assert len(job_start.receivers) == before + 2
            app.run("tick")
        assert len(job_start.receivers) == before + 1
        app.run("tick")
    assert events.names() == ["job:start", "job:complete"]
    assert [e.name for e in events.events("job:start")] == ["tick"]
    assert len(job_start.receivers) == before
