"""quest's tables: the JobLog columns (mapped by the app's ``JobLog``) and its own bookkeeping.

The JobLog lives in the application's models (``app/models/job_log.py``) so the app can query it
like any other model; it takes its columns from :class:`quest.orm.JobLogMixin` (also importable
from here), built from :func:`job_log_columns` like quest's own Core table. Slot claims, overlap
leases, script state, pending secrets, nodes and cancel requests are quest's own Core tables, in
:data:`metadata`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Enum,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    or_,
    text,
)
from sqlalchemy.sql.elements import ColumnElement

from .enums import RunStatus, Trigger

if TYPE_CHECKING:
    from .orm import JobLogMixin as JobLogMixin

JOB_LOG_TABLE = "quest_job_log"


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored in UTC, returned aware on every backend (SQLite included)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given; quest stores aware datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """On SQLite, one function doing what :meth:`process_bind_param` and the dialect's own
        formatting do together (checked against them), for the statements every run writes."""
        general = super().bind_processor(dialect)
        if dialect.name != "sqlite" or general is None or not _same(sqlite_text, general):
            return general
        return sqlite_text


_last_text: tuple[datetime | None, str] = (None, "")
"""The datetime :func:`sqlite_text` formatted last, and its text: a run binds the same instant
to several columns (its start, first heartbeat and creation), formatted once."""


def sqlite_text(value: datetime | None) -> str | None:
    """An aware datetime as SQLite's ``DATETIME`` text of its UTC time."""
    global _last_text
    if value is None:
        return None
    last = _last_text
    if value is last[0]:
        return last[1]
    moment = value
    zone = moment.tzinfo
    if zone is not UTC:
        if zone is None:
            raise ValueError(f"naive datetime {value!r} given; quest stores aware datetimes only")
        moment = moment.astimezone(UTC)
    # An aware UTC time's text ends in its offset, "+00:00".
    text = moment.isoformat(" ", "microseconds")[:-6]
    _last_text = (value, text)
    return text


def _same(fast: Callable[[Any], Any], general: Callable[[Any], Any]) -> bool:
    """Whether *fast* formats as *general* does."""
    samples = (
        datetime(2026, 3, 2, 9, 0, tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2026, 3, 2, 9, 0, 1, 5, tzinfo=timezone(timedelta(hours=-5))),
        None,
    )
    return all(fast(sample) == general(sample) for sample in samples)


def status_enum(kind: type[Any]) -> Enum:
    """A status column stored as its text value, checked against the enum on every backend."""
    return Enum(
        kind,
        native_enum=False,
        length=20,
        validate_strings=True,
        values_callable=lambda e: [m.value for m in e],
    )


DUE_WHERE = "status = 'queued'"
FINISHED_WHERE = "status NOT IN ('queued', 'running')"
"""The runs that ended (every :class:`RunStatus` but queued and running), as the partial index of
finished runs says it: a query meaning to use that index repeats this text. Two values, not the
eight finished ones: SQLite tests a list of more than two by building a temporary b-tree each
time a statement evaluates it, which every insert and end of a run did for this index."""
RETRY_WHERE = "root_id <> id"
"""The runs of a chain after its first (a first attempt is its chain's root: its ``root_id`` is
its own id), as the partial index of chains says it. A query for a chain reads the root by its id
and the rest through that index, saying this condition so the planner may use it."""


def in_chain(table: Table, root: Any) -> ColumnElement[bool]:
    """The runs of the chain whose first run is *root* (an id, or a column): the root by its id,
    the retries through the partial index of chains."""
    return or_(table.c.id == root, and_(table.c.root_id == root, table.c.root_id != table.c.id))


PARTIAL_DIALECTS = ("postgresql", "sqlite")
"""The dialects whose indexes of the JobLog are partial (``WHERE``)."""


def _partial(where: str, dialect: str | None) -> dict[str, Any]:
    """An index's ``WHERE`` for *dialect*, or for each of :data:`PARTIAL_DIALECTS` when
    ``None``. Only the dialect in use is named when it is known: naming another makes SQLAlchemy
    import that dialect's package (PostgreSQL's costs a SQLite process 16 ms at start)."""
    names = PARTIAL_DIALECTS if dialect is None else (dialect,)
    return {f"{name}_where": text(where) for name in names if name in PARTIAL_DIALECTS}


def job_log_indexes(dialect: str | None = None) -> tuple[Index, ...]:
    """The JobLog's indexes, new objects on every call, with the partial ``WHERE`` of *dialect*
    (of every dialect when ``None``, as the ORM mixin has them)."""
    table = JOB_LOG_TABLE
    return (
        Index(f"ix_{table}_name_created", "name", "created_at"),
        Index(f"ix_{table}_created", "created_at"),
        # Runs per status over a time range, with their durations, from the index alone.
        Index(f"ix_{table}_status_created", "status", "created_at", "duration_ms"),
        # Each script's finished runs newest first: its latest outcome and latest success read
        # from the index alone. Partial, so that no query grouping by name and filtering on the
        # status (SQLite's planner has no statistics) walks it instead of the few rows it wants.
        Index(
            f"ix_{table}_finished",
            "name",
            "created_at",
            "status",
            **_partial(FINISHED_WHERE, dialect),
        ),
        # The retries of each chain; a first attempt, its chain's root, is read by its id.
        Index(
            f"ix_{table}_root",
            "root_id",
            **_partial(RETRY_WHERE, dialect),
        ),
        # The claim's candidates: due queued runs in order, read from the index alone.
        Index(
            f"ix_{table}_due",
            "run_after",
            "created_at",
            "id",
            **_partial(DUE_WHERE, dialect),
        ),
    )


