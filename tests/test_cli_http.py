"""``actorctl start`` with its HTTP endpoints, driven as an operator (and Prometheus) would: the
installed console script in a subprocess, probed with httpx, /metrics parsed as Prometheus
text; an address in use leaves the trading running."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
from prometheus_client.parser import text_string_to_metric_families

ACTORCTL = str(Path(sys.executable).with_name("actorctl"))
HTTP_LINE = re.compile(r"HTTP endpoints on (http://\S+) \(/healthz /readyz /metrics\)")


@contextmanager
def _start(tmp_path: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    # A private control socket: a developer's running actorctl must not interfere.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ACTORTRADE_SOCKET": str(tmp_path / "s.sock")}
    process = subprocess.Popen(
        [ACTORCTL, "start", "--no-tracing", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)


def _line(stream: IO[str] | None, pattern: re.Pattern[str]) -> re.Match[str]:
    assert stream is not None
    for line in stream:
        if (found := pattern.search(line)) is not None:
            return found
    raise AssertionError(f"no line matching {pattern.pattern!r}")


def _until(client: httpx.Client, path: str, status: int, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(path)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_start_serves_healthz_readyz_and_prometheus_metrics_on_the_port_it_names(
    tmp_path: Path,
) -> None:
    """Port 0: the start line names the one bound; ready once reconciled; /metrics has each
    actor's mailbox depth and the orders submitted; SIGTERM stops it with exit 0."""
    with _start(tmp_path, "--http", "127.0.0.1:0") as process:
        url = _line(process.stderr, HTTP_LINE)[1]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        with httpx.Client(base_url=url, timeout=10) as client:
            ready = _until(client, "/readyz", 200)
            assert ready.status_code == 200, ready.text
            assert ready.json()["ready"] is True
            assert client.get("/healthz").json()["alive"] is True
            _line(process.stdout, re.compile(r"BUY "))  # an order has gone
            page = client.get("/metrics")
        assert page.status_code == 200
        families = {f.name: f for f in text_string_to_metric_families(page.text)}
        depth = {s.labels["actor"] for s in families["actortrade_mailbox_depth"].samples}
        assert {"broker", "risk", "lot-keeper", "symbol.TQQQ"} <= depth
        assert sum(s.value for s in families["actortrade_orders_submitted"].samples) >= 1
        assert "actortrade_tick_to_order_duration_seconds" in families
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr


def test_an_address_in_use_is_reported_and_trading_goes_on(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with _start(tmp_path, "--http", f"127.0.0.1:{port}") as process:
            _line(process.stdout, re.compile(r"BUY "))
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert f"no HTTP endpoints on 127.0.0.1:{port}" in stderr
    assert "HTTP endpoints on http://" not in stderr


def test_no_http_serves_nothing_and_a_bad_address_is_refused(tmp_path: Path) -> None:
    with _start(tmp_path, "--no-http") as process:
        _line(process.stdout, re.compile(r"BUY "))
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "HTTP endpoints" not in stderr
    refused = subprocess.run(
        [ACTORCTL, "start", "--http", "localhost"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert refused.returncode == 2
    assert "--http: must be HOST:PORT" in refused.stderr
