"""What the workers import while they run, learned by the template so that later workers share it.

A script that imports inside its function, or a library that loads a module on first use (the
``email`` package's policies, an HTTP client's transport), makes each worker import it again, into
memory of its own. After each run a worker reports the modules that appeared in its
``sys.modules`` (:class:`ModuleWatch`); the supervisor forwards the names it has not forwarded
before to the template, which imports them (:class:`Learner`), so that every worker forked
afterwards shares those pages instead of holding a copy.

Importing in the template must never make it unfit to fork: the names are first imported in a
*probe*, a child process of the template, and a name whose import fails, starts a thread, crashes
the probe or hangs it is never imported in the template, nor tried again.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

from .discovery import MODULE_PREFIX

PROBE_TIMEOUT = 30.0
"""Seconds a probe has to import its names; the names it has not answered for are refused."""


class ModuleWatch:
    """A worker's view of ``sys.modules``: :meth:`new` tells what was imported since."""

    def __init__(self, scripts_dir: Path | None = None) -> None:
        self._seen = set(sys.modules)
        self._count = len(sys.modules)
        self._scripts = None if scripts_dir is None else f"{scripts_dir.resolve()}{os.sep}"

    def new(self) -> tuple[str, ...]:
        """Names imported since the last call that the template could import too, in order."""
        if len(sys.modules) == self._count:
            return ()
        names = [name for name in list(sys.modules) if name not in self._seen]
        self._seen.update(names)
        self._count = len(sys.modules)
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


class Learner:
    """The template's side: probe the names it is sent, then import those found safe.

    The template's loop watches :attr:`probe_fd` while a probe runs, calls :meth:`read` when it is
    readable and :meth:`expire` when :meth:`timeout` passes; both return the names imported in
    the template once the probe has ended (an empty list until then).
    """

    def __init__(self) -> None:
        self._waiting: list[str] = []
        self._tried: set[str] = set()
        self.probe_pid: int | None = None
        self.probe_fd: int | None = None
        self._answer = b""
        self._deadline = 0.0
        self._probe_status: int | None = None
        self._watch: Callable[[int | None], None] = lambda fd: None

    def want(self, names: Iterable[str]) -> None:
        """Queue *names* not tried before (tried: imported, refused, or queued)."""
        for name in names:
            if name not in self._tried:
                self._tried.add(name)
                self._waiting.append(name)

    def start(self, in_child: Callable[[], None], watch: Callable[[int | None], None]) -> bool:
        """Fork a probe for the names waiting, unless one runs; whether one was started.

        *in_child* runs first in the probe (it closes what the template's loop holds); *watch* is
        called with the descriptor the probe answers on, and with ``None`` once it has ended.
        """
        if self.probe_pid is not None or not self._waiting:
            return False
        names = [name for name in self._waiting if name not in sys.modules]
        self._waiting.clear()
        if not names:
            return False
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_fd)
            in_child()
            _probe_main(names, write_fd)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self.probe_pid, self.probe_fd = pid, read_fd
        self._answer, self._probe_status = b"", None
        self._deadline = time.monotonic() + PROBE_TIMEOUT
        self._watch = watch
        watch(read_fd)
        return True

    def owns(self, pid: int, status: int) -> bool:
        """Whether *pid*, just reaped by the template, was the probe (its status is kept)."""
        if pid != self.probe_pid:
            return False
        self._probe_status = status
        return True

    def timeout(self) -> float | None:
        """Seconds until the running probe is given up on; ``None`` when none runs."""
        if self.probe_pid is None:
            return None
        return max(0.0, self._deadline - time.monotonic())

    def read(self) -> list[str]:
        """Read the probe's answers; at its end, import what it found safe."""
        assert self.probe_fd is not None
        while True:
            try:
                chunk = os.read(self.probe_fd, 65536)
            except BlockingIOError:
                return []
            if not chunk:
                return self._finish()
            self._answer += chunk

    def expire(self) -> list[str]:
        """Give up on a probe past its deadline: kill it; import what it answered for."""
        if self.probe_pid is None or time.monotonic() < self._deadline:
            return []
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.probe_pid, signal.SIGKILL)
        with contextlib.suppress(BlockingIOError, OSError):
            while chunk := os.read(self.probe_fd or -1, 65536):
                self._answer += chunk
        return self._finish()

    def _finish(self) -> list[str]:
        pid, fd = self.probe_pid, self.probe_fd
        self.probe_pid = self.probe_fd = None
        self._watch(None)
        if fd is not None:
            os.close(fd)
        if pid is not None and self._probe_status is None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        safe = []
        for line in self._answer.decode(errors="replace").splitlines():
            verdict, _, name = line.partition(" ")
            if verdict == "ok" and name:
                safe.append(name)
        return self._import(safe)

    def _import(self, names: list[str]) -> list[str]:
        learned = []
        threads = thread_count()
        for name in names:
            try:
                importlib.import_module(name)
            except BaseException:  # the probe imported it; the template lives on
                continue
            learned.append(name)
        if thread_count() != threads:
            # The probe found these safe, yet a thread started here: a process with threads must
            # not fork. The template ends; the supervisor starts a new one (never taught these).
            os._exit(70)
        # What was just imported is never collected, so that workers keep sharing its pages.
        gc.freeze()
        return learned


def _probe_main(names: list[str], out: int) -> NoReturn:
    """Import *names* one by one; write ``ok <name>`` or ``no <name>`` for each, then end."""
    with contextlib.suppress(BaseException):
        for name in names:
            before = thread_count()
            try:
                importlib.import_module(name)
                verdict = "ok" if thread_count() == before else "no"
            except BaseException:  # a refusal, whatever the import raised
                verdict = "no"
            os.write(out, f"{verdict} {name}\n".encode())
    os._exit(0)
