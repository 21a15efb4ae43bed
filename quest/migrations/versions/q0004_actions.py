"""What people did from the dashboard: run now, pause, retry, cancel, discard.

Revision ID: q0004
Revises: q0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q0004"
down_revision = "q0003"
branch_labels = None
depends_on = None

Instant = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "quest_actions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", Instant, nullable=False),
        sa.Column("who", sa.String(255), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON),
    )
    op.create_index("ix_quest_actions_at", "quest_actions", ["at"])


def downgrade() -> None:
    op.drop_index("ix_quest_actions_at", "quest_actions")
    op.drop_table("quest_actions")
