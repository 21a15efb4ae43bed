"""The dashboard's ASGI application: Starlette routes, Jinja2 pages, htmx for live regions.

Reads and writes go through the :class:`~quest.app.Quest` (its store, registry and runner) in
Starlette's thread pool, so a slow database never blocks the event loop. Every state-changing
request is a POST carrying the CSRF token of the browser's cookie.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlencode

from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    OperationalError,
    PendingRollbackError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from .. import signals
from ..app import Quest
from ..enums import CancelOutcome, RunStatus, Trigger
from ..errors import DatabaseUnavailable, InvalidInputs, ScriptNotFound
from . import queries
from .forms import RunNowForm, parse_run_now
from .render import install_filters
from .security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    Access,
    Authorize,
    Grant,
    default_authorize,
    grant_of,
    new_token,
    same_token,
)

log = logging.getLogger("quest.dashboard")

HERE = Path(__file__).parent
Handler = Callable[[Request, Grant], Awaitable[Response]]
MAX_FORM_BYTES = 1_000_000
NOTICES = {
    "queued": "Run queued: serve will start it.",
    "paused": "Paused: its scheduled fires are skipped on every host.",
    "resumed": "Resumed.",
    "cancelled": "Cancelled before it started.",
    "cancel-requested": "Cancel requested: the serve running it stops it within a second or two.",
    "finished": "That run had already finished; nothing was changed.",
    "discarded": "Discarded.",
    "not-queued": "That run is no longer queued; nothing was changed.",
    "retried": "Retry queued.",
    "bulk": "{done} of {of} selected runs {did}; the others were not eligible or are gone.",
}
BULK_DID = {"retry": "retried", "discard": "discarded"}


#: What an unreachable database raises: a 503 page that retries by itself. Other database errors
#: are bugs and stay 500s, not hidden behind "unreachable".
UNREACHABLE = (
    OperationalError,
    InterfaceError,
    DisconnectionError,
    PendingRollbackError,
    PoolTimeout,
    DatabaseUnavailable,
)


class Forbidden(Exception):
    """The request may not do this."""


class BadRequest(Exception):
    """The request makes no sense: a 400 (or *status*) page saying why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Dashboard:
    """The state behind the routes: the quest application and how requests are let in."""

    def __init__(
        self,
        quest: Quest | None,
        *,
        authorize: Authorize | None,
        password: str | None,
        poll_seconds: float,
    ) -> None:
        self._quest = quest
        self._owned = False
        """Whether the dashboard built its quest itself (and so closes it when it stops)."""
        if authorize is None:
            password = password or os.environ.get("QUEST_DASHBOARD_PASSWORD") or None
        self.password = password
        self.authorize: Authorize = authorize or default_authorize(password)
        self.poll_seconds = poll_seconds
        self.routes: list[Route | Mount] = []
        self.templates = Jinja2Templates(directory=str(HERE / "templates"))
        install_filters(self.templates.env)

    @property
    def quest(self) -> Quest:
        if self._quest is None:
            self._quest = Quest()
            self._owned = True
        return self._quest

    def close(self) -> None:
        """Close the quest the dashboard built (a quest it was given is its owner's to close)."""
        if self._owned and self._quest is not None:
            quest, self._quest, self._owned = self._quest, None, False
            quest.close()

    def now(self) -> datetime:
        return self.quest.clock.now()

    async def grant(self, request: Request) -> Grant:
        value = self.authorize(request)
        if inspect.isawaitable(value):
            value = await value
        return grant_of(value)

    def who(self, request: Request, grant: Grant) -> str:
        if grant.who:
            return grant.who
        client = request.client.host if request.client else "unknown"
        return f"dashboard@{client}"

    def render(
        self,
        request: Request,
        template: str,
        grant: Grant,
        status_code: int = 200,
        **context: Any,
    ) -> Response:
        token = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "csrf", None)
        if not token:
            token = request.state.csrf = new_token()
        context.update(
            request=request,
            can_act=grant.access is Access.full,
            csrf=token,
            poll=self.poll_seconds,
            now=self.now(),
            notice=_notice(request),
            base=str(request.scope.get("root_path", "")).rstrip("/"),
        )
        return self.templates.TemplateResponse(request, template, context, status_code=status_code)

    def not_found(self, request: Request, grant: Grant, what: str) -> Response:
        """A 404 page; a 405 for a GET of an action's address (``/runs/bulk`` would otherwise
        be read as the run ``bulk``, ``/scripts/x/run`` as no page)."""
        if request.method in ("GET", "HEAD"):
            allowed = sorted(
                {
                    method
                    for route in self.routes
                    if isinstance(route, Route)
                    and route.methods
                    and "GET" not in route.methods
                    and route.matches(request.scope)[0] is Match.PARTIAL
                    for method in route.methods
                }
            )
            if allowed:
                return Response(
                    "Method Not Allowed: this address takes a form (POST).",
                    405,
                    headers={"Allow": ", ".join(allowed)},
                    media_type="text/plain",
                )
        return self.render(request, "error.html", grant, 404, title="Not found", message=what)


