"""Schema management for quest's tables and the application's models."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .store import Store


def upgrade(store: Store) -> None:
    """Bring the database up to date."""
    for metadata in store.metadatas:
        metadata.create_all(store.engine)
