"""What the dashboard's pages read: each function takes the :class:`~quest.app.Quest` and the
instant to read at, and returns plain data for a template.

Every query is bounded: lists are pages (keyset pagination on the runs), per-script facts are read
for the scripts on the page, and the JobLog is only ever read through its indexes.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import threading
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import (
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
from ..models import FINISHED_WHERE, in_chain
from ..store import Outcome, node_state
from ..store.runs import queued_where

if TYPE_CHECKING:
    from ..app import Quest
    from ..definition import Script
    from ..store import Store

PAGE = 50
OVERVIEW_LIST = 20
"""Failing (and late) scripts the overview names; a link leads to the rest."""
SEARCH_SCAN = 5_000
"""Runs a search in inputs reads per page, newest first."""
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
    script_count: int = 0
    failing_count: int = 0


def overview(app: Quest, now: datetime) -> Overview:
    store = app.store
    since = now - timedelta(hours=24)
    start = since.replace(minute=0, second=0, microsecond=0)
    counts, slots = _day(store, since, start, now)
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
    failing_now = latest_outcomes(app, statuses=FAILED)
    late = late_scripts(app, now, gauges.paused)
    failing = failing_scripts(app, failing_now, limit=OVERVIEW_LIST)
    ttl = timedelta(seconds=app.settings.lease_ttl)
    alive = sum(1 for node in gauges.nodes if node_state(node, now=now, ttl=ttl) == "alive")
    return Overview(
        since=since,
        counts=counts,
        total=sum(counts.values()),
        success_rate=rate,
        hours=hours,
        running=running,
        late=late,
        failing=failing,
        failing_count=len(failing_now),
        queued=sum(gauges.queued.values()),
        nodes_alive=alive,
        actions=store.recent_actions(10),
        # A first page of a long list says little at a glance: many scripts get a link.
        scripts=scripts(app, now) if len(app.registry.scripts) <= PAGE else None,
        script_count=len(app.registry.scripts),
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
SETTLED_AFTER = timedelta(minutes=5)
"""How long after an hour ends its counts may be kept: rows created in it by a clock a little
behind, or by a writer slow to commit, have arrived by then."""
SETTLED_FOR = timedelta(minutes=10)
"""How long the counts of a settled hour are kept before they are read again (a prune, or a
run ended by hand, shows within this)."""
_UNSETTLED = (RunStatus.queued.value, RunStatus.running.value)

_day_statements: weakref.WeakKeyDictionary[Table, dict[int, Select[Any]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass
class _Hour:
    """The counts of an hour whose runs have all ended, kept until *until*."""

    by_status: dict[str, tuple[int, float, int]]
    until: datetime


_settled: weakref.WeakKeyDictionary[Store, dict[datetime, _Hour]] = weakref.WeakKeyDictionary()
_settled_lock = threading.Lock()


def _day_statement(runs: Table, ranges: int) -> Select[Any]:
    """Per status and per time range (``from_N``, ``until_N``), the runs created in it and their
    durations: each term a range of the (status, created_at, duration_ms) index, read from the
    index alone, so no row is visited and nothing is sorted however many runs the day had."""
    kept = _day_statements.setdefault(runs, {})
    statement = kept.get(ranges)
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
            for slot in range(ranges)
        ]
        statement = kept[ranges] = union_all(*terms).subquery().select()
    return statement


def _day(
    store: Store, since: datetime, start: datetime, now: datetime
) -> tuple[dict[str, int], dict[int, _Slot]]:
    """Runs created since *since*: their count per status, and per hour slot from *start*.

    An hour that ended more than :data:`SETTLED_AFTER` ago and held no queued or running run
    when it was read is kept (for :data:`SETTLED_FOR`, each hour on its own schedule): a view
    reads the index ranges of the hours still moving only, the first and the last ones.
    """
    bounds: list[tuple[int, datetime, datetime]] = []
    for slot in range(_DAY_SLOTS):
        begins = since if slot == 0 else start + timedelta(hours=slot)
        ends = _END if slot == _DAY_SLOTS - 1 else start + timedelta(hours=slot + 1)
        bounds.append((slot, begins, ends))
    found: dict[int, dict[str, tuple[int, float, int]]] = {}
    with _settled_lock:
        kept = _settled.setdefault(store, {})
        for hour in [hour for hour, entry in kept.items() if entry.until <= now or hour < since]:
            del kept[hour]
        for slot, begins, _ in bounds[1:-1]:
            entry = kept.get(begins)
            if entry is not None:
                found[slot] = entry.by_status
    wanted = [bound for bound in bounds if bound[0] not in found]
    values: dict[str, datetime] = {}
    for place, (_, begins, ends) in enumerate(wanted):
        values[f"from_{place}"] = begins
        values[f"until_{place}"] = ends
    read: dict[int, dict[str, tuple[int, float, int]]] = {slot: {} for slot, _, _ in wanted}
    with store.db.reading() as connection:
        if connection.dialect.name == "postgresql":
            # Many small index ranges: workers cost more to start than they save.
            connection.exec_driver_sql("SET LOCAL max_parallel_workers_per_gather = 0")
        for row in connection.execute(_day_statement(store.runs, len(wanted)), values):
            if row.runs:
                slot = wanted[int(row.slot)][0]
                figures = (int(row.runs), float(row.duration_ms or 0), int(row.timed))
                read[slot][row.status] = figures
    with _settled_lock:
        for slot, begins, ends in wanted:
            settled = not any(status in read[slot] for status in _UNSETTLED)
            if 0 < slot < _DAY_SLOTS - 1 and settled and ends + SETTLED_AFTER <= now:
                # Each hour is read again on its own schedule, not all of them at once.
                until = now + SETTLED_FOR + timedelta(seconds=17 * begins.hour)
                kept[begins] = _Hour(read[slot], until)
    found.update(read)
    counts: Counter[str] = Counter()
    slots: dict[int, _Slot] = {}
    for slot, by_status in found.items():
        runs_in = failed = timed = 0
        duration = 0.0
        for status, (count, duration_ms, timed_count) in by_status.items():
            counts[status] += count
            runs_in += count
            failed += count if status in FAILED else 0
            duration += duration_ms
            timed += timed_count
        if runs_in and slot < _DAY_SLOTS - 1:
            slots[slot] = _Slot(runs_in, failed, duration, timed)
    totals = {status.value: counts[status.value] for status in RunStatus if counts[status.value]}
    return totals, slots


def _scheduled(app: Quest) -> Iterable[tuple[str, Script]]:
    for script in app.registry:
        block = script.quest
        if block is not None and block.enabled and (block.interval or block.cron):
            yield script.name, script


def period_of(app: Quest, script: Script, now: datetime) -> timedelta | None:
    """How often *script* fires: its interval, or the gap between its next two fire times."""
    if script.quest is None:
        return None
    return _period_until(app, script, now)[0]


@dataclass
class _Periods:
    """The periods of a registry's scheduled scripts, as of *since*, kept between views.

    A gap between fires stays the same from any instant until the next fire, so each cron
    script's period is kept until its next fire (*heap*: (that fire, slot)); an interval is
    kept for good, and so is "no period" (fewer than two fires left stay fewer). A view walks
    only the schedules whose next fire has passed.
    """

    registry: Any
    count: int
    since: datetime
    slots: list[tuple[str, Script, timedelta | None]]
    heap: list[tuple[datetime, int]]


_periods: weakref.WeakKeyDictionary[Quest, _Periods] = weakref.WeakKeyDictionary()
_periods_lock = threading.Lock()


def _period_until(
    app: Quest, script: Script, now: datetime
) -> tuple[timedelta | None, datetime | None]:
    """*script*'s period and until when it holds (``None``: for good)."""
    from ..describe import next_fires

    block = script.quest
    assert block is not None
    if block.interval is not None:
        return block.interval, None
    fires = next_fires(app, script, now, 2)
    if len(fires) < 2:
        return None, None
    return fires[1] - fires[0], fires[0]


