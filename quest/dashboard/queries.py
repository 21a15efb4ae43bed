"""What the dashboard's pages read: each function takes the :class:`~quest.app.Quest` and the
instant to read at, and returns plain data for a template.

Every query is bounded: lists are pages (keyset pagination on the runs), per-script facts are read
for the scripts on the page, and the JobLog is only ever read through its indexes.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    String,
    Table,
    and_,
    bindparam,
    cast,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY

from ..enums import RunStatus, Trigger
from ..models import FINISHED_WHERE

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


def overview(app: Quest, now: datetime) -> Overview:
    store = app.store
    since = now - timedelta(hours=24)
    start = since.replace(minute=0, second=0, microsecond=0)
    with store.db.reading() as connection:
        counts, slots = _day(connection, store.runs, since, start)
    hours = []
    for step in range(25):
        found = slots.get(step)
        hours.append(
            {
                "hour": start + timedelta(hours=step),
                "runs": found.runs if found else 0,
                "failed": found.failed if found else 0,
                "duration": found.duration_ms / found.timed if found and found.timed else None,
            }
        )
    succeeded = counts.get(RunStatus.succeeded, 0)
    failed = sum(counts.get(status, 0) for status in FAILED)
    rate = succeeded / (succeeded + failed) if succeeded + failed else None
    running = store.running_runs()[:50]
    gauges = store.gauges(())
    names = list(app.registry.scripts)
    latest = latest_outcomes(app, names)
    last_success = _last_success(app, now, latest, gauges.paused)
    late = late_scripts(app, now, last_success, gauges.paused)
    failing = failing_scripts(app, latest)
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
    )


class _Slot(NamedTuple):
    runs: int
    failed: int
    duration_ms: float
    timed: int


_DAY_SLOTS = 26
"""The 25 hours the overview charts (the first from the cut-off), and the rest up to the end of
time: runs created after the clock of this process are counted too."""
_END = datetime(9999, 12, 31, tzinfo=UTC)
_day_statements: weakref.WeakKeyDictionary[Table, Select[Any]] = weakref.WeakKeyDictionary()


def _day_statement(runs: Table) -> Select[Any]:
    """Per status and per hour slot, the runs created in it and their durations: each term a
    range of the (status, created_at, duration_ms) index, read from the index alone, so no row is
    visited and nothing is sorted however many runs the day had."""
    statement = _day_statements.get(runs)
    if statement is None:
        terms = [
            select(
                literal(status.value, String).label("status"),
                literal(slot).label("slot"),
                func.count().label("runs"),
                func.sum(runs.c.duration_ms).label("duration_ms"),
                func.count(runs.c.duration_ms).label("timed"),
            ).where(
                runs.c.status == status,
                runs.c.created_at >= bindparam(f"from_{slot}", type_=runs.c.created_at.type),
                runs.c.created_at < bindparam(f"until_{slot}", type_=runs.c.created_at.type),
            )
            for status in RunStatus
            for slot in range(_DAY_SLOTS)
        ]
        statement = _day_statements[runs] = union_all(*terms).subquery().select()
    return statement


def _day(
    connection: Connection, runs: Table, since: datetime, start: datetime
) -> tuple[dict[str, int], dict[int, _Slot]]:
    """Runs created since *since*: their count per status, and per hour slot from *start*."""
    bounds: dict[str, datetime] = {}
    for slot in range(_DAY_SLOTS):
        bounds[f"from_{slot}"] = since if slot == 0 else start + timedelta(hours=slot)
        last = slot == _DAY_SLOTS - 1
        bounds[f"until_{slot}"] = _END if last else start + timedelta(hours=slot + 1)
    counts: Counter[str] = Counter()
    slots: dict[int, list[float]] = {}
    for row in connection.execute(_day_statement(runs), bounds):
        if not row.runs:
            continue
        counts[row.status] += int(row.runs)
        found = slots.setdefault(int(row.slot), [0, 0, 0.0, 0])
        found[0] += int(row.runs)
        if row.status in FAILED:
            found[1] += int(row.runs)
        found[2] += float(row.duration_ms or 0)
        found[3] += int(row.timed)
    by_status = {status.value: counts[status.value] for status in RunStatus if counts[status.value]}
    return by_status, {
        slot: _Slot(int(v[0]), int(v[1]), float(v[2]), int(v[3]))
        for slot, v in slots.items()
        if slot < _DAY_SLOTS - 1
    }


def _scheduled(app: Quest) -> Iterable[tuple[str, Script]]:
    for script in app.registry:
        block = script.quest
        if block is not None and block.enabled and (block.interval or block.cron):
            yield script.name, script


class _Period(NamedTuple):
    script: Script
    since: datetime
    until: datetime | None
    period: timedelta | None


_periods: weakref.WeakKeyDictionary[Quest, dict[str, _Period]] = weakref.WeakKeyDictionary()
_periods_lock = threading.Lock()


def period_of(app: Quest, script: Script, now: datetime) -> timedelta | None:
    """How often *script* fires: its interval, or the gap between its next two fire times.

    The gap of a schedule is the same from any instant until its next fire, so it is kept per
    script for that long: the overview of thousands of scripts walks each schedule about once
    per fire, not once per view.
    """
    from ..describe import next_fires

    block = script.quest
    if block is None:
        return None
    if block.interval is not None:
        return block.interval
    with _periods_lock:
        known = _periods.setdefault(app, {})
    kept = known.get(script.name)
    if (
        kept is not None
        and kept.script is script
        and kept.since <= now
        and (kept.until is None or now < kept.until)
    ):
        return kept.period
    fires = next_fires(app, script, now, 2)
    period = fires[1] - fires[0] if len(fires) == 2 else None
    # Fewer than two fires after now stay fewer than two after any later instant.
    known[script.name] = _Period(script, now, fires[0] if len(fires) == 2 else None, period)
    return period


def late_scripts(
    app: Quest, now: datetime, last_success: dict[str, datetime], paused: set[str]
) -> list[dict[str, Any]]:
    """Scheduled, active scripts with no success for twice their period (or ever, when they
    have been declared for that long: a script never run is late only if it has failed)."""
    late = []
    for name, script in _scheduled(app):
        if name in paused:
            continue
        period = period_of(app, script, now)
        if period is None:
            continue
        last = last_success.get(name)
        if last is None or now - last > 2 * period:
            late.append({"name": name, "last_success": last, "period": period})
    late.sort(key=lambda item: item["last_success"] or datetime.min.replace(tzinfo=UTC))
    return late


def _last_success(
    app: Quest, now: datetime, latest: dict[str, Outcome], paused: set[str]
) -> dict[str, datetime]:
    """What :func:`late_scripts` needs of each scheduled, active script's latest success.

    A run ends after it was created: a script whose latest success was created within twice
    its period cannot be late, so that instant stands for the end, which is not read. The
    others' ends are read by the keys :func:`latest_outcomes` found (a script whose success has
    no end is late).
    """
    store = app.store
    runs = store.runs
    wanted: list[tuple[str, datetime]] = []
    found: dict[str, datetime] = {}
    for name, script in _scheduled(app):
        outcome = latest.get(name)
        if name in paused or outcome is None or outcome.succeeded_at is None:
            continue
        period = period_of(app, script, now)
        if period is None:
            continue
        if now - outcome.succeeded_at > 2 * period:
            wanted.append((name, outcome.succeeded_at))
        else:
            found[name] = outcome.succeeded_at
    with store.db.reading() as connection:
        for start in range(0, len(wanted), KEYS):
            chunk = wanted[start : start + KEYS]
            query = select(runs.c.name, runs.c.status, runs.c.finished_at).where(
                _keyed(runs, chunk)
            )
            for name, status, finished in connection.execute(query):
                if status is RunStatus.succeeded and finished is not None:
                    found[name] = finished
    return found


def failing_scripts(app: Quest, latest: dict[str, Outcome] | None = None) -> list[dict[str, Any]]:
    """Scripts whose latest finished run failed, timed out, was abandoned or interrupted."""
    if latest is None:
        latest = latest_outcomes(app, app.registry.scripts)
    names = [name for name, outcome in latest.items() if outcome.status in FAILED]
    last = last_runs(app, names, latest)
    failing: list[dict[str, Any]] = [
        {"name": name, "run": row} for name, row in last.items() if row["status"] in FAILED
    ]
    failing.sort(key=lambda item: item["run"]["created_at"], reverse=True)
    return failing


# -- the latest runs of many scripts ---------------------------------------------------------------

KEYS = 100
"""(name, created_at) keys per statement when reading the rows :func:`latest_outcomes` found."""


def _keyed(runs: Table, keys: Sequence[tuple[str, datetime]]) -> ColumnElement[bool]:
    """The rows of *keys*, (name, created_at) each: one index lookup per key. (A row-value
    ``IN`` list, or any further condition on the status, would make SQLite's planner, which has
    no statistics, scan the table instead.)"""
    return or_(*(and_(runs.c.name == name, runs.c.created_at == at) for name, at in keys))


class Outcome(NamedTuple):
    """Where a script's latest runs are: its latest finished run (when it was created, how it
    ended) and when its latest success was created."""

    created_at: datetime | None
    status: RunStatus | None
    succeeded_at: datetime | None


def _wanted(dialect: str) -> Any:
    """The names of a lookup as a table of one column, ``value``, from one parameter: a JSON
    array read by ``json_each`` on SQLite, an array by ``unnest`` on PostgreSQL."""
    if dialect == "postgresql":
        names = func.unnest(bindparam("names", type_=ARRAY(String)))
    else:
        names = func.json_each(bindparam("names", type_=String))
    return names.table_valued("value").alias("wanted")


_outcome_statements: weakref.WeakKeyDictionary[Table, dict[str, Select[Any]]] = (
    weakref.WeakKeyDictionary()
)


def _outcome_statement(runs: Table, dialect: str) -> Select[Any]:
    kept = _outcome_statements.setdefault(runs, {})
    statement = kept.get(dialect)
    if statement is not None:
        return statement
    wanted = _wanted(dialect)

    def newest(column: Any, succeeded: bool = False) -> Any:
        # Walks the partial index of finished runs backwards, from the index alone: the text of
        # its condition, repeated, is what lets SQLite use it. The success is tested through
        # coalesce() so that no index on the status applies instead.
        condition: list[Any] = [runs.c.name == wanted.c.value, text(FINISHED_WHERE)]
        if succeeded:
            condition.append(
                func.coalesce(runs.c.status, RunStatus.succeeded) == RunStatus.succeeded
            )
        return (
            select(column)
            .where(*condition)
            .order_by(runs.c.created_at.desc())
            .limit(1)
            .correlate(wanted)
            .scalar_subquery()
        )

    statement = kept[dialect] = select(
        wanted.c.value.label("name"),
        newest(runs.c.created_at).label("created_at"),
        newest(runs.c.status).label("status"),
        newest(runs.c.created_at, succeeded=True).label("succeeded_at"),
    )
    return statement


def latest_outcomes(app: Quest, names: Iterable[str]) -> dict[str, Outcome]:
    """Of each of *names* that has finished a run: :class:`Outcome`. One statement for any
    number of scripts, a few index entries read for each."""
    store = app.store
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    dialect = store.dialect
    value: Any = wanted if dialect == "postgresql" else json.dumps(wanted)
    found: dict[str, Outcome] = {}
    with store.db.reading() as connection:
        for row in connection.execute(_outcome_statement(store.runs, dialect), {"names": value}):
            if row.created_at is not None or row.succeeded_at is not None:
                status = RunStatus(row.status) if row.status is not None else None
                found[row.name] = Outcome(row.created_at, status, row.succeeded_at)
    return found


def last_runs(
    app: Quest, names: Iterable[str], latest: dict[str, Outcome] | None = None
) -> dict[str, dict[str, Any]]:
    """The latest finished run of each of *names* (what ``Store.last_runs`` gives), read by the
    keys :func:`latest_outcomes` finds: a few rows whatever the length of the JobLog."""
    store = app.store
    runs = store.runs
    names = list(names)
    if latest is None:
        latest = latest_outcomes(app, names)
    keys = [
        (name, outcome.created_at)
        for name in names
        if (outcome := latest.get(name)) is not None and outcome.created_at is not None
    ]
    found: dict[str, dict[str, Any]] = {}
    with store.db.reading() as connection:
        for start in range(0, len(keys), KEYS):
            query = select(runs).where(_keyed(runs, keys[start : start + KEYS]))
            for row in connection.execute(query):
                if row.status in FINISHED:
                    found[row.name] = dict(row._mapping)
    return found


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
        outcomes = latest_outcomes(app, (script.name for script in wanted))
        if state == "failing":
            wanted = [
                s for s in wanted if (o := outcomes.get(s.name)) is not None and o.status in FAILED
            ]
        else:
            wanted = [
                s for s in wanted if (o := outcomes.get(s.name)) is None or o.created_at is None
            ]
    elif state == "late":
        outcomes = latest_outcomes(app, (script.name for script in wanted))
        last_success = _last_success(app, now, outcomes, paused)
        late = {item["name"] for item in late_scripts(app, now, last_success, paused)}
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
    last = last_runs(app, names)
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
        fires=[] if paused else next_fires(app, script, now, 10),
        history=store.history(name, limit=30),
        paused=paused,
        last_success=gauges.last_success.get(name),
        queued=gauges.queued.get(name, 0),
    )


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
    if text[-1:] in units and text[:-1].isdigit() and len(text) < 8:
        return now - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        return None
    return instant if instant.tzinfo else instant.replace(tzinfo=UTC)
