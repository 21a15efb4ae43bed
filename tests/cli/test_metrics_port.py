"""``quest serve --metrics-port``: a real serve scraped over HTTP, and a port already in use.

Waiting here is waiting on another process: the endpoint is polled with a deadline.
"""

from __future__ import annotations

import json
import signal
import socket
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_engine import TICK, project_on
from test_serve_process import Served, poll

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> str:
    """The metrics text, or ``""`` while nothing answers yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body: bytes = response.read()
            return body.decode()
    except (urllib.error.URLError, ConnectionError):
        return ""


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, s.labels, s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def listening(process: psutil.Process, port: int) -> bool:
    try:
        found = process.net_connections(kind="tcp")
    except psutil.NoSuchProcess:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in found)


def ticked(port: int) -> str:
    """A scrape that shows a succeeded tick, counted and read back from the database."""
    text = scrape(port)
    counted = 'quest_runs_total{script="tick",status="succeeded"' in text
    read = 'quest_last_success_timestamp_seconds{script="tick"}' in text
    return text if counted and read else ""


def test_serve_exports_its_runs_on_the_metrics_port(
    tmp_path: Path, database_url: str, served: list[Served]
) -> None:
    project = project_on(tmp_path, {"tick.py": TICK}, database_url)
    port = free_port()
    serve = project.serve("--metrics-port", str(port))
    served.append(serve)

    text = poll(lambda: ticked(port), 20, "a scrape showing a succeeded tick")
    supervisor = psutil.Process(serve.process.pid)
    children = supervisor.children(recursive=True)
    assert children, "the runs execute in worker processes"
    assert listening(supervisor, port)
    assert not [child for child in children if listening(child, port)]
    code, _ = serve.stop(signal.SIGTERM)

    assert code == 0, serve.output()
    found = samples(text)
    runs = [
        value
        for name, labels, value in found
        if name == "quest_runs_total"
        and labels == {"script": "tick", "status": "succeeded", "trigger": "scheduled"}
    ]
    assert runs and runs[0] >= 1
    buckets = {
        labels["le"]: value
        for name, labels, value in found
        if name == "quest_run_duration_seconds_bucket"
        and labels.get("script") == "tick"
        and labels.get("status") == "succeeded"
    }
    assert {"0.005", "1.0", "3600.0", "+Inf"} <= set(buckets)
    assert buckets["+Inf"] >= runs[0]
    assert ("quest_nodes", {"state": "alive"}, 1.0) in found
    assert any(name == "quest_last_success_timestamp_seconds" for name, _, _ in found)
    assert "metrics on http://127.0.0.1:" in serve.output()
    # Once serve is gone, nothing listens there any more (its workers never held the socket);
    # SO_REUSEADDR lets the bind through the closed scrapes' TIME_WAIT, not past a listener.
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
        again.listen()


def test_a_metrics_port_in_use_stops_serve_before_anything_is_scheduled(
    tmp_path: Path, database_url: str
) -> None:
    project = project_on(tmp_path, {"tick.py": TICK}, database_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])

        result = project.quest("serve", "--metrics-port", str(port))

    assert result.returncode == 2, result.stderr
    assert f"--metrics-port {port}" in result.stderr
    assert "already in use" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert project.rows() == []
    nodes = project.quest("nodes", "--json")
    assert nodes.returncode == 0, nodes.stderr
    assert json.loads(nodes.stdout) == []


def test_metrics_host_without_a_port_is_a_usage_error(tmp_path: Path) -> None:
    project = project_on(tmp_path, {"tick.py": TICK})

    result = project.quest("serve", "--metrics-host", "0.0.0.0")

    assert result.returncode == 2
    assert "--metrics-host needs --metrics-port" in result.stderr
    assert project.rows() == []
