"""Each node's lease TTL: its runs are judged abandoned by the heartbeat rate of their owner.

Revision ID: q0008
Revises: q0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q0008"
down_revision = "q0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quest_nodes") as batch:
        batch.add_column(sa.Column("lease_ttl", sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("quest_nodes") as batch:
        batch.drop_column("lease_ttl")
