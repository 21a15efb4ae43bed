"""Finding scripts: every ``.py`` file under the scripts folder, named by its path in kebab-case."""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from .definition import Script, declaration_of
from .errors import InvalidDefinition, ScriptNotFound

log = logging.getLogger("quest.discovery")

MODULE_PREFIX = "quest_scripts"


@dataclass(frozen=True, slots=True)
class LoadError:
    """A script file that could not be loaded, and why."""

    path: str
    message: str

    def __str__(self) -> str:
        if self.message.startswith(self.path):
            return self.message
        return f"{self.path}: {self.message}"


@dataclass
class Registry:
    """The scripts of one scripts folder, by name, and the files that failed to load."""

    scripts: dict[str, Script] = field(default_factory=dict)
    errors: list[LoadError] = field(default_factory=list)
    folder: Path | None = None

    def get(self, name: str) -> Script:
        try:
            return self.scripts[name]
        except KeyError:
            raise ScriptNotFound(name, list(self.scripts)) from None

    def __contains__(self, name: object) -> bool:
        return name in self.scripts

    def __iter__(self) -> Iterator[Script]:
        return iter(sorted(self.scripts.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self.scripts)

    def add(self, item: Script) -> None:
        if item.name in self.scripts:
            raise InvalidDefinition(
                f"two scripts are named {item.name!r}: {self.scripts[item.name].path} and "
                f"{item.path}; rename one",
                path=item.path,
            )
        self.scripts[item.name] = item


def script_name(relative: Path) -> str:
    """``product_invoice/transmit.py`` → ``product-invoice-transmit``."""
    parts = [*relative.parent.parts, relative.stem]
    words = [re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", part) for part in parts]
    return "-".join(re.sub(r"[_\s]+", "-", word).strip("-").lower() for word in words)


def is_script_file(relative: Path) -> bool:
    if relative.suffix != ".py":
        return False
    if any(part.startswith(("_", ".")) for part in relative.parent.parts):
        return False
    stem = relative.stem
    return not (stem.startswith(("_", ".", "test_")) or stem.endswith("_test"))


def script_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.rglob("*.py") if is_script_file(path.relative_to(folder)))


def load_file(path: Path, name: str) -> Script:
    """Import *path* and return the one script it declares."""
    module = _import(path, name)
    found = []
    for value in vars(module).values():
        declaration = declaration_of(value)
        if declaration is not None and getattr(value, "__module__", None) == module.__name__:
            found.append(declaration)
    if not found:
        raise InvalidDefinition(
            "no script found; decorate a function with @script(...) from quest", path=str(path)
        )
    if len(found) > 1:
        raise InvalidDefinition(
            f"{len(found)} @script functions found; a file declares exactly one script",
            path=str(path),
        )
    return Script.build(name, found[0], str(path))


def _import(path: Path, name: str) -> ModuleType:
    module_name = f"{MODULE_PREFIX}.{name.replace('-', '_')}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InvalidDefinition("cannot be imported", path=str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except InvalidDefinition as exc:
        sys.modules.pop(module_name, None)
        message = _without_path(exc)
        if exc.key is None:
            line = _line_in(exc, path)
            message = f"line {line}: {message}" if line else message
        raise InvalidDefinition(message, path=str(path), key=exc.key) from None
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        raise InvalidDefinition(
            f"syntax error at line {exc.lineno}: {exc.msg}", path=str(path)
        ) from None
    except Exception as exc:
        sys.modules.pop(module_name, None)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        raise InvalidDefinition(
            f"failed to import: {type(exc).__name__}: {exc} (line {where.lineno})",
            path=str(path),
        ) from None
    return module


def _line_in(exc: BaseException, path: Path) -> int | None:
    """The last line of *path* in the traceback of *exc*."""
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(exc.__traceback__)
        if Path(frame.filename) == path
    ]
    return lines[-1] if lines else None


def _without_path(exc: InvalidDefinition) -> str:
    text = exc.message
    if exc.key and text.startswith(f"{exc.key}: "):
        text = text[len(exc.key) + 2 :]
    return text


def discover(folder: Path | str) -> Registry:
    """Load every script under *folder*. Broken files are reported in ``errors``, not raised."""
    folder = Path(folder)
    if MODULE_PREFIX not in sys.modules:
        package = ModuleType(MODULE_PREFIX)
        package.__path__ = []
        sys.modules[MODULE_PREFIX] = package
    registry = Registry(folder=folder)
    seen: dict[str, str] = {}
    duplicates: set[str] = set()
    for path in script_files(folder):
        name = script_name(path.relative_to(folder))
        if name in seen:
            registry.errors.append(
                LoadError(
                    str(path),
                    f"{path}: two scripts are named {name!r} ({seen[name]} and {path}); rename one",
                )
            )
            duplicates.add(name)
            continue
        seen[name] = str(path)
        try:
            registry.add(load_file(path, name))
        except InvalidDefinition as exc:
            registry.errors.append(LoadError(str(path), str(exc)))
    for name in duplicates:
        registry.scripts.pop(name, None)
    for error in registry.errors:
        log.error("script not loaded: %s", error, extra={"action": "load_error"})
    return registry
