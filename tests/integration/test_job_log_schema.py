"""The JobLog's schema: quest's Core table and the ORM mixin give the same one; its partial indexes
name only the dialect in use; a run on SQLite loads neither SQLAlchemy's PostgreSQL package nor
its ORM, and a script that opens a session still gets one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.schema import CreateIndex, CreateTable

from quest.config import Settings
from quest.store import Store, fallback_job_log

PARTIAL = ("ix_quest_job_log_finished", "ix_quest_job_log_root", "ix_quest_job_log_due")


def where_options(dialect: str | None) -> dict[str, set[str]]:
    table = fallback_job_log(dialect)
    return {
        index.name: {key for key in index.dialect_kwargs if key.endswith("_where")}
        for index in table.indexes
        if index.name in PARTIAL
    }


def test_each_dialect_s_table_names_its_own_where_only() -> None:
    def each(*options: str) -> dict[str, set[str]]:
        return {name: set(options) for name in PARTIAL}

    assert where_options("sqlite") == each("sqlite_where")
    assert where_options("postgresql") == each("postgresql_where")
    assert where_options(None) == each("sqlite_where", "postgresql_where")


def test_a_sqlite_run_imports_neither_the_postgresql_dialect_nor_the_orm(tmp_path: Path) -> None:
    """What ``quest serve`` and ``quest run`` do on SQLite once the schema is there: open the
    store, check its revision, record a run."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "noop.py").write_text(
        "from quest import script\n\n\n"
        "@script(description='Does nothing.')\n"
        "def noop(inputs, ctx):\n"
        "    return None\n"
    )
    url = f"sqlite:///{tmp_path / 'quest.sqlite3'}"
    store = Store.from_settings(Settings(tmp_path, url, tmp_path / "scripts", models=None))
    store.ensure_schema()
    store.dispose()
    env = {
        **os.environ,
        "QUEST_SCRIPTS_DIR": str(tmp_path / "scripts"),
        "QUEST_DATABASE_URL": url,
        "QUEST_MODELS": "",
        "QUEST_BOOTSTRAP": "",
    }
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from quest.app import Quest\n"
        "from quest.config import load_settings\n"
        f"quest = Quest(load_settings(Path({str(tmp_path)!r})))\n"
        "quest.store.check()\n"
        "assert quest.run('noop').ok\n"
        "quest.close()\n"
        "print(sorted(m for m in sys.modules if m.startswith('sqlalchemy.dialects.postgres')))\n"
        "print(sorted(m for m in sys.modules if m.startswith('sqlalchemy.orm')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["[]", "[]"], done.stderr


def test_the_schema_s_indexes_are_partial_on_both_databases(
    tmp_path: Path, database_url: str
) -> None:
    settings = Settings(root=tmp_path, database_url=database_url, scripts_dir=tmp_path, models=None)
    store = Store.from_settings(settings)
    try:
        store.ensure_schema()
        if store.dialect == "sqlite":
            query = "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
        else:
            query = (
                "SELECT indexname, indexdef FROM pg_indexes"
                " WHERE tablename = 'quest_job_log' AND schemaname = current_schema()"
            )
        with store.engine.connect() as connection:
            made = {name: sql for name, sql in connection.exec_driver_sql(query).all()}
    finally:
        store.dispose()
    for name in PARTIAL:
        assert " WHERE " in made[name].upper(), made[name]


def test_the_orm_mixin_and_the_core_table_make_the_same_schema() -> None:
    from sqlalchemy.orm import DeclarativeBase

    from quest.models import JOB_LOG_TABLE, JobLogMixin

    class Base(DeclarativeBase):
        pass

    class JobLog(JobLogMixin, Base):
        __tablename__ = JOB_LOG_TABLE

    mapped: Table = JobLog.__table__  # type: ignore[assignment]
    core = fallback_job_log(None)
    for dialect in (sqlite.dialect(), postgresql.dialect()):
        assert _ddl(mapped, dialect) == _ddl(core, dialect)
    assert [_column(c) for c in mapped.columns] == [_column(c) for c in core.columns]


def _ddl(table: Table, dialect: Any) -> list[str]:
    made = [str(CreateTable(table).compile(dialect=dialect))]
    for index in sorted(table.indexes, key=lambda index: index.name or ""):
        made.append(str(CreateIndex(index).compile(dialect=dialect)))
    return made


def _column(column: Any) -> tuple[Any, ...]:
    default = None if column.default is None else column.default.arg
    return (column.name, column.nullable, column.primary_key, default)


def test_a_script_s_sessions_are_made_on_first_use(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'quest.sqlite3'}"
    store = Store.from_settings(Settings(tmp_path, url, tmp_path, models=None))
    try:
        store.ensure_schema()
        with store.sessions() as session:
            assert session.execute(text("SELECT 1")).scalar() == 1
        with store.sessions.begin() as session:
            assert session.execute(text("SELECT 2")).scalar() == 2
        assert store.sessions.kw["expire_on_commit"] is False
        assert store.sessions.maker() is store.sessions.maker()
    finally:
        store.dispose()
