"""``quest list`` and ``quest show``: what the scripts are and when they run next."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from quest.describe import Shared, declaration, next_fires, schedule_note, schedule_words

from ._common import console, get_app, iso, parse_instant, to_json, user_errors
from ._table import plain_table

if TYPE_CHECKING:
    from quest.app import Quest
    from quest.definition import Script


def _print_errors(app: Quest) -> None:
    for error in app.registry.errors:
        click.secho(f"✗ {error}", fg="red", err=True)


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def list_scripts(as_json: bool) -> None:
    """List scripts: name, friendly name, schedule in words, timezone, next run, last outcome."""
    app = get_app()
    with user_errors():
        registry = app.registry
        now = app.clock.now()
        paused = app.store.paused()
        last = app.store.last_runs(registry.scripts)
        running = _running_by_name(app)
    rows: list[dict[str, Any]] = []
    shared = Shared(app)
    for script in registry:
        zone = script.timezone(app.settings.timezone)
        fires = next_fires(app, script, now, 1, shared) if _active(app, script, paused) else []
        outcome = last.get(script.name)
        rows.append(
            {
                "name": script.name,
                "friendly_name": script.friendly_name,
                "schedule": schedule_words(app, script, shared)
                + (" (paused)" if script.name in paused else ""),
                "timezone": str(zone),
                "next_run": fires[0].astimezone(zone).isoformat(timespec="seconds")
                if fires
                else None,
                "last_outcome": outcome["status"].value if outcome else None,
                "last_run_at": iso(outcome["finished_at"] or outcome["created_at"])
                if outcome
                else None,
                "note": schedule_note(script),
                "running": running.get(script.name, []),
            }
        )
    if as_json:
        click.echo(to_json(rows))
        _print_errors(app)
        return
    title = f"{len(rows)} scripts in {app.settings.scripts_dir}"
    headers: tuple[str, ...] = (
        "Name",
        "Friendly name",
        "Schedule",
        "Timezone",
        "Next run",
        "Last outcome",
    )
    if running:
        headers += ("Running",)
    cells = [
        (
            row["name"],
            row["friendly_name"],
            row["schedule"],
            row["timezone"],
            _short(row["next_run"]),
            _outcome(row["last_outcome"]),
        )
        + ((_running_text(row["running"]),) if running else ())
        for row in rows
    ]
    out = console()
    text = plain_table(out, title, headers, cells)  # rich's text, built directly when unstyled
    if text is not None:
        out.file.write(text)
        out.file.flush()
    else:
        from rich.table import Table

        table = Table(title=title, title_justify="left")
        table.add_column(headers[0], no_wrap=True)
        for column in headers[1:]:
            table.add_column(column, overflow="fold")
        for cell in cells:
            table.add_row(*cell)
        out.print(table)
    for row in rows:
        if row["note"]:
            click.secho(f"! {row['name']}: interval {row['note']}", fg="yellow")
    _print_errors(app)


def _running_by_name(app: Quest) -> dict[str, list[dict[str, Any]]]:
    """Script name → its running runs (any node): run id, node, start and progress, as JSON."""
    from ._progress import progress_json

    found: dict[str, list[dict[str, Any]]] = {}
    for run in app.store.running_runs():
        found.setdefault(run["name"], []).append(
            {
                "run_id": run["id"],
                "node": f"{run['owner_host']}:{run['owner_pid']}" if run["owner_host"] else None,
                "started_at": iso(run["started_at"]),
                "progress": progress_json(run["progress"]),
            }
        )
    return found


def _running_text(runs: list[dict[str, Any]]) -> str:
    """``a1b2c3d4 45% 23/50 item 23`` for the first running run, ``(+2)`` for the others."""
    from rich.markup import escape

    from ._progress import progress_text

    if not runs:
        return "—"
    first = runs[0]
    text = f"{first['run_id'][:8]} {progress_text(first['progress'], bar=False)}"
    if first["progress"] is None:
        text = f"{first['run_id'][:8]} running"
    if len(runs) > 1:
        text += f" (+{len(runs) - 1})"
    return escape(text)


def _active(app: Quest, script: Script, paused: set[str]) -> bool:
    block = script.quest
    if block is None or not block.enabled or script.name in paused:
        return False
    return not (block.environments and app.settings.env not in block.environments)


def _short(value: str | None) -> str:
    if value is None:
        return "—"
    return value.replace("T", " ")


_COLOURS = {"succeeded": "green", "failed": "red", "timed_out": "red", "skipped": "yellow"}


def _outcome(value: str | None) -> str:
    if value is None:
        return "—"
    colour = _COLOURS.get(value, "magenta")
    return f"[{colour}]{value}[/{colour}]"


@click.command()
@click.argument("name")
@click.option(
    "--next",
    "count",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help="How many upcoming fire times to show.",
)
@click.option(
    "--after",
    help="Fire times after this ISO 8601 instant; without an offset it is "
    "read in the script's timezone (default: now).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def show(name: str, count: int, after: str | None, as_json: bool) -> None:
    """Show a script's declaration, inputs and next fire times (ISO 8601 with offset)."""
    app = get_app()
    with user_errors():
        script = app.registry.get(name)
    zone = script.timezone(app.settings.timezone)
    start = _after(after, zone) if after else app.clock.now()
    fires = [f.astimezone(zone) for f in next_fires(app, script, start, count)]
    data = declaration(app, script)
    data["next_fire_times"] = [f.isoformat() for f in fires]
    data["running"] = _running_of(app, script.name)
    if as_json:
        click.echo(to_json(data))
        return
    click.secho(f"{script.name}", bold=True, nl=False)
    click.echo(f" — {script.friendly_name}")
    if script.description:
        click.echo(f"  {script.description}")
    click.echo(f"  file:      {script.path}")
    click.echo(f"  schedule:  {data['schedule']}")
    click.echo(f"  timezone:  {data['timezone']}")
    if data["note"]:
        click.secho(f"  note:      interval {data['note']}", fg="yellow")
    for key, value in data["quest"].items():
        if key not in ("interval", "cron", "at", "timezone"):
            click.echo(f"  {key + ':':<10} {json_text(value)}")
    if data["inputs"]:
        click.echo("  inputs:")
        for key, spec in data["inputs"].items():
            click.echo(
                f"    {key}: {spec['type']}"
                + (f" — {spec['description']}" if spec["description"] else "")
                + ("" if spec["required"] else f" (default {json_text(spec['default'])})")
            )
    click.echo("  next fire times:" if fires else "  next fire times: none")
    for fire in fires:
        click.echo(f"    {fire.isoformat()}")
    _show_running(data["running"])


def _running_of(app: Quest, name: str) -> list[dict[str, Any]] | None:
    """The running runs of *name*; ``None`` when the database cannot be read (show works
    without one)."""
    from sqlalchemy.exc import DBAPIError

    from quest.errors import DatabaseUnavailable

    try:
        return _running_by_name(app).get(name, [])
    except (DBAPIError, DatabaseUnavailable):
        return None


def _show_running(runs: list[dict[str, Any]] | None) -> None:
    if runs is None:
        click.echo("  running:   unknown (the database cannot be read)")
        return
    from ._progress import progress_text

    for run in runs:
        progress = run["progress"]
        shown = progress_text(progress) if progress is not None else "no progress reported"
        click.echo(f"  running:   run {run['run_id'][:8]} on {run['node'] or '?'}: {shown}")


def _after(value: str, zone: Any) -> datetime:
    """``--after`` as an aware instant within the calendar."""
    from quest.timespan import check_instant

    moment = parse_instant(value, "'--after'", zone)
    try:
        return check_instant(moment, "")
    except ValueError as exc:
        raise click.BadParameter(str(exc).strip(), param_hint="'--after'") from None


def json_text(value: Any) -> str:
    import json

    return json.dumps(value, default=str)