def _guard(dashboard: Dashboard, handler: Handler, *, acts: bool) -> Callable[..., Any]:
    """Wrap *handler*: let the request in (or not), check the CSRF token of a POST, time the
    response, and turn an unreachable database into a page that retries by itself."""

    async def endpoint(request: Request) -> Response:
        started = time.perf_counter()
        grant = await dashboard.grant(request)
        if grant.access is Access.none:
            response = _refused(dashboard, request)
        elif acts and grant.access is not Access.full:
            response = dashboard.render(
                request,
                "error.html",
                grant,
                403,
                title="Read-only access",
                message="This dashboard lets you look, not act.",
            )
        else:
            try:
                _check_text(request)
                if acts:
                    await _check_csrf(request)
                response = await handler(request, grant)
            except Forbidden as exc:
                response = dashboard.render(
                    request, "error.html", grant, 403, title="Refused", message=str(exc)
                )
            except BadRequest as exc:
                response = dashboard.render(
                    request, "error.html", grant, exc.status, title="Bad request", message=str(exc)
                )
            except UNREACHABLE as exc:
                response = _database_down(dashboard, request, grant, exc)
        token = getattr(request.state, "csrf", None)
        if token and not request.cookies.get(CSRF_COOKIE):
            response.set_cookie(
                CSRF_COOKIE,
                token,
                httponly=True,
                samesite="strict",
                path=str(request.scope.get("root_path", "")) or "/",
            )
        elapsed = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={elapsed:.1f}"
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return endpoint


def _refused(dashboard: Dashboard, request: Request) -> Response:
    if dashboard.password:
        return Response(
            "This dashboard needs its password.",
            status_code=401,
            headers={"WWW-Authenticate": 'Basic realm="quest", charset="UTF-8"'},
            media_type="text/plain",
        )
    return Response("Access to this dashboard is not granted.", 403, media_type="text/plain")


def _check_text(request: Request) -> None:
    """Refuse a NUL character in the path or the query: no database stores one in text."""
    params = request.query_params.multi_items()
    if "\x00" in request.url.path or any("\x00" in k + v for k, v in params):
        raise BadRequest("The address holds a NUL character (%00), which nothing here can match.")


async def _check_csrf(request: Request) -> None:
    form = await read_form(request)
    given = request.headers.get(CSRF_HEADER) or _first(form, CSRF_FIELD)
    if not same_token(request.cookies.get(CSRF_COOKIE), given):
        raise Forbidden(
            "The form's security token is missing or does not match this browser's: reload "
            "the page and try again. Nothing was changed."
        )


async def read_form(request: Request) -> dict[str, list[str]]:
    """The request's url-encoded form (cached on the request); a body over 1 MB is refused."""
    cached = getattr(request.state, "form", None)
    if cached is not None:
        return dict(cached)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise BadRequest("That form is too large: at most 1 MB.", 413)
        chunks.append(chunk)
    try:
        text = b"".join(chunks).decode("utf-8")
        form = parse_qs(
            text, keep_blank_values=True, max_num_fields=2000, encoding="utf-8", errors="strict"
        )
    except UnicodeDecodeError:
        raise BadRequest("That form is not UTF-8 text.") from None
    except ValueError:
        raise BadRequest("That form has too many fields.") from None
    if any("\x00" in k for k in form):
        raise BadRequest("That form holds a NUL character in a field's name.")
    request.state.form = form
    return dict(form)


