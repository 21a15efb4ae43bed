"""quest's web dashboard: every script, run and node at a glance, with run now, pause, resume,
retry, cancel and discard.

An ASGI application (Starlette, Jinja2, htmx shipped inside the package) to mount into a web
application under any prefix, or to run with ``quest dashboard``::

    from quest.dashboard import Access, create_app

    dashboard = create_app(authorize=lambda request: Access.full if request.user.is_staff
                           else Access.none)
    app.mount("/quest", dashboard)

It needs the ``dashboard`` extra (``pip install "quest-runner[dashboard]"``); quest's other
commands never import it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .security import Access, Authorize, Grant

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from ..app import Quest

__all__ = ["Access", "Authorize", "Grant", "create_app", "warm"]


def create_app(
    quest: Quest | None = None,
    *,
    authorize: Authorize | None = None,
    password: str | None = None,
    poll_seconds: float = 2.0,
    debug: bool = False,
) -> Starlette:
    """The dashboard as an ASGI application.

    *quest* is the project's :class:`~quest.app.Quest` (by default one built from the settings
    on first request). *authorize(request)* (sync or async) returns an :class:`Access` — full,
    read or none — or a :class:`Grant` naming who the request is; without it, the dashboard
    asks for *password* (default ``QUEST_DASHBOARD_PASSWORD``) with HTTP Basic, or, with no
    password either, lets in loopback clients only. Pages refresh their live parts every
    *poll_seconds* while the browser tab is visible.
    """
    from .app import build

    options: dict[str, Any] = {
        "authorize": authorize,
        "password": password,
        "poll_seconds": poll_seconds,
        "debug": debug,
    }
    return build(quest, **options)


def warm(quest: Quest) -> bool:
    """Read once what the overview and the scripts page read, before the first visitor does:
    the day's counts of the hours that have ended, each schedule's period, the statements.
    ``False`` (and nothing kept) when the database cannot be read now; the pages then read it
    on their own, and show that it is down."""
    from sqlalchemy.exc import SQLAlchemyError

    from ..errors import DatabaseUnavailable
    from . import queries

    now = quest.clock.now()
    try:
        queries.overview(quest, now)
        queries.scripts(quest, now)
    except (DatabaseUnavailable, SQLAlchemyError):
        return False
    return True
