"""Finding scripts: every ``.py`` file under the scripts folder, named by its path in kebab-case."""

from __future__ import annotations

import ast
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
from .results import exception_text, safe_str

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
    return [path for path, _ in _script_files(folder)]


def _script_files(folder: Path) -> list[tuple[Path, Path]]:
    """Each script file under *folder*, in path order, with its path relative to *folder*."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.rglob("*.py"):
        relative = path.relative_to(folder)
        if is_script_file(relative):
            found.append((path, relative))
    found.sort(key=lambda pair: pair[0])
    return found


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
    try:
        return Script.build(name, found[0], str(path))
    except InvalidDefinition as exc:
        code = getattr(found[0].fn, "__code__", None)
        raise located(exc, path, code.co_firstlineno if code else None) from None


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
        raise located(exc, path, _line_in(exc, path)) from None
    except SyntaxError as exc:
        sys.modules.pop(module_name, None)
        raise InvalidDefinition(
            f"syntax error at line {exc.lineno}: {safe_str(exc.msg, 200)}", path=str(path)
        ) from None
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module_name, None)
        line = _line_in(exc, path)
        if line is None:
            frames = traceback.extract_tb(exc.__traceback__)
            line = frames[-1].lineno if frames else None
        raise InvalidDefinition(
            f"failed to import: {exception_text(exc, 300)}", path=str(path), line=line
        ) from None
    return module


def located(exc: InvalidDefinition, path: Path, line: int | None) -> InvalidDefinition:
    """*exc* with *path*, the key's full name and the line of the user's file it is on.

    *line* is where the declaration raised (the ``@script(`` or ``Input(`` call); the key is
    looked up in that call so the line is the key's own when it is written there.
    """
    key = exc.key
    if line is not None:
        try:
            tree = ast.parse(path.read_text("utf-8", errors="replace"), str(path))
        except (SyntaxError, ValueError, OSError, RecursionError):
            tree = None
        if tree is not None:
            key, line = _refine(tree, line, key)
    return InvalidDefinition(exc.reason, path=str(path), key=key, line=line)


def _refine(tree: ast.AST, line: int, key: str | None) -> tuple[str | None, int]:
    if key is not None and key.startswith("Input."):
        found = _input_at(tree, line)
        if found is None:
            return key, line
        name, call = found
        field = key[len("Input.") :]
        return f"inputs.{name}.{field}", _argument_line(call, field) or line
    declared = _call_at(tree, line, "script")
    if declared is None or key is None:
        return key, line
    return key, _path_line(declared, key.split(".")) or line


def _name_of(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _spans(node: ast.AST, line: int) -> bool:
    start = getattr(node, "lineno", None)
    end = getattr(node, "end_lineno", None) or start
    return start is not None and end is not None and start <= line <= end


def _call_at(tree: ast.AST, line: int, name: str) -> ast.Call | None:
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _name_of(node.func) == name and _spans(node, line)
    ]
    return min(calls, key=lambda c: (c.end_lineno or c.lineno) - c.lineno) if calls else None


def _input_at(tree: ast.AST, line: int) -> tuple[str, ast.Call] | None:
    """The input name and ``Input(...)`` call written on *line*, as ``"name": Input(...)``."""
    best: tuple[str, ast.Call] | None = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Dict):
            continue
        for key, value in zip(node.keys, node.values, strict=True):
            if (
                isinstance(key, ast.Constant)
                and isinstance(key.value, str)
                and isinstance(value, ast.Call)
                and _name_of(value.func) == "Input"
                and _spans(value, line)
            ) and (best is None or value.lineno >= best[1].lineno):
                best = (key.value, value)
    return best


def _argument_line(call: ast.Call, field: str) -> int | None:
    if field == "type" and call.args:
        return call.args[0].lineno
    for keyword in call.keywords:
        if keyword.arg == field:
            return keyword.value.lineno
    return None


def _path_line(call: ast.Call, parts: list[str]) -> int | None:
    """The line of ``quest={"interval": ...}``'s key *parts* inside the ``@script(...)`` call."""
    if not parts:
        return None
    node: ast.AST | None = next((k.value for k in call.keywords if k.arg == parts[0]), None)
    line = node.lineno if isinstance(node, ast.expr) else None
    for part in parts[1:]:
        if isinstance(node, ast.Dict):
            match = [
                (k, v)
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == part
            ]
            if not match:
                break
            key_node, node = match[0]
            line = key_node.lineno if key_node is not None else node.lineno
        elif isinstance(node, ast.Call):
            found = _argument_line(node, part)
            if found is None:
                break
            line = found
            node = None
        else:
            break
    return line


def _line_in(exc: BaseException, path: Path) -> int | None:
    """The last line of *path* in the traceback of *exc*."""
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(exc.__traceback__)
        if Path(frame.filename) == path
    ]
    return lines[-1] if lines else None


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
    for path, relative in _script_files(folder):
        name = script_name(relative)
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
