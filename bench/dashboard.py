"""Figure 11: the web dashboard's pages on a big database, and what ``quest run``/``serve`` import.

    python -m bench.dashboard seed sqlite|postgres    # build (or refresh) the cached database
    python -m bench.dashboard pages sqlite|postgres   # time every page; a markdown table
    python -m bench.dashboard imports                 # modules `quest run` and `quest serve` load

Options: ``--rows`` (1,000,000) JobLog rows over ``--scripts`` (10,000) generated scripts,
``--rounds`` (20) timed rounds per page, ``--json`` for the machine-readable result that
:func:`bench._suite.figure_11` reads. Run from the repository root with it on ``PYTHONPATH``.

The data: the generated scripts of figure 6 (``job-00000`` ...), the JobLog filled in one
transaction (SQLite: ``executemany`` of plain tuples; PostgreSQL: ``COPY``) after quest created the
schema itself (``Store.ensure_schema``), so the indexes are quest's. Most runs succeeded; some
failed with an error and a traceback, were skipped, timed out or were cancelled; a few hundred are
queued and a few dozen running (with progress and log lines, owned by live ``quest_nodes``). Inputs
are JSON with a few keys. ``created_at`` spans 60 days, with a fifth of the rows in the last 24 h.
Scripts differ in popularity (a few run very often); each ran on its schedule within its period,
but for one in a hundred; some are failing lately, some are paused.

The SQLite file and the PostgreSQL database are kept (``bench/.work/dashboard``) and reused while
the generator, the sizes and quest's migrations are unchanged; the dashboard's clock is then set
back by the data's age (:class:`Behind`), so "the last 24 h" is as dense as when it was made.
SQLite is not ``ANALYZE``d (quest never does; a user's file has no statistics); PostgreSQL is, as
autovacuum would do.

The pages are called in-process (Starlette's ``TestClient``) against ``create_app`` with full
access: each page once to warm up, then ``--rounds`` rounds with the pages in a rotating order.
Server time is the ``Server-Timing: app;dur=`` the dashboard reports; wall is the whole call.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import html
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from . import _projects
from .cases.history import COLUMNS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = HERE / ".work" / "dashboard"
POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
GENERATOR = "5"
"""Bumped whenever the data below changes, so cached databases are made again."""

TARGET_MS = 150.0
DAY = 86_400.0
JOB_LOG = "quest_job_log"
HOSTS = ("worker-a", "worker-b", "worker-c", "worker-d")
REGIONS = ("eu-west", "eu-central", "us-east", "us-west", "ap-south")
ERRORS = (
    "ConnectionError: upstream https://api.example.com/v2/items refused the connection",
    "KeyError: 'customer_id'",
    "ValueError: batch 17 has 3 rows without an invoice number",
    "TimeoutError: the SMTP server did not answer within 30 s",
    'IntegrityError: duplicate key value violates unique constraint "orders_pkey"',
)
SEARCH_CUSTOMER = "acme-04711"
"""A customer in a few dozen runs' inputs: what ``/runs?q=`` looks for."""


