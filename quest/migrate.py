"""Schema migrations with Alembic: quest's own tables, then the application's.

quest's revisions live in ``quest/migrations/versions`` (branch ``quest``); the application's in
``<package>/migrations/versions`` next to its models module (branch ``app``). ``quest db upgrade``
applies every head; the embedded default upgrades itself on first use. Whether anything is to do is
decided by reading the revision files and the ``alembic_version`` table, so an up-to-date database
costs one query and Alembic is imported only when there is work.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, MetaData, text
from sqlalchemy.exc import OperationalError, ProgrammingError


class Store(Protocol):
    """What migrations need of a store: its engines and the metadata of every table."""

    @property
    def engine(self) -> Engine: ...

    @property
    def writer(self) -> Engine: ...

    @property
    def metadatas(self) -> Sequence[MetaData]: ...


QUEST_MIGRATIONS = Path(__file__).parent / "migrations"
_REVISION = re.compile(r"^revision\s*(?::\s*str)?\s*=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision\s*(?::[^=]*)?=\s*(.+)$", re.M)


def version_locations(models: str | None) -> list[Path]:
    """quest's versions folder, and the application's when its package has one."""
    locations = [QUEST_MIGRATIONS / "versions"]
    if models:
        top = models.split(".")[0]
        spec = importlib.util.find_spec(top)
        if spec is not None and spec.submodule_search_locations:
            folder = Path(next(iter(spec.submodule_search_locations))) / "migrations" / "versions"
            if folder.is_dir():
                locations.append(folder)
    return locations


def heads(locations: list[Path]) -> set[str]:
    """The head revisions, read from the revision files without importing Alembic."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for folder in locations:
        for path in folder.glob("*.py"):
            source = path.read_text("utf-8")
            found = _REVISION.search(source)
            if not found:
                continue
            revisions.add(found.group(1))
            down = _DOWN.search(source)
            if down:
                parents.update(re.findall(r"['\"]([^'\"]+)['\"]", down.group(1)))
    return revisions - parents


def current(store: Store) -> set[str]:
    """The revisions the database is at (none for a database quest has never touched)."""
    with store.engine.connect() as connection:
        try:
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        except ProgrammingError:
            return set()
        except OperationalError as exc:
            if "no such table" in str(exc.orig):
                return set()
            raise
        return {row[0] for row in rows}


def config(store: Store, models: str | None, connection: Any = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(QUEST_MIGRATIONS))
    cfg.set_main_option("path_separator", "space")
    cfg.set_main_option("version_locations", " ".join(str(p) for p in version_locations(models)))
    cfg.attributes["connection"] = connection
    cfg.attributes["metadatas"] = store.metadatas
    return cfg


def upgrade(store: Store, models: str | None = None, *, force: bool = False) -> bool:
    """Apply every pending migration; returns whether anything was applied."""
    locations = version_locations(models)
    changed = False
    if force or not heads(locations) <= current(store):
        from alembic import command

        with store.writer.begin() as connection:
            if store.engine.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_xact_lock(hashtext('quest:migrate'))"))
            command.upgrade(config(store, models, connection), "heads")
        changed = True
    if len(locations) == 1:
        create_missing(store)
    return changed


def create_missing(store: Store) -> None:
    """Create the tables of every metadata that the database does not have (models without
    migrations). The names are read once per schema, so a database that has them all costs one
    query rather than one per table; what is missing goes to ``create_all`` as before."""
    from sqlalchemy import inspect

    names: dict[str | None, set[str]] = {}
    with store.engine.connect() as connection:
        inspector = inspect(connection)
        missing = []
        for metadata in store.metadatas:
            tables = []
            for table in metadata.sorted_tables:
                if table.schema not in names:
                    names[table.schema] = set(inspector.get_table_names(schema=table.schema))
                if table.name not in names[table.schema]:
                    tables.append(table)
            missing.append((metadata, tables))
    for metadata, tables in missing:
        if tables:
            metadata.create_all(store.writer, tables=tables)


def revision(store: Store, models: str | None, message: str, *, autogenerate: bool = True) -> Any:
    """Write a new revision of the application's branch, comparing its models to the database."""
    from alembic import command

    locations = version_locations(models)
    if len(locations) < 2:
        raise FileNotFoundError(
            "the application has no migrations folder; create <package>/migrations/versions"
        )
    upgrade(store, models)
    app_heads = heads(locations[1:])
    with store.writer.begin() as connection:
        cfg = config(store, models, connection)
        return command.revision(
            cfg,
            message=message,
            autogenerate=autogenerate,
            head="app@head" if app_heads else "base",
            branch_label=None if app_heads else "app",
            version_path=str(locations[1]),
        )
