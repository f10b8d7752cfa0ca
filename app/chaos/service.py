"""One ``actorctl`` subprocess of the process-level campaign (``app.chaos.process``) and the
venue's books it leaves in its data directory (the journal, read back into an engine)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO

import attrs
import msgspec

from sim.engine import Engine
from sim.journal import Journal, open_engine

ACTORCTL = str(Path(sys.executable).with_name("actorctl"))


class _Broken(Exception):
    """Something the campaign checks did not hold (turned into ``ProcessChaosFailure``)."""


class _Service:
    """``actorctl`` as a subprocess; threads read its output into lists and ``logs``."""

    def __init__(
        self,
        name: str,
        args: list[str],
        *,
        socket: Path,
        logs: Path,
        command: Sequence[str] = (ACTORCTL,),
    ) -> None:
        logs.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log = logs / f"{name}.stderr"
        self.out: list[str] = []
        self.err: list[str] = []
        self._changed = threading.Condition()
        self._open = 2
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "ACTORTRADE_SOCKET": str(socket)}
        self.process = subprocess.Popen(
            [*command, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=env,
        )
        stdout, stderr = self.process.stdout, self.process.stderr
        if stdout is None or stderr is None:
            raise RuntimeError(f"{name}: no pipes to read its output from")
        self._readers = [
            threading.Thread(target=self._read, args=(stream, lines, logs / f"{name}.{tag}"))
            for stream, lines, tag in (
                (stdout, self.out, "stdout"),
                (stderr, self.err, "stderr"),
            )
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], lines: list[str], path: Path) -> None:
        with path.open("w") as copy:
            for line in stream:
                copy.write(line)
                with self._changed:
                    lines.append(line)
                    self._changed.notify_all()
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    def __enter__(self) -> _Service:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for reader in self._readers:
            reader.join()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def wait_for(self, lines: list[str], text: str, *, timeout: float) -> str:
        """The first line of ``lines`` (``out`` or ``err``) with ``text``, once printed."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in lines:
                    if text in line:
                        return line
                left = deadline - time.monotonic()
                if self._open == 0 or left <= 0:
                    break
                self._changed.wait(left)
        code = self.process.poll()
        why = f"exited with {code}" if code is not None else f"still running after {timeout} s"
        raise _Broken(f"{self.name} {why} without printing {text!r}:{self.tail()}")

    def kill(self) -> int:
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout=30)

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise _Broken(
                f"{self.name} did not stop within 30 s of SIGTERM:{self.tail()}"
            ) from None

    def finish(self, *, timeout: float, unless: tuple[list[str], str] | None = None) -> int | None:
        """Its exit status once it exits by itself; None if it is still running after
        ``timeout`` s, or prints ``unless`` (lines, text) first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._open and time.monotonic() < deadline:
                if unless is not None and any(unless[1] in line for line in unless[0]):
                    return None
                self._changed.wait(deadline - time.monotonic())
        try:
            return self.process.wait(timeout=max(0.0, deadline - time.monotonic()) + 5)
        except subprocess.TimeoutExpired:
            return None

    def said(self) -> str:
        """Its last ``actorctl:`` line on stderr: what it told the operator last."""
        told = [line.strip() for line in self.err if line.startswith("actorctl: ")]
        return told[-1] if told else ""

    def tail(self, lines: int = 12) -> str:
        shown = [line.rstrip("\n") for line in self.err if "IB notice" not in line][-lines:]
        return "".join(f"\n    {line}" for line in shown) + f"\n  (whole log: {self.log})"


def _expect_resume(service: _Service, venue_at: datetime | None) -> None:
    # A start on a directory whose venue has traded says where it resumes: where it was.
    if venue_at is None:
        return
    line = service.wait_for(service.err, "actorctl: resuming", timeout=10)
    expected = f"the venue has seen trades up to {_when(venue_at)}"
    if expected not in line:
        raise _Broken(f"{service.name} did not resume where the venue was ({expected}): {line}")


def _when(at: datetime | None) -> str:
    return "-" if at is None else at.isoformat()


@attrs.frozen
class _Books:
    """The venue's books as its journal has them, and every orderRef it was sent."""

    engine: Engine
    placed: Mapping[str, int]

    @property
    def last_trade(self) -> datetime | None:
        return self.engine.last_trade_at

    @classmethod
    def read(cls, data: Path) -> _Books:
        path = data / "venue.journal"
        if not path.exists():
            return cls(Engine(), {})
        raw = path.read_bytes()
        placed: Counter[str] = Counter()
        # Up to the last newline: a kill mid-write leaves a torn line that never took effect.
        for line in raw[: raw.rfind(b"\n") + 1].splitlines():
            entry = msgspec.json.decode(line)
            if entry[0] == "place":
                placed[entry[1]["ref"]] += 1
        engine = open_engine(path)
        if isinstance(engine.recorder, Journal):
            engine.recorder.close()
        engine.recorder = None
        return cls(engine, placed)
