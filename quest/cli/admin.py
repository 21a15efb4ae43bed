"""``quest pause``, ``quest resume`` and ``quest prune``."""

from __future__ import annotations

import click

from ._common import get_app, to_json, user_errors


def _set_paused(name: str, paused: bool) -> None:
    app = get_app()
    with user_errors():
        script = app.registry.get(name)
        app.store.set_paused(script.name, paused, now=app.clock.now())
    state = "paused: its scheduled fires are skipped on every host" if paused else "resumed"
    click.secho(f"{script.name} {state}", fg="yellow" if paused else "green")


@click.command()
@click.argument("name")
def pause(name: str) -> None:
    """Pause NAME's schedule on every serve of this database; its fires are recorded skipped."""
    _set_paused(name, True)


@click.command()
@click.argument("name")
def resume(name: str) -> None:
    """Resume NAME's schedule."""
    _set_paused(name, False)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the rows deleted per script as JSON.")
def prune(as_json: bool) -> None:
    """Delete old JobLog rows by the retention rules.

    Succeeded and skipped runs: 30 days and 1,000 per script; failed, timed out, interrupted,
    abandoned and discarded runs: 90 days and 5,000 per script; a quest block's `retention`
    overrides both. quest serve does this every hour.
    """
    from quest.retention import prune as prune_runs

    app = get_app()
    with user_errors():
        deleted = prune_runs(app, app.clock.now())
    if as_json:
        click.echo(to_json(deleted))
        return
    total = sum(deleted.values())
    click.echo(f"deleted {total} JobLog row{'s' if total != 1 else ''}")
    for name, count in sorted(deleted.items()):
        click.echo(f"  {name}: {count}")
