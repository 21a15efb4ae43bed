"""``quest cancel``: stop a queued or running run, on whichever host owns it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from ._common import Seconds, get_app, user_errors

if TYPE_CHECKING:
    from quest.store import Store

POLL_EVERY = 0.1


@click.command()
@click.argument("run_id")
@click.option("--no-wait", is_flag=True, help="Return once the request is stored.")
@click.option(
    "--timeout",
    type=Seconds(min=0),
    default=10.0,
    show_default=True,
    help="Seconds to wait for a running run to stop.",
)
def cancel(run_id: str, no_wait: bool, timeout: float) -> None:
    """Cancel RUN_ID (or a unique beginning of it, as `quest history` shows).

    A queued run is cancelled at once and never starts. A running run is stopped by the serve that
    owns it within a second or two; the command waits for that unless --no-wait. Exit 0 when the
    run ends cancelled, 1 when it had already finished or ended otherwise, 2 for an unknown id.
    """
    from quest.enums import CancelOutcome, RunStatus

    app = get_app()
    with user_errors():
        run_id = _resolve(app.store, run_id)
        result = app.cancel(run_id)
    if result.outcome is CancelOutcome.unknown:
        raise click.UsageError(unknown_id(run_id))
    if result.outcome is CancelOutcome.finished:
        status = result.status.value if result.status else "finished"
        click.secho(f"run {run_id} already finished: {status}; nothing to cancel", fg="yellow")
        raise SystemExit(1)
    if result.outcome is CancelOutcome.cancelled:
        click.secho(f"run {run_id} cancelled (it was queued and will not start)", fg="green")
        return
    where = f" on {result.owner}" if result.owner else ""
    click.echo(f"cancel requested for run {run_id} (running{where})")
    if no_wait:
        return
    deadline = time.monotonic() + timeout
    while True:
        with user_errors():
            row = app.store.get_run(run_id)
        ended: RunStatus | None = row["status"] if row is not None else None
        if ended is not None and ended.finished:
            break
        if time.monotonic() >= deadline:
            click.secho(
                f"run {run_id} is still running after {timeout:g} s; the request stays pending "
                "and its serve stops it at its next heartbeat",
                fg="yellow",
            )
            raise SystemExit(1)
        time.sleep(POLL_EVERY)
    if ended is RunStatus.cancelled:
        click.secho(f"run {run_id} cancelled", fg="green")
        return
    click.secho(f"run {run_id} ended {ended.value} before it could be cancelled", fg="yellow")
    raise SystemExit(1)


def _resolve(store: Store, given: str) -> str:
    """*given* itself when it names a run, else the one run id it begins; run ids are lowercase
    hexadecimal, so *given* in capitals names the same run. Text that can be no run id (a lone
    surrogate) is an unknown id."""
    try:
        given.encode("utf-8")
    except UnicodeEncodeError:
        raise click.UsageError(unknown_id(given)) from None
    spellings = list(dict.fromkeys((given, given.lower())))
    for wanted in spellings:
        if store.get_run(wanted) is not None:
            return wanted
    if len(given) < 4:
        return given
    for wanted in spellings:
        found = store.run_ids_starting(wanted, limit=6)
        if len(found) > 1:
            shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
            raise click.UsageError(f"{given!r} begins several run ids ({shown}); give more of it")
        if found:
            return found[0]
    return given


def unknown_id(given: str) -> str:
    """The error of a run id that names no run."""
    return f"no run with id {given!r}; `quest history` lists the runs"
