"""``quest dashboard``: the web dashboard, standalone, on loopback unless a password is set."""

from __future__ import annotations

import errno
import gc
import os
import socket

import click

from ._common import Seconds, get_app, user_errors


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8787,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Port to listen on.",
)
@click.option(
    "--poll",
    "poll_seconds",
    default=2.0,
    show_default=True,
    type=Seconds(0.2, 3600),
    help="Seconds between live updates of an open page.",
)
def dashboard(host: str, port: int, poll_seconds: float) -> None:
    """Serve the web dashboard: scripts, runs, queue and nodes, with run now, pause, resume,
    retry, cancel and discard.

    It listens on 127.0.0.1 and lets in local clients only. To listen on another address, set
    QUEST_DASHBOARD_PASSWORD: every request must then give it (HTTP Basic, any user name).
    """
    from quest.dashboard.security import is_loopback

    password = os.environ.get("QUEST_DASHBOARD_PASSWORD") or None
    if not is_loopback(host) and not password:
        raise click.BadParameter(
            f"{host} is reachable from other machines, and the dashboard can cancel runs and "
            f"queue new ones: set QUEST_DASHBOARD_PASSWORD to a password (or listen on "
            f"127.0.0.1).",
            param_hint="'--host'",
        )
    try:
        import uvicorn

        from quest.dashboard import create_app, warm
    except ModuleNotFoundError as exc:
        raise click.UsageError(
            f"quest dashboard needs the dashboard extra ({exc.name} is missing): "
            f'pip install "quest-runner[dashboard]"'
        ) from None
    app = get_app()
    with user_errors():
        app.store.ensure_schema()
        app.registry  # noqa: B018  (loaded now, not on the first request)
        warm(app)
    # The scripts, their models and what the first views keep live as long as the process:
    # taken out of the collector's view, they no longer make every full collection (a pause
    # inside some request) walk them.
    gc.collect()
    gc.freeze()
    asgi = create_app(app, password=password, poll_seconds=poll_seconds)
    listener = _listen(host, port)
    shown = f"[{host}]" if ":" in host else host
    click.secho(f"quest dashboard on http://{shown}:{port}/ (Ctrl-C to stop)", fg="green", err=True)
    config = uvicorn.Config(asgi, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on *host*:*port*, bound before anything says the dashboard is up."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise click.BadParameter(
            f"{host!r} is not an address here: {exc}", param_hint="'--host'"
        ) from None
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            + (
                " (another program has that port: choose another with --port)"
                if exc.errno == errno.EADDRINUSE
                else ""
            )
        ) from None
    listener.set_inheritable(True)
    return listener
