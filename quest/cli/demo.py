"""``quest demo seed``: sample data for the bundled application, so every script has work."""

from __future__ import annotations

import click

from ._common import get_app, user_errors


@click.group()
def demo() -> None:
    """Sample data for the bundled application."""


@demo.command()
@click.option("--reset", is_flag=True, help="Empty the sample tables first (the JobLog is kept).")
def seed(reset: bool) -> None:
    """Fill the sample tables with data relative to now, and upload files in .tmp/uploads."""
    quest = get_app()  # puts the project's root on sys.path, where the app package lives
    try:
        from app import demo as sample
    except ModuleNotFoundError as exc:
        raise click.UsageError(
            f"quest demo seed needs the bundled sample application (app.demo) in "
            f"{quest.settings.root}: {exc}"
        ) from None
    with user_errors():
        quest.store.ensure_schema()
        counts = sample.seed(
            quest.store.sessions.maker(),
            now=quest.clock.now(),
            root=quest.settings.root,
            reset_first=reset,
        )
    if reset:
        click.echo("Emptied the sample tables.")
    click.echo(f"Seeded {quest.store.engine.url.render_as_string()}:")
    width = max(len(name) for name in counts)
    for name, count in counts.items():
        click.echo(f"  {name.replace('_', ' '):<{width}}  {count}")
