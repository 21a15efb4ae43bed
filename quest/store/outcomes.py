"""Each script's latest outcome, as the JobLog's trigger keeps it
(:data:`quest.models.outcomes`)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, func, select, text

from ..enums import RunStatus
from ..models import FINISHED_WHERE, OUTCOME_LAG, outcomes, sqlite_text
from ._engine import Database, as_utc


class Outcome(NamedTuple):
    """How a script's latest finished run ended, when that run was created, and when its latest
    success was created (``None``: never)."""

    status: RunStatus
    latest_at: datetime
    succeeded_at: datetime | None
    run_id: str


_STATUSES = {status.value: status for status in RunStatus}


class Outcomes:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.lag = OUTCOME_LAG
        """How far behind the JobLog the kept instants may be (see :data:`OUTCOME_LAG`)."""

    def read(self, statuses: Iterable[RunStatus] = ()) -> dict[str, Outcome]:
        """Every script's outcome, or only those that ended in one of *statuses*.

        One row per script that ever finished a run, read through the driver: thousands of
        scripts cost milliseconds, not the type processing of every value.
        """
        table = outcomes.name
        sql = f"SELECT name, status, created_at, succeeded_at, run_id FROM {table}"
        wanted = sorted({RunStatus(status).value for status in statuses})
        if wanted:
            sql += f" WHERE status IN ({', '.join(repr(status) for status in wanted)})"
        known: dict[str, Outcome] = {}
        with self.db.reading() as connection:
            for name, status, latest, succeeded, run_id in connection.exec_driver_sql(sql):
                latest_at = as_utc(latest)
                assert latest_at is not None  # the column is NOT NULL
                known[name] = Outcome(_STATUSES[status], latest_at, as_utc(succeeded), run_id)
        return known

    def rebuild(self, runs: str) -> int:
        """Fill the table again from the JobLog *runs* (after rows were loaded with the trigger
        off, or restored); the number of scripts it then holds."""
        fill = text(
            f"INSERT INTO {outcomes.name} (name, status, run_id, created_at, succeeded_at) "
            "SELECT latest.name, latest.status, latest.id, latest.created_at, "
            f"(SELECT max(done.created_at) FROM {runs} AS done WHERE done.name = latest.name "
            f"AND {FINISHED_WHERE} AND done.status = 'succeeded') "
            "FROM (SELECT name, status, id, created_at, row_number() OVER "
            "(PARTITION BY name ORDER BY created_at DESC, id DESC) AS place "
            f"FROM {runs} WHERE {FINISHED_WHERE}) AS latest WHERE latest.place = 1"
        )

        def write(connection: Connection) -> int:
            connection.execute(outcomes.delete())
            connection.execute(fill)
            return int(connection.execute(select(func.count()).select_from(outcomes)).scalar_one())

        return int(self.db.write(write))

    def unsucceeded_since(self, cuts: Mapping[str, datetime]) -> dict[str, datetime | None]:
        """Of the scripts in *cuts* (name: instant) that finished a run, those with no success
        created since their instant: name, its latest success's created_at (``None``: never).

        The instants go to the database as one JSON object: one statement, a primary-key lookup
        per script, and only the scripts found are sent back.
        """
        if not cuts:
            return {}
        postgresql = self.db.dialect == "postgresql"
        spelled: dict[datetime, str] = {}
        pairs = {}
        spell = datetime.isoformat if postgresql else sqlite_text
        for name, cut in cuts.items():
            word = spelled.get(cut)
            if word is None:
                word = spelled[cut] = str(spell(cut))
            pairs[name] = word
        statement = self._unsucceeded_postgres if postgresql else self._unsucceeded_sqlite
        with self.db.reading() as connection:
            rows = connection.execute(statement, {"cuts": json.dumps(pairs)})
            return {name: as_utc(succeeded) for name, succeeded in rows}

    _unsucceeded_sqlite = text(
        f"SELECT kept.name, kept.succeeded_at FROM json_each(:cuts) AS cut "
        f"JOIN {outcomes.name} AS kept ON kept.name = cut.key "
        "WHERE kept.succeeded_at IS NULL OR kept.succeeded_at < cut.value"
    )
    _unsucceeded_postgres = text(
        f"SELECT kept.name, kept.succeeded_at FROM jsonb_each_text(CAST(:cuts AS jsonb)) AS cut "
        f"JOIN {outcomes.name} AS kept ON kept.name = cut.key "
        "WHERE kept.succeeded_at IS NULL OR kept.succeeded_at < CAST(cut.value AS timestamptz)"
    )
