"""Settings: ``[tool.quest]`` in pyproject.toml, overridden by ``QUEST_*`` environment variables."""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .enums import Isolation
from .errors import ConfigError
from .results import clip

DEFAULT_DB_FILE = ".quest/quest.sqlite3"

LEASE_TTL_MIN = 1.0
"""The shortest lease: heartbeats go at a third of it."""
LEASE_TTL_MAX = 86_400.0
"""The longest: a dead serve's runs are recovered after it."""

_ENV = {
    "database_url": "QUEST_DATABASE_URL",
    "scripts_dir": "QUEST_SCRIPTS_DIR",
    "timezone": "QUEST_TIMEZONE",
    "env": "QUEST_ENV",
    "lease_ttl": "QUEST_LEASE_TTL",
    "models": "QUEST_MODELS",
    "outbox_dir": "QUEST_OUTBOX_DIR",
    "smtp_url": "QUEST_SMTP_URL",
    "alert_webhook_url": "QUEST_ALERT_WEBHOOK_URL",
    "bootstrap": "QUEST_BOOTSTRAP",
    "isolation": "QUEST_ISOLATION",
}


_CLEARABLE = ("models", "bootstrap")


@dataclass(frozen=True, slots=True)
class Settings:
    """Where quest finds its scripts and database, and its global defaults."""

    root: Path
    database_url: str
    scripts_dir: Path
    timezone: str = "UTC"
    env: str = "production"
    lease_ttl: float = 30.0
    models: str | None = "app.models"
    outbox_dir: Path | None = None
    smtp_url: str | None = None
    alert_webhook_url: str | None = None
    bootstrap: str | None = None
    isolation: Isolation = Isolation.process
    extra: Mapping[str, Any] = field(default_factory=dict)

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def is_embedded(self) -> bool:
        return self.database_url.startswith("sqlite")


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above *start* holding a pyproject.toml, else *start*."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return here


def load_settings(root: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read the settings for the project at *root* (found from the working folder by default)."""
    environ = os.environ if environ is None else environ
    if root is None and environ.get("QUEST_ROOT"):
        root = Path(environ["QUEST_ROOT"])
    project = find_root(root)
    table: dict[str, Any] = {}
    pyproject = project / "pyproject.toml"
    if pyproject.is_file():
        try:
            table = dict(
                tomllib.loads(pyproject.read_text("utf-8")).get("tool", {}).get("quest", {})
            )
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{pyproject}: not valid TOML: {exc}") from None
    known = set(_ENV) | {"extra"}
    for key in list(table):
        if key.replace("-", "_") not in known:
            raise ConfigError(
                f"{pyproject}: [tool.quest] has unknown key {key!r}; valid keys: "
                + ", ".join(sorted(_ENV))
            )
        table[key.replace("-", "_")] = table.pop(key)
    for key, value in table.items():
        text_ok = isinstance(value, str) or (key == "models" and value is False)
        if key not in ("lease_ttl", "extra") and not text_ok:
            raise ConfigError(f"{pyproject}: [tool.quest] {key} must be a string, got {value!r}")
    if not isinstance(table.get("extra", {}), dict):
        raise ConfigError(f"{pyproject}: [tool.quest] extra must be a table")
    for key, variable in _ENV.items():
        if environ.get(variable):
            table[key] = environ[variable]
        elif key in _CLEARABLE and variable in environ:
            table[key] = None

    scripts_dir = _path(project, table.get("scripts_dir", "scripts"))
    database_url = table.get("database_url") or f"sqlite:///{project / DEFAULT_DB_FILE}"
    try:
        lease_ttl = float(table.get("lease_ttl", 30.0))
    except (TypeError, ValueError):
        raise ConfigError(
            "lease_ttl (QUEST_LEASE_TTL) must be a number of seconds, "
            f"got {clip(repr(table['lease_ttl']), 40)}"
        ) from None
    if not LEASE_TTL_MIN <= lease_ttl <= LEASE_TTL_MAX:  # NaN is outside too
        raise ConfigError(
            f"lease_ttl (QUEST_LEASE_TTL) must be between {LEASE_TTL_MIN:g} and "
            f"{LEASE_TTL_MAX:g} seconds (a day), got {clip(repr(table['lease_ttl']), 40)}"
        )
    timezone = str(table.get("timezone", "UTC"))
    from .schedule import parse_timezone

    try:
        parse_timezone(timezone)
    except Exception as exc:
        raise ConfigError(f"timezone (QUEST_TIMEZONE): {exc}") from None
    models = table.get("models", "app.models") or None
    try:
        isolation = Isolation(str(table.get("isolation", "process")))
    except ValueError:
        raise ConfigError(
            f"isolation (QUEST_ISOLATION) must be 'process' or 'thread', got {table['isolation']!r}"
        ) from None
    return Settings(
        root=project,
        database_url=str(database_url),
        scripts_dir=scripts_dir,
        timezone=timezone,
        env=str(table.get("env", "production")),
        lease_ttl=lease_ttl,
        models=models,
        outbox_dir=_path(project, table["outbox_dir"]) if table.get("outbox_dir") else None,
        smtp_url=table.get("smtp_url"),
        alert_webhook_url=table.get("alert_webhook_url"),
        bootstrap=table.get("bootstrap") or None,
        isolation=isolation,
        extra=table.get("extra", {}),
    )


def _path(root: Path, value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else root / path


def activate(settings: Settings) -> None:
    """Make the project importable (``app.models``, helpers) for its scripts."""
    root = str(settings.root)
    if root not in sys.path:
        sys.path.insert(0, root)
