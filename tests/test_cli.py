"""actorctl, driven as a user would: the installed console script in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ACTORCTL = str(Path(sys.executable).with_name("actorctl"))


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ACTORCTL, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_help_lists_the_start_command() -> None:
    """`actorctl --help` works and names `start`."""
    result = run("--help")
    assert result.returncode == 0, result.stderr
    assert "start" in result.stdout
    assert "Run the supervised service" in result.stdout


def test_version_prints_the_distribution_version() -> None:
    """`actorctl --version` prints the installed version."""
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("actorctl 0.")


def test_bad_options_are_refused_with_a_usage_error() -> None:
    """A bad value names the option and exits non-zero."""
    result = run("start", "--report-every", "-1")
    assert result.returncode == 2
    assert "--report-every" in result.stderr


def _start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [ACTORCTL, "start", "--report-every", "0.1", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _first_report(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert "TQQQ" in line, (
        f"no report line; stderr: {process.stderr.read() if process.stderr else ''}"
    )
    return line


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_start_runs_the_tree_until_a_signal_then_stops_cleanly_within_5_s(
    signum: signal.Signals, backend: str
) -> None:
    """The service reports, then stops on SIGINT/SIGTERM with exit 0 well within 5 s."""
    process = _start("--backend", backend)
    try:
        _first_report(process)
        sent = time.monotonic()
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        process.kill()
    assert process.returncode == 0, stderr
    assert elapsed < 5.0
    assert f"stopped by {signum.name}" in stderr
    assert "forced" not in stderr


def test_crashed_symbol_actors_are_restarted_and_keep_reporting() -> None:
    """With --crash-every, symbol actors crash and come back (their incarnation grows)."""
    process = _start("--crash-every", "0.05", "--seed", "7")
    try:
        assert process.stdout is not None
        incarnations: set[str] = set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(i not in {"#1"} for i in incarnations):
            line = process.stdout.readline()
            incarnations.update(part.split()[-1] for part in line.split("|") if "#" in part)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert incarnations - {"#1"}, "no symbol actor was ever restarted"
    assert process.returncode == 0, stderr
    assert "crashed: DemoCrash" in stderr


def test_a_root_that_gives_up_stops_the_service_with_a_clear_message_and_exit_1() -> None:
    """Crashing far beyond the restart intensity escalates to the root, which gives up."""
    process = _start("--crash-every", "0.001")
    try:
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 1
    assert "actorctl: the service stopped because supervisor 'root' gave up" in stderr
