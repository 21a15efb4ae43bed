"""Overlap leases: one run of a ``without_overlapping`` script at a time, with expiry."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, or_, select, update

from ..models import leases
from ._engine import Database, upsert_for


class Leases:
    def __init__(self, db: Database) -> None:
        self.db = db
        taken = upsert_for(db.dialect)(leases)
        # Taken when free, expired, or already held by the same run (taking it again renews it).
        # Whether it was taken is the statement's row count: a held lease neither inserts nor
        # updates a row. (No RETURNING: on SQLite it costs the statement a temporary table.)
        self._take = taken.on_conflict_do_update(
            index_elements=["name"],
            set_={
                "run_id": taken.excluded.run_id,
                "owner": taken.excluded.owner,
                "acquired_at": taken.excluded.acquired_at,
                "expires_at": taken.excluded.expires_at,
            },
            where=or_(
                leases.c.expires_at <= bindparam("_now"), leases.c.run_id == taken.excluded.run_id
            ),
        )
        self._release = delete(leases).where(
            leases.c.name == bindparam("_name"), leases.c.run_id == bindparam("_run_id")
        )
        self._renew = (
            update(leases)
            .where(leases.c.name == bindparam("_name"), leases.c.run_id == bindparam("_run_id"))
            .values(expires_at=bindparam("_expires", type_=leases.c.expires_at.type))
        )

    def take(
        self,
        connection: Connection,
        name: str,
        *,
        run_id: str,
        owner: str,
        now: datetime,
        ttl: timedelta,
    ) -> bool:
        """Take the lease of *name* on *connection*'s transaction, in one statement."""
        values = {
            "name": name,
            "run_id": run_id,
            "owner": owner,
            "acquired_at": now,
            "expires_at": now + ttl,
            "_now": now,
        }
        return self.db.do(connection, self._take, values) > 0

    def acquire(self, name: str, *, run_id: str, owner: str, now: datetime, ttl: timedelta) -> bool:
        """Take the overlap lease of *name*, or take over an expired one, in one statement."""
        return bool(
            self.db.write(
                lambda c: self.take(c, name, run_id=run_id, owner=owner, now=now, ttl=ttl),
                now=True,
            )
        )

    def renew(self, name: str, *, run_id: str, now: datetime, ttl: timedelta) -> bool:
        values = {"_name": name, "_run_id": run_id, "_expires": now + ttl}
        db, statement = self.db, self._renew
        return bool(db.write(lambda connection: db.do(connection, statement, values), now=True))

    def release(self, name: str, *, run_id: str) -> None:
        db, statement = self.db, self._release
        values = {"_name": name, "_run_id": run_id}
        db.write(lambda connection: db.do(connection, statement, values))

    def get(self, name: str) -> dict[str, Any] | None:
        with self.db.reading() as connection:
            row = connection.execute(select(leases).where(leases.c.name == name)).first()
        return dict(row._mapping) if row else None
