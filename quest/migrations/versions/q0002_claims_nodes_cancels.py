"""Due queued runs read from an index alone; nodes; cancel requests.

Revision ID: q0002
Revises: q0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q0002"
down_revision = "q0001"
branch_labels = None
depends_on = None

Instant = sa.DateTime(timezone=True)
DUE = sa.text("status = 'queued'")


def upgrade() -> None:
    # The JobLog (quest_job_log) is created by q0001 whether the application maps it or not.
    op.create_index(
        "ix_quest_job_log_due",
        "quest_job_log",
        ["run_after", "created_at", "id"],
        postgresql_where=DUE,
        sqlite_where=DUE,
    )
    op.create_table(
        "quest_nodes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("version", sa.String(50), nullable=False),
        sa.Column("started_at", Instant, nullable=False),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("isolation", sa.String(20), nullable=False),
        sa.Column("heartbeat_at", Instant, nullable=False),
        sa.Column("stopped_at", Instant),
    )
    op.create_table(
        "quest_cancels",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("requested_at", Instant, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("quest_cancels")
    op.drop_table("quest_nodes")
    op.drop_index("ix_quest_job_log_due", table_name="quest_job_log")
