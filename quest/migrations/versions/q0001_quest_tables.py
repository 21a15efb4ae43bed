"""quest's tables: the JobLog, slot claims, overlap leases, script state, pending secrets.

Revision ID: q0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q0001"
down_revision = None
branch_labels = ("quest",)
depends_on = None

Instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "quest_job_log",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("root_id", sa.String(32)),
        sa.Column("key", sa.String(200)),
        sa.Column("inputs", sa.JSON),
        sa.Column("scheduled_for", Instant),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("run_after", Instant),
        sa.Column("started_at", Instant),
        sa.Column("finished_at", Instant),
        sa.Column("heartbeat_at", Instant),
        sa.Column("duration_ms", sa.Integer),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("traceback", sa.Text),
        sa.Column("reason", sa.String(200)),
        sa.Column("owner_host", sa.String(255)),
        sa.Column("owner_pid", sa.Integer),
    )
    op.create_index("ix_quest_job_log_name_created", "quest_job_log", ["name", "created_at"])
    op.create_index("ix_quest_job_log_created", "quest_job_log", ["created_at"])
    op.create_index("ix_quest_job_log_status_run_after", "quest_job_log", ["status", "run_after"])
    op.create_index("ix_quest_job_log_root", "quest_job_log", ["root_id"])
    op.create_table(
        "quest_slots",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("scheduled_for", Instant, primary_key=True),
        sa.Column("run_id", sa.String(32)),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("claimed_at", Instant, nullable=False),
    )
    op.create_table(
        "quest_leases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("owner", sa.String(255), nullable=False),
        sa.Column("acquired_at", Instant, nullable=False),
        sa.Column("expires_at", Instant, nullable=False),
    )
    op.create_table(
        "quest_script_state",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("paused", sa.Boolean, nullable=False),
        sa.Column("updated_at", Instant, nullable=False),
    )
    op.create_table(
        "quest_pending_secrets",
        sa.Column("root_id", sa.String(32), primary_key=True),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("created_at", Instant, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "quest_pending_secrets",
        "quest_script_state",
        "quest_leases",
        "quest_slots",
        "quest_job_log",
    ):
        op.drop_table(table)
