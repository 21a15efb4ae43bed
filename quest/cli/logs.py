"""``quest logs``: the lines a run logged, and with ``--follow`` those it logs until it ends."""

from __future__ import annotations

import time

import click

from ._common import get_app, user_errors
from .cancel import _resolve, unknown_id

FOLLOW_EVERY = 0.5


@click.command()
@click.argument("run_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the run ends.")
def logs(run_id: str, follow: bool) -> None:
    """Print the lines RUN_ID (or a unique beginning of it) logged: time, level, logger, message.

    A run keeps its last 1,000 lines and 256 KiB; a first line says what was dropped. With
    --follow, new lines are printed as the run logs them, and the command exits 0 when the run
    ends. Exit 2 for an unknown run.
    """
    from quest.runlog import line_text

    app = get_app()
    with user_errors():
        run_id = _resolve(app.store, run_id)
        row = app.store.get_run(run_id)
    if row is None:
        raise click.UsageError(unknown_id(run_id))
    last = 0
    marked = False
    try:
        while True:
            with user_errors():
                if follow:
                    # Read the status first: lines are stored before a run's end, so the lines
                    # read after seeing it ended are all of them.
                    row = app.store.get_run(run_id)
                lines = app.store.run_logs(run_id, after=last if follow else None)
            if not lines and not follow and row is not None:
                status = row["status"].value
                click.echo(f"run {run_id} ({status}) has no log lines", err=True)
            for line in lines:
                if line["seq"] == 0:
                    if marked:
                        continue
                    marked = True
                elif line["seq"] <= last:
                    continue
                else:
                    last = line["seq"]
                click.echo(line_text(line))
            if not follow or row is None or row["status"].finished:
                return
            time.sleep(FOLLOW_EVERY)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
