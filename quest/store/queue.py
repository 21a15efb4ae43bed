"""The queue: enqueued runs, and claims that start them.

A claim takes up to *limit* due queued rows and starts them in the same statement (status
``running``, owner, ``started_at``): nothing is claimed that cannot start, so nothing is ever
handed back. Rows of scripts with ``concurrency`` or ``rate_limit`` rules, and retries of
scheduled runs of ``without_overlapping`` scripts (which must take the script's overlap lease in
the claim's transaction), are *checked* one by one; every other row is taken by one statement:

- PostgreSQL: ``WITH due AS (SELECT ... FOR UPDATE SKIP LOCKED), taken AS (UPDATE ... RETURNING)``,
  so concurrent serves never take the same row and never wait for each other;
- SQLite: ``UPDATE ... WHERE id IN (SELECT ... LIMIT n) RETURNING *`` inside ``BEGIN IMMEDIATE``,
  after a plain read has seen a due row, so an idle serve never takes the write lock.

On PostgreSQL a worker's next claim carries the end of the run it just finished (:class:`End`): one
statement records the end and takes the next row (``WITH ended AS (UPDATE ...), due AS (...),
taken AS (...)``), one round trip where a transaction of its own took four (``BEGIN``, the end,
the claim, ``COMMIT``).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    and_,
    bindparam,
    false,
    func,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.exc import InterfaceError, OperationalError

from ..enums import RunStatus, Trigger
from ._engine import Carried, Database, Taken
from .leases import Leases
from .runs import Runs, late_end, queued_where
from .secrets import Secrets

log = logging.getLogger("quest.store")

CLAIM_PAGES = 8
RECENT_CLAIMS = 16
SETTLE_AFTER = timedelta(seconds=5)
"""How long after a claim whose outcome is unknown (its connection was lost) the rows it may
have committed are still looked for, even once a look found none: a statement the server was
still carrying out when the client lost it may commit a moment later."""
TICK = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Limits:
    """The concurrency and rate limits of one script's queued runs."""

    concurrency: int | None = None
    concurrency_per_key: bool = False
    rate_max: int | None = None
    rate_per: timedelta = timedelta(seconds=1)
    rate_per_key: bool = False


@dataclass(slots=True)
class _Claim:
    """One call of :meth:`Queue.claim`: what it may take, and what it has taken so far."""

    now: datetime
    limit: int
    owner_host: str
    owner_pid: int
    owner: str
    limits: Mapping[str, Limits]
    leases: Mapping[str, timedelta]
    run_id: str | None
    claimed: list[dict[str, Any]] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    blocked: set[tuple[str, str | None]] = field(default_factory=set)
    more: bool = False
    adopted_at: datetime | None = None
    """The heartbeat given to the rows it took back from lost claims (:meth:`Queue._adopt`)."""

    @property
    def wanted(self) -> int:
        return self.limit - len(self.claimed)

    @property
    def params(self) -> dict[str, Any]:
        """The parameters of the cached claim statements."""
        return {
            "_now": self.now,
            "_limit": self.wanted,
            "_limited": sorted(self.limits),
            "_leased": sorted(self.leases),
            "_host": self.owner_host,
            "_pid": self.owner_pid,
        }

    @property
    def start(self) -> dict[str, Any]:
        return {
            "status": RunStatus.running,
            "started_at": self.now,
            "heartbeat_at": self.now,
            "owner_host": self.owner_host,
            "owner_pid": self.owner_pid,
        }


class End(Carried):
    """A run's end, kept in its unit of work: the JobLog row finished if it is still ``running``.

    Run alone it is the same ``UPDATE`` as :meth:`~quest.store.runs.Runs.finish`; a claim at the
    unit's commit (PostgreSQL) carries it in the claim's own statement instead (see
    :meth:`Queue.claim_at_commit`). Either way a row another serve has meanwhile marked
    ``abandoned`` keeps that status, and the late end is logged.
    """

    __slots__ = ("queue", "run_id", "values")

    def __init__(self, queue: Queue, run_id: str, values: dict[str, Any]) -> None:
        self.queue = queue
        self.run_id = run_id
        self.values = values

    def __call__(self, connection: Connection) -> None:
        params = {**self.values, "_run_id": self.run_id}
        changed = self.queue.db.do(connection, self.queue.runs.finish_statement, params)
        self.counted(connection, changed)

    @property
    def params(self) -> dict[str, Any]:
        """Its values as the parameters of a claim that carries it."""
        params = {f"_end_{key}": value for key, value in self.values.items()}
        params["_end_id"] = self.run_id
        return params

    def counted(self, connection: Connection, changed: int) -> None:
        """Log a late end: the row was no longer ``running`` (*changed* rows is 0)."""
        if not changed:
            late_end(connection, self.queue.runs.table, self.run_id, self.values)


