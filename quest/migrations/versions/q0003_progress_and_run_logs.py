"""What a run reports while it runs: its progress and its log lines.

Revision ID: q0003
Revises: q0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q0003"
down_revision = "q0002"
branch_labels = None
depends_on = None

Instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "quest_run_progress",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("current", sa.Float, nullable=False),
        sa.Column("total", sa.Float),
        sa.Column("message", sa.String(500)),
        sa.Column("updated_at", Instant, nullable=False),
    )
    op.create_table(
        "quest_run_logs",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("at", Instant, nullable=False),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("logger", sa.String(200), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("quest_run_logs")
    op.drop_table("quest_run_progress")
