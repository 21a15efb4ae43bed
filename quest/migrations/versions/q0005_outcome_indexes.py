"""The JobLog indexes the dashboard reads from alone: each script's finished runs (its latest
outcome and latest success), and the runs of a time range per status with their durations.

Revision ID: q0005
Revises: q0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q0005"
down_revision = "q0004"
branch_labels = None
depends_on = None

TABLE = "quest_job_log"
FINISHED = sa.text(
    "status IN ('succeeded', 'failed', 'timed_out', 'skipped', 'interrupted', 'abandoned', "
    "'discarded', 'cancelled')"
)


def upgrade() -> None:
    op.create_index(f"ix_{TABLE}_status_created", TABLE, ["status", "created_at", "duration_ms"])
    op.create_index(
        f"ix_{TABLE}_finished",
        TABLE,
        ["name", "created_at", "status"],
        postgresql_where=FINISHED,
        sqlite_where=FINISHED,
    )


def downgrade() -> None:
    op.drop_index(f"ix_{TABLE}_finished", table_name=TABLE)
    op.drop_index(f"ix_{TABLE}_status_created", table_name=TABLE)