def _periods_of(app: Quest, now: datetime) -> list[tuple[str, timedelta]]:
    """(name, period) of every scheduled script that has one, in name order: what
    :func:`period_of` gives for each, kept between calls (see :class:`_Periods`)."""
    registry = app.registry
    with _periods_lock:
        kept = _periods.get(app)
        fresh = (
            kept is not None
            and kept.registry is registry
            and kept.count == len(registry.scripts)
            and kept.since <= now
        )
        if not fresh or kept is None:
            kept = _Periods(registry, len(registry.scripts), now, [], [])
            for name, script in _scheduled(app):
                period, until = _period_until(app, script, now)
                if until is not None:
                    kept.heap.append((until, len(kept.slots)))
                kept.slots.append((name, script, period))
            heapq.heapify(kept.heap)
            _periods[app] = kept
        else:
            while kept.heap and kept.heap[0][0] <= now:
                _, slot = heapq.heappop(kept.heap)
                name, script, _ = kept.slots[slot]
                period, until = _period_until(app, script, now)
                if until is not None:
                    heapq.heappush(kept.heap, (until, slot))
                kept.slots[slot] = (name, script, period)
            kept.since = now
        return [(name, period) for name, _, period in kept.slots if period is not None]


def late_scripts(
    app: Quest,
    now: datetime,
    paused: set[str],
    periods: list[tuple[str, timedelta]] | None = None,
) -> list[dict[str, Any]]:
    """Scheduled, active scripts with no success for twice their period (or ever, when they
    have finished a run: a script never run is not late), the longest without first.

    The database names the scripts whose latest success was created before twice their period
    ago (one statement for all of them); the ends of those successes are then read, the few
    that can be late.
    """
    if periods is None:
        periods = _periods_of(app, now)
    cuts: dict[timedelta, datetime] = {}
    wanted = {}
    for name, period in periods:
        if name not in paused:
            cut = cuts.get(period)
            if cut is None:
                cut = cuts[period] = now - 2 * period
            wanted[name] = cut
    store = app.store
    unsucceeded = store.unsucceeded_since(wanted)
    ends: dict[str, datetime] = {}
    succeeded = [name for name, at in unsucceeded.items() if at is not None]
    if succeeded:
        statement = _lookup(store.runs, store.dialect, "success_ends")
        with store.db.reading() as connection:
            for name, finished in connection.execute(statement, _names(store.dialect, succeeded)):
                if finished is not None:
                    ends[name] = finished
    period_of_name = dict(periods)
    late = []
    for name in unsucceeded:
        last = ends.get(name)
        if last is None or now - last > 2 * period_of_name[name]:
            late.append({"name": name, "last_success": last, "period": period_of_name[name]})
    late.sort(key=lambda item: (item["last_success"] or _EPOCH, item["name"]))
    return late


