"""Alembic environment for quest: runs on the connection quest hands over."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context

from quest.models import UTCDateTime

config = context.config
connection = config.attributes["connection"]
metadatas = config.attributes.get("metadatas") or []


def render_item(kind: str, item: Any, autogen_context: Any) -> str | Literal[False]:
    """Render quest's aware datetime as the plain column type it stores."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


context.configure(
    connection=connection,
    target_metadata=list(metadatas),
    render_as_batch=connection.dialect.name == "sqlite",
    render_item=render_item,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
