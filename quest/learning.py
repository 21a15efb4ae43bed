"""What the workers import while they run, learned by the template so that later workers share it.

A script that imports inside its function, or a library that loads a module on first use (the
``email`` package's policies, an HTTP client's transport), makes each worker import it again, into
memory of its own. After each run a worker reports the modules that appeared in its
``sys.modules`` (:class:`ModuleWatch`); the supervisor forwards the names it has not forwarded
before to the template, which imports them (:class:`Learner`), so that every worker forked
afterwards shares those pages instead of holding a copy.

Importing in the template must never make it unfit to fork. A worker reports nothing after a run
that left a thread running in it (it cannot tell which import, if any, started it): what it
reports was imported by a single-threaded process, and did not crash nor hang it. The template
skips a name whose import fails; names are sent to it once, never retried.
"""

from __future__ import annotations

import gc
import importlib
import os
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from .discovery import MODULE_PREFIX

THREAD_WAIT = 5.0
"""Seconds a thread an import started in the template has to end before the template gives up."""


class ModuleWatch:
    """A worker's view of ``sys.modules``: :meth:`new` tells what was imported since."""

    def __init__(self, scripts_dir: Path | None = None) -> None:
        self._seen = set(sys.modules)
        self._count = len(sys.modules)
        self._scripts = None if scripts_dir is None else f"{scripts_dir.resolve()}{os.sep}"

    def new(self) -> tuple[str, ...]:
        """Names imported since the last call that the template could import too, in order;
        none while a thread other than the caller's and quest's own runs."""
        if len(sys.modules) == self._count:
            return ()
        names = [name for name in list(sys.modules) if name not in self._seen]
        self._seen.update(names)
        self._count = len(sys.modules)
        if foreign_threads():
            return ()
        return tuple(name for name in names if self._learnable(name))

    def _learnable(self, name: str) -> bool:
        if name in ("__main__", "__mp_main__") or name.split(".")[0] == MODULE_PREFIX:
            return False
        if self._scripts is None:
            return True
        path = getattr(sys.modules.get(name), "__file__", None)
        return not (isinstance(path, str) and os.path.abspath(path).startswith(self._scripts))


def thread_count() -> int:
    """Threads of this process, those started outside Python included where /proc tells."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()


def foreign_threads() -> int:
    """Threads of this process besides the calling one and quest's own (named ``quest-...``)."""
    me = threading.current_thread()
    own = sum(1 for t in threading.enumerate() if t is not me and t.name.startswith("quest-"))
    return thread_count() - 1 - own


def learn(names: Iterable[str]) -> list[str]:
    """Import *names* in this process (the template); the names imported, in order.

    A name whose import fails is skipped. Should an import leave a thread behind that has not ended
    within ``THREAD_WAIT`` seconds, the process ends: a process with threads must not fork, and the
    supervisor replaces a template that ended (and never sends it these names again).
    """
    learned = []
    threads = thread_count()
    for name in names:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except BaseException:  # a worker imported it; the template lives on without it
            continue
        learned.append(name)
    deadline = time.monotonic() + THREAD_WAIT
    while thread_count() > threads:
        if time.monotonic() > deadline:
            os._exit(70)
        time.sleep(0.05)
    # What was just imported is never collected, so that workers keep sharing its pages.
    gc.freeze()
    return learned
