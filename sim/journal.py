"""Durable books for the sim venue: its engine's inputs, journalled, so that the venue survives
the death of the process hosting it with the same orders, executions, positions and id
counters, as a real broker would.

The engine is deterministic given its inputs (``sim.engine.Input``: every call to ``place``,
``cancel``, ``on_trade``, ``advance``, ``restart``, ``reject_next``, ``duplicate_next_fill``), so
the journal keeps the inputs, not the books: ``open_engine`` replays them into a fresh engine and
then has the engine append every further input before it takes effect. An input written but not
applied (the process died in between) is applied at the replay: the venue then holds an order, say,
whose acknowledgement its client never saw, which is what a client must expect of a real venue.

**Format.** One JSON line per entry (msgspec): an array led by the entry's tag, Decimals as
strings, times as ISO 8601 with their UTC offset. The first line (``begin``) records how the
engine was made; the rest are its inputs, in order::

    ["begin",1]
    ["place",{"condition":null,"limit":"51.50",...,"tif":"GTC"},"2026-11-23T09:31:00-05:00"]
    ["trade","TQQQ","51.48",84211,"2026-11-23T09:31:15-05:00"]
    ["advance","2026-11-23T20:00:00-05:00"]

**Durability**, as a real broker's: what the venue has told anyone is on disk. Each entry is
written and flushed to the operating system before its input takes effect (that survives a
SIGKILL of the process: the page cache keeps it), and the file is fsynced before any event
leaves the venue (an acknowledgement, a fill, a cancel, a reject: ``Engine.durable``). So a
power loss or kernel crash can lose only inputs that nobody heard of yet: market trades that
filled nothing, and an order whose acknowledgement was never sent (its sender must expect that
of any venue). It never forgets an execution, an acknowledged order or an execId it reported.
A kill in the middle of a write leaves a torn last line (no newline): ``open_engine`` cuts it
away, as its input never took effect. Any other malformed line is an error naming the file and
line. (A journal cut short by hand is the one way to make the venue forget what it said; the
bot's reconciliation must survive even that, see ``docs/reconciliation.md``.)

The journal grows with every trade; compacting it into a snapshot is not done yet.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import BinaryIO

import msgspec

from .engine import Engine, EngineError, Input, Place


class JournalError(ValueError):
    """Raised by ``open_engine`` for a journal it cannot replay; the message starts with
    ``file:line:``."""


class Begin(msgspec.Struct, frozen=True, tag="begin", array_like=True, forbid_unknown_fields=True):
    """The journal's first line: the engine's construction arguments."""

    first_order_id: int


Entry = Begin | Input

_encoder = msgspec.json.Encoder()
_decoder: msgspec.json.Decoder[Entry] = msgspec.json.Decoder(Entry)


def _encode(entry: Input | Begin) -> bytes:
    if isinstance(entry, Place) and (entry.oca_type, entry.trigger_method) == (2, 0):
        # As written before placings had an OCA type and a trigger method: shorter, and read
        # back with these defaults.
        return _encoder.encode(msgspec.to_builtins(entry)[:-2])
    return _encoder.encode(entry)


class Journal:
    """An open journal file: the ``recorder`` of the engine ``open_engine`` returned, and its
    ``durable`` hook (``sync``).

    Every entry is flushed as it is written, so closing saves nothing; it frees the file, which
    is otherwise closed when the engine is collected.
    """

    def __init__(self, path: Path, file: BinaryIO) -> None:
        self.path = path
        self._file = file
        self._close = weakref.finalize(self, file.close)
        self._unsynced = False
        self.syncs = 0

    def __call__(self, entry: Input | Begin) -> None:
        self._file.write(_encode(entry) + b"\n")
        self._file.flush()
        self._unsynced = True

    def sync(self) -> None:
        """Make every entry written so far durable (fsync), if any is not yet."""
        if self._unsynced:
            os.fsync(self._file.fileno())
            self._unsynced = False
            self.syncs += 1

    def close(self) -> None:
        self._close()


def open_engine(path: str | Path, *, first_order_id: int = 1) -> Engine:
    """The engine whose inputs ``path`` journals, with every further input journalled.

    A missing file is created (for an engine made with ``first_order_id``). An existing one is
    replayed into a new engine with no listeners, so no events are emitted; its torn last line,
    if any, is cut away. ``JournalError`` names the file and line of any other defect, and a
    ``first_order_id`` other than the one the journal was begun with.
    """
    path = Path(path)
    # Owner-only: 0600 (a umask can only take bits away). SIM115: the Journal keeps it open.
    file = open(path, "a+b", opener=lambda name, flags: os.open(name, flags, 0o600))  # noqa: SIM115
    try:
        file.seek(0)
        data = file.read()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            file.truncate(complete)
        lines = data[:complete].split(b"\n")[:-1]
        journal = Journal(path, file)
        if not lines:
            journal(Begin(first_order_id=first_order_id))
            journal.sync()
            _sync_directory(path.parent)  # the new file's name is durable too
            engine = Engine(first_order_id=first_order_id, recorder=journal)
            engine.durable = journal.sync
            return engine
        engine = _replay(path, lines, first_order_id)
    except BaseException:
        file.close()
        raise
    engine.recorder = journal
    engine.durable = journal.sync
    return engine


def _sync_directory(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _replay(path: Path, lines: list[bytes], first_order_id: int) -> Engine:
    begin = _entry(path, 1, lines[0])
    if not isinstance(begin, Begin):
        raise JournalError(f"{path}:1: the journal must start with its begin entry")
    if begin.first_order_id != first_order_id:
        raise JournalError(
            f"{path}:1: the journal's engine starts order ids at {begin.first_order_id}, "
            f"not {first_order_id}"
        )
    engine = Engine(first_order_id=begin.first_order_id)
    for number, line in enumerate(lines[1:], start=2):
        entry = _entry(path, number, line)
        if isinstance(entry, Begin):
            raise JournalError(f"{path}:{number}: a second begin entry")
        try:
            engine.apply(entry)
        except EngineError as exc:
            raise JournalError(f"{path}:{number}: the engine refuses this input: {exc}") from exc
    return engine


def _entry(path: Path, number: int, line: bytes) -> Entry:
    if not line.strip():
        raise JournalError(f"{path}:{number}: an empty line where an entry should be")
    try:
        return _decoder.decode(line)
    except msgspec.DecodeError as exc:
        shown = line[:60].decode("utf-8", "replace") + ("..." if len(line) > 60 else "")
        raise JournalError(f"{path}:{number}: not a journal entry ({exc}): {shown!r}") from None
