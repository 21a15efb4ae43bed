"""Pauses: a script's schedule switched off on every host (``quest pause``)."""

from __future__ import annotations

import builtins
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update

from ..models import script_state
from ._engine import Database


class Pauses:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._is_paused = select(script_state.c.paused).where(
            script_state.c.name == bindparam("_name")
        )

    def set(self, name: str, paused: bool, *, now: datetime) -> None:
        table = script_state
        with self.db.transaction() as connection:
            changed = connection.execute(
                update(table).where(table.c.name == name).values(paused=paused, updated_at=now)
            ).rowcount
            if not changed:
                connection.execute(
                    insert(table), {"name": name, "paused": paused, "updated_at": now}
                )

    def is_paused(self, name: str) -> bool:
        """Whether *name* is paused, read in this thread's unit of work when one is open."""
        unit = self.db.current()
        if unit is not None:
            connection = unit.connection_for(self.db.writer)
            return bool(connection.execute(self._is_paused, {"_name": name}).scalar())
        with self.db.reading() as connection:
            return bool(connection.execute(self._is_paused, {"_name": name}).scalar())

    def names(self) -> builtins.set[str]:
        table = script_state
        with self.db.reading() as connection:
            return set(
                connection.execute(select(table.c.name).where(table.c.paused.is_(True))).scalars()
            )