def failing_scripts(
    app: Quest, failed: dict[str, Outcome] | None = None, *, limit: int | None = None
) -> list[dict[str, Any]]:
    """Scripts whose latest finished run failed, timed out, was abandoned or interrupted, the
    most recent failure first; the first *limit* of them when given. *failed* is what
    ``latest_outcomes(app, statuses=FAILED)`` gives, when the caller has it."""
    if failed is None:
        failed = latest_outcomes(app, statuses=FAILED)
    names = sorted(failed, key=lambda name: failed[name].latest_at, reverse=True)
    last = last_runs(app, names[:limit] if limit is not None else names)
    failing: list[dict[str, Any]] = [
        {"name": name, "run": row} for name, row in last.items() if row["status"] in FAILED
    ]
    failing.sort(key=lambda item: item["run"]["created_at"], reverse=True)
    return failing


_EPOCH = datetime.min.replace(tzinfo=UTC)


# -- the latest runs of many scripts ---------------------------------------------------------------


def _names(dialect: str, names: Sequence[str]) -> dict[str, Any]:
    """The parameter of :func:`_lookup`'s statements: a JSON array on SQLite, an array on
    PostgreSQL."""
    return {"names": list(names) if dialect == "postgresql" else json.dumps(list(names))}


_lookups: weakref.WeakKeyDictionary[Table, dict[tuple[str, str], Select[Any]]] = (
    weakref.WeakKeyDictionary()
)


