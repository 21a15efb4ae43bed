"""What a worker reports of its imports, and what the template does with the names it is sent."""

from __future__ import annotations

import os
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from quest import learning
from quest.learning import ModuleWatch, learn


@pytest.fixture
def fake_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Modules added to ``sys.modules`` by the test (removed after it); threads other tests left
    in this process are not counted."""
    monkeypatch.setattr(learning, "foreign_threads", lambda: 0)
    added: list[str] = []
    yield added
    for name in added:
        sys.modules.pop(name, None)


def add(names: list[str], name: str, path: str | None = None) -> None:
    module = types.ModuleType(name)
    if path is not None:
        module.__file__ = path
    sys.modules[name] = module
    names.append(name)


def test_a_watch_reports_new_modules_in_order_once(fake_modules: list[str]) -> None:
    watch = ModuleWatch()
    assert watch.new() == ()
    add(fake_modules, "quest_watch_b")
    add(fake_modules, "quest_watch_a")
    assert watch.new() == ("quest_watch_b", "quest_watch_a")
    assert watch.new() == ()


def test_a_watch_never_reports_scripts_nor_main(fake_modules: list[str], tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    watch = ModuleWatch(scripts)
    add(fake_modules, "quest_scripts.something")
    add(fake_modules, "__mp_main__")
    add(fake_modules, "quest_watch_helper", str(scripts / "helper.py"))
    add(fake_modules, "quest_watch_library", str(tmp_path / "lib" / "library.py"))
    assert watch.new() == ("quest_watch_library",)


def test_a_watch_reports_nothing_while_a_foreign_thread_runs() -> None:
    # In a child of its own: the test process may hold threads of other tests.
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            watch = ModuleWatch()
            stop = threading.Event()
            foreign = threading.Thread(target=stop.wait, name="library-thread")
            own = threading.Thread(target=stop.wait, name="quest-log-flush")
            foreign.start()
            sys.modules["quest_watch_during"] = types.ModuleType("quest_watch_during")
            during = watch.new()
            stop.set()
            foreign.join(10)
            stop.clear()
            own.start()
            sys.modules["quest_watch_after"] = types.ModuleType("quest_watch_after")
            after = watch.new()
            stop.set()
            own.join(10)
            # quest's own threads do not count
            code = 0 if (during, after) == ((), ("quest_watch_after",)) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def in_child(body: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """Fork; the child calls ``learn`` on a module with *body* and exits 0 (or as learn ends it);
    returns the exit code."""
    (tmp_path / "quest_learn_subject.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(learning, "THREAD_WAIT", 0.2)
    pid = os.fork()
    if pid == 0:
        try:
            learned = learn(["quest_learn_subject", "quest_learn_missing"])
            os._exit(0 if learned == ["quest_learn_subject"] else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_learn_imports_what_it_can_and_skips_what_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert in_child("VALUE = 1\n", tmp_path, monkeypatch) == 0


def test_learn_ends_a_template_an_import_left_a_thread_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = (
        "import threading\nthreading.Thread(target=threading.Event().wait, daemon=True).start()\n"
    )
    assert in_child(body, tmp_path, monkeypatch) == 70


def test_learn_waits_for_a_thread_an_import_started_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = "import threading\nthreading.Thread(target=lambda: None).start()\n"
    assert in_child(body, tmp_path, monkeypatch) == 0
