"""``quest serve``: the one process that schedules."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

import click

from ._common import Seconds, get_app, level_for, setup_logging, user_errors, verbosity

if TYPE_CHECKING:
    from quest.metrics import MetricsServer

log = logging.getLogger("quest.serve")

STOP_CHECK_EVERY = 5.0
"""How often serve's main thread wakes to see whether the loop stopped without being asked (a
stop that is asked for ends its wait at once)."""

_MB = 2**20
_UNITS = {"": _MB, "b": 1, "k": 2**10, "kb": 2**10, "m": _MB, "mb": _MB, "g": 2**30, "gb": 2**30}


class MemorySize(click.ParamType):  # type: ignore[type-arg]
    """A size in bytes from ``512MB``, ``2GB``, ``300000KB`` or a bare number of MB."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
        unit = match.group(2).lower() if match else ""
        if match is None or unit not in _UNITS or len(match.group(1)) > 12:
            self.fail(f"{value!r} is not a size; write 512MB, 2GB or a number of MB", param, ctx)
        size = int(float(match.group(1)) * _UNITS[unit])
        if size < 2**20:
            self.fail(f"{value!r} is less than 1 MB; a worker needs more than that", param, ctx)
        return size


@click.command()
@click.option(
    "--grace",
    type=Seconds(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to let running runs finish on SIGTERM/SIGINT before stopping them.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Worker processes (threads with --isolation thread): runs executed at once.",
)
@click.option(
    "--isolation",
    type=click.Choice(["process", "thread"]),
    default=None,
    help="process: runs execute in supervised worker processes (default, [tool.quest] "
    "isolation); thread: in serve's own process, the lightest footprint.",
)
@click.option(
    "--max-runs-per-worker",
    type=click.IntRange(min=1),
    default=None,
    help="Replace a worker process after this many runs (default: never).",
)
@click.option(
    "--max-worker-memory",
    type=MemorySize(),
    default=None,
    help="Replace a worker process after a run that leaves it above this size "
    "(512MB, 2GB; a bare number is MB).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json prints one JSON object per log line.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=1, max=65535),
    default=None,
    help="Serve Prometheus metrics over HTTP on this port (off by default; docs/metrics.md).",
)
@click.option(
    "--metrics-host",
    default=None,
    help="Address the metrics port listens on (default 127.0.0.1; 0.0.0.0 for every interface).",
)
def serve(
    grace: float,
    concurrency: int,
    isolation: str | None,
    max_runs_per_worker: int | None,
    max_worker_memory: int | None,
    log_format: str,
    metrics_port: int | None,
    metrics_host: str | None,
) -> None:
    """Run every enabled script on its schedule, and queued runs, until stopped.

    Every scheduled slot is claimed in the database first, so any number of serve processes on
    one database run each slot once. SIGTERM or SIGINT stops firing and waits --grace seconds for
    running runs; a second signal exits at once.
    """
    setup_logging(level_for(verbosity()), log_format)
    # The metrics port is bound first: a port in use stops serve before anything is scheduled,
    # and before the worker template is forked.
    exporter = _bind_metrics(metrics_host, metrics_port)
    app = get_app()
    with user_errors():
        app.store.check()
        app.store.ensure_schema()
        registry = app.registry
    from quest.enums import Isolation
    from quest.scheduler import Serve

    for error in registry.errors:
        log.error("not scheduled: %s", error, extra={"action": "load_error"})
    mode = Isolation(isolation) if isolation else app.settings.isolation
    if isolation:
        app.settings = app.settings.with_overrides(isolation=mode)
    pool = None
    with user_errors():
        app.runner  # noqa: B018 - the bootstrap runs once, before the workers are forked
    if mode is Isolation.process or any(
        script.block().isolation is Isolation.process for script in registry
    ):
        from quest.pool import WorkerPool

        pool = WorkerPool(
            app,
            size=concurrency,
            max_runs=max_runs_per_worker,
            max_memory=max_worker_memory,
        )
        pool.start()
        app.runner.pool = pool
    server = Serve(app, grace=grace, concurrency=concurrency, pool=pool)
    metrics = None
    if exporter is not None:
        from quest.metrics import Metrics

        metrics = Metrics(app).connect(app.runner)
        metrics.attach(server)
        exporter.start(metrics.registry)
        log.info("metrics on %s", exporter.url, extra={"action": "metrics"})
    signals_seen = 0

    def on_signal(signum: int, frame: Any) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen == 1:
            log.info("%s received; stopping (grace %.0f s)", signal.Signals(signum).name, grace)
            server.stop()
            return
        log.warning("second signal; exiting now")
        server.record_interrupted()
        os._exit(1)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        "quest serve: %d scripts, database %s, owner %s, %s",
        len(registry),
        app.store.engine.url.render_as_string(hide_password=True),
        app.runner.owner,
        f"{concurrency} worker processes" if pool else f"{concurrency} threads (in-process)",
        extra={"action": "serve_start"},
    )

    def forever() -> None:
        try:
            server.serve_forever()
        finally:
            server.stop()

    loop = threading.Thread(target=forever, name="quest-serve", daemon=True)
    loop.start()
    # Joined with a long timeout, not blocked on the stop event: the signal handler sets that
    # event, and a handler run while this thread holds the event's lock would wait for it forever.
    while loop.is_alive() and not server.stopping:
        loop.join(STOP_CHECK_EVERY)
    loop.join(5)
    interrupted = server.shutdown()
    if pool is not None:
        pool.close()
    if exporter is not None:
        exporter.close()
    if metrics is not None:
        metrics.disconnect()
    app.close()
    log.info(
        "quest serve stopped%s",
        f"; {len(interrupted)} run(s) interrupted" if interrupted else "",
        extra={"action": "serve_stop"},
    )
    sys.exit(0)


def _bind_metrics(host: str | None, port: int | None) -> MetricsServer | None:
    """The bound (not yet serving) metrics endpoint, or ``None`` without ``--metrics-port``."""
    if port is None:
        if host is not None:
            raise click.UsageError("--metrics-host needs --metrics-port (the metrics are off)")
        return None
    from quest.metrics import MetricsServer

    with user_errors():
        return MetricsServer(host or "127.0.0.1", port)
