"""Prometheus metrics of one ``quest serve`` (``quest serve --metrics-port PORT``).

Every serve has its own :class:`Metrics`: a registry fed by the run signals, which the supervisor
emits for every run it records, runs executed in worker processes included, so no observation
crosses a process boundary. What every serve of a database shares (queued runs, the latest
success of each script, paused scripts, nodes) is read from the database when Prometheus
scrapes, by :class:`StoreCollector`, at most once a second.

Labels come only from bounded sets: the script name, and a run status, trigger or skip reason
from quest's enums. Run ids, keys and input values never become labels.

The exporter binds its port before serve forks anything (:class:`MetricsServer`), so a port in
use is a usage error before a single run is scheduled.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from .enums import RunStatus, SkipReason, Trigger
from .errors import UsageError
from .signals import JobEvent, Subscriber
from .store import Gauges, node_state

if TYPE_CHECKING:
    from .app import Quest
    from .scheduler import Serve

log = logging.getLogger("quest.metrics")

#: Run durations: a few milliseconds to four hours.
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    600.0,
    1800.0,
    3600.0,
    7200.0,
    14400.0,
)
#: How late a slot starts, or how long a due queued run waits: a millisecond to an hour.
DELAY_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)
NODE_STATES = ("alive", "lost", "stopped")
#: The gauges :class:`StoreCollector` exports.
GAUGES = (
    "quest_queue_depth",
    "quest_last_success_timestamp_seconds",
    "quest_script_paused",
    "quest_nodes",
    "quest_next_run_timestamp_seconds",
    "quest_schedule_interval_seconds",
)
OTHER = "other"


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds())


def _member(value: Any, allowed: type[Trigger] | type[RunStatus] | type[SkipReason]) -> str:
    """*value* as one of *allowed*'s values; anything else is ``other`` (labels stay bounded)."""
    try:
        return allowed(value).value
    except ValueError:
        return OTHER


def skip_reason(reason: str | None) -> str:
    """The bounded reason of a skip event (``"overlap: held by run …"`` → ``overlap``)."""
    return _member((reason or "").split(":", 1)[0].strip(), SkipReason)


