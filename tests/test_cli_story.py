"""What `actorctl start` tells as it runs, driven as a subprocess: the stages in order, a line per
execution, the replay's progress (a line per session in a pipe, one line redrawn in place on a
terminal) and the summary."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import IO

import pytest

from tests.test_cli import ACTORCTL, _env

FILL = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (BUY |SELL) +\d+ TQQQ @ [\d.]+ \(L\d+\) position \d+"
)
PROGRESS = re.compile(
    r"session (?P<n>\d+)/2 (?P<day>\d{4}-\d\d-\d\d) \d\d:\d\d:\d\d: realized P&L "
    r"(?P<realized>-?[\d.]+), position TQQQ \d+, (?P<orders>\d+) orders, "
    r"(?P<executions>\d+) executions"
)
SUMMARY = re.compile(
    r"replay finished: TQQQ (?P<orders>\d+) orders, (?P<buys>\d+) buy and (?P<sells>\d+) sell "
    r"executions, .*, realized P&L (?P<realized>-?[\d.]+)"
)
GUARD_S = 120.0
"""Against a hung service only, never a measure: the two days take seconds."""


def _start(
    tmp_path: Path, *args: str, stdout: int, stderr: int | IO[bytes]
) -> subprocess.Popen[bytes]:
    command = [ACTORCTL, "start", "--days", "2", "--speed", "0", "--no-tracing"]
    return subprocess.Popen(
        [*command, "--data-dir", str(tmp_path / "data"), *args],
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        env=_env(tmp_path / "ctl.sock"),
    )


def _read_until_exit(process: subprocess.Popen[bytes], fd: int) -> bytes:
    # Everything the service writes to ``fd``; stopped (SIGTERM) once the replay has finished.
    out = b""
    stopped = False
    deadline = time.monotonic() + GUARD_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: a pseudo-terminal whose every writer has gone
            chunk = b""
        if not chunk:
            return out
        out += chunk
        if not stopped and re.search(rb"replay finished[^\n]*\n", out):
            process.send_signal(signal.SIGTERM)
            stopped = True
    process.kill()
    raise AssertionError(f"the service did not finish and stop; it wrote: {out[-2000:]!r}")


def _summary_of(lines: list[str]) -> re.Match[str]:
    summaries = [m for line in lines if (m := SUMMARY.fullmatch(line))]
    assert len(summaries) == 1, lines
    return summaries[0]


def _check_progress(progress: list[re.Match[str]], summary: re.Match[str]) -> None:
    assert [p["n"] for p in progress] == ["1", "2"]
    assert progress[0]["day"] < progress[1]["day"]
    last = progress[-1]
    assert last["orders"] == summary["orders"]
    assert int(last["executions"]) == int(summary["buys"]) + int(summary["sells"])
    assert last["realized"] == summary["realized"]


@pytest.mark.parametrize(
    ("broker", "stages"),
    [
        (
            "embedded",
            [
                "actorctl: starting TQQQ",
                "actorctl: the embedded venue's TWS API server listens on 127.0.0.1:",
                "actorctl: the broker is connected to 127.0.0.1:",
                "reconciled with the venue: TQQQ ",
            ],
        ),
        (
            "inprocess",
            [
                "actorctl: starting TQQQ",
                "actorctl: the broker is connected to the venue in-process",
                "reconciled with the venue: TQQQ ",
            ],
        ),
    ],
)
def test_start_without_a_terminal_tells_its_stages_then_a_line_per_execution_and_session(
    tmp_path: Path, broker: str, stages: list[str]
) -> None:
    """In a pipe: the stages in order, each once, then the executions, a plain progress line
    at the end of each session and the summary; nothing drawn in place."""
    process = _start(tmp_path, "--broker", broker, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert process.stdout is not None
        out = _read_until_exit(process, process.stdout.fileno())
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)
    assert process.returncode == 0, out
    assert b"\r" not in out
    assert b"\x1b" not in out
    lines = out.decode().splitlines()
    found = [[i for i, line in enumerate(lines) if line.startswith(s)] for s in stages]
    assert all(len(f) == 1 for f in found), (stages, lines)
    at = [f[0] for f in found]
    assert at == sorted(at), lines
    assert lines[at[-1]].endswith("; trading")

    after = lines[at[-1] + 1 :]
    summary = _summary_of(after)
    told = after[: after.index(summary.group(0))]
    fills = [line for line in told if FILL.fullmatch(line)]
    progress = [m for line in told if (m := PROGRESS.fullmatch(line))]
    assert len(fills) == int(summary["buys"]) + int(summary["sells"]) > 0
    _check_progress(progress, summary)
    # Each session's line comes after its own executions and before the next session's.
    for session in progress:
        at_line = told.index(session.group(0))
        assert all(line[:10] <= session["day"] for line in told[:at_line] if line in fills)
        assert all(line[:10] > session["day"] for line in told[at_line:] if line in fills)


def test_start_on_a_terminal_redraws_the_progress_in_place_between_whole_lines(
    tmp_path: Path,
) -> None:
    """In a pseudo-terminal: the progress line is drawn in place (carriage return, clear to
    the end of the line) frame after frame, and every execution, session and summary line
    shows whole on a row of its own."""
    master, slave = pty.openpty()
    # 160 columns: the frames are cut to the terminal's width, never wrapped.
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    stderr = (tmp_path / "stderr").open("wb")
    try:
        process = _start(tmp_path, stdout=slave, stderr=stderr)
        os.close(slave)
        try:
            out = _read_until_exit(process, master)
        finally:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
    finally:
        os.close(master)
        stderr.close()
    assert process.returncode == 0, (tmp_path / "stderr").read_text()
    text = out.decode()
    frames = re.findall(r"\r\x1b\[K(session \d/2 [^\r\n\x1b]*)", text)
    assert len(set(frames)) >= 3, frames
    assert all(PROGRESS.fullmatch(f) for f in frames), frames

    # What each row shows once drawn: what follows its last carriage return.
    rows = [
        row.removesuffix("\r").split("\r")[-1].replace("\x1b[K", "") for row in text.split("\n")
    ]
    summary = _summary_of(rows)
    fills = [row for row in rows if " BUY " in row or " SELL " in row]
    assert all(FILL.fullmatch(row) for row in fills), fills
    assert len(fills) == int(summary["buys"]) + int(summary["sells"]) > 0
    _check_progress([m for row in rows if (m := PROGRESS.fullmatch(row))], summary)
    assert rows[-1] == "" or rows[-1].startswith("at stop: "), rows[-3:]
    assert any(row.startswith("at stop: TQQQ ") for row in rows), rows[-3:]
