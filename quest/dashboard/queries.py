"""What the dashboard's pages read: each function takes the :class:`~quest.app.Quest` and the
instant to read at, and returns plain data for a template.

Every query is bounded: lists are pages (keyset pagination on the runs), per-script facts are read
for the scripts on the page, and the JobLog is only ever read through its indexes.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, and_, cast, func, or_, select

from ..enums import RunStatus, Trigger

if TYPE_CHECKING:
    from ..app import Quest
    from ..definition import Script

PAGE = 50
STRIP = 30
FAILED = (RunStatus.failed, RunStatus.timed_out, RunStatus.abandoned, RunStatus.interrupted)
FINISHED = tuple(status for status in RunStatus if status.finished)
SCRIPT_STATES = ("all", "scheduled", "on-demand", "paused", "running", "failing", "late", "never")


# -- overview -------------------------------------------------------------------------------------


@dataclass
class Overview:
    since: datetime
    counts: dict[str, int]
    total: int
    success_rate: float | None
    hours: list[dict[str, Any]]
    running: list[dict[str, Any]]
    late: list[dict[str, Any]]
    failing: list[dict[str, Any]]
    queued: int
    nodes_alive: int
    actions: list[dict[str, Any]] = field(default_factory=list)
    scripts: ScriptPage | None = None


def overview(app: Quest, now: datetime) -> Overview:
    store = app.store
    runs = store.runs
    since = now - timedelta(hours=24)
    bucket = _hour_bucket(store.dialect, runs.c.created_at)
    with store.db.reading() as connection:
        counts = {
            str(status): int(count)
            for status, count in connection.execute(
                select(runs.c.status, func.count())
                .where(runs.c.created_at >= since)
                .group_by(runs.c.status)
            )
        }
        per_hour = connection.execute(
            select(
                bucket.label("hour"),
                func.count().label("runs"),
                func.avg(runs.c.duration_ms).label("duration"),
            )
            .where(runs.c.created_at >= since)
            .group_by(bucket)
        ).all()
        failed_per_hour: dict[str, int] = dict(
            connection.execute(
                select(bucket, func.count())
                .where(runs.c.created_at >= since, runs.c.status.in_(FAILED))
                .group_by(bucket)
            ).all()
        )
    hours = []
    by_hour = {row.hour: row for row in per_hour}
    start = since.replace(minute=0, second=0, microsecond=0)
    for step in range(25):
        hour = start + timedelta(hours=step)
        key = hour.strftime("%Y-%m-%d %H")
        row = by_hour.get(key)
        hours.append(
            {
                "hour": hour,
                "runs": int(row.runs) if row else 0,
                "failed": int(failed_per_hour.get(key, 0)),
                "duration": float(row.duration) if row and row.duration is not None else None,
            }
        )
    succeeded = counts.get(RunStatus.succeeded, 0)
    failed = sum(counts.get(status, 0) for status in FAILED)
    rate = succeeded / (succeeded + failed) if succeeded + failed else None
    running = store.running_runs()[:50]
    gauges = store.gauges(name for name, _ in _scheduled(app))
    late = late_scripts(app, now, gauges.last_success, gauges.paused)
    failing = failing_scripts(app)
    ttl = timedelta(seconds=app.settings.lease_ttl)
    alive = sum(
        1
        for node in gauges.nodes
        if node["stopped_at"] is None and now - node["heartbeat_at"] <= ttl
    )
    return Overview(
        since=since,
        counts=counts,
        total=sum(counts.values()),
        success_rate=rate,
        hours=hours,
        running=running,
        late=late,
        failing=failing,
        queued=sum(gauges.queued.values()),
        nodes_alive=alive,
        actions=store.recent_actions(10),
        scripts=scripts(app, now),
    )


def _hour_bucket(dialect: str, column: Any) -> Any:
    """``YYYY-MM-DD HH`` of a UTC instant column, in SQL."""
    if dialect == "sqlite":
        return func.substr(column, 1, 13)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")


def _scheduled(app: Quest) -> Iterable[tuple[str, Script]]:
    for script in app.registry:
        block = script.quest
        if block is not None and block.enabled and (block.interval or block.cron):
            yield script.name, script


def period_of(app: Quest, script: Script, now: datetime) -> timedelta | None:
    """How often *script* fires: its interval, or the gap between its next two fire times."""
    from ..describe import next_fires

    block = script.quest
    if block is None:
        return None
    if block.interval is not None:
        return block.interval
    fires = next_fires(app, script, now, 2)
    return fires[1] - fires[0] if len(fires) == 2 else None


def late_scripts(
    app: Quest, now: datetime, last_success: dict[str, datetime], paused: set[str]
) -> list[dict[str, Any]]:
    """Scheduled, active scripts with no success for twice their period (or ever, when they
    have been declared for that long: a script never run is late only if it has failed)."""
    late = []
    candidates = [(name, script) for name, script in _scheduled(app) if name not in paused]
    never = [name for name, _ in candidates if name not in last_success]
    ran = app.store.last_runs(never) if never else {}
    for name, script in candidates:
        period = period_of(app, script, now)
        if period is None:
            continue
        last = last_success.get(name)
        if last is None and name not in ran:
            continue
        if last is None or now - last > 2 * period:
            late.append({"name": name, "last_success": last, "period": period})
    late.sort(key=lambda item: item["last_success"] or datetime.min.replace(tzinfo=UTC))
    return late


def failing_scripts(app: Quest) -> list[dict[str, Any]]:
    """Scripts whose latest finished run failed, timed out, was abandoned or interrupted."""
    last = app.store.last_runs(app.registry.scripts)
    failing: list[dict[str, Any]] = [
        {"name": name, "run": row} for name, row in last.items() if row["status"] in FAILED
    ]
    failing.sort(key=lambda item: item["run"]["created_at"], reverse=True)
    return failing


# -- scripts --------------------------------------------------------------------------------------


@dataclass
class ScriptRow:
    script: Script
    schedule: str
    timezone: str
    next_run: datetime | None
    last: dict[str, Any] | None
    paused: bool
    running: int
    strip: list[dict[str, Any]]


@dataclass
class ScriptPage:
    rows: list[ScriptRow]
    total: int
    page: int
    pages: int
    errors: list[str]


def scripts(
    app: Quest, now: datetime, *, q: str = "", state: str = "all", page: int = 1
) -> ScriptPage:
    from ..describe import Shared, next_fires, schedule_words

    store = app.store
    registry = app.registry
    shared = Shared(app)
    paused = store.paused()
    running = Counter(row["name"] for row in store.running_runs())
    wanted = [
        script
        for script in registry
        if not q or q.lower() in script.name.lower() or q.lower() in script.friendly_name.lower()
    ]
    if state in ("failing", "never"):
        last_all = store.last_runs(script.name for script in wanted)
        if state == "failing":
            wanted = [
                s for s in wanted if s.name in last_all and last_all[s.name]["status"] in FAILED
            ]
        else:
            wanted = [s for s in wanted if s.name not in last_all]
    elif state == "late":
        gauges = store.gauges(script.name for script in wanted)
        late = {item["name"] for item in late_scripts(app, now, gauges.last_success, paused)}
        wanted = [s for s in wanted if s.name in late]
    elif state == "paused":
        wanted = [s for s in wanted if s.name in paused]
    elif state == "running":
        wanted = [s for s in wanted if running.get(s.name)]
    elif state == "scheduled":
        wanted = [s for s in wanted if _has_schedule(s)]
    elif state == "on-demand":
        wanted = [s for s in wanted if not _has_schedule(s)]
    total = len(wanted)
    pages = max(1, -(-total // PAGE))
    page = min(max(page, 1), pages)
    shown = wanted[(page - 1) * PAGE : page * PAGE]
    names = [script.name for script in shown]
    last = store.last_runs(names)
    strips = outcome_strips(app, names)
    rows = []
    for script in shown:
        active = script.name not in paused
        fires = next_fires(app, script, now, 1, shared) if active else []
        rows.append(
            ScriptRow(
                script=script,
                schedule=schedule_words(app, script, shared),
                timezone=str(script.timezone(app.settings.timezone)),
                next_run=fires[0] if fires else None,
                last=last.get(script.name),
                paused=script.name in paused,
                running=running.get(script.name, 0),
                strip=strips.get(script.name, []),
            )
        )
    errors = [str(error) for error in registry.errors]
    return ScriptPage(rows=rows, total=total, page=page, pages=pages, errors=errors)


def _has_schedule(script: Script) -> bool:
    block = script.quest
    return block is not None and bool(block.interval or block.cron or block.at)


def outcome_strips(app: Quest, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The last :data:`STRIP` finished runs of each of *names*, oldest first."""
    store = app.store
    runs = store.runs
    found: dict[str, list[dict[str, Any]]] = {}
    with store.db.reading() as connection:
        for name in names:
            rows = connection.execute(
                select(runs.c.id, runs.c.status, runs.c.created_at, runs.c.duration_ms)
                .where(runs.c.name == name, runs.c.status.in_(FINISHED))
                .order_by(runs.c.created_at.desc())
                .limit(STRIP)
            ).all()
            found[name] = [dict(row._mapping) for row in reversed(rows)]
    return found