def _first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _database_down(
    dashboard: Dashboard, request: Request, grant: Grant, exc: Exception
) -> Response:
    log.warning("dashboard: the database is unreachable: %s", exc)
    reason = str(exc.orig if isinstance(exc, DBAPIError) else exc).strip().splitlines()
    return dashboard.templates.TemplateResponse(
        request,
        "down.html",
        {
            "request": request,
            "reason": reason[0][:300] if reason else type(exc).__name__,
            "base": str(request.scope.get("root_path", "")).rstrip("/"),
        },
        status_code=503,
        headers={"Retry-After": "5"},
    )


def _redirect(request: Request, path: str, notice: str | None = None, extra: str = "") -> Response:
    base = str(request.scope.get("root_path", "")).rstrip("/")
    url = base + path
    if notice:
        url += ("&" if "?" in url else "?") + urlencode({"notice": notice})
    if extra:
        url += ("&" if "?" in url else "?") + extra
    return RedirectResponse(url, status_code=303)


def _notice(request: Request) -> str | None:
    """The notice a redirect after an action asked for; bulk counts come as numbers only."""
    params = request.query_params
    key = params.get("notice", "")
    text = NOTICES.get(key)
    if text is None or key != "bulk":
        return text
    did = BULK_DID.get(params.get("did", ""), "changed")
    return text.format(done=_int(params.get("done"), 0), of=_int(params.get("of"), 0), did=did)


def _int(value: str | None, default: int) -> int:
    try:
        return int(value) if value else default
    except ValueError:
        return default


# -- pages ----------------------------------------------------------------------------------------


