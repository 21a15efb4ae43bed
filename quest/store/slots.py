"""Slot claims: each scheduled instant of a script is taken by one unique row, once, anywhere."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, literal_column, select

from ..models import script_state, slots
from ._engine import Database, as_utc, upsert_for


class Slots:
    def __init__(self, db: Database) -> None:
        self.db = db
        # A correlated subquery in RETURNING (SQLite 3.35+, PostgreSQL) reads the pause flag in
        # the claim's own statement.
        paused: Any = literal_column(
            f"(SELECT {script_state.name}.paused FROM {script_state.name} "
            f"WHERE {script_state.name}.name = {slots.name}.name)"
        )
        self._claim = (
            upsert_for(db.dialect)(slots)
            .on_conflict_do_nothing(index_elements=["name", "scheduled_for"])
            .returning(slots.c.name, paused)
        )

    def claim(
        self, name: str, scheduled_for: datetime, *, run_id: str | None, owner: str, now: datetime
    ) -> bool | None:
        """Take the slot and say in the same statement whether the script is paused.

        ``None`` if another process already has the slot, else whether *name* is paused.
        """
        values = {
            "name": name,
            "scheduled_for": scheduled_for,
            "run_id": run_id,
            "owner": owner,
            "claimed_at": now,
        }
        db, statement = self.db, self._claim
        row = db.write(lambda c: db.first(c, statement, values), now=True)
        return None if row is None else bool(row[1])

    def latest(self) -> dict[str, datetime]:
        """The latest claimed slot of every script."""
        query = select(slots.c.name, func.max(slots.c.scheduled_for)).group_by(slots.c.name)
        with self.db.reading() as connection:
            rows = connection.execute(query).all()
        return {name: moment for name, value in rows if (moment := as_utc(value)) is not None}

    def prune(self, before: datetime) -> int:
        """Forget claims older than *before* but the newest of each script."""
        table = slots
        newest = (
            select(table.c.name, func.max(table.c.scheduled_for).label("latest"))
            .group_by(table.c.name)
            .subquery()
        )
        with self.db.transaction() as connection:
            result = connection.execute(
                delete(table).where(
                    table.c.scheduled_for < before,
                    table.c.scheduled_for
                    < select(newest.c.latest)
                    .where(newest.c.name == table.c.name)
                    .scalar_subquery(),
                )
            )
            return int(result.rowcount)