# -- one script -----------------------------------------------------------------------------------


@dataclass
class ScriptDetail:
    script: Script
    declaration: dict[str, Any]
    fires: list[datetime]
    history: list[dict[str, Any]]
    paused: bool
    last_success: datetime | None
    queued: int
    path: str = ""


def script_detail(app: Quest, name: str, now: datetime) -> ScriptDetail | None:
    from ..describe import declaration, next_fires

    script = app.registry.scripts.get(name)
    if script is None:
        return None
    store = app.store
    paused = store.is_paused(name)
    gauges = store.gauges([name])
    return ScriptDetail(
        script=script,
        declaration=declaration(app, script),
        path=_shown_path(app, script.path),
        fires=[] if paused else next_fires(app, script, now, 10),
        history=store.history(name, limit=30),
        paused=paused,
        last_success=gauges.last_success.get(name),
        queued=gauges.queued.get(name, 0),
    )


def _shown_path(app: Quest, path: str) -> str:
    """*path* relative to the project's root when it is inside it."""
    from pathlib import Path

    try:
        return str(Path(path).resolve().relative_to(Path(app.settings.root).resolve()))
    except (ValueError, OSError):
        return path


# -- runs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFilter:
    script: str = ""
    status: tuple[str, ...] = ()
    trigger: str = ""
    key: str = ""
    q: str = ""
    since: datetime | None = None
    until: datetime | None = None

    @property
    def active(self) -> bool:
        return bool(
            self.script
            or self.status
            or self.trigger
            or self.key
            or self.q
            or self.since
            or self.until
        )