def routes(dashboard: Dashboard) -> list[Route | Mount]:
    d = dashboard

    async def overview(request: Request, grant: Grant) -> Response:
        data = await run_in_threadpool(queries.overview, d.quest, d.now())
        return d.render(request, "overview.html", grant, data=data, page="overview")

    async def scripts(request: Request, grant: Grant) -> Response:
        params = request.query_params
        state = params.get("state", "all")
        if state not in queries.SCRIPT_STATES:
            state = "all"
        q = params.get("q", "")[:200]
        data = await run_in_threadpool(
            lambda: queries.scripts(
                d.quest, d.now(), q=q, state=state, page=_int(params.get("page"), 1)
            )
        )
        return d.render(
            request,
            "scripts.html",
            grant,
            data=data,
            q=q,
            state=state,
            states=queries.SCRIPT_STATES,
            page="scripts",
        )

    async def script(request: Request, grant: Grant) -> Response:
        name = request.path_params["name"]
        data = await run_in_threadpool(queries.script_detail, d.quest, name, d.now())
        if data is None:
            return d.not_found(request, grant, f"There is no script named {name!r} here.")
        form = RunNowForm.blank(data.script)
        return d.render(request, "script.html", grant, data=data, form=form, page="scripts")

    async def run_now(request: Request, grant: Grant) -> Response:
        name = request.path_params["name"]
        quest = d.quest
        script = quest.registry.scripts.get(name)
        if script is None:
            return d.not_found(request, grant, f"There is no script named {name!r} here.")
        form = parse_run_now(script, await read_form(request))
        if form.ok:
            try:
                run_id = await run_in_threadpool(
                    lambda: quest.enqueue(
                        script.name, form.values, delay=form.delay or None, key=form.key or None
                    )
                )
            except InvalidInputs as exc:
                form.take(exc)
            else:
                await _record(
                    d,
                    request,
                    grant,
                    "run_now",
                    script.name,
                    {"run_id": run_id, "delay": form.delay or None, "key": form.key or None},
                )
                return _redirect(request, f"/runs/{run_id}", "queued")
        data = await run_in_threadpool(queries.script_detail, quest, name, d.now())
        return d.render(request, "script.html", grant, 400, data=data, form=form, page="scripts")

    def pause_or_resume(paused: bool) -> Handler:
        async def handler(request: Request, grant: Grant) -> Response:
            name = request.path_params["name"]
            quest = d.quest
            if name not in quest.registry.scripts:
                return d.not_found(request, grant, f"There is no script named {name!r} here.")
            await run_in_threadpool(quest.store.set_paused, name, paused, now=d.now())
            action = "pause" if paused else "resume"
            await _record(d, request, grant, action, name, {})
            return _redirect(request, f"/scripts/{name}", "paused" if paused else "resumed")

        return handler

    async def runs(request: Request, grant: Grant) -> Response:
        params = request.query_params
        now = d.now()
        where = queries.RunFilter(
            script=params.get("script", "")[:200],
            status=tuple(s for s in params.getlist("status") if s),
            trigger=params.get("trigger", ""),
            key=params.get("key", "")[:200],
            q=params.get("q", "")[:200],
            since=queries.parse_since(params.get("since", "")[:40], now),
            until=queries.parse_since(params.get("until", "")[:40], now),
        )
        before = params.get("before") or None
        data = await run_in_threadpool(queries.runs, d.quest, where, before=before)
        query = [(k, v) for k, v in params.multi_items() if k not in ("before", "notice")]
        return d.render(
            request,
            "runs.html",
            grant,
            data=data,
            where=where,
            params=params,
            query=urlencode(query),
            first_page=before is None,
            statuses=[s.value for s in RunStatus],
            triggers=[t.value for t in Trigger],
            script_names=sorted(d.quest.registry.scripts),
            page="runs",
        )

    async def run(request: Request, grant: Grant) -> Response:
        run_id = request.path_params["run_id"]
        data = await run_in_threadpool(queries.run_detail, d.quest, run_id)
        if data is None:
            return d.not_found(request, grant, f"There is no run with id {run_id!r}.")
        return d.render(request, "run.html", grant, data=data, page="runs")

    async def run_logs(request: Request, grant: Grant) -> Response:
        run_id = request.path_params["run_id"]
        data = await run_in_threadpool(queries.run_detail, d.quest, run_id)
        if data is None:
            return d.not_found(request, grant, f"There is no run with id {run_id!r}.")
        return d.render(request, "_logs.html", grant, data=data)

    async def cancel(request: Request, grant: Grant) -> Response:
        run_id = request.path_params["run_id"]
        who = d.who(request, grant)
        result = await run_in_threadpool(d.quest.cancel, run_id, by=who)
        if result.outcome is CancelOutcome.unknown:
            return d.not_found(request, grant, f"There is no run with id {run_id!r}.")
        if result:
            await _record(d, request, grant, "cancel", run_id, {"outcome": result.outcome.value})
        notice = {
            CancelOutcome.cancelled: "cancelled",
            CancelOutcome.requested: "cancel-requested",
        }.get(result.outcome, "finished")
        return _redirect(request, f"/runs/{run_id}", notice)

    async def discard(request: Request, grant: Grant) -> Response:
        run_id = request.path_params["run_id"]
        done = await _discard(d, request, grant, run_id)
        if done is None:
            return d.not_found(request, grant, f"There is no run with id {run_id!r}.")
        return _redirect(request, f"/runs/{run_id}", "discarded" if done else "not-queued")

    async def retry(request: Request, grant: Grant) -> Response:
        run_id = request.path_params["run_id"]
        new_id = await _retry(d, request, grant, run_id)
        if new_id is None:
            return d.not_found(request, grant, f"There is no run with id {run_id!r}.")
        return _redirect(request, f"/runs/{new_id}", "retried")

    async def bulk(request: Request, grant: Grant) -> Response:
        form = await read_form(request)
        action = _first(form, "action")
        ids = [value for value in form.get("ids", []) if value and "\x00" not in value][:500]
        if action not in BULK_DID:
            raise BadRequest("Choose retry or discard for the selected runs.")
        done = 0
        for run_id in ids:
            try:
                if action == "retry":
                    changed = await _retry(d, request, grant, run_id) is not None
                else:
                    changed = bool(await _discard(d, request, grant, run_id))
            except Forbidden:
                changed = False
            done += changed
        back = urlencode(
            [
                (k, v)
                for k, v in parse_qsl(_first(form, "back") or "", keep_blank_values=True)
                if k not in ("notice", "done", "of", "did")
            ][:50]
        )
        path = "/runs" + (f"?{back}" if back else "")
        extra = urlencode({"done": done, "of": len(ids), "did": action})
        return _redirect(request, path, "bulk", extra)

    async def queue(request: Request, grant: Grant) -> Response:
        data = await run_in_threadpool(queries.queue, d.quest, d.now())
        return d.render(request, "queue.html", grant, data=data, page="queue")

    async def nodes(request: Request, grant: Grant) -> Response:
        data = await run_in_threadpool(queries.nodes, d.quest, d.now())
        return d.render(request, "nodes.html", grant, nodes=data, page="nodes")

    async def missing(request: Request, grant: Grant) -> Response:
        return d.not_found(request, grant, f"There is no page at {request.url.path!r}.")

    def page(path: str, handler: Handler, *, acts: bool = False) -> Route:
        return Route(
            path,
            _guard(d, handler, acts=acts),
            methods=["POST"] if acts else ["GET", "HEAD"],
        )

    table: list[Route | Mount] = [
        page("/", overview),
        page("/scripts", scripts),
        page("/scripts/{name}", script),
        page("/scripts/{name}/run", run_now, acts=True),
        page("/scripts/{name}/pause", pause_or_resume(True), acts=True),
        page("/scripts/{name}/resume", pause_or_resume(False), acts=True),
        page("/runs", runs),
        page("/runs/bulk", bulk, acts=True),
        page("/runs/{run_id}", run),
        page("/runs/{run_id}/logs", run_logs),
        page("/runs/{run_id}/cancel", cancel, acts=True),
        page("/runs/{run_id}/discard", discard, acts=True),
        page("/runs/{run_id}/retry", retry, acts=True),
        page("/queue", queue),
        page("/nodes", nodes),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        page("/{rest:path}", missing),
    ]
    return table


