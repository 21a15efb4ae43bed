"""``quest nodes``: every ``quest serve`` on this database, its heartbeat and its running runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import click

from ._common import console, get_app, iso, to_json, user_errors

COLOURS = {"alive": "green", "lost": "red", "stopped": "dim"}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of nodes.")
def nodes(as_json: bool) -> None:
    """List the serve processes of this database: alive, lost (silent for longer than its lease
    TTL; their runs are recovered by the other serves) or stopped."""
    from quest.store import node_state

    app = get_app()
    with user_errors():
        found = app.store.nodes()
    now = app.clock.now()
    ttl = timedelta(seconds=app.settings.lease_ttl)
    for node in found:
        node["state"] = node_state(node, now=now, ttl=ttl)
    if as_json:
        click.echo(to_json([_json(node, now) for node in found]))
        return
    if not found:
        click.echo("No serve has registered with this database yet.")
        return
    from rich.table import Table

    table = Table()
    for column in (
        "Host",
        "PID",
        "Version",
        "Started",
        "Concurrency",
        "Isolation",
        "Heartbeat",
        "State",
        "Running",
    ):
        table.add_column(column, overflow="fold")
    for node in found:
        colour = COLOURS[node["state"]]
        runs = node["runs"]
        running = ", ".join(f"{run['name']} {run['id'][:8]}" for run in runs[:3])
        if len(runs) > 3:
            running += f" (+{len(runs) - 3})"
        table.add_row(
            node["host"],
            str(node["pid"]),
            node["version"],
            _local(node["started_at"]),
            str(node["concurrency"]),
            node["isolation"],
            _age(now - node["heartbeat_at"]),
            f"[{colour}]{node['state']}[/{colour}]",
            running or "—",
        )
    console().print(table)


def _json(node: dict[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "id": node["id"],
        "host": node["host"],
        "pid": node["pid"],
        "version": node["version"],
        "started_at": iso(node["started_at"]),
        "concurrency": node["concurrency"],
        "isolation": node["isolation"],
        "heartbeat_at": iso(node["heartbeat_at"]),
        "heartbeat_age_s": round((now - node["heartbeat_at"]).total_seconds(), 3),
        "stopped_at": iso(node["stopped_at"]),
        "lease_ttl": node.get("lease_ttl"),
        "state": node["state"],
        "runs": [
            {"run_id": run["id"], "name": run["name"], "started_at": iso(run["started_at"])}
            for run in node["runs"]
        ],
    }


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _age(delta: timedelta) -> str:
    seconds = max(delta.total_seconds(), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 36 * 3600:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"
