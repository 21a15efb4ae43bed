"""``quest serve``: the one process that schedules."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any

import click

from ._common import get_app, level_for, setup_logging, user_errors, verbosity

log = logging.getLogger("quest.serve")


@click.command()
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to let running runs finish on SIGTERM/SIGINT before stopping them.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Worker threads for queued and retried runs.",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json prints one JSON object per log line.",
)
def serve(grace: float, concurrency: int, log_format: str) -> None:
    """Run every enabled script on its schedule, and queued runs, until stopped.

    Every scheduled slot is claimed in the database first, so any number of serve processes on
    one database run each slot once. SIGTERM or SIGINT stops firing and waits --grace seconds for
    running runs; a second signal exits at once.
    """
    setup_logging(level_for(verbosity()), log_format)
    app = get_app()
    with user_errors():
        app.store.check()
        app.store.ensure_schema()
        registry = app.registry
    from quest.scheduler import Serve

    for error in registry.errors:
        log.error("not scheduled: %s", error, extra={"action": "load_error"})
    server = Serve(app, grace=grace, concurrency=concurrency)
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
        "quest serve: %d scripts, database %s, owner %s",
        len(registry),
        app.store.engine.url.render_as_string(hide_password=True),
        app.runner.owner,
        extra={"action": "serve_start"},
    )
    loop = threading.Thread(target=server.serve_forever, name="quest-serve", daemon=True)
    loop.start()
    while loop.is_alive() and not server.stopping:
        loop.join(0.5)
    loop.join(5)
    interrupted = server.shutdown()
    app.close()
    log.info(
        "quest serve stopped%s",
        f"; {len(interrupted)} run(s) interrupted" if interrupted else "",
        extra={"action": "serve_stop"},
    )
    sys.exit(0)
