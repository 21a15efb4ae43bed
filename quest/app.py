"""The :class:`Quest` application: settings, scripts, database and runner, wired once."""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from .clock import SYSTEM_CLOCK, Clock
from .config import Settings, activate, load_settings
from .context import Context
from .definition import Script
from .discovery import Registry, discover
from .enums import RunStatus
from .errors import InvalidInputs
from .inputs import Inputs
from .isolation import ChildProcess
from .recorder import Recorder
from .runner import (
    HOST,
    FollowUp,
    Runner,
    RunOutcome,
    RunRequest,
    new_run_id,
    overlap_governed,
)
from .store import CancelResult, Store


class Quest:
    """One project's quest: built from settings, everything else is made on first use."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        clock: Clock = SYSTEM_CLOCK,
        registry: Registry | None = None,
        store: Store | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        activate(self.settings)
        self.clock = clock
        if registry is not None:
            self.__dict__["registry"] = registry
        if store is not None:
            self.__dict__["store"] = store

    @functools.cached_property
    def registry(self) -> Registry:
        return discover(self.settings.scripts_dir)

    @functools.cached_property
    def store(self) -> Store:
        store = Store.from_settings(self.settings)
        try:
            store.ensure_schema()
        except BaseException:
            store.dispose()  # never cached, so close() could not
            raise
        return store

    @functools.cached_property
    def runner(self) -> Runner:
        runner = Runner(self.registry, self.store, self.settings, clock=self.clock)
        runner.timed = ChildProcess()
        self.recorder = Recorder(self.store).connect(runner)
        if self.settings.bootstrap:
            bootstrap = importlib.import_module(self.settings.bootstrap)
            setup = getattr(bootstrap, "bootstrap", None)
            if callable(setup):
                setup(self, runner)
        return runner

    def run(
        self,
        name: str,
        inputs: Mapping[str, Any] | None = None,
        request: RunRequest | None = None,
    ) -> RunOutcome:
        return self.runner.run(name, inputs, request)

    def enqueue(
        self,
        name: str,
        inputs: Mapping[str, Any] | None = None,
        *,
        delay: timedelta | str | float | None = None,
        key: str | None = None,
        run_at: datetime | None = None,
    ) -> str:
        """Queue a run of *name*; the inputs are validated now. Returns the run id."""
        return self.runner.enqueue(name, inputs, delay=delay, key=key, run_at=run_at)

    def run_claimed(
        self, row: Mapping[str, Any], follow: FollowUp | None = None
    ) -> RunOutcome | None:
        """Run a queued JobLog row already claimed by this process; ``None`` if it cannot run."""
        request = self.claimed_request(row, follow)
        if request is None:
            return None
        script, inputs, run = request
        return self.runner.run(script.name, inputs, run)

    def claimed_request(
        self, row: Mapping[str, Any], follow: FollowUp | None = None
    ) -> tuple[Script, Inputs, RunRequest] | None:
        """What the runner needs to run a claimed queued row; ``None`` if it cannot run (its
        script is gone, its inputs no longer validate), the row then recorded ``failed``."""
        store = self.store
        now = self.clock.now()
        script = self.registry.scripts.get(row["name"])
        if script is None:
            store.update_run(
                row["id"],
                {
                    "status": RunStatus.failed,
                    "finished_at": now,
                    "error": f"ScriptNotFound: no script named {row['name']!r} here",
                },
            )
            store.forget_secrets(row["root_id"])
            return None
        sensitive = {key for key, spec in script.inputs.items() if spec.sensitive}
        raw = {k: v for k, v in (row["inputs"] or {}).items() if k not in sensitive}
        if sensitive:
            raw.update(store.secrets_for(row["root_id"]))
        try:
            _, inputs = self.runner.prepare(script.name, raw)
        except InvalidInputs as exc:
            store.update_run(
                row["id"],
                {"status": RunStatus.failed, "finished_at": now, "error": f"InvalidInputs: {exc}"},
            )
            store.forget_secrets(row["root_id"])
            return None
        request = RunRequest(
            trigger=row["trigger"],
            run_id=row["id"],
            attempt=row["attempt"],
            root_id=row["root_id"],
            key=row["key"],
            scheduled_for=row["scheduled_for"],
            retry=True,
            leased=script.block().without_overlapping
            and overlap_governed(row["trigger"], row["scheduled_for"]),
            follow=follow,
            extra={"queued": True, "claimed": True},
        )
        return script, inputs, request

    def claim(self, run_id: str) -> dict[str, Any] | None:
        """Claim one queued run by id (``None`` if another process has it)."""
        rows = self.store.claim_queued(
            now=self.clock.now(), limit=1, owner_host=HOST, owner_pid=os.getpid(), run_id=run_id
        )
        return rows[0] if rows else None

    def cancel(self, run_id: str, *, by: str | None = None) -> CancelResult:
        """Cancel a run: at once when it is queued; a running one is stopped by the serve that
        owns it. *by* (who asked, recorded with the run) defaults to ``user@host``."""
        return self.store.request_cancel(run_id, by=by or _who(), now=self.clock.now())

    def logs(self, run_id: str) -> list[dict[str, Any]]:
        """The lines run *run_id* logged, oldest first: dicts of ``seq``, ``at`` (UTC),
        ``level``, ``logger`` and ``message``. A run that dropped lines starts with a marker line
        (``seq`` 0) saying how many; an unknown run has none."""
        return self.store.run_logs(run_id)

    def context_for(self, script: Script, **fields: Any) -> Context:
        """A context for running *script* outside the runner (a child process, a test)."""
        run_id = fields.pop("run_id", None) or new_run_id()
        now = fields.pop("now", None) or self.clock.now()
        return self.runner.context(script, run_id=run_id, now=now, **fields)

    def close(self) -> None:
        if "runner" in self.__dict__:
            self.runner.close()
            self.recorder.disconnect()
        if "store" in self.__dict__:
            self.store.dispose()


def _who() -> str:
    import getpass

    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{HOST}"
