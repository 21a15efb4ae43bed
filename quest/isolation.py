"""Running a sync script in a child process, so that a timeout or a shutdown really stops it.

Python cannot stop a thread from outside; a child process can be terminated. A sync script that
declares a ``timeout`` runs in a child started with the ``spawn`` method: the child imports the
script file again, validates the same inputs, runs it with a context of its own (its own database
connections) and sends back the result or the error. The child leads a process group of its
own; when the timeout passes, the run is cancelled or the serve is stopping, the child and every
process it started (in its group, or in a session of their own) are killed.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import redact, runlog
from .config import activate
from .errors import RunCancelled, RunInterrupted, RunTimeout, WorkerDied
from .failures import Failure

if TYPE_CHECKING:
    from .context import Context
    from .definition import Script
    from .inputs import Inputs


STARTUP_ALLOWANCE = 60.0


class ChildProcess:
    """Runs a sync script with a timeout in a child process of its own (``isolation = "thread"``
    and ``quest run``): the runner's executor for what a thread cannot stop."""

    def execute(
        self, script: Script, inputs: Inputs, ctx: Context, active: Any, timeout: float | None
    ) -> Any:
        return call_in_child(script, inputs, ctx, active, timeout or 0.0)


def call_in_child(script: Script, inputs: Inputs, ctx: Context, active: Any, timeout: float) -> Any:
    spawn = multiprocessing.get_context("spawn")
    receiver, sender = spawn.Pipe(duplex=False)
    payload = {
        "path": script.path,
        "name": script.name,
        "inputs": inputs.model_dump(),
        "secrets": redact.sensitive_values(inputs, script.inputs),
        "logging": _logging_setup(),
        "settings": ctx.settings,
        "ctx": ctx.identity(),
    }
    process = spawn.Process(target=_child_main, args=(sender, payload), daemon=True)
    from .pool import boot_clock

    since = boot_clock()
    process.start()
    sender.close()

    def cancel() -> None:
        """Asked to stop (a cancel, shutdown): the loop below ends the child within 0.1 s, with
        what it started while it can still be found among its descendants."""

    active.cancel = cancel
    # A timeout bounds real resources, so it counts real seconds whatever clock the run was given
    # (the async path's asyncio.wait_for does the same), from the moment the child has loaded the
    # script and starts it: starting an interpreter is not the script's time.
    start = time.monotonic()
    budget = timeout + STARTUP_ALLOWANCE
    try:
        while True:
            remaining = budget - (time.monotonic() - start)
            if getattr(active, "cancelled_by", None) is not None:
                _stop(process, since)
                raise RunCancelled(active.cancelled_by)
            if active.interrupted:
                _stop(process, since)
                raise RunInterrupted("stopped by shutdown")
            if remaining <= 0:
                _stop(process, since)
                raise RunTimeout(f"exceeded its timeout of {timeout:g} s")
            if receiver.poll(min(remaining, 0.1)):
                try:
                    kind, value = receiver.recv()
                except EOFError:
                    kind, value = "lost", None
                if kind == "started":
                    start, budget = time.monotonic(), timeout
                    continue
                if kind == "report":
                    if ctx._report is not None:
                        ctx._report(*value)
                    continue
                break
            if not process.is_alive() and not receiver.poll(0):
                kind, value = "lost", None
                break
    except BaseException:
        # Anything else that ends the wait (Ctrl-C in `quest run`: the child leads a group of
        # its own and is not sent the terminal's SIGINT) ends the child and what it started.
        if process.is_alive():
            _stop(process, since)
        raise
    finally:
        active.cancel = None
        receiver.close()
    process.join(5)
    if kind == "ok":
        return value
    if kind == "lost":
        if getattr(active, "cancelled_by", None) is not None:
            raise RunCancelled(active.cancelled_by)
        if active.interrupted:
            raise RunInterrupted("stopped by shutdown")
        raise WorkerDied(f"the script's process exited with code {process.exitcode}")
    failure: Failure = value
    failure.reraise()


def _stop(process: Any, since: float) -> None:
    """Kill the child and what it started since *since* (:func:`~quest.pool.boot_clock`)."""
    from .pool import _kill_worker

    _kill_worker(process.pid, since)
    process.join(5)


def _logging_setup() -> dict[str, Any] | None:
    """The level and format of this process's first log handler, for the child to log alike."""
    root = logging.getLogger()
    if not root.handlers:
        return None
    formatter = root.handlers[0].formatter
    if formatter is not None and type(formatter).__module__.startswith("quest."):
        return {"level": root.level, "formatter": formatter}  # quest's own: the child imports it
    try:
        plain = logging.Formatter(
            getattr(formatter, "_fmt", None), getattr(formatter, "datefmt", None)
        )
    except (TypeError, ValueError):
        plain = logging.Formatter()
    return {"level": root.level, "formatter": plain}


def _child_logging(setup: dict[str, Any] | None, secrets: list[Any]) -> None:
    """Log to stderr as the parent does, scrubbed of the run's secrets like every quest process."""
    redact.register(secrets)
    if setup is not None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(setup["formatter"])
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(setup["level"])
    redact.install_process()


def _child_main(sender: Any, payload: dict[str, Any]) -> None:
    from .discovery import Registry, load_file
    from .inputs import validate
    from .results import capture
    from .runner import Runner
    from .store import Store

    os.setpgid(0, 0)  # a group of its own: a stop ends what it started, and only that
    _child_logging(payload.get("logging"), payload.get("secrets") or [])
    script: Script | None = None
    try:
        script = load_file(Path(payload["path"]), payload["name"])
        registry = Registry()
        registry.add(script)
        settings = payload["settings"]
        activate(settings)
        runner = Runner(registry, Store.from_settings(settings), settings)
        inputs = validate(script.model, script.inputs, payload["inputs"])
        fields = dict(payload["ctx"])
        lock = threading.Lock()

        def report(kind: str, value: Any) -> None:
            with lock:
                sender.send(("report", (kind, value)))

        run_id = fields.pop("run_id")
        context = runner.context(
            script, run_id=run_id, now=fields.pop("now"), report=report, **fields
        )
        sender.send(("started", None))
        # Everything this process logs is the run's; its last lines go before the result.
        with runlog.capture(run_id, lambda batch: report("log", batch), process=True):
            try:
                result = script.fn(inputs, context)
                if asyncio.iscoroutine(result):
                    result = asyncio.run(result)
            finally:
                context.progress.flush()
        sender.send(("ok", capture(result)))
    except BaseException as exc:
        discard_on = script.block().discard_on if script is not None else ()
        sender.send(("error", Failure.of(exc, discard_on).scrubbed()))
    finally:
        sender.close()
