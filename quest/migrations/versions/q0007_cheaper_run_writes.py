"""Cheaper writes for every run: finished runs said as "not queued or running", one JobLog index
fewer, and (SQLite) the overlap leases kept in their primary key's b-tree.

- The partial index of finished runs and the outcome triggers name the finished statuses as
  ``status NOT IN ('queued', 'running')`` instead of listing the eight: SQLite tests a list of more
  than two values through a temporary b-tree it builds each time a statement evaluates it, and
  every insert and end of a run evaluated the index's and the trigger's.
- ``ix_quest_job_log_status_run_after`` goes: the due runs are read from ``ix_quest_job_log_due``
  and the runs of a status from ``ix_quest_job_log_status_created``; it only cost each start and
  end a page.
- SQLite: ``quest_leases`` becomes a ``WITHOUT ROWID`` table (PostgreSQL has no such thing and
  keeps its table).

Revision ID: q0007
Revises: q0006
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q0007"
down_revision = "q0006"
branch_labels = None
depends_on = None

TABLE = "quest_job_log"
FINISHED = "status NOT IN ('queued', 'running')"
LISTED = (
    "status IN ('succeeded', 'failed', 'timed_out', 'skipped', 'interrupted', 'abandoned', "
    "'discarded', 'cancelled')"
)
"""How q0005 and q0006 said it (what a downgrade puts back)."""

Instant = sa.DateTime(timezone=True)


def _new(finished: str) -> str:
    """*finished* said of the row a trigger is called for."""
    return finished.replace("status", "NEW.status", 1)


def _sqlite_note(finished: str) -> str:
    return f"""
    UPDATE quest_outcomes SET
        status = NEW.status,
        run_id = NEW.id,
        created_at = NEW.created_at,
        succeeded_at = CASE WHEN NEW.status = 'succeeded' THEN NEW.created_at
                            ELSE succeeded_at END
    WHERE name = NEW.name AND created_at <= NEW.created_at
      AND (created_at < datetime(NEW.created_at, '-10 seconds')
           OR (status <> NEW.status AND NOT EXISTS (
               SELECT 1 FROM {TABLE}
               WHERE name = NEW.name AND {finished}
                 AND created_at > NEW.created_at)));
    UPDATE quest_outcomes SET succeeded_at = NEW.created_at
    WHERE NEW.status = 'succeeded' AND name = NEW.name AND created_at > NEW.created_at
      AND (succeeded_at IS NULL OR succeeded_at < datetime(NEW.created_at, '-10 seconds'));
    INSERT OR IGNORE INTO quest_outcomes (name, status, run_id, created_at, succeeded_at)
    VALUES (NEW.name, NEW.status, NEW.id, NEW.created_at,
            CASE WHEN NEW.status = 'succeeded' THEN NEW.created_at END);
"""


def _postgres_function(finished: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION quest_note_outcome() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kept_status varchar(20);
    kept_created timestamptz;
    kept_success timestamptz;
BEGIN
    SELECT status, created_at, succeeded_at INTO kept_status, kept_created, kept_success
        FROM quest_outcomes WHERE name = NEW.name;
    IF NOT FOUND THEN
        INSERT INTO quest_outcomes (name, status, run_id, created_at, succeeded_at)
        VALUES (NEW.name, NEW.status, NEW.id, NEW.created_at,
                CASE WHEN NEW.status = 'succeeded' THEN NEW.created_at END)
        ON CONFLICT (name) DO NOTHING;
        IF FOUND THEN
            RETURN NULL;
        END IF;
    ELSIF kept_created > NEW.created_at THEN
        IF NEW.status = 'succeeded' AND kept_success IS DISTINCT FROM NEW.created_at
                AND (kept_success IS NULL OR kept_success < NEW.created_at - interval '10 seconds')
        THEN
            UPDATE quest_outcomes SET succeeded_at = NEW.created_at
                WHERE name = NEW.name
                  AND (succeeded_at IS NULL OR succeeded_at < NEW.created_at);
        END IF;
        RETURN NULL;
    ELSIF kept_status = NEW.status
            AND kept_created >= NEW.created_at - interval '10 seconds' THEN
        RETURN NULL;
    ELSIF kept_status <> NEW.status AND EXISTS (
            SELECT 1 FROM {TABLE}
            WHERE name = NEW.name AND {finished} AND created_at > NEW.created_at) THEN
        RETURN NULL;
    END IF;
    UPDATE quest_outcomes SET
        status = NEW.status,
        run_id = NEW.id,
        created_at = NEW.created_at,
        succeeded_at = CASE WHEN NEW.status = 'succeeded' THEN NEW.created_at
                            ELSE succeeded_at END
    WHERE name = NEW.name AND created_at <= NEW.created_at;
    RETURN NULL;
END
$$
"""


