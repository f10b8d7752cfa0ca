"""``actorctl start`` run as systemd runs a ``Type=notify`` unit: ``$NOTIFY_SOCKET`` a real
``AF_UNIX`` datagram socket of the test's, ``$WATCHDOG_USEC`` set. The service says how it
stands, READY=1 once it trades, WATCHDOG=1 while healthy, and STOPPING=1 at a SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ACTORCTL = str(Path(sys.executable).with_name("actorctl"))


def _receive(sock: socket.socket, until: float) -> list[str] | None:
    sock.settimeout(max(0.01, until - time.monotonic()))
    try:
        return sock.recv(65536).decode().split("\n")
    except TimeoutError:
        return None


def test_start_under_systemd_is_ready_pings_the_watchdog_and_says_stopping(
    tmp_path: Path,
) -> None:
    """READY=1 with a trading STATUS, at least two WATCHDOG=1 after it (every 2 s: half of
    WATCHDOG_USEC), then on SIGTERM STOPPING=1 last, no ping after it, and exit 0."""
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        process = subprocess.Popen(
            [
                ACTORCTL,
                "start",
                "--data-dir",
                str(tmp_path / "data"),
                "--socket",
                str(tmp_path / "control" / "actorctl.sock"),
                "--speed",
                "60",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={
                **os.environ,
                "PYTHONUNBUFFERED": "1",
                "NOTIFY_SOCKET": str(path),
                "WATCHDOG_USEC": "4000000",
            },
        )
        seen: list[list[str]] = []
        try:
            deadline = time.monotonic() + 120
            pings_after_ready = 0
            ready = False
            while pings_after_ready < 2:
                datagram = _receive(sock, deadline)
                assert datagram is not None, f"seen: {seen}"
                seen.append(datagram)
                ready = ready or "READY=1" in datagram
                pings_after_ready += ready and datagram == ["WATCHDOG=1"]
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
            while (datagram := _receive(sock, time.monotonic() + 0.5)) is not None:
                seen.append(datagram)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    (at,) = [i for i, datagram in enumerate(seen) if "READY=1" in datagram]
    assert any(line.startswith("STATUS=trading: TQQQ ") for line in seen[at])
    assert "STOPPING=1" in seen[-1]
    assert sum("STOPPING=1" in datagram for datagram in seen) == 1