class Queue:
    def __init__(self, db: Database, runs: Runs, secrets: Secrets, leases: Leases) -> None:
        self.db = db
        self.runs = runs
        self.secrets = secrets
        self.leases = leases
        self._statements: dict[tuple[str, bool, bool], Any] = {}
        self._carrying: dict[tuple[bool, bool, frozenset[str]], Any] = {}
        self._recent: OrderedDict[datetime, set[str]] = OrderedDict()
        self._recent_lock = threading.Lock()
        self._unsettled: set[tuple[str, int, datetime, bool]] = set()
        """Claims that lost their connection and whose rows may be committed with no one running
        them, as (owner host, owner pid, instant, whether the rows are ones it took back): every
        claim of that owner adopts them (:meth:`_adopt`)."""
        self._last_adoption: datetime | None = None

    # -- enqueue -------------------------------------------------------------------------------

    def enqueue(self, values: dict[str, Any], secrets: dict[str, Any] | None = None) -> None:
        """Insert a queued row and wake the serves; sensitive inputs go to a side table."""

        def write(connection: Connection) -> None:
            connection.execute(self.runs.insert_statement, values)
            if secrets:
                self.secrets.keep(connection, values["root_id"], secrets, values["created_at"])
            self.db.notify(connection, "run")

        self.db.write(write)

    def requeue(self, run_id: str, *, run_after: datetime) -> None:
        """Give a claimed run back to the queue and wake the serves (it is due at *run_after*)."""
        values = {
            "status": RunStatus.queued,
            "run_after": run_after,
            "started_at": None,
            "owner_host": None,
            "owner_pid": None,
        }
        runs = self.runs.table
        statement = update(runs).where(runs.c.id == run_id).values(values)

        def write(connection: Connection) -> None:
            connection.execute(statement)
            self.db.notify(connection, "run")

        self.db.write(write)

    # -- ends --------------------------------------------------------------------------------

    @property
    def carries_ends(self) -> bool:
        """Whether a claim at commit can carry a run's end in its statement: on PostgreSQL, for
        a JobLog whose columns need no Python-side defaults."""
        return self.db.dialect == "postgresql" and self.runs.plain

    def finish(self, run_id: str, values: dict[str, Any]) -> None:
        """Record the end of a run still ``running``, in this thread's unit of work, where the
        claim of the worker's next run can carry it (see :class:`End`)."""
        self.db.write(End(self, run_id, values))

    # -- claims --------------------------------------------------------------------------------

    def claim(
        self,
        *,
        now: datetime,
        limit: int,
        owner_host: str,
        owner_pid: int,
        limits: Mapping[str, Limits] | None = None,
        leases: Mapping[str, timedelta] | None = None,
        run_id: str | None = None,
        owner: str | None = None,
    ) -> list[dict[str, Any]]:
        """Take and start up to *limit* due queued runs; the rows come back ``running``.

        Inside this thread's unit of work the claim runs on the unit's transaction. Otherwise a
        claim whose connection is lost is retried once on a fresh connection; rows the lost
        attempt may have committed for this owner at *now* are returned then, so none is lost.
        """
        if limit <= 0:
            return []

        def fresh() -> _Claim:
            return _Claim(
                now=now,
                limit=limit,
                owner_host=owner_host,
                owner_pid=owner_pid,
                owner=owner or f"{owner_host}:{owner_pid}",
                limits=limits or {},
                leases=leases or {},
                run_id=run_id,
            )

        unit = self.db.current()
        if unit is not None:
            plan = fresh()
            plain = not (plan.limits or plan.leases)
            connection = unit.connection_for(self.db.writer)
            plan.claimed += self._adopt(connection, plan)
            if plan.wanted > 0:
                self._claim(connection, plan, plain)
            return plan.claimed
        try:
            return self._attempt(fresh(), adopt=False)
        except (OperationalError, InterfaceError) as exc:
            log.warning(
                "claim lost its database connection (%s); retrying once",
                type(exc).__name__,
                extra={"action": "claim_retry"},
            )
            return self._attempt(fresh(), adopt=True)

    def claim_at_commit(
        self,
        *,
        now: datetime,
        limit: int,
        owner_host: str,
        owner_pid: int,
        limits: Mapping[str, Limits] | None = None,
        leases: Mapping[str, timedelta] | None = None,
        owner: str | None = None,
    ) -> Taken:
        """Claim like :meth:`claim`, in this thread's unit of work as it commits (see
        :meth:`Database.take`): claims of one owner that commit together run as one statement.
        The rows are in the returned :class:`Taken` once the unit has committed."""
        limits = limits or {}
        leases = leases or {}
        owner = owner or f"{owner_host}:{owner_pid}"

        if self.db.current() is None:
            taken = Taken()
            taken.items = self.claim(
                now=now,
                limit=limit,
                owner_host=owner_host,
                owner_pid=owner_pid,
                limits=limits,
                leases=leases,
                owner=owner,
            )
            return taken

        def plan(count: int) -> _Claim:
            return _Claim(
                now=now,
                limit=count,
                owner_host=owner_host,
                owner_pid=owner_pid,
                owner=owner,
                limits=limits,
                leases=leases,
                run_id=None,
            )

        attempts: list[_Claim] = []

        def take(connection: Connection, count: int) -> list[dict[str, Any]]:
            claim = plan(count)
            attempts.append(claim)
            # After a statement that carried the end lost its connection: the rows it may have
            # committed for this owner at *now* that no one got back.
            claim.claimed += self._adopt(connection, claim)
            if claim.wanted > 0:
                self._claim(connection, claim, not (limits or leases))
            return claim.claimed

        def lost() -> None:
            for claim in attempts:
                self._lose(claim)

        def carry(connection: Connection, count: int, end: Carried) -> list[dict[str, Any]]:
            assert isinstance(end, End)
            claim = plan(count)
            try:
                self._carry(connection, claim, end)
            except Exception:
                # Whether the statement committed is not known: the claim that follows (the
                # unit's own commit, or if that fails too, the next claim of this owner) adopts
                # what it may have taken, the rows this attempt saw included (none of them
                # reaches a worker).
                self._lose(claim)
                raise
            return claim.claimed

        key = ("claim", owner_host, owner_pid, owner, _frozen(limits), _frozen(leases))
        return self.db.take(
            key, limit, take, at=now, carry=carry if self.carries_ends else None, lost=lost
        )

    def _attempt(self, plan: _Claim, *, adopt: bool) -> list[dict[str, Any]]:
        plain = True
        adopt = adopt or self._owes(plan)
        if self.db.dialect == "sqlite" and not adopt:
            # A plain read first: an idle claim must not take the write lock.
            due = self._peek(plan)
            if due is None:
                return []
            plain = not due
        try:
            with self.db.transaction() as connection:
                if adopt:
                    plan.claimed += self._adopt(connection, plan)
                if plan.wanted > 0:
                    self._claim(connection, plan, plain)
        except (OperationalError, InterfaceError):
            self._lose(plan)
            raise
        return plan.claimed

    def _peek(self, plan: _Claim) -> bool | None:
        """SQLite: ``None`` if nothing is due, else whether a due row among the first *limit*
        needs checking."""
        if plan.run_id is not None:
            return True
        with self.db.reading() as connection:
            # Through the driver's cursor: this runs every time an idle serve looks.
            cursor = self.db.run(
                connection, self._statement("peek", plan), {"_now": plan.now, "_limit": plan.wanted}
            )
            try:
                due = cursor.fetchall()
            finally:
                cursor.close()
        if not due:
            return None
        return any(
            name in plan.limits
            or (trigger == Trigger.retry.value and scheduled is not None and name in plan.leases)
            for name, trigger, scheduled in due
        )

    def _statement(self, kind: str, plan: _Claim) -> Any:
        """A hot statement of the claim, built once per shape; its values are parameters."""
        key = (
            (kind, False, False) if kind == "peek" else (kind, bool(plan.limits), bool(plan.leases))
        )
        statement = self._statements.get(key)
        if statement is None:
            statement = self._statements[key] = self._build(kind, plan)
        return statement

    def _build(self, kind: str, plan: _Claim, ends: frozenset[str] = frozenset()) -> Any:
        runs = self.runs.table
        checked = self._checked(plan)
        limit = bindparam("_limit", type_=Integer)
        start = {
            "status": RunStatus.running,
            "started_at": bindparam("_now", type_=runs.c.started_at.type),
            "heartbeat_at": bindparam("_now", type_=runs.c.heartbeat_at.type),
            "owner_host": bindparam("_host", type_=runs.c.owner_host.type),
            "owner_pid": bindparam("_pid", type_=runs.c.owner_pid.type),
        }
        order = (runs.c.run_after, runs.c.created_at)
        if kind == "peek":
            columns = (runs.c.name, runs.c.trigger, runs.c.scheduled_for)
            return select(*columns).where(*self._due(plan)).order_by(*order).limit(limit)
        if kind == "sqlite":
            candidates = select(runs.c.id).where(*self._due(plan))
            if checked is not None:
                candidates = candidates.where(~checked)
            candidates = candidates.order_by(*order).limit(limit)
            return update(runs).where(runs.c.id.in_(candidates)).values(**start).returning(*runs.c)
        due = (
            select(
                runs.c.id,
                runs.c.run_after,
                runs.c.created_at,
                (false() if checked is None else checked).label("checked"),
            )
            .where(*self._due(plan))
            .order_by(*order)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
        )
        taken = (
            update(runs)
            .where(runs.c.id == due.c.id, ~due.c.checked)
            .values(**start)
            .returning(*runs.c)
            .cte("taken")
        )
        pairs = due.outerjoin(taken, taken.c.id == due.c.id)
        if kind == "postgresql":
            return (
                select(due.c.id.label("quest_due_id"), *taken.c)
                .select_from(pairs)
                .order_by(due.c.run_after, due.c.created_at)
            )
        # "carry": a run's end first (a CTE), then the claim; the end's count comes on every row,
        # and on one row of NULLs when nothing is due.
        ended = (
            update(runs)
            .where(runs.c.id == bindparam("_end_id"), runs.c.status == RunStatus.running)
            .values({key: bindparam(f"_end_{key}", type_=runs.c[key].type) for key in ends})
            .returning(runs.c.id)
            .cte("ended")
        )
        counted = select(func.count().label("quest_ended")).select_from(ended).subquery("counted")
        return (
            select(counted.c.quest_ended, due.c.id.label("quest_due_id"), *taken.c)
            .select_from(counted.outerjoin(pairs, true()))
            .order_by(due.c.run_after, due.c.created_at)
        )

    def _claim(self, connection: Connection, plan: _Claim, plain: bool) -> None:
        if plan.run_id is None and self.db.dialect == "postgresql":
            self._first_page_pg(connection, plan)
        elif plan.run_id is None and plain:
            self._first_page_sqlite(connection, plan)
        else:
            self._pages(connection, plan)
            return
        if plan.wanted > 0 and plan.more:
            self._pages(connection, plan)

    def _due(self, plan: _Claim) -> list[ColumnElement[bool]]:
        runs = self.runs.table
        where = [queued_where(runs, self.db.dialect)]
        if plan.run_id is None:
            where.append(runs.c.run_after <= bindparam("_now", type_=runs.c.run_after.type))
        return where

    def _checked(self, plan: _Claim) -> ColumnElement[bool] | None:
        """Which rows need a limit or lease check, or ``None`` when none can."""
        runs = self.runs.table
        terms: list[ColumnElement[bool]] = []
        if plan.limits:
            terms.append(runs.c.name.in_(bindparam("_limited", expanding=True)))
        if plan.leases:
            terms.append(
                and_(
                    runs.c.trigger == Trigger.retry,
                    runs.c.scheduled_for.is_not(None),
                    runs.c.name.in_(bindparam("_leased", expanding=True)),
                )
            )
        return or_(*terms) if terms else None

    def _first_page_pg(
        self, connection: Connection, plan: _Claim, end: End | None = None, *, locked: bool = True
    ) -> None:
        """One statement: lock the first due rows, start the unchecked ones, list the others.

        With *end*, the statement records that run's end too. Unless *locked* (the statement ran
        in a transaction of its own, which has ended), the rows that need checking are left
        for :meth:`_pages` (``plan.more``), in a transaction that locks them again."""
        runs = self.runs.table
        asked = plan.wanted
        if end is None:
            rows = connection.execute(self._statement("postgresql", plan), plan.params).all()
        else:
            rows = connection.execute(
                self._carrying_statement(plan, end), {**plan.params, **end.params}
            ).all()
            end.counted(connection, rows[0].quest_ended if rows else 0)
        waiting: list[str] = []
        due = 0
        for row in rows:
            values = dict(row._mapping)
            values.pop("quest_ended", None)
            due_id = values.pop("quest_due_id")
            if due_id is None:
                continue
            due += 1
            if values["id"] is None:
                waiting.append(due_id)
            else:
                plan.claimed.append(values)
        self._remember(plan.now, [row["id"] for row in plan.claimed])
        if waiting and not locked:
            plan.more = True
            return
        if waiting:
            locked_rows = connection.execute(
                select(runs)
                .where(runs.c.id.in_(waiting))
                .order_by(runs.c.run_after, runs.c.created_at)
            )
            for found in [dict(r._mapping) for r in locked_rows]:
                self._check_and_take(connection, plan, found)
        # Rows passed over in a full page may hide more due rows behind them.
        plan.more = due == asked and bool(plan.passed)

    def _carrying_statement(self, plan: _Claim, end: End) -> Any:
        """The first page's statement with *end* carried in it, built once per shape."""
        ends = frozenset(end.values)
        key = (bool(plan.limits), bool(plan.leases), ends)
        statement = self._carrying.get(key)
        if statement is None:
            statement = self._carrying[key] = self._build("carry", plan, ends)
        return statement

    def _carry(self, connection: Connection, plan: _Claim, end: End) -> None:
        """Record *end* and claim in one statement (PostgreSQL). On a connection in autocommit
        the statement is a transaction of its own: rows that need checking are then checked in
        another, which may fail alone (the end and the rows taken stand)."""
        autocommit = connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        self._first_page_pg(connection, plan, end, locked=not autocommit)
        if plan.wanted <= 0 or not plan.more:
            return
        if not autocommit:
            self._pages(connection, plan)
            return
        taken = list(plan.claimed)
        try:
            with self.db.transaction() as checking:
                self._pages(checking, plan)
        except Exception:
            log.warning("claiming checked rows after a run's end failed", exc_info=True)
            # Their commit may have gone through: they are looked for like a lost claim's.
            self._lose(plan, [row["id"] for row in plan.claimed[len(taken) :]])
            plan.claimed = taken

    def _first_page_sqlite(self, connection: Connection, plan: _Claim) -> None:
        """One statement inside ``BEGIN IMMEDIATE``: start the first due unchecked rows."""
        statement = self._statement("sqlite", plan)
        if plan.limits or plan.leases or not self.runs.plain:
            found = [dict(r._mapping) for r in connection.execute(statement, plan.params)]
        else:
            # Through the driver's cursor: this runs at the end of every queued run.
            found = self.db.rows(
                connection,
                statement,
                {
                    "_now": plan.now,
                    "_limit": plan.wanted,
                    "_host": plan.owner_host,
                    "_pid": plan.owner_pid,
                },
            )
        rows = sorted(found, key=lambda row: (row["run_after"], row["created_at"]))
        plan.claimed += rows
        self._remember(plan.now, [row["id"] for row in rows])

    def _pages(self, connection: Connection, plan: _Claim) -> None:
        """Row by row, page by page: checked rows are taken only when their checks pass, and a
        script or key found at its limit is passed over for the rest of the claim."""
        runs = self.runs.table
        checked = self._checked(plan)
        flag = (false() if checked is None else checked).label("quest_checked")
        for _ in range(CLAIM_PAGES):
            if plan.wanted <= 0:
                return
            page = 1 if plan.run_id is not None else max(plan.wanted * 4, 16)
            query = select(runs, flag).where(*self._due(plan))
            if plan.run_id is not None:
                query = query.where(runs.c.id == plan.run_id)
            if plan.passed:
                query = query.where(runs.c.id.not_in(plan.passed))
            query = query.order_by(runs.c.run_after, runs.c.created_at).limit(page)
            if self.db.dialect == "postgresql":
                query = query.with_for_update(skip_locked=True)
            candidates = [dict(r._mapping) for r in connection.execute(query, plan.params)]
            for row in candidates:
                if plan.wanted <= 0:
                    return
                needs_check = bool(row.pop("quest_checked"))
                if needs_check:
                    self._check_and_take(connection, plan, row)
                else:
                    self._take(connection, plan, row["id"])
            if len(candidates) < page or plan.run_id is not None:
                return

    def _check_and_take(self, connection: Connection, plan: _Claim, row: dict[str, Any]) -> None:
        name = row["name"]
        rule = plan.limits.get(name)
        if rule is not None:
            scope = (name, row["key"] if _per_key(rule) else None)
            if scope in plan.blocked or not self._within(connection, rule, row, plan.now):
                plan.blocked.add(scope)
                plan.passed.append(row["id"])
                return
        ttl = plan.leases.get(name)
        if ttl is not None and row["trigger"] is Trigger.retry and row["scheduled_for"]:
            scope = (name, "\0lease")
            if scope in plan.blocked or not self.leases.take(
                connection, name, run_id=row["id"], owner=plan.owner, now=plan.now, ttl=ttl
            ):
                plan.blocked.add(scope)
                plan.passed.append(row["id"])
                return
        self._take(connection, plan, row["id"])

    def _take(self, connection: Connection, plan: _Claim, run_id: str) -> None:
        runs = self.runs.table
        row = connection.execute(
            update(runs)
            .where(runs.c.id == run_id, runs.c.status == RunStatus.queued)
            .values(**plan.start)
            .returning(*runs.c)
        ).first()
        if row is not None:
            plan.claimed.append(dict(row._mapping))
            self._remember(plan.now, [run_id])

    def _within(
        self, connection: Connection, rule: Limits, row: dict[str, Any], now: datetime
    ) -> bool:
        """Whether *row* may start now. Rows claimed earlier in this transaction are already
        ``running`` with ``started_at`` set, so the counts below include them."""
        runs = self.runs.table
        if self.db.dialect == "postgresql":
            # Claimers of one script check its limits one after the other.
            connection.exec_driver_sql(
                "SELECT pg_advisory_xact_lock(hashtext(%(name)s))", {"name": "quest:" + row["name"]}
            )
        for name, key in _scopes(rule, row):
            same = [runs.c.name == name]
            if key is not None:
                same.append(runs.c.key == key)
            per_key = key is not None
            if rule.concurrency is not None and rule.concurrency_per_key == per_key:
                running = connection.execute(
                    select(func.count())
                    .select_from(runs)
                    .where(*same, runs.c.status == RunStatus.running)
                ).scalar_one()
                if running >= rule.concurrency:
                    return False
            if rule.rate_max is not None and rule.rate_per_key == per_key:
                started = connection.execute(
                    select(func.count())
                    .select_from(runs)
                    .where(
                        *same,
                        runs.c.started_at > now - rule.rate_per,
                        runs.c.started_at.is_not(None),
                        runs.c.status != RunStatus.skipped,
                    )
                ).scalar_one()
                if started >= rule.rate_max:
                    return False
        return True

    # -- a claim whose connection was lost ----------------------------------------------------

    def _remember(self, now: datetime, ids: list[str]) -> None:
        """Note the runs a claim at *now* took, before its commit, so a retry after a lost
        connection can tell them from the rows the lost attempt committed unseen."""
        if not ids:
            return
        with self._recent_lock:
            self._recent.setdefault(now, set()).update(ids)
            self._recent.move_to_end(now)
            if len(self._recent) <= RECENT_CLAIMS:
                return
            # The runs of an unsettled claim's instant stay known: they are not its orphans.
            pinned = {then for _, _, then, _ in self._unsettled}
            for then in [then for then in self._recent if then not in pinned]:
                if len(self._recent) <= RECENT_CLAIMS:
                    break
                del self._recent[then]

    def _lose(self, plan: _Claim, ids: list[str] | None = None) -> None:
        """Note that the claim *plan* lost its connection, committed or not: the rows it took
        (*ids*, by default all) reach no one, and those it may have committed, fresh or taken
        back, are adopted by its owner's next claims (:meth:`_adopt`). A SQLite transaction that
        failed did not commit: nothing is noted there."""
        if self.db.dialect == "sqlite":
            return
        lost = {row["id"] for row in plan.claimed} if ids is None else set(ids)
        owner = (plan.owner_host, plan.owner_pid)
        with self._recent_lock:
            instants = [(plan.now, False)]
            if plan.adopted_at is not None:
                instants.append((plan.adopted_at, True))
            for instant, adopted in instants:
                known = self._recent.get(instant)
                if known is not None:
                    known.difference_update(lost)
                self._unsettled.add((*owner, instant, adopted))

    def _owes(self, plan: _Claim) -> bool:
        """Whether claims of *plan*'s owner lost their connection with rows perhaps taken."""
        if not self._unsettled:
            return False
        owner = (plan.owner_host, plan.owner_pid)
        with self._recent_lock:
            return any(key[:2] == owner for key in self._unsettled)

    def _adopt(self, connection: Connection, plan: _Claim) -> list[dict[str, Any]]:
        """The rows claims of *plan*'s owner that lost their connection may have committed,
        up to what *plan* wants, taken for it. A lost claim stops being looked after once a look
        at least :data:`SETTLE_AFTER` after it finds none (what that look's transaction does then
        changes nothing of them)."""
        if not self._unsettled:
            return []
        owner = (plan.owner_host, plan.owner_pid)
        with self._recent_lock:
            owed = sorted(key for key in self._unsettled if key[:2] == owner)
        lost_at = {then for _, _, then, adopted in owed if not adopted}
        while plan.now in lost_at:
            # A retry at the lost claim's instant: the rows it starts must not look like those
            # the lost claim may have started, or a claim looking for those would take them too.
            plan.now += TICK
        found: list[dict[str, Any]] = []
        for key in owed:
            wanted = plan.wanted - len(found)
            if wanted <= 0:
                break
            _, _, then, adopted = key
            rows = self._orphans(connection, plan, then, adopted, wanted)
            if not rows and plan.now - then >= SETTLE_AFTER:
                with self._recent_lock:
                    self._unsettled.discard(key)
            found += rows
        return found

    def _orphans(
        self, connection: Connection, plan: _Claim, then: datetime, adopted: bool, limit: int
    ) -> list[dict[str, Any]]:
        """Up to *limit* rows a lost claim of *plan*'s owner at *then* may have committed: the
        queued runs it started then (their start and heartbeat are *then*), or (*adopted*) the
        runs it took back with *then* as their heartbeat; still ``running`` for this owner, and
        not among the runs claims at *then* handed out.

        Each is taken for *plan* by giving it a heartbeat of its own (:attr:`_Claim.adopted_at`,
        an instant no other claim of this process gives), in this transaction: a claim waiting on
        its row then finds it no longer matches, a later look finds it again if this transaction
        rolls back, and recovery, which checks the heartbeat in its own update, cannot take it
        for abandoned meanwhile."""
        runs = self.runs.table
        with self._recent_lock:
            known = sorted(self._recent.get(then, ()))
            if plan.adopted_at is None:
                # After its fresh rows' instant and every earlier claim's taking back.
                plan.adopted_at = max(plan.now, self._last_adoption or plan.now) + TICK
                self._last_adoption = plan.adopted_at
        if adopted:
            mine = runs.c.heartbeat_at == then
        else:
            mine = and_(runs.c.started_at == then, runs.c.heartbeat_at == then)
        orphaned = [
            runs.c.status == RunStatus.running,
            runs.c.owner_host == plan.owner_host,
            runs.c.owner_pid == plan.owner_pid,
            runs.c.run_after.is_not(None),
            mine,
        ]
        if known:
            orphaned.append(runs.c.id.not_in(known))
        candidates = (
            select(runs.c.id)
            .where(*orphaned)
            .order_by(runs.c.run_after, runs.c.created_at)
            .limit(limit)
        )
        rows = connection.execute(
            update(runs)
            .where(runs.c.id.in_(candidates), *orphaned)
            .values(heartbeat_at=plan.adopted_at)
            .returning(*runs.c)
        )
        found = [dict(row._mapping) for row in rows]
        found.sort(key=lambda row: (row["run_after"], row["created_at"]))
        self._remember(plan.adopted_at, [row["id"] for row in found])
        if found:
            log.warning(
                "took back %d run(s) that a claim which lost its database connection had started",
                len(found),
                extra={"action": "claim_adopt"},
            )
        return found


def _frozen(mapping: Mapping[str, Any]) -> frozenset[tuple[str, Any]]:
    return frozenset(mapping.items())


def _per_key(rule: Limits) -> bool:
    return rule.concurrency_per_key or rule.rate_per_key


def _scopes(rule: Limits, row: dict[str, Any]) -> list[tuple[str, str | None]]:
    scopes: list[tuple[str, str | None]] = []
    wants_key = rule.concurrency_per_key or rule.rate_per_key
    wants_script = (rule.concurrency is not None and not rule.concurrency_per_key) or (
        rule.rate_max is not None and not rule.rate_per_key
    )
    if wants_script:
        scopes.append((row["name"], None))
    if wants_key and row.get("key") is not None:
        scopes.append((row["name"], row["key"]))
    return scopes