def _triggers(finished: str) -> None:
    """Put the outcome triggers (and PostgreSQL's function) in place, saying *finished*."""
    postgresql = op.get_context().dialect.name == "postgresql"
    on = f" ON {TABLE}" if postgresql else ""
    op.execute(f"DROP TRIGGER IF EXISTS quest_outcome_on_update{on}")
    op.execute(f"DROP TRIGGER IF EXISTS quest_outcome_on_insert{on}")
    new = _new(finished)
    if postgresql:
        op.execute(_postgres_function(finished))
        op.execute(
            f"CREATE TRIGGER quest_outcome_on_insert AFTER INSERT ON {TABLE} FOR EACH ROW "
            f"WHEN ({new}) EXECUTE FUNCTION quest_note_outcome()"
        )
        op.execute(
            f"CREATE TRIGGER quest_outcome_on_update AFTER UPDATE OF status ON {TABLE} "
            f"FOR EACH ROW WHEN ({new} AND NEW.status <> OLD.status) "
            "EXECUTE FUNCTION quest_note_outcome()"
        )
    else:
        note = _sqlite_note(finished)
        op.execute(
            f"CREATE TRIGGER quest_outcome_on_insert AFTER INSERT ON {TABLE} "
            f"WHEN {new} BEGIN {note} END"
        )
        op.execute(
            f"CREATE TRIGGER quest_outcome_on_update AFTER UPDATE OF status ON {TABLE} "
            f"WHEN {new} AND NEW.status IS NOT OLD.status BEGIN {note} END"
        )


def _finished_index(finished: str) -> None:
    op.drop_index(f"ix_{TABLE}_finished", table_name=TABLE)
    op.create_index(
        f"ix_{TABLE}_finished",
        TABLE,
        ["name", "created_at", "status"],
        postgresql_where=sa.text(finished),
        sqlite_where=sa.text(finished),
    )


def _leases(*, with_rowid: bool) -> None:
    """SQLite: copy ``quest_leases`` into a table with or without a rowid."""
    if op.get_context().dialect.name != "sqlite":
        return
    op.create_table(
        "quest_leases_copy",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("acquired_at", Instant, nullable=False),
        sa.Column("expires_at", Instant, nullable=False),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(
        "INSERT INTO quest_leases_copy (name, run_id, owner, acquired_at, expires_at) "
        "SELECT name, run_id, owner, acquired_at, expires_at FROM quest_leases"
    )
    op.drop_table("quest_leases")
    op.rename_table("quest_leases_copy", "quest_leases")


def upgrade() -> None:
    _triggers(FINISHED)
    _finished_index(FINISHED)
    op.drop_index(f"ix_{TABLE}_status_run_after", table_name=TABLE)
    _leases(with_rowid=False)


def downgrade() -> None:
    _leases(with_rowid=True)
    op.create_index(f"ix_{TABLE}_status_run_after", TABLE, ["status", "run_after"])
    _finished_index(LISTED)
    _triggers(LISTED)