async def _record(
    dashboard: Dashboard,
    request: Request,
    grant: Grant,
    action: str,
    target: str,
    detail: dict[str, Any],
) -> None:
    who = dashboard.who(request, grant)
    now = dashboard.now()
    await run_in_threadpool(
        lambda: dashboard.quest.store.record_action(
            who=who, action=action, target=target, detail=detail, now=now
        )
    )
    signals.emit_action(
        dashboard,
        signals.ActionEvent(action=action, who=who, target=target, timestamp=now, detail=detail),
    )


async def _discard(
    dashboard: Dashboard, request: Request, grant: Grant, run_id: str
) -> bool | None:
    store = dashboard.quest.store
    if await run_in_threadpool(store.get_run, run_id) is None:
        return None
    who = dashboard.who(request, grant)
    done = await run_in_threadpool(
        lambda: store.discard_queued(run_id, by=who, now=dashboard.now())
    )
    if done:
        await _record(dashboard, request, grant, "discard", run_id, {})
    return done


async def _retry(dashboard: Dashboard, request: Request, grant: Grant, run_id: str) -> str | None:
    """Queue a new run with the inputs of finished run *run_id*; its id, or ``None`` if unknown."""
    quest = dashboard.quest
    row = await run_in_threadpool(quest.store.get_run, run_id)
    if row is None:
        return None
    status: RunStatus = row["status"]
    if not status.finished or status is RunStatus.succeeded:
        raise Forbidden(
            f"Run {run_id} is {status.value}: only a run that did not succeed can be retried."
        )
    try:
        script = quest.registry.get(row["name"])
    except ScriptNotFound:
        raise Forbidden(f"There is no script named {row['name']!r} here any more.") from None
    sensitive = [key for key, spec in script.inputs.items() if spec.sensitive]
    if sensitive:
        raise Forbidden(
            f"{script.name} takes sensitive inputs ({', '.join(sensitive)}), which quest never "
            f"keeps after a run ends: use Run now on the script's page to give them again."
        )
    inputs = dict(row["inputs"] or {})
    try:
        new_id = await run_in_threadpool(lambda: quest.enqueue(script.name, inputs, key=row["key"]))
    except InvalidInputs as exc:
        raise Forbidden(f"The inputs of run {run_id} are no longer valid: {exc}") from None
    await _record(dashboard, request, grant, "retry", run_id, {"run_id": new_id})
    return new_id


def build(
    quest: Quest | None = None,
    *,
    authorize: Authorize | None = None,
    password: str | None = None,
    poll_seconds: float = 2.0,
    debug: bool = False,
) -> Starlette:
    dashboard = Dashboard(quest, authorize=authorize, password=password, poll_seconds=poll_seconds)
    dashboard.routes = routes(dashboard)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        dashboard.close()

    app = Starlette(debug=debug, routes=dashboard.routes, lifespan=lifespan)
    app.state.dashboard = dashboard
    return app