@dataclass
class RunPage:
    rows: list[dict[str, Any]]
    older: str | None
    newer: bool


def encode_cursor(row: dict[str, Any]) -> str:
    text = f"{row['created_at'].astimezone(UTC).isoformat()}|{row['id']}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str] | None:
    """The (created_at, id) a cursor names; ``None`` for one that is not a cursor."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        instant, run_id = text.split("|", 1)
        created = datetime.fromisoformat(instant)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if created.tzinfo is None or len(run_id) > 32:
        return None
    return created, run_id


def runs(app: Quest, where: RunFilter, *, before: str | None = None) -> RunPage:
    store = app.store
    table = store.runs
    query = select(table)
    if where.script:
        query = query.where(table.c.name == where.script)
    statuses = [RunStatus(s) for s in where.status if s in RunStatus.__members__]
    if statuses:
        query = query.where(table.c.status.in_(statuses))
    if where.trigger in Trigger.__members__:
        query = query.where(table.c.trigger == Trigger(where.trigger))
    if where.key:
        query = query.where(table.c.key == where.key)
    if where.since is not None:
        query = query.where(table.c.created_at >= where.since)
    if where.until is not None:
        query = query.where(table.c.created_at < where.until)
    if where.q:
        pattern = "%" + where.q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(cast(table.c.inputs, String).like(pattern, escape="\\"))
    cursor = decode_cursor(before) if before else None
    if cursor is not None:
        created, run_id = cursor
        query = query.where(
            or_(
                table.c.created_at < created,
                and_(table.c.created_at == created, table.c.id < run_id),
            )
        )
    query = query.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(PAGE + 1)
    with store.db.reading() as connection:
        rows = [dict(row._mapping) for row in connection.execute(query)]
    older = encode_cursor(rows[PAGE - 1]) if len(rows) > PAGE else None
    rows = rows[:PAGE]
    progress = store.progress_of(row["id"] for row in rows if row["status"] is RunStatus.running)
    for row in rows:
        row["progress"] = progress.get(row["id"])
    return RunPage(rows=rows, older=older, newer=cursor is not None)


@dataclass
class RunDetail:
    run: dict[str, Any]
    chain: list[dict[str, Any]]
    progress: dict[str, Any] | None
    logs: list[dict[str, Any]]
    node: dict[str, Any] | None
    cancel_requested_by: str | None
    script: Script | None

    @property
    def sensitive(self) -> bool:
        """Whether the run's script takes sensitive inputs (which a retry cannot give again)."""
        return self.script is not None and any(s.sensitive for s in self.script.inputs.values())