def job_log_columns() -> list[Column[Any]]:
    """The columns of the JobLog, new objects on every call: one row per run, created at start
    and finished at the end. quest's Core table and the ORM mixin (:mod:`quest.orm`) are both
    built from them."""
    return [
        Column("id", String(32), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("status", status_enum(RunStatus), nullable=False),
        Column("trigger", status_enum(Trigger), nullable=False),
        Column("attempt", Integer, default=1, nullable=False),
        Column("max_attempts", Integer, default=1, nullable=False),
        Column("root_id", String(32)),
        Column("key", String(200)),
        Column("inputs", JSON),
        Column("scheduled_for", UTCDateTime),
        Column("created_at", UTCDateTime, nullable=False),
        Column("run_after", UTCDateTime),
        Column("started_at", UTCDateTime),
        Column("finished_at", UTCDateTime),
        Column("heartbeat_at", UTCDateTime),
        Column("duration_ms", Integer),
        Column("result", JSON),
        Column("error", Text),
        Column("traceback", Text),
        Column("reason", String(200)),
        Column("owner_host", String(255)),
        Column("owner_pid", Integer),
    ]


def __getattr__(name: str) -> Any:
    # The ORM mixin is loaded when asked for: a process that maps no JobLog of its own (the
    # CLI on quest's own table, a worker) never imports SQLAlchemy's ORM, 35-50 ms of its start.
    if name == "JobLogMixin":
        from .orm import JobLogMixin

        return JobLogMixin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


metadata = MetaData()
"""quest's own bookkeeping tables (Core tables: nothing to map, cheap to load)."""

# A scheduled slot (script, instant) taken by one serve; the key makes it unique.
slots = Table(
    "quest_slots",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("scheduled_for", UTCDateTime, primary_key=True),
    Column("run_id", String(32)),
    Column("owner", String(255), nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
)

# The overlap lease of a script: held by one run, renewed by heartbeat. On SQLite the rows live in
# their primary key's b-tree (migration q0007): a run taking and releasing the lease writes one
# page each time rather than the table's and its key index's.
leases = Table(
    "quest_leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("run_id", String(32), nullable=False),
    Column("owner", String(255), nullable=False),
    Column("acquired_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    sqlite_with_rowid=False,
)

# Runtime state of a script that outlives processes (paused).
script_state = Table(
    "quest_script_state",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("paused", Boolean, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

# Each script's latest finished run, kept by a trigger on the JobLog (migration q0006): its
# status, id and created_at, and when its latest success was created. The status is exact; the
# id and the two instants may lag the JobLog by up to OUTCOME_LAG while the status stays.
outcomes = Table(
    "quest_outcomes",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("status", status_enum(RunStatus), nullable=False),
    Column("run_id", String(32), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("succeeded_at", UTCDateTime),
)
OUTCOME_LAG = timedelta(seconds=10)
"""How far behind the JobLog the instants of :data:`outcomes` may be."""

# Sensitive inputs of a queued run chain, kept only until it ends.
pending_secrets = Table(
    "quest_pending_secrets",
    metadata,
    Column("root_id", String(32), primary_key=True),
    Column("inputs", JSON, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)

# One row per ``quest serve`` process: what it is and whether it is still heartbeating.
nodes = Table(
    "quest_nodes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", String(50), nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("isolation", String(20), nullable=False),
    Column("heartbeat_at", UTCDateTime, nullable=False),
    Column("stopped_at", UTCDateTime),
    # Seconds: the node renews its runs' heartbeats at a third of it (migration q0008).
    Column("lease_ttl", Float),
)

# A request to stop a running run, read by the serve that owns it.
cancels = Table(
    "quest_cancels",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("requested_by", String(255), nullable=False),
    Column("requested_at", UTCDateTime, nullable=False),
)


# What a running run last reported with ``ctx.progress``.
progress = Table(
    "quest_run_progress",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("current", Float, nullable=False),
    Column("total", Float),
    Column("message", String(500)),
    Column("updated_at", UTCDateTime, nullable=False),
)

# The lines a run logged, bounded per run; ``seq`` orders them within the run.
run_logs = Table(
    "quest_run_logs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("level", String(10), nullable=False),
    Column("logger", String(200), nullable=False),
    Column("message", Text, nullable=False),
)


def job_log_table(target: MetaData, dialect: str | None = None) -> Table:
    """The JobLog as a Core table in *target*, for projects whose models define none; its
    partial indexes are those of *dialect* (of every dialect when ``None``)."""
    return Table(JOB_LOG_TABLE, target, *job_log_columns(), *job_log_indexes(dialect))


# What people did from the dashboard (or any caller of Store.record_action): who, what, to what.
actions = Table(
    "quest_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime, nullable=False),
    Column("who", String(255), nullable=False),
    Column("action", String(50), nullable=False),
    Column("target", String(200), nullable=False),
    Column("detail", JSON),
    Index("ix_quest_actions_at", "at"),
)
