"""Each script's latest outcome, kept by the database as runs end: the dashboard reads one row
per script instead of walking every script's runs.

A trigger on the JobLog writes it, so every writer of the JobLog (any serve, ``quest run``, a
cancel, a recovery, an older quest) keeps it current. A row is rewritten only when the outcome
changes or the kept instants are more than ten seconds old: on PostgreSQL rewriting it on every
end would make the ends of one script wait on each other's commits, and on SQLite it would cost
every end a page written for nothing the dashboard needs.

Revision ID: q0006
Revises: q0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q0006"
down_revision = "q0005"
branch_labels = None
depends_on = None

TABLE = "quest_job_log"
FINISHED = (
    "'succeeded', 'failed', 'timed_out', 'skipped', 'interrupted', 'abandoned', 'discarded', "
    "'cancelled'"
)

SQLITE_NOTE = f"""
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
               WHERE name = NEW.name AND status IN ({FINISHED})
                 AND created_at > NEW.created_at)));
    UPDATE quest_outcomes SET succeeded_at = NEW.created_at
    WHERE NEW.status = 'succeeded' AND name = NEW.name AND created_at > NEW.created_at
      AND (succeeded_at IS NULL OR succeeded_at < datetime(NEW.created_at, '-10 seconds'));
    INSERT OR IGNORE INTO quest_outcomes (name, status, run_id, created_at, succeeded_at)
    VALUES (NEW.name, NEW.status, NEW.id, NEW.created_at,
            CASE WHEN NEW.status = 'succeeded' THEN NEW.created_at END);
"""

POSTGRES_FUNCTION = f"""
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
            WHERE name = NEW.name AND status IN ({FINISHED}) AND created_at > NEW.created_at) THEN
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


_BACKFILL = f"""
INSERT INTO quest_outcomes (name, status, run_id, created_at, succeeded_at)
SELECT latest.name, latest.status, latest.id, latest.created_at,
       (SELECT max(done.created_at) FROM {TABLE} AS done
        WHERE done.name = latest.name AND done.status IN ({FINISHED})
          AND done.status = 'succeeded')
FROM (
    SELECT name, status, id, created_at,
           row_number() OVER (PARTITION BY name ORDER BY created_at DESC, id DESC) AS place
    FROM {TABLE} WHERE status IN ({FINISHED})
) AS latest
WHERE latest.place = 1
"""


def upgrade() -> None:
    op.create_table(
        "quest_outcomes",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("succeeded_at", sa.DateTime(timezone=True)),
    )
    if op.get_context().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        op.execute(
            f"CREATE TRIGGER quest_outcome_on_insert AFTER INSERT ON {TABLE} FOR EACH ROW "
            f"WHEN (NEW.status IN ({FINISHED})) EXECUTE FUNCTION quest_note_outcome()"
        )
        op.execute(
            f"CREATE TRIGGER quest_outcome_on_update AFTER UPDATE OF status ON {TABLE} "
            f"FOR EACH ROW WHEN (NEW.status IN ({FINISHED}) AND NEW.status <> OLD.status) "
            "EXECUTE FUNCTION quest_note_outcome()"
        )
    else:
        op.execute(
            f"CREATE TRIGGER quest_outcome_on_insert AFTER INSERT ON {TABLE} "
            f"WHEN NEW.status IN ({FINISHED}) BEGIN {SQLITE_NOTE} END"
        )
        op.execute(
            f"CREATE TRIGGER quest_outcome_on_update AFTER UPDATE OF status ON {TABLE} "
            f"WHEN NEW.status IN ({FINISHED}) AND NEW.status IS NOT OLD.status "
            f"BEGIN {SQLITE_NOTE} END"
        )
    op.execute(_BACKFILL)


def downgrade() -> None:
    postgresql = op.get_context().dialect.name == "postgresql"
    on = f" ON {TABLE}" if postgresql else ""
    op.execute(f"DROP TRIGGER IF EXISTS quest_outcome_on_update{on}")
    op.execute(f"DROP TRIGGER IF EXISTS quest_outcome_on_insert{on}")
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS quest_note_outcome()")
    op.drop_table("quest_outcomes")
