"""The JobLog's index of chains holds retries only: a first attempt is its own chain's root, found
by its id, so the index no longer takes a page of every run's start.

Revision ID: q0009
Revises: q0008
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q0009"
down_revision = "q0008"
branch_labels = None
depends_on = None

TABLE = "quest_job_log"
INDEX = f"ix_{TABLE}_root"
RETRIES = "root_id <> id"


def upgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.create_index(
        INDEX,
        TABLE,
        ["root_id"],
        postgresql_where=sa.text(RETRIES),
        sqlite_where=sa.text(RETRIES),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name=TABLE)
    op.create_index(INDEX, TABLE, ["root_id"])