def run_detail(app: Quest, run_id: str) -> RunDetail | None:
    store = app.store
    run = store.get_run(run_id)
    if run is None:
        return None
    table = store.runs
    root = run["root_id"] or run["id"]
    with store.db.reading() as connection:
        chain = [
            dict(row._mapping)
            for row in connection.execute(
                select(
                    table.c.id,
                    table.c.attempt,
                    table.c.status,
                    table.c.trigger,
                    table.c.created_at,
                    table.c.started_at,
                    table.c.finished_at,
                    table.c.error,
                )
                .where(or_(table.c.root_id == root, table.c.id == root))
                .order_by(table.c.created_at, table.c.id)
                .limit(200)
            )
        ]
    node = None
    if run["owner_host"]:
        for candidate in store.nodes():
            if candidate["host"] == run["owner_host"] and candidate["pid"] == run["owner_pid"]:
                node = candidate
                break
    return RunDetail(
        run=run,
        chain=chain,
        progress=store.progress_of([run_id]).get(run_id),
        logs=store.run_logs(run_id),
        node=node,
        cancel_requested_by=store.cancel_requests([run_id]).get(run_id),
        script=app.registry.scripts.get(run["name"]),
    )


# -- queue and nodes ------------------------------------------------------------------------------


@dataclass
class Queue:
    groups: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    total: int


def queue(app: Quest, now: datetime) -> Queue:
    store = app.store
    table = store.runs
    queued: Any = table.c.status == RunStatus.queued
    if store.dialect == "sqlite":
        queued = func.unlikely(queued)
    with store.db.reading() as connection:
        groups = [
            dict(row._mapping)
            for row in connection.execute(
                select(
                    table.c.name,
                    table.c.key,
                    func.count().label("count"),
                    func.min(table.c.run_after).label("next_at"),
                )
                .where(queued)
                .group_by(table.c.name, table.c.key)
                .order_by(table.c.name, table.c.key)
                .limit(500)
            )
        ]
        rows = [
            dict(row._mapping)
            for row in connection.execute(
                select(table)
                .where(table.c.status == RunStatus.queued)
                .order_by(table.c.run_after, table.c.created_at, table.c.id)
                .limit(PAGE)
            )
        ]
    for group in groups:
        script = app.registry.scripts.get(group["name"])
        group["limits"] = _limits(script) if script is not None else "script not found"
        group["due"] = group["next_at"] is not None and group["next_at"] <= now
    return Queue(groups=groups, runs=rows, total=sum(group["count"] for group in groups))


def _limits(script: Script) -> str:
    block = script.quest
    if block is None:
        return "none"
    parts = []
    if block.concurrency is not None:
        per = " per key" if block.concurrency.per_key else ""
        parts.append(f"at most {block.concurrency.max} at once{per}")
    if block.rate_limit is not None:
        rate = block.rate_limit
        per = " per key" if rate.per_key else ""
        parts.append(f"{rate.max} per {_span(rate.per)}{per}")
    return ", ".join(parts) or "none"


def _span(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0 and seconds >= size:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} s"


def nodes(app: Quest, now: datetime) -> list[dict[str, Any]]:
    from ..store import node_state

    ttl = timedelta(seconds=app.settings.lease_ttl)
    found = app.store.nodes()
    for node in found:
        node["state"] = node_state(node, now=now, ttl=ttl)
        node["heartbeat_age"] = now - node["heartbeat_at"]
    return found


def parse_since(text: str, now: datetime) -> datetime | None:
    """An instant from ``24h``/``7d``/``30m`` (that long ago) or an ISO date/time (UTC if it
    has no offset); ``None`` for text that is neither."""
    text = text.strip()
    if not text:
        return None
    units = {"m": 60, "h": 3600, "d": 86400}
    try:
        if text[-1:] in units and text[:-1].isdigit() and len(text) < 8:
            return now - timedelta(seconds=int(text[:-1]) * units[text[-1]])
        instant = datetime.fromisoformat(text)
        instant = instant if instant.tzinfo else instant.replace(tzinfo=UTC)
        return instant.astimezone(UTC)  # out of range in UTC: OverflowError
    except (ValueError, OverflowError):
        return None