def _say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def _stamp(epoch: float) -> str:
    """An instant as quest stores it on SQLite (naive UTC, microseconds); PostgreSQL reads it
    in the session's UTC."""
    return datetime.fromtimestamp(epoch, UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _traceback(rng: random.Random, error: str, name: str) -> str:
    frames = []
    for depth in range(rng.randint(4, 9)):
        module = rng.choice(("sync", "billing", "mailer", "reports", "etl", "api_client"))
        frames.append(
            f'  File "/srv/app/{module}/step_{depth}.py", line {rng.randint(10, 400)}, '
            f"in step_{depth}\n    result = {module}.call(batch, retries={depth})"
        )
    return (
        "Traceback (most recent call last):\n"
        f'  File "/srv/app/scripts/{name.replace("-", "_")}.py", line 12, in run\n'
        "    return work(inputs, ctx)\n" + "\n".join(frames) + f"\n{error}\n"
    )


# -- the data --------------------------------------------------------------------------------------


@dataclass
class Data:
    """What the generator made, beyond the rows: the names and ids the pages are asked about."""

    now: float
    scripts: list[str]
    busiest: str
    failing: list[str]
    paused: list[str]
    failed_run: str = ""
    running_run: str = ""
    running: list[str] = field(default_factory=list)


def _weights(count: int, rng: random.Random) -> list[float]:
    """Popularity: a few scripts run every minute, most a few times a day or less."""
    weights = [rng.paretovariate(1.1) for _ in range(count)]
    weights[42 % count] = max(weights) * 2  # job-00042: the busiest, asked about by name
    return weights


def generate(
    rows: int, scripts: int, now: float, seed: int = 2026
) -> tuple[Data, Iterator[tuple[Any, ...]], dict[str, list[tuple[Any, ...]]]]:
    """The JobLog rows (an iterator of tuples in :data:`COLUMNS` order) and the other tables."""
    rng = random.Random(seed)
    names = [f"job-{i:05d}" for i in range(scripts)]
    weights = _weights(scripts, rng)
    failing = set(rng.sample(names, max(1, scripts // 50)))
    paused = sorted(rng.sample(names, max(1, scripts // 100)))
    data = Data(now, names, names[42 % scripts], sorted(failing), paused)
    queued, running = min(300, rows // 100), min(40, rows // 1000 + 1)
    # Every script ran on its schedule lately (its latest fire within its period), but for a
    # few, late by chance; the rest of the runs go by popularity.
    periods = [
        DAY * (7 if value.count(" ") == 4 and not value.endswith("*") else 1)
        if kind == "cron"
        else float(value)
        for kind, value in _projects.schedules(scripts)
    ]
    unkept = set(rng.sample(range(scripts), scripts // 100))
    finished = rows - queued - running - (scripts - len(unkept))
    live_nodes = [(f"{i:032x}", HOSTS[i], 1000 + i) for i in range(len(HOSTS))]
    tables: dict[str, list[tuple[Any, ...]]] = {
        "quest_nodes": [],
        "quest_run_progress": [],
        "quest_run_logs": [],
        "quest_script_state": [],
        "quest_leases": [],
        "quest_cancels": [],
    }
    for node_id, host, pid in live_nodes:
        tables["quest_nodes"].append(
            (node_id, host, pid, "0.1.0", _stamp(now - 3 * DAY), 8, "process", _stamp(now), None)
        )
    for i in range(8):  # stopped serves of earlier deploys
        started = now - (10 + 5 * i) * DAY
        tables["quest_nodes"].append(
            (
                f"{100 + i:032x}",
                HOSTS[i % len(HOSTS)],
                900 + i,
                "0.0.9",
                _stamp(started),
                8,
                "process",
                _stamp(started + 4 * DAY),
                _stamp(started + 4 * DAY),
            )
        )
    for name in paused:
        tables["quest_script_state"].append((name, True, _stamp(now - rng.uniform(0, 20) * DAY)))
    for name in rng.sample(names, 30):  # resumed later: a row with paused false
        if name not in paused:
            tables["quest_script_state"].append((name, False, _stamp(now - 1 * DAY)))

    def ids() -> str:
        return f"{rng.getrandbits(128):032x}"

    def log_lines(run_id: str, start: float, count: int) -> None:
        for seq in range(1, count + 1):
            level = "WARNING" if seq % 17 == 0 else "INFO"
            tables["quest_run_logs"].append(
                (
                    run_id,
                    seq,
                    _stamp(start + seq * 0.7),
                    level,
                    "app.etl",
                    f"batch {seq}: {rng.randint(50, 500)} rows written to {rng.choice(REGIONS)}",
                )
            )

    def inputs() -> str:
        return json.dumps(
            {
                "batch_size": rng.choice((50, 100, 100, 250, 1000)),
                "region": rng.choice(REGIONS),
                "customer": f"acme-{rng.randrange(20_000):05d}",
                "dry_run": rng.random() < 0.05,
            }
        )

    def rows_iter() -> Iterator[tuple[Any, ...]]:
        picks = rng.choices(names, weights=weights, k=finished)
        for i, name in enumerate(picks):
            if rng.random() < 0.2:
                created = now - rng.uniform(60, DAY)
            else:
                created = now - rng.uniform(DAY, 60 * DAY)
            run_id = ids()
            draw = rng.random()
            if name in failing and now - created < 3 * DAY:
                draw = draw * 0.1 + 0.9 if rng.random() < 0.8 else draw
            if draw < 0.86:
                status = "succeeded"
            elif draw < 0.89:
                status = "skipped"
            elif draw < 0.90:
                status = "cancelled"
            elif draw < 0.91:
                status = "timed_out"
            elif draw < 0.912:
                status = "interrupted"
            else:
                status = "failed"
            t = rng.random()
            if t < 0.84:
                trigger = "scheduled"
            elif t < 0.95:
                trigger = "enqueued"
            elif t < 0.97:
                trigger = "manual"
            elif t < 0.995:
                trigger = "retry"
            else:
                trigger = "catch_up"
            attempt, max_attempts = (2, 3) if trigger == "retry" else (1, 1)
            scheduled = _stamp(created) if trigger in ("scheduled", "catch_up") else None
            run_after = _stamp(created) if trigger in ("enqueued", "retry") else None
            key = f"{name}:{i % 997}" if trigger == "enqueued" and i % 5 == 0 else None
            if status in ("skipped", "cancelled") and rng.random() < 0.7:
                started = finished_at = heartbeat = duration = None
                result = error = trace = host = pid = None
                reason = "overlap" if status == "skipped" else "cancelled by ops"
                ended = created
            else:
                begin = created + rng.uniform(0.001, 0.05)
                duration = int(min(rng.lognormvariate(6.5, 1.6), 3_600_000))
                if status == "timed_out":
                    duration = 600_000
                ended = begin + duration / 1000
                started, finished_at, heartbeat = _stamp(begin), _stamp(ended), _stamp(ended)
                node = live_nodes[i % len(live_nodes)]
                host, pid = node[1], node[2]
                result = None
                if status == "succeeded":
                    result = json.dumps({"rows": rng.randrange(5000)})
                error = trace = reason = None
                if status in ("failed", "timed_out", "interrupted"):
                    error = rng.choice(ERRORS) if status == "failed" else f"{status} after run"
                    if status == "failed":
                        trace = _traceback(rng, error, name)
                if status == "skipped":
                    reason = "overlap"
            if status == "failed" and not data.failed_run and now - created < DAY:
                data.failed_run = run_id
            logged = status != "succeeded" or rng.random() < 0.01
            if logged and now - ended < DAY and rng.random() < 0.2:
                log_lines(run_id, created, rng.randint(3, 40))
            the_inputs = inputs()
            if i % 20_011 == 0:
                the_inputs = the_inputs.replace('"acme-', f'"{SEARCH_CUSTOMER}", "was": "acme-', 1)
            yield (
                run_id,
                name,
                status,
                trigger,
                attempt,
                max_attempts,
                run_id,
                key,
                the_inputs,
                scheduled,
                _stamp(created),
                run_after,
                started,
                finished_at,
                heartbeat,
                duration,
                result,
                error,
                trace,
                reason,
                host,
                pid,
            )
        for i, name in enumerate(names):
            if i in unkept:
                continue
            created = now - rng.uniform(60, periods[i])
            run_id = ids()
            status = "failed" if name in failing else "succeeded"
            duration = int(rng.lognormvariate(6.5, 1.6))
            ended = created + 0.01 + duration / 1000
            error = rng.choice(ERRORS) if status == "failed" else None
            yield (
                run_id,
                name,
                status,
                "scheduled",
                1,
                1,
                run_id,
                None,
                inputs(),
                _stamp(created),
                _stamp(created),
                None,
                _stamp(created + 0.01),
                _stamp(ended),
                _stamp(ended),
                duration,
                json.dumps({"rows": rng.randrange(5000)}) if status == "succeeded" else None,
                error,
                _traceback(rng, error, name) if error else None,
                None,
                HOSTS[i % len(HOSTS)],
                1000 + i % len(HOSTS),
            )
        leased: set[str] = set()
        for i in range(running):
            name = rng.choices(names, weights=weights)[0]
            begin = now - rng.uniform(5, 1800)
            run_id = ids()
            node = live_nodes[i % len(live_nodes)]
            data.running.append(run_id)
            if not data.running_run:
                data.running_run = run_id
            total = rng.choice((None, 100.0, 5000.0))
            current = rng.uniform(0, total or 300)
            tables["quest_run_progress"].append(
                (run_id, current, total, f"batch {int(current)}", _stamp(now - rng.uniform(0, 2)))
            )
            if name not in leased:  # one overlap lease per script
                leased.add(name)
                tables["quest_leases"].append(
                    (name, run_id, f"{node[1]}:{node[2]}", _stamp(begin), _stamp(now + 60))
                )
            log_lines(run_id, begin, rng.randint(20, 200))
            yield (
                run_id,
                name,
                "running",
                "scheduled",
                1,
                1,
                run_id,
                None,
                inputs(),
                _stamp(begin),
                _stamp(begin),
                None,
                _stamp(begin + 0.01),
                None,
                _stamp(now - rng.uniform(0, 5)),
                None,
                None,
                None,
                None,
                None,
                node[1],
                node[2],
            )
        for i in range(queued):
            name = rng.choices(names, weights=weights)[0]
            created = now - rng.uniform(0, 600)
            run_id = ids()
            after = created if i % 3 else now + rng.uniform(60, 7200)
            yield (
                run_id,
                name,
                "queued",
                "enqueued" if i % 4 else "retry",
                1 if i % 4 else 2,
                1 if i % 4 else 3,
                run_id,
                f"{name}:q{i}" if i % 7 == 0 else None,
                inputs(),
                None,
                _stamp(created),
                _stamp(after),
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
                None,
            )
        tables["quest_cancels"].append((data.running[-1], "ops@example.com", _stamp(now - 1)))

    return data, rows_iter(), tables


# -- the databases ---------------------------------------------------------------------------------


def _key(rows: int, scripts: int) -> str:
    migrations = sorted((ROOT / "quest" / "migrations" / "versions").glob("*.py"))
    digest = hashlib.sha256(f"{GENERATOR} {rows} {scripts}".encode())
    for path in migrations:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def project(scripts: int) -> Path:
    """The generated scripts (figure 6's), made once and kept."""
    folder = CACHE / f"scripts-{scripts}"
    if not (folder / "done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        _projects.generated(folder, scripts)
        shutil.rmtree(folder / "peer")
        (folder / "done").write_text("")
    return folder / "quest"


def settings_for(folder: Path, url: str) -> Any:
    from quest.config import load_settings

    environ = {
        "QUEST_SCRIPTS_DIR": str(folder / "scripts"),
        "QUEST_DATABASE_URL": url,
        "QUEST_MODELS": "",
        "QUEST_BOOTSTRAP": "",
    }
    return load_settings(folder, environ)


def _schema(url: str, folder: Path) -> None:
    from quest.store import Store

    store = Store.from_settings(settings_for(folder, url))
    store.ensure_schema()
    store.dispose()


def _fill_outcomes(url: str, folder: Path) -> None:
    from quest.store import Store

    store = Store.from_settings(settings_for(folder, url))
    kept = store.rebuild_outcomes()
    store.dispose()
    _say(f"dashboard: the outcomes of {kept:,} scripts filled from the rows")


def _insert_sqlite(path: Path, rows: Iterator[tuple[Any, ...]], tables: dict[str, list]) -> None:
    connection = sqlite3.connect(str(path), isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=OFF")
    indexes = [
        (kind, name, sql)
        for kind, name, sql in connection.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') "
            "AND tbl_name = ? AND sql IS NOT NULL",
            (JOB_LOG,),
        )
    ]
    connection.execute("BEGIN")
    # Made again, from quest's own SQL, once the rows are in (the outcomes are then filled
    # from the rows, as the migration that made the triggers does).
    for kind, name, _ in indexes:
        connection.execute(f'DROP {kind.upper()} "{name}"')
    sql = f"INSERT INTO {JOB_LOG} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == 50_000:
            connection.executemany(sql, batch)
            batch.clear()
    connection.executemany(sql, batch)
    for table, values in tables.items():
        if values:
            marks = ", ".join("?" * len(values[0]))
            connection.executemany(f"INSERT INTO {table} VALUES ({marks})", values)
    for _, _, create in indexes:
        connection.execute(create)
    connection.execute("COMMIT")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()


def _insert_postgres(url: str, rows: Iterator[tuple[Any, ...]], tables: dict[str, list]) -> None:
    import psycopg

    with psycopg.connect(url) as connection:
        connection.execute("SET TIME ZONE 'UTC'")
        indexes = connection.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s AND NOT "
            "EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
            (JOB_LOG,),
        ).fetchall()
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
        # The outcome trigger fills quest_outcomes as the rows go in; here it is filled once
        # the rows and their indexes are in, as the migration that made the trigger does.
        connection.execute(f"ALTER TABLE {JOB_LOG} DISABLE TRIGGER USER")
        with connection.cursor().copy(f"COPY {JOB_LOG} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        for table, values in tables.items():
            if values:
                with connection.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
        for _, create in indexes:
            connection.execute(create)
        connection.execute(f"ALTER TABLE {JOB_LOG} ENABLE TRIGGER USER")
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM ANALYZE")


def _postgres_admin(base: str) -> Any:
    import psycopg

    return psycopg.connect(base, autocommit=True, connect_timeout=10)


def _postgres_url(base: str, name: str) -> str:
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


def _postgres_exists(base: str, name: str) -> bool:
    with _postgres_admin(base) as admin:
        found = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        return found is not None


def database(backend: str, rows: int, scripts: int) -> tuple[str, Path, Data]:
    """The URL of a filled database for *backend*, the project folder, and what is in it."""
    folder = project(scripts)
    key = _key(rows, scripts)
    CACHE.mkdir(parents=True, exist_ok=True)
    size = f"{rows}-{scripts}"
    sidecar = CACHE / f"{backend}-{size}-{key}.json"
    if backend == "sqlite":
        path = CACHE / f"joblog-{size}-{key}.sqlite3"
        url = f"sqlite:///{path}"
        present = path.exists()
    else:
        base = os.environ.get("QUEST_BENCH_POSTGRES_URL") or POSTGRES_URL
        name = f"quest_bench_dashboard_{rows}_{scripts}_{key}"
        url = _postgres_url(base, name)
        present = _postgres_exists(base, name)
    now = time.time()
    if present and sidecar.exists():
        data = Data(**json.loads(sidecar.read_text())["data"])
        _say(f"dashboard: reusing the {backend} data made {(now - data.now) / 60:.0f} min ago")
        return url, folder, data
    _say(f"dashboard: generating {rows:,} JobLog rows over {scripts:,} scripts on {backend}")
    began = time.perf_counter()
    # What earlier versions made at these sizes goes.
    for stale in CACHE.glob(f"{backend}-{size}-*.json"):
        stale.unlink()
    if backend == "sqlite":
        for stale in CACHE.glob(f"joblog-{size}-*.sqlite3*"):
            stale.unlink()
    else:
        with _postgres_admin(base) as admin:
            made = admin.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s",
                (f"quest\\_bench\\_dashboard\\_{rows}\\_{scripts}\\_%",),
            ).fetchall()
            for (old,) in made:
                admin.execute(f'DROP DATABASE IF EXISTS "{old}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
    _schema(url, folder)
    data, job_rows, tables = generate(rows, scripts, now)
    if backend == "sqlite":
        _insert_sqlite(path, job_rows, tables)
    else:
        _insert_postgres(url, job_rows, tables)
    _fill_outcomes(url, folder)
    sidecar.write_text(json.dumps({"data": data.__dict__}))
    _say(f"dashboard: generated in {time.perf_counter() - began:.1f} s")
    return url, folder, data


# -- the pages -------------------------------------------------------------------------------------

_OLDER = re.compile(r"""href=["']([^"']*[?&]before=[^"']*)["']""")
_SERVER = re.compile(r"(?:^|,)\s*app;dur=([0-9.]+)")


def pages(data: Data) -> list[tuple[str, str]]:
    """(label, path) of every page timed; the keyset pages are found by following links."""
    since = datetime.fromtimestamp(data.now - DAY, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return [
        ("overview", "/"),
        ("scripts", "/scripts"),
        ("scripts search", "/scripts?q=clean"),
        ("scripts failing", "/scripts?state=failing"),
        ("script detail", f"/scripts/{data.busiest}"),
        ("runs", "/runs"),
        ("runs of a script, failed", f"/runs?script={data.busiest}&status=failed"),
        ("runs search in inputs", f"/runs?q={SEARCH_CUSTOMER}"),
        ("runs page 2 (older link)", "older:/runs"),
        ("runs page 10 (older links)", "older9:/runs"),
        ("runs enqueued since 24 h", "/runs?trigger=enqueued&since=24h"),
        ("runs since an instant", f"/runs?since={since}"),
        ("run detail, failed", f"/runs/{data.failed_run}"),
        ("run detail, running", f"/runs/{data.running_run}"),
        ("run logs fragment", f"/runs/{data.running_run}/logs"),
        ("queue", "/queue"),
        ("nodes", "/nodes"),
    ]


class Behind:
    """The real clock, set back by a fixed number of seconds: the instant the data was made
    passes for now, and time flows on from there as the pages are timed."""

    def __init__(self, seconds: float) -> None:
        self.by = timedelta(seconds=seconds)

    def now(self) -> datetime:
        return datetime.now(UTC) - self.by

    def monotonic(self) -> float:
        return time.monotonic()


def make_app(url: str, folder: Path, data: Data) -> Any:
    from quest.app import Quest
    from quest.dashboard import Access, create_app, warm

    quest_app = Quest(settings_for(folder, url), clock=Behind(time.time() - data.now))
    began = time.perf_counter()
    _ = quest_app.registry
    took = time.perf_counter() - began
    _say(f"dashboard: {len(quest_app.registry)} scripts discovered in {took:.1f} s")
    # As `quest dashboard` does once the scripts are loaded.
    began = time.perf_counter()
    warm(quest_app)
    _say(f"dashboard: first overview and scripts page read in {time.perf_counter() - began:.2f} s")
    gc.collect()
    gc.freeze()
    return create_app(quest_app, authorize=lambda request: Access.full)


def _resolve(client: Any, path: str) -> str:
    """A path as given, or (``olderN:PATH``) the page N "older" links behind PATH."""
    if not path.startswith("older"):
        return path
    hops_text, _, path = path.partition(":")
    hops = int(hops_text[5:] or 1)
    for _ in range(hops):
        response = client.get(path)
        found = _OLDER.search(response.text)
        if found is None:
            raise SystemExit(f"bench: no older link on {path}")
        link = urljoin(f"http://bench{path}", html.unescape(found.group(1)))
        path = urlunsplit(urlsplit(link)._replace(scheme="", netloc=""))
    return path


class _Collections:
    """Milliseconds the cyclic garbage collector ran (all generations) since :meth:`take`."""

    def __init__(self) -> None:
        self.total = 0.0
        self._began = 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.total += (time.perf_counter() - self._began) * 1000

    def take(self) -> float:
        total, self.total = self.total, 0.0
        return total

    def close(self) -> None:
        gc.callbacks.remove(self._note)


def _call(client: Any, path: str, collections: _Collections) -> tuple[float, float, float, int]:
    collections.take()
    began = time.perf_counter()
    response = client.get(path)
    wall = (time.perf_counter() - began) * 1000
    found = _SERVER.search(response.headers.get("server-timing", ""))
    server = float(found.group(1)) if found else float("nan")
    return server, wall, collections.take(), response.status_code


def time_pages(url: str, folder: Path, data: Data, rounds: int) -> dict[str, Any]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's notice about which httpx it prefers
        from starlette.testclient import TestClient

    app = make_app(url, folder, data)
    results: dict[str, Any] = {}
    collections = _Collections()
    try:
        with TestClient(app, base_url="http://bench") as client:
            wanted = [(label, _resolve(client, path)) for label, path in pages(data)]
            for label, path in wanted:
                *_, status = _call(client, path, collections)
                if status != 200:
                    raise SystemExit(f"bench: GET {path} answered {status}")
                results[label] = {"path": path, "server": [], "wall": [], "gc": []}
            for r in range(rounds):
                order = wanted[r % len(wanted) :] + wanted[: r % len(wanted)]
                for label, path in order:
                    server, wall, collected, status = _call(client, path, collections)
                    if status != 200:
                        raise SystemExit(f"bench: GET {path} answered {status}")
                    results[label]["server"].append(server)
                    results[label]["wall"].append(wall)
                    results[label]["gc"].append(collected)
    finally:
        collections.close()
    return results


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def own_time(got: dict[str, Any]) -> list[float]:
    """Each call's server time less the garbage collections that ran during it."""
    return [max(0.0, s - g) for s, g in zip(got["server"], got["gc"], strict=True)]


def report(backend: str, results: dict[str, Any], rows: int, scripts: int) -> str:
    lines = [
        f"{backend}, {rows:,} JobLog rows, {scripts:,} scripts, "
        f"{len(next(iter(results.values()))['server'])} rounds; server time "
        "(`Server-Timing: app;dur=`) in ms; wall: the whole in-process call; GC max: the most "
        "garbage-collection time inside one call of the page; met: max ≤ 150 ms, "
        "and in brackets whether it is met without the calls' garbage collections",
        "",
        "| page | path | median | p95 | max | wall median | GC max | met? |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, got in results.items():
        server = got["server"]
        median, p95 = statistics.median(server), percentile(server, 95)
        path = got["path"] if len(got["path"]) < 48 else got["path"][:45] + "..."
        met = "yes" if max(server) <= TARGET_MS else "**NO**"
        without = "yes" if max(own_time(got)) <= TARGET_MS else "no"
        lines.append(
            f"| {label} | `{path}` | {median:.1f} | {p95:.1f} | {max(server):.1f} | "
            f"{statistics.median(got['wall']):.1f} | {max(got['gc']):.0f} | "
            f"{met} ({without}) |"
        )
    return "\n".join(lines)


# -- imports ---------------------------------------------------------------------------------------

FORBIDDEN = ("quest.dashboard", "starlette", "jinja2", "markupsafe", "anyio", "httpx", "uvicorn")


def _imported(stderr: str) -> set[str]:
    found = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                found.add(name)
    return found


def imports(python: str = sys.executable) -> dict[str, list[str]]:
    """The modules of FORBIDDEN that ``quest run noop`` and a ``quest serve`` (one 1 s interval
    script, two fires) load, read from ``PYTHONPROFILEIMPORTTIME`` (worker processes included)."""
    import tempfile

    found: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="quest-bench-imports-") as tmp:
        folder = _projects.project(Path(tmp), noop=_projects.NOOP, tick=_projects.TICK)
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUEST_")}
        env.update(
            QUEST_SCRIPTS_DIR=str(folder / "scripts"),
            QUEST_DATABASE_URL=f"sqlite:///{folder / 'quest.sqlite3'}",
            QUEST_MODELS="",
            QUEST_BOOTSTRAP="",
            PYTHONPATH=str(ROOT),
        )
        # What the ``quest`` console script does.
        command = [python, "-c", "import sys; from quest.cli import main; sys.exit(main())"]
        subprocess.run(
            [*command, "db", "upgrade"], env=env, cwd=folder, check=True, capture_output=True
        )
        env["PYTHONPROFILEIMPORTTIME"] = "1"
        done = subprocess.run(
            [*command, "run", "noop"], env=env, cwd=folder, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"bench: quest run noop exited {done.returncode}\n{done.stderr}")
        run_modules = _imported(done.stderr)
        serve = subprocess.Popen(
            [*command, "serve"], env=env, cwd=folder, stderr=subprocess.PIPE, text=True
        )
        database = folder / "quest.sqlite3"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.5)
            with contextlib.closing(sqlite3.connect(str(database), timeout=30)) as connection:
                fired = connection.execute(
                    f"SELECT count(*) FROM {JOB_LOG} WHERE name = 'tick' AND status = 'succeeded'"
                ).fetchone()[0]
            if fired >= 2:
                break
        else:
            serve.kill()
            raise SystemExit("bench: quest serve did not run tick twice within 60 s")
        serve.send_signal(signal.SIGTERM)
        _, stderr = serve.communicate(timeout=60)
        serve_modules = _imported(stderr)
    for label, modules in (("run", run_modules), ("serve", serve_modules)):
        found[label] = sorted(
            m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)
        )
        found[label + "_count"] = [str(len(modules))]
    return found


# -- the command -----------------------------------------------------------------------------------


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__)
    parser.add_argument("mode", choices=("seed", "pages", "imports"))
    parser.add_argument("backend", nargs="?", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--scripts", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.mode == "imports":
        found = imports()
        if args.json:
            print(json.dumps(found))
        else:
            for label in ("run", "serve"):
                what = ", ".join(found[label]) or "none"
                print(f"quest {label}: {found[label + '_count'][0]} modules; dashboard's: {what}")
        return
    url, folder, data = database(args.backend, args.rows, args.scripts)
    if args.mode == "seed":
        return
    results = time_pages(url, folder, data, args.rounds)
    if args.json:
        print(json.dumps({"backend": args.backend, "pages": results}))
    else:
        print(report(args.backend, results, args.rows, args.scripts))


if __name__ == "__main__":
    main(sys.argv[1:])