def _lookup(runs: Table, dialect: str, kind: str) -> Select[Any]:
    """A statement that reads, for each of many scripts (the ``names`` parameter, see
    :func:`_names`), what one of its latest runs says: one statement for any number of scripts,
    each walking the partial index of finished runs backwards from its newest entry.

    ``success_ends``: name, the latest success's finished_at; ``rows``: the latest finished run
    of each, whole.
    """
    kept = _lookups.setdefault(runs, {})
    statement = kept.get((dialect, kind))
    if statement is not None:
        return statement
    if dialect == "postgresql":
        unnest = func.unnest(bindparam("names", type_=ARRAY(String)))
        wanted = unnest.table_valued("value").render_derived(name="wanted")
    else:
        wanted = func.json_each(bindparam("names", type_=String)).table_valued("value")
        wanted = wanted.alias("wanted")
    walked = runs.alias("walked")

    def newest(column: str, succeeded: bool = False) -> Any:
        # The text of the partial index's condition, repeated, is what lets SQLite use it; the
        # success is tested through coalesce() so that no index on the status applies instead.
        condition: list[Any] = [walked.c.name == wanted.c.value, text(FINISHED_WHERE)]
        if succeeded:
            status = func.coalesce(walked.c.status, RunStatus.succeeded)
            condition.append(status == RunStatus.succeeded)
        return (
            select(walked.c[column])
            .where(*condition)
            .order_by(walked.c.created_at.desc())
            .limit(1)
            .correlate(wanted)
            .scalar_subquery()
        )

    if kind == "success_ends":
        statement = select(
            wanted.c.value.label("name"), newest("finished_at", succeeded=True).label("finished")
        )
    else:
        statement = select(runs).where(runs.c.id.in_(select(newest("id")).select_from(wanted)))
    kept[(dialect, kind)] = statement
    return statement


def latest_outcomes(
    app: Quest, names: Iterable[str] | None = None, *, statuses: Iterable[RunStatus] = ()
) -> dict[str, Outcome]:
    """Of each of *names* (every registered script when ``None``) that has finished a run, or
    only those whose latest finished run ended in one of *statuses*: its
    :class:`~quest.store.Outcome`, one row per script as the database keeps it."""
    kept = app.store.outcomes(statuses)
    wanted = app.registry.scripts if names is None else dict.fromkeys(names)
    return {name: outcome for name, outcome in kept.items() if name in wanted}


