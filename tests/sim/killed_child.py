"""A Python child process that does its work, reports one line, and is SIGKILLed right after:
what the tests of the venue's journal use to prove that what the child made durable survives a
process death (no ``atexit``, no ``finally``, no flush runs in the child)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def first_line_then_sigkill(code: str, *args: str) -> list[str]:
    """Run ``python -c code args...`` from the repository's root, read the first line it
    prints, SIGKILL it and return that line's words (checking the child did die of the kill)."""
    child = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        reported = child.stdout.readline().split()
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=10)
    assert child.returncode == -signal.SIGKILL
    return reported
