"""``quest db``: the schema of quest's tables and the application's."""

from __future__ import annotations

import click

from ._common import get_app, user_errors


@click.group()
def db() -> None:
    """Manage the database schema (Alembic migrations of quest and the application)."""


@db.command()
def upgrade() -> None:
    """Apply every pending migration (quest's tables, then the application's)."""
    from quest import migrate
    from quest.store import Store

    app = get_app()
    store = Store.from_settings(app.settings)
    try:
        with user_errors():
            store.check()
            changed = migrate.upgrade(store, app.settings.models)
            revisions = sorted(migrate.current(store))
        url = store.engine.url.render_as_string(hide_password=True)
    finally:
        store.dispose()
    state = "upgraded" if changed else "already up to date"
    click.secho(f"{url}: {state} ({', '.join(revisions) or 'no revisions'})", fg="green")


@db.command()
def current() -> None:
    """Print the revisions the database is at, and whether it is up to date."""
    from quest import migrate
    from quest.store import Store

    app = get_app()
    store = Store.from_settings(app.settings)
    try:
        with user_errors():
            store.check()
            revisions = migrate.current(store)
            wanted = migrate.heads(migrate.version_locations(app.settings.models))
    finally:
        store.dispose()
    click.echo(", ".join(sorted(revisions)) or "empty")
    if not wanted <= revisions:
        click.secho(
            f"pending: quest db upgrade would go to {', '.join(sorted(wanted))}", fg="yellow"
        )
        raise SystemExit(1)


@db.command()
@click.option("-m", "--message", required=True, help="What the revision changes.")
@click.option("--empty", is_flag=True, help="Write an empty revision instead of comparing models.")
def revision(message: str, empty: bool) -> None:
    """Write a new migration of the application's models, compared with the database."""
    from quest import migrate

    app = get_app()
    with user_errors():
        try:
            script = migrate.revision(
                app.store, app.settings.models, message, autogenerate=not empty
            )
        except FileNotFoundError as exc:
            raise click.UsageError(str(exc)) from None
    click.echo(script.path if script is not None else "no revision written")
