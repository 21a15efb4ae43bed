"""``quest history``: recorded runs from the JobLog."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click

from ._common import console, get_app, iso, parse_instant, short_message, to_json, user_errors
from ._progress import progress_json

STATUSES = [
    "queued",
    "running",
    "succeeded",
    "failed",
    "timed_out",
    "skipped",
    "interrupted",
    "abandoned",
    "discarded",
    "cancelled",
]


def run_json(row: dict[str, Any]) -> dict[str, Any]:
    """A JobLog row as history's JSON."""
    return {
        "name": row["name"],
        "run_id": row["id"],
        "status": row["status"].value,
        "trigger": row["trigger"].value,
        "inputs": row["inputs"],
        "attempt": row["attempt"],
        "max_attempts": row["max_attempts"],
        "root_id": row["root_id"],
        "key": row["key"],
        "created_at": iso(row["created_at"]),
        "scheduled_for": iso(row["scheduled_for"]),
        "run_after": iso(row["run_after"]),
        "started_at": iso(row["started_at"]),
        "finished_at": iso(row["finished_at"]),
        "duration_ms": row["duration_ms"],
        "result": row["result"],
        "error": row["error"],
        "reason": row["reason"],
        "owner_host": row["owner_host"],
        "owner_pid": row["owner_pid"],
        "progress": progress_json(row.get("progress")),
    }


def log_json(line: dict[str, Any]) -> dict[str, Any]:
    """A stored log line as JSON."""
    return {
        "seq": line["seq"],
        "at": iso(line["at"]),
        "level": line["level"],
        "logger": line["logger"],
        "message": line["message"],
    }


def _since(value: str) -> datetime:
    """``--since`` as an aware instant that converts to UTC (and so to the database)."""
    from quest.timespan import check_instant

    moment = parse_instant(value, "'--since'")
    try:
        return check_instant(moment, "")
    except ValueError as exc:
        raise click.BadParameter(str(exc).strip(), param_hint="'--since'") from None


@click.command()
@click.argument("name", required=False)
@click.option(
    "--status",
    "statuses",
    type=click.Choice(STATUSES),
    multiple=True,
    help="Only runs with this status (repeatable).",
)
@click.option("--since", help="Only runs created at or after this ISO 8601 instant.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="At most this many runs, newest first.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of runs.")
@click.option(
    "--logs",
    "with_logs",
    is_flag=True,
    help="With --json: each run's log lines too, in a 'logs' field.",
)
def history(
    name: str | None,
    statuses: tuple[str, ...],
    since: str | None,
    limit: int,
    as_json: bool,
    with_logs: bool,
) -> None:
    """Show recorded runs, newest first."""
    from quest.enums import RunStatus
    from quest.store import Store

    app = get_app()
    with user_errors():
        store: Store = app.store
        rows = store.history(
            name,
            statuses=[RunStatus(s) for s in statuses],
            since=_since(since) if since else None,
            limit=limit,
        )
    if with_logs and not as_json:
        raise click.UsageError("--logs goes with --json; `quest logs RUN_ID` prints a run's lines")
    if as_json:
        with user_errors():
            progress = store.progress_of(row["id"] for row in rows)
        for row in rows:
            row["progress"] = progress.get(row["id"])
        runs = [run_json(row) for row in rows]
        if with_logs:
            with user_errors():
                found = store.logs_of([row["id"] for row in rows])
            for run in runs:
                run["logs"] = [log_json(line) for line in found.get(run["run_id"], [])]
        click.echo(to_json(runs))
        return
    if not rows:
        click.echo(short_message("No runs recorded" + (f" for {name}." if name else ".")))
        return
    from rich.table import Table

    table = Table()
    for column in ("Started", "Name", "Run", "Trigger", "Try", "Status", "Duration", "Detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        when = row["started_at"] or row["created_at"]
        status = row["status"].value
        colour = {
            "succeeded": "green",
            "skipped": "yellow",
            "queued": "cyan",
            "running": "cyan",
        }.get(status, "red")
        detail = row["error"] or row["reason"] or ""
        table.add_row(
            when.astimezone().strftime("%Y-%m-%d %H:%M:%S") if when else "—",
            row["name"],
            row["id"][:8],
            row["trigger"].value,
            str(row["attempt"]),
            f"[{colour}]{status}[/{colour}]",
            f"{row['duration_ms']} ms" if row["duration_ms"] is not None else "—",
            detail.splitlines()[0][:80] if detail else "",
        )
    console().print(table)