class Metrics(Subscriber):
    """The registry of one serve, fed by the run signals of one runner.

    ``Metrics(app).connect(app.runner)`` counts the runs; :meth:`attach` adds what a
    :class:`~quest.scheduler.Serve` knows (queue wait of the runs it claims, its next slots).
    """

    def __init__(self, quest: Quest, *, cache_for: float = 1.0) -> None:
        self.quest = quest
        self.registry = CollectorRegistry()
        registry = self.registry
        self.runs = Counter(
            "quest_runs",
            "Runs that ended, by script, final status and trigger.",
            ["script", "status", "trigger"],
            registry=registry,
        )
        self.skips = Counter(
            "quest_skips",
            "Fires that did not run, by script and reason (overlap, paused, disabled, missed).",
            ["script", "reason"],
            registry=registry,
        )
        self.retries = Counter(
            "quest_retries",
            "Failed runs whose retry was queued.",
            ["script"],
            registry=registry,
        )
        self.duration = Histogram(
            "quest_run_duration_seconds",
            "How long runs took, by script and final status.",
            ["script", "status"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.lateness = Histogram(
            "quest_fire_lateness_seconds",
            "How long after its slot a scheduled run started (jitter included).",
            ["script"],
            buckets=DELAY_BUCKETS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "quest_queue_wait_seconds",
            "How long a due queued run (enqueued or retry) waited before it started.",
            ["script"],
            buckets=DELAY_BUCKETS,
            registry=registry,
        )
        self.in_progress = Gauge(
            "quest_runs_in_progress",
            "Runs this serve is executing now.",
            ["script"],
            registry=registry,
        )
        self.collector = StoreCollector(quest, cache_for=cache_for)
        registry.register(self.collector)
        ProcessCollector(registry=registry)
        self._running: dict[str, str] = {}
        self._lock = threading.Lock()
        for script in quest.registry:
            self.in_progress.labels(script.name).set(0)

    # -- wiring -------------------------------------------------------------------------------

    def attach(self, serve: Serve) -> None:
        """Observe *serve*'s queued runs as it claims them; export its next slots."""
        serve.metrics = self
        self.collector.serve = serve

    # -- receivers ----------------------------------------------------------------------------

    def on_start(self, sender: object, event: JobEvent) -> None:
        script = event.name
        with self._lock:
            if event.run_id in self._running:
                return
            self._running[event.run_id] = script
        self.in_progress.labels(script).inc()
        if event.trigger is Trigger.scheduled and not event.extra.get("queued"):
            late = _seconds(event.started_at, event.scheduled_for)
            if late is not None:
                self.lateness.labels(script).observe(late)

    def on_end(self, sender: object, event: JobEvent) -> None:
        script = event.name
        status = _member(event.status, RunStatus)
        with self._lock:
            started_here = self._running.pop(event.run_id, None) is not None
        if started_here:
            self.in_progress.labels(script).dec()
        self.runs.labels(script, status, _member(event.trigger, Trigger)).inc()
        if event.duration_ms is not None:
            self.duration.labels(script, status).observe(event.duration_ms / 1000)
        if event.retry_at is not None:
            self.retries.labels(script).inc()

    def on_skip(self, sender: object, event: JobEvent) -> None:
        self.skips.labels(event.name, skip_reason(event.reason)).inc()

    def claimed(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Observe the queue wait of queued runs just claimed (started minus due)."""
        try:
            for row in rows:
                wait = _seconds(row.get("started_at"), row.get("run_after"))
                if wait is not None:
                    self.queue_wait.labels(row["name"]).observe(wait)
        except Exception:
            log.warning("metrics: could not observe claimed runs", exc_info=True)


class StoreCollector:
    """The gauges read from the database at scrape time, cached for *cache_for* seconds.

    A scrape that cannot reach the database logs a warning and serves the last values read
    (none before the first success); the in-process metrics are served either way.
    """

    def __init__(
        self,
        quest: Quest,
        *,
        cache_for: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.quest = quest
        self.cache_for = cache_for
        self.serve: Serve | None = None
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._gauges: Gauges | None = None
        self._now: datetime | None = None

    def describe(self) -> Iterable[Metric]:
        """The families :meth:`collect` yields, without reading the database."""
        return [GaugeMetricFamily(name, "") for name in GAUGES]

    def collect(self) -> Iterable[Metric]:
        gauges, now = self._read()
        scripts = [script.name for script in self.quest.registry]
        queue = GaugeMetricFamily(
            "quest_queue_depth", "Queued runs (due or delayed) of each script.", labels=["script"]
        )
        success = GaugeMetricFamily(
            "quest_last_success_timestamp_seconds",
            "When the latest successful run of each script ended (Unix time).",
            labels=["script"],
        )
        paused = GaugeMetricFamily(
            "quest_script_paused", "1 if the script is paused (quest pause).", labels=["script"]
        )
        nodes = GaugeMetricFamily(
            "quest_nodes", "Serve processes on this database by state.", labels=["state"]
        )
        if gauges is not None and now is not None:
            for name in sorted(set(scripts) | set(gauges.queued)):
                queue.add_metric([name], gauges.queued.get(name, 0))
            for name, finished in sorted(gauges.last_success.items()):
                success.add_metric([name], finished.timestamp())
            for name in scripts:
                paused.add_metric([name], 1 if name in gauges.paused else 0)
            ttl = timedelta(seconds=self.quest.settings.lease_ttl)
            counts = dict.fromkeys(NODE_STATES, 0)
            for node in gauges.nodes:
                counts[node_state(node, now=now, ttl=ttl)] += 1
            for state, count in counts.items():
                nodes.add_metric([state], count)
            yield from (queue, success, paused, nodes)
        yield from self._planned()

    def _planned(self) -> Iterable[Metric]:
        upcoming = GaugeMetricFamily(
            "quest_next_run_timestamp_seconds",
            "When this serve fires each scheduled script next (Unix time).",
            labels=["script"],
        )
        interval = GaugeMetricFamily(
            "quest_schedule_interval_seconds",
            "The time between each scheduled script's next two slots.",
            labels=["script"],
        )
        serve = self.serve
        if serve is not None:
            for name, entry in sorted(list(serve.entries.items())):
                slot = entry.next_slot
                if slot is None:
                    continue
                upcoming.add_metric([name], slot.timestamp())
                following = entry.planned.next_after(slot, slot)
                if following is not None:
                    interval.add_metric([name], (following - slot).total_seconds())
        yield from (upcoming, interval)

    def _read(self) -> tuple[Gauges | None, datetime | None]:
        with self._lock:
            moment = self._monotonic()
            if moment - self._read_at < self.cache_for:
                return self._gauges, self._now
            try:
                self._gauges = self.quest.store.gauges(s.name for s in self.quest.registry)
                self._now = self.quest.clock.now()
            except Exception:
                log.warning(
                    "metrics: could not read the database; serving the last values", exc_info=True
                )
            self._read_at = moment
            return self._gauges, self._now


# -- the HTTP exporter -------------------------------------------------------------------------


class MetricsPortUnavailable(UsageError):
    """The metrics port cannot be bound."""


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


class _Server(ThreadingMixIn, WSGIServer):
    """One short-lived daemon thread per scrape."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("metrics: a scrape from %s failed", client_address, exc_info=True)


class MetricsServer:
    """The HTTP endpoint of the metrics, bound now, serving once :meth:`start` is called.

    Binding happens in the constructor so that serve can refuse a port in use before it forks
    its worker template or starts a thread; processes forked afterwards close their copy of the
    listening socket at once.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        try:
            family, address = _family(host, port)
        except OSError as exc:
            raise MetricsPortUnavailable(
                f"--metrics-host {host!r} is not an address of this machine "
                f"({exc.strerror or exc}); use 127.0.0.1, ::1, 0.0.0.0 or one of its addresses"
            ) from None

        class Bound(_Server):
            address_family = family

        try:
            self._httpd = Bound((address, port), _Quiet)
        except OSError as exc:
            raise MetricsPortUnavailable(_bind_message(host, port, exc)) from None
        self.port = int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        closing = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _close_in_child(closing))

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self, registry: CollectorRegistry) -> None:
        """Serve *registry* from a daemon thread."""
        self._httpd.set_app(make_wsgi_app(registry))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="quest-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()

    def _close_after_fork(self) -> None:
        if os.getpid() != self._pid:
            self._httpd.socket.close()


def _close_in_child(ref: weakref.ReferenceType[MetricsServer]) -> None:
    server = ref()
    if server is not None:
        server._close_after_fork()


def _family(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    return family, str(address[0])


def _bind_message(host: str, port: int, exc: OSError) -> str:
    import errno

    if exc.errno == errno.EADDRINUSE:
        return (
            f"--metrics-port {port}: {host}:{port} is already in use; stop what listens there "
            "or choose another port (nothing was scheduled)"
        )
    if exc.errno == errno.EACCES:
        return (
            f"--metrics-port {port}: not allowed to listen on {host}:{port} (ports below 1024 "
            "need privileges); choose a port above 1024"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return (
            f"--metrics-host {host}: not an address of this machine; use 127.0.0.1 "
            "(the default), 0.0.0.0 or one of its addresses"
        )
    return f"--metrics-port {port}: cannot listen on {host}:{port}: {exc.strerror or exc}"
