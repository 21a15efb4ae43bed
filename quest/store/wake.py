"""Wake-ups: a serve sleeps until a run is enqueued or a cancel is requested, anywhere.

- PostgreSQL: enqueues and cancel requests ``NOTIFY`` in their own transaction; a :class:`Listener`
  holds one autocommit connection that ``LISTEN``\\s.
- SQLite: each waiter binds a Unix datagram socket in a folder named after the database; a commit
  that asked for a wake-up sends one byte to every socket there. A sleeping waiter costs nothing
  (it is blocked in ``select``), and a wake-up takes well under a millisecond.
- Where Unix sockets are not available, :class:`VersionPoller` polls ``PRAGMA data_version``.

Every waiter's :meth:`~Waiter.wake` interrupts a :meth:`~Waiter.wait` from any thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import select
import socket
import sqlite3
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("quest.store")

HAS_UNIX_SOCKETS = hasattr(socket, "AF_UNIX") and os.name == "posix"
POLL_EVERY = 0.01

SELECT_SLACK = 0.002
"""How late, as a share of its timeout, a ``select`` may wake on Linux (the kernel allows a
thousandth, so a 1 s wait may end 1 ms after its deadline; twice that, to be sure)."""
SHORT_WAIT = 0.01
"""A wait this short is asked for as it is: its slack is a few microseconds."""


def select_until(watched: list[Any], timeout: float, *, early: bool = False) -> list[Any]:
    """What in *watched* is ready to read, waiting up to *timeout* seconds and no later.

    A serve sleeps until its next slot in one ``select``; Linux may end a wait up to a thousandth
    of its timeout late, which is most of a fire's lateness. A long wait therefore asks for a
    little less and finishes with a short one whose slack is negligible. *early*: a wait that may
    end before its time but never after it, in one ``select`` (the short one is left out).
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        left = deadline - time.monotonic()
        if left <= SHORT_WAIT:
            return select.select(watched, [], [], max(left, 0.0))[0]
        ready = select.select(watched, [], [], left * (1 - SELECT_SLACK))[0]
        if ready or early:
            return ready


class Waiter(Protocol):
    def wait(self, timeout: float, *, early: bool = False) -> bool:
        """Sleep up to *timeout* seconds; ``True`` when woken (a notification or :meth:`wake`),
        ``False`` when the time ran out. *early*: the time may run out a little before
        *timeout* (never after it), for one wake-up fewer."""

    def wake(self) -> None:
        """Interrupt a :meth:`wait` (thread-safe)."""

    def close(self) -> None: ...


class Bell:
    """A self-pipe: what :meth:`Waiter.wake` rings and ``select`` watches.

    Ringing a closed bell does nothing. Its descriptor numbers are free again once it is closed,
    and the next file the process opens may get one (a database file opened by another thread): a
    late ring written to that number would land in that file. So a ring and the close exclude each
    other, and a closed bell forgets its numbers.
    """

    def __init__(self) -> None:
        self.read, self.write = os.pipe()
        os.set_blocking(self.read, False)
        os.set_blocking(self.write, False)
        self._lock = threading.Lock()

    def ring(self) -> None:
        with self._lock:
            if self.write < 0:
                return
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self.write, b"!")

    def drain(self) -> None:
        with self._lock:
            if self.read < 0:
                return
            with contextlib.suppress(BlockingIOError, OSError):
                while os.read(self.read, 512):
                    pass

    def close(self) -> None:
        with self._lock:
            fds, self.read, self.write = (self.read, self.write), -1, -1
            for fd in fds:
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)


# -- SQLite ----------------------------------------------------------------------------------


def socket_folder(key: str) -> Path:
    """The folder of the wake-up sockets of one database (*key*: its path or URL)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    owner = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"quest-{owner}" / digest


def ring_folder(folder: Path) -> None:
    """Wake every waiter of the database: one datagram to each socket in *folder*."""
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return
    if not names:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for name in names:
            path = os.path.join(folder, name)
            try:
                sender.sendto(b"!", path)
            except BlockingIOError:
                pass  # its queue is full: it is awake already
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    os.unlink(path)  # left behind by a process that died
            except OSError:
                log.debug("could not wake %s", path, exc_info=True)


class SocketWaiter:
    """Waits on a Unix datagram socket in the database's folder (SQLite)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = str(folder / f"{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind(self.path)
        self._socket.setblocking(False)
        self._bell = Bell()

    def wait(self, timeout: float, *, early: bool = False) -> bool:
        watched: list[Any] = [self._socket, self._bell.read]
        ready = select_until(watched, timeout, early=early)
        if not ready:
            return False
        self._bell.drain()
        with contextlib.suppress(BlockingIOError, OSError):
            while self._socket.recv(64):
                pass
        return True

    def wake(self) -> None:
        self._bell.ring()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self._socket.close()
        self._bell.close()


class VersionPoller:
    """Polls ``PRAGMA data_version`` every few milliseconds: any commit by another connection
    wakes it (SQLite, where Unix sockets are not available)."""

    def __init__(self, path: str, every: float = POLL_EVERY) -> None:
        self._connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._every = every
        self._woken = threading.Event()
        self._version = self._read()

    def _read(self) -> int:
        return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def wait(self, timeout: float, *, early: bool = False) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self._woken.is_set():
                self._woken.clear()
                return True
            version = self._read()
            if version != self._version:
                self._version = version
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._woken.wait(min(self._every, left))

    def wake(self) -> None:
        self._woken.set()

    def close(self) -> None:
        self._connection.close()


# -- PostgreSQL ------------------------------------------------------------------------------


class Listener:
    """``LISTEN``\\s on a dedicated autocommit connection (PostgreSQL).

    A lost connection is reopened on the next wait, which then returns ``True`` so the caller
    looks at the queue again (a notification may have been missed meanwhile).
    """

    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._connection: Any = None
        self._closed = False
        self._bell = Bell()
        try:
            self._connect()
        except BaseException:
            self._bell.close()
            raise

    def _connect(self) -> None:
        import psycopg

        connection = psycopg.connect(self._conninfo, autocommit=True)
        try:
            connection.execute(f'LISTEN "{self._channel}"')
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        if self._closed:  # closed meanwhile, from another thread
            self._drop()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    def _reconnect(self, timeout: float) -> bool:
        import psycopg

        try:
            self._connect()
            return True
        except psycopg.Error as exc:
            log.warning("cannot listen for wake-ups (%s); polling", exc)
            ready = select_until([self._bell.read], timeout)
            self._bell.drain()
            return bool(ready)

    def wait(self, timeout: float, *, early: bool = False) -> bool:
        import psycopg
        from psycopg.pq import ConnStatus

        if self._closed:
            return False
        if self._connection is None:
            return self._reconnect(timeout)
        deadline = time.monotonic() + timeout
        while True:
            left = max(deadline - time.monotonic(), 0.0)
            pgconn = self._connection.pgconn
            ready = select_until([pgconn.socket, self._bell.read], left, early=early)
            if not ready:
                return False
            woken = False
            if self._bell.read in ready:
                self._bell.drain()
                woken = True
            if pgconn.socket in ready:
                try:
                    pgconn.consume_input()
                    while pgconn.notifies() is not None:
                        woken = True
                    lost = pgconn.status != ConnStatus.OK
                except psycopg.Error:
                    lost = True
                if lost:
                    self._drop()
                    self._reconnect(0.0)
                    return True
            if woken or time.monotonic() >= deadline:
                return woken

    def wake(self) -> None:
        self._bell.ring()

    def close(self) -> None:
        self._closed = True
        self._drop()
        self._bell.close()