def last_runs(app: Quest, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The latest finished run of each of *names* (what ``Store.last_runs`` gives), found by
    walking the partial index of finished runs: a few rows whatever the length of the JobLog."""
    store = app.store
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    statement = _lookup(store.runs, store.dialect, "rows")
    with store.db.reading() as connection:
        rows = connection.execute(statement, _names(store.dialect, wanted))
        return {row.name: dict(row._mapping) for row in rows}


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
    if state == "failing":
        failed = app.store.outcomes(FAILED)
        wanted = [s for s in wanted if s.name in failed]
    elif state == "never":
        finished = app.store.outcomes()
        wanted = [s for s in wanted if s.name not in finished]
    elif state == "late":
        late = {item["name"] for item in late_scripts(app, now, paused)}
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


_strips: weakref.WeakKeyDictionary[Table, dict[int, Select[Any]]] = weakref.WeakKeyDictionary()


def _strip_statement(runs: Table, count: int) -> Select[Any]:
    """The last :data:`STRIP` finished runs of each of *count* scripts (``n0`` ...): one
    statement, each script's part a walk back along the partial index of finished runs."""
    kept = _strips.setdefault(runs, {})
    statement = kept.get(count)
    if statement is None:
        parts = [
            select(runs.c.name, runs.c.id, runs.c.status, runs.c.created_at, runs.c.duration_ms)
            .where(runs.c.name == bindparam(f"n{i}", type_=String), text(FINISHED_WHERE))
            .order_by(runs.c.created_at.desc())
            .limit(STRIP)
            .subquery()
            .select()
            for i in range(count)
        ]
        statement = kept[count] = union_all(*parts).subquery().select()
    return statement


def outcome_strips(app: Quest, names: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
    """The last :data:`STRIP` finished runs of each of *names*, oldest first."""
    store = app.store
    wanted = list(dict.fromkeys(names))
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in wanted}
    if not wanted:
        return found
    statement = _strip_statement(store.runs, len(wanted))
    with store.db.reading() as connection:
        rows = connection.execute(statement, {f"n{i}": name for i, name in enumerate(wanted)})
        for name, run_id, status, created_at, duration_ms in rows:
            run = {"id": run_id, "status": status, "created_at": created_at}
            run["duration_ms"] = duration_ms
            found[name].append(run)
    for strip in found.values():
        strip.sort(key=lambda run: run["created_at"])
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
    searched: int | None = None
    """When a search found fewer than a page in the runs it read: how many it read."""


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
    cursor = decode_cursor(before) if before else None
    if cursor is not None:
        created, run_id = cursor
        query = query.where(
            or_(
                table.c.created_at < created,
                and_(table.c.created_at == created, table.c.id < run_id),
            )
        )
    newest_first = (table.c.created_at.desc(), table.c.id.desc())
    searched = None
    with store.db.reading() as connection:
        if where.q:
            # No index finds text inside the inputs: a page searches the newest SEARCH_SCAN
            # runs the other filters leave, and its "older" link goes on from the last of them.
            pattern = "%" + where.q.replace("\\", "\\\\").replace("%", "\\%")
            pattern = pattern.replace("_", "\\_") + "%"
            window = (
                query.with_only_columns(table.c.id, table.c.created_at)
                .order_by(*newest_first)
                .limit(SEARCH_SCAN)
                .subquery("scanned")
            )
            found = (
                select(table)
                .join(window, table.c.id == window.c.id)
                .where(cast(table.c.inputs, String).like(pattern, escape="\\"))
                .order_by(*newest_first)
                .limit(PAGE + 1)
            )
            rows = [dict(row._mapping) for row in connection.execute(found)]
            if len(rows) <= PAGE:
                scanned = connection.execute(select(func.count()).select_from(window)).scalar_one()
                if scanned >= SEARCH_SCAN:
                    oldest = (
                        connection.execute(
                            select(window.c.created_at, window.c.id)
                            .order_by(window.c.created_at, window.c.id)
                            .limit(1)
                        )
                        .one()
                        ._asdict()
                    )
                    searched = int(scanned)
        else:
            rows = [
                dict(row._mapping)
                for row in connection.execute(query.order_by(*newest_first).limit(PAGE + 1))
            ]
    older = encode_cursor(rows[PAGE - 1]) if len(rows) > PAGE else None
    if searched is not None:
        older = encode_cursor(oldest)
    rows = rows[:PAGE]
    progress = store.progress_of(row["id"] for row in rows if row["status"] is RunStatus.running)
    for row in rows:
        row["progress"] = progress.get(row["id"])
    return RunPage(rows=rows, older=older, newer=cursor is not None, searched=searched)


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
                .where(in_chain(table, root))
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
            dict(row._mapping) for row in connection.execute(_queued_page(table, store.dialect))
        ]
    for group in groups:
        script = app.registry.scripts.get(group["name"])
        group["limits"] = _limits(script) if script is not None else "script not found"
        group["due"] = group["next_at"] is not None and group["next_at"] <= now
    return Queue(groups=groups, runs=rows, total=sum(group["count"] for group in groups))


def _queued_page(table: Table, dialect: str) -> Select[Any]:
    """The first queued rows in the order serve claims them, read from the partial index of due
    rows: nothing is sorted."""
    return (
        select(table)
        .where(queued_where(table, dialect))
        .order_by(table.c.run_after, table.c.created_at, table.c.id)
        .limit(PAGE)
    )


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
