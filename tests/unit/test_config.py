"""Settings: ``[tool.quest]`` in pyproject.toml, overridden by ``QUEST_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from quest.config import DEFAULT_DB_FILE, load_settings
from quest.errors import ConfigError, UsageError


def project(tmp_path: Path, table: str = "") -> Path:
    text = '[project]\nname = "app"\n'
    if table:
        text += "\n[tool.quest]\n" + table
    (tmp_path / "pyproject.toml").write_text(text, encoding="utf-8")
    return tmp_path


def test_defaults_without_a_tool_quest_table(tmp_path: Path) -> None:
    root = project(tmp_path)
    settings = load_settings(root, environ={})
    assert settings.root == root
    assert settings.database_url == f"sqlite:///{root / DEFAULT_DB_FILE}"
    assert settings.is_embedded
    assert settings.scripts_dir == root / "scripts"
    assert settings.timezone == "UTC"
    assert settings.env == "production"
    assert settings.lease_ttl == 30.0
    assert settings.models == "app.models"


def test_the_tool_quest_table(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        'database_url = "postgresql://db/app"\n'
        'scripts_dir = "jobs"\n'
        'timezone = "Europe/Paris"\n'
        'env = "staging"\n'
        "lease_ttl = 12.5\n"
        'models = "myapp.models"\n'
        'outbox_dir = "var/outbox"\n'
        'bootstrap = "myapp.quest_setup"\n',
    )
    settings = load_settings(root, environ={})
    assert settings.database_url == "postgresql://db/app"
    assert not settings.is_embedded
    assert settings.scripts_dir == root / "jobs"
    assert settings.timezone == "Europe/Paris"
    assert settings.env == "staging"
    assert settings.lease_ttl == 12.5
    assert settings.models == "myapp.models"
    assert settings.outbox_dir == root / "var" / "outbox"
    assert settings.bootstrap == "myapp.quest_setup"


def test_kebab_case_keys_are_accepted(tmp_path: Path) -> None:
    root = project(tmp_path, 'scripts-dir = "tasks"\nlease-ttl = 5\n')
    settings = load_settings(root, environ={})
    assert settings.scripts_dir == root / "tasks"
    assert settings.lease_ttl == 5.0


def test_the_project_is_found_from_a_subfolder(tmp_path: Path) -> None:
    root = project(tmp_path, 'scripts_dir = "jobs"\n')
    nested = root / "src" / "deep"
    nested.mkdir(parents=True)
    settings = load_settings(nested, environ={})
    assert settings.root == root
    assert settings.scripts_dir == root / "jobs"


def test_the_project_is_found_from_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, 'env = "from-cwd"\n')
    (root / "sub").mkdir()
    monkeypatch.chdir(root / "sub")
    assert load_settings(environ={}).env == "from-cwd"


def test_quest_root_variable_points_at_the_project(tmp_path: Path) -> None:
    root = project(tmp_path, 'env = "rooted"\n')
    settings = load_settings(environ={"QUEST_ROOT": str(root)})
    assert settings.root == root
    assert settings.env == "rooted"


def test_environment_variables_override_the_table(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        'database_url = "sqlite:///from-file.db"\n'
        'scripts_dir = "jobs"\n'
        'timezone = "Europe/Paris"\n'
        'env = "staging"\n'
        "lease_ttl = 12\n"
        'models = "myapp.models"\n',
    )
    environ = {
        "QUEST_DATABASE_URL": "postgresql://elsewhere/db",
        "QUEST_SCRIPTS_DIR": str(tmp_path / "other"),
        "QUEST_TIMEZONE": "Asia/Tokyo",
        "QUEST_ENV": "development",
        "QUEST_LEASE_TTL": "45",
        "QUEST_MODELS": "other.models",
        "QUEST_BOOTSTRAP": "other.setup",
    }
    settings = load_settings(root, environ=environ)
    assert settings.database_url == "postgresql://elsewhere/db"
    assert settings.scripts_dir == tmp_path / "other"
    assert settings.timezone == "Asia/Tokyo"
    assert settings.env == "development"
    assert settings.lease_ttl == 45.0
    assert settings.models == "other.models"
    assert settings.bootstrap == "other.setup"


def test_a_relative_scripts_dir_variable_is_under_the_project(tmp_path: Path) -> None:
    root = project(tmp_path)
    assert load_settings(root, environ={"QUEST_SCRIPTS_DIR": "jobs"}).scripts_dir == root / "jobs"


def test_an_empty_variable_does_not_override(tmp_path: Path) -> None:
    root = project(tmp_path, 'env = "staging"\n')
    assert load_settings(root, environ={"QUEST_ENV": ""}).env == "staging"


def test_the_process_environment_is_used_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path)
    monkeypatch.setenv("QUEST_DATABASE_URL", "sqlite:///from-env.db")
    assert load_settings(root).database_url == "sqlite:///from-env.db"


def test_an_unknown_key_is_an_error_listing_the_valid_ones(tmp_path: Path) -> None:
    root = project(tmp_path, 'script_dir = "jobs"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(root, environ={})
    message = str(caught.value)
    assert str(root / "pyproject.toml") in message
    assert "'script_dir'" in message
    assert "scripts_dir" in message and "database_url" in message


def test_invalid_toml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.quest\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(tmp_path, environ={})


@pytest.mark.parametrize(
    "value", ["abc", "0", "-3", "nan", "NaN", "inf", "-inf", "1e308", "0.001", "86401", "9" * 5000]
)
def test_a_bad_lease_ttl_variable(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="QUEST_LEASE_TTL") as raised:
        load_settings(project(tmp_path), environ={"QUEST_LEASE_TTL": value})
    assert len(str(raised.value)) < 400


@pytest.mark.parametrize("value", ["1", "2.5", "30", "86400"])
def test_a_lease_ttl_in_bounds(tmp_path: Path, value: str) -> None:
    assert load_settings(project(tmp_path), environ={"QUEST_LEASE_TTL": value}).lease_ttl == float(
        value
    )


def test_a_bad_timezone(tmp_path: Path) -> None:
    root = project(tmp_path, 'timezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        load_settings(root, environ={})
    with pytest.raises(ConfigError, match="QUEST_TIMEZONE"):
        load_settings(project(tmp_path), environ={"QUEST_TIMEZONE": "Nowhere/City"})


@pytest.mark.parametrize("line", ["scripts_dir = 5", "database_url = true", "env = ['a']"])
def test_a_value_of_the_wrong_type_names_the_key(tmp_path: Path, line: str) -> None:
    root = project(tmp_path, line + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(root, environ={})
    assert line.split(" ")[0] in str(caught.value)


def test_config_errors_are_usage_errors() -> None:
    assert issubclass(ConfigError, UsageError)


def test_this_repositorys_settings() -> None:
    root = Path(__file__).resolve().parents[2]
    settings = load_settings(root, environ={})
    assert settings.scripts_dir == root / "scripts"
    assert settings.models == "app.models"
    assert settings.timezone == "UTC"
