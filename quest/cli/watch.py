"""``quest watch``: the runs running now on every node, refreshed in place until Ctrl-C."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from ._common import Seconds, console, get_app, user_errors
from ._progress import elapsed_text, progress_text

if TYPE_CHECKING:
    from quest.app import Quest

LOG_LINE_WIDTH = 80


def frame(app: Quest) -> Any:
    """One picture of the running runs: a rich table with a line saying when it was taken."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    store = app.store
    runs = store.running_runs()
    tails = _log_tails(store, [run["id"] for run in runs])
    now = app.clock.now()
    stamp = now.astimezone().strftime("%H:%M:%S")
    if not runs:
        return Text(f"No runs are running ({stamp}).")
    table = Table(title=f"{len(runs)} running ({stamp})", title_justify="left")
    for column in ("Script", "Run", "Node", "Progress", "Elapsed", "Last log line"):
        table.add_column(column, overflow="fold", no_wrap=column in ("Run", "Elapsed"))
    for run in runs:
        started = run["started_at"] or run["created_at"]
        tail = tails.get(run["id"]) or ""
        tail = tail.splitlines()[-1] if tail.strip() else ""
        if len(tail) > LOG_LINE_WIDTH:
            tail = tail[: LOG_LINE_WIDTH - 1] + "…"
        table.add_row(
            run["name"],
            run["id"][:8],
            f"{run['owner_host']}:{run['owner_pid']}" if run["owner_host"] else "—",
            Text(progress_text(run["progress"])),
            elapsed_text((now - started).total_seconds()) if started else "—",
            Text(tail or "—"),
        )
    return Group(table)


def _log_tails(store: Any, run_ids: list[str]) -> dict[str, str]:
    """The last log line of each run, where the store keeps run logs (``Store.log_tail``)."""
    log_tail: Callable[[list[str]], dict[str, str]] | None = getattr(store, "log_tail", None)
    if log_tail is None or not run_ids:
        return {}
    try:
        return dict(log_tail(run_ids))
    except Exception:
        return {}


@click.command()
@click.option(
    "--interval",
    type=Seconds(min=0.1, max=3600),
    default=1.0,
    show_default=True,
    help="Seconds between two refreshes.",
)
@click.option("--once", is_flag=True, help="Print one picture and exit (for scripts and pipes).")
def watch(interval: float, once: bool) -> None:
    """Show the runs running now on every node (script, node, progress, elapsed, last log line),
    refreshed in place until Ctrl-C."""
    from rich.live import Live

    app = get_app()
    out = console()
    with user_errors():
        picture = frame(app)
    if once:
        out.print(picture)
        return
    try:
        with Live(picture, console=out, auto_refresh=False, transient=False) as live:
            while True:
                time.sleep(interval)
                live.update(_next_frame(app, interval), refresh=True)
    except KeyboardInterrupt:
        pass


def _next_frame(app: Quest, interval: float) -> Any:
    """The next picture; while the database cannot be read, a line saying so (watch goes on)."""
    from rich.text import Text
    from sqlalchemy.exc import DBAPIError

    from quest.errors import DatabaseUnavailable

    try:
        return frame(app)
    except (DBAPIError, DatabaseUnavailable) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        return Text(f"Cannot read the database ({reason}); trying again every {interval:g} s.")
