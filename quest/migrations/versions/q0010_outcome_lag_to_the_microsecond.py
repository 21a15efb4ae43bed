"""SQLite's outcome triggers keep a script's instants within ten seconds of its newest runs to the
microsecond.

SQLite's ``datetime()`` drops the fraction of a second, so the triggers' "ten seconds older"
(``created_at < datetime(NEW.created_at, '-10 seconds')``) let a kept instant lag by up to eleven
seconds: a run created at 09:07:46.000001 left one of 09:07:36 in place. They now rewrite it once
it is more than nine whole seconds older, which keeps it within ten seconds whatever the fraction.
PostgreSQL's interval arithmetic is exact and its trigger function stays.

Revision ID: q0010
Revises: q0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "q0010"
down_revision = "q0009"
branch_labels = None
depends_on = None

TRIGGERS = ("quest_outcome_on_insert", "quest_outcome_on_update")
WHOLE = "'-9 seconds'"
TRUNCATED = "'-10 seconds'"
"""How q0006 and q0007 said it (what a downgrade puts back)."""


def _rewrite(old: str, new: str) -> None:
    """Create SQLite's outcome triggers again, each with its window *old* said as *new*."""
    if op.get_context().dialect.name != "sqlite":
        return
    found = op.get_bind().execute(
        sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN (:a, :b)"),
        {"a": TRIGGERS[0], "b": TRIGGERS[1]},
    )
    for name, sql in found.all():
        op.execute(f"DROP TRIGGER {name}")
        op.execute(sql.replace(old, new))


def upgrade() -> None:
    _rewrite(TRUNCATED, WHOLE)


def downgrade() -> None:
    _rewrite(WHOLE, TRUNCATED)
