"""A redo journal: writes made durable against a crash of the process by one ``os.write``.

The store keeps one next to its LMDB environment. A journaled write is appended here and
answered at once, on the calling thread, with no fsync and no thread hand-off; the store's
writer thread commits it into LMDB afterwards, and ``reset`` empties the journal once every
record in it is committed. At ``open`` the store replays the records whose sequence number is
above the one LMDB recorded as applied.

**What it survives.** An appended record is in the kernel's page cache when ``append``
returns: a SIGKILL or any other death of the process keeps it; a power loss or a kernel crash
may not (``sync`` fsyncs the file, for a caller that wants that).

**Format.** The file is a sequence of records, each a fixed 20-byte header then its payload,
integers little-endian::

    offset  size  field
         0     4  magic, b"ATJ1" (the format's version is its last byte)
         4     4  payload length, u32, at most MAX_PAYLOAD
         8     8  sequence number, u64, strictly greater than the previous record's
        16     4  CRC-32 (zlib) of the 8 sequence-number bytes followed by the payload
        20     n  payload

Why this shape:

* One record is one ``os.write`` of header and payload together, so a crash of the process
  leaves either the whole record or nothing of it; a crash of the machine mid-write may leave a
  prefix of it, or a record whose later pages never reached the disk (zeros or old bytes).
  Such a *torn tail* is a record that is incomplete, fails its CRC, or does not start with the
  magic, with no whole record after it. ``open`` cuts it off: its write was never answered.
* The CRC covers the sequence number as well as the payload, so a record whose bytes are
  intact but whose number was damaged is caught, not replayed under another number. A damaged
  length makes the CRC run over other bytes (or past the end of the file), so it is caught too.
* The length is read before anything is allocated: one above ``MAX_PAYLOAD`` is damage or a
  torn header, never a 4 GiB read.
* The magic lets ``open`` tell damage from a torn tail: after a bad record it looks for a
  later whole record (magic, length, CRC, a sequence number above the last good one). If one
  exists, the bad record is not the last write of a crash but damage in the middle, and
  ``open`` raises ``JournalDamaged`` naming the file and the bad record's byte offset rather
  than drop the records after it.

**Threads.** A journal has one owner and is used from one thread at a time; it has no lock.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from types import TracebackType

MAGIC = b"ATJ1"
HEADER = struct.Struct("<4sIQI")
"""magic, payload length, sequence number, CRC-32: 20 bytes."""
MAX_PAYLOAD = 16 * 1024 * 1024
MAX_SEQ = (1 << 64) - 1

_SEQ = struct.Struct("<Q")
_SEQ_AT = 8
_MODE = 0o600


class JournalDamaged(RuntimeError):
    """Raised by ``RedoJournal.open`` for a journal that cannot be replayed: a bad record with a
    whole record after it, or sequence numbers that do not increase. ``path`` is the file,
    ``offset`` the byte at which the bad record starts, ``problem`` what is wrong with it."""

    def __init__(self, path: Path, offset: int, problem: str) -> None:
        super().__init__(f"redo journal damaged: {path}: record at byte {offset}: {problem}")
        self.path = path
        self.offset = offset
        self.problem = problem


class RedoJournal:
    """The redo journal in the file ``path``: ``open`` it, then ``append`` payloads.

    Sequence numbers are never reused while the journal is open: ``reset`` empties the file,
    and the next record still gets the next number. Across a reopen they go on from the
    ``next_seq`` given to ``open`` or the last record's, whichever is greater.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = -1
        self._next_seq = 0
        self._size = 0

    @property
    def next_seq(self) -> int:
        """The sequence number the next ``append`` returns."""
        return self._next_seq

    @property
    def size(self) -> int:
        """Bytes in the file now: its good records, headers included."""
        return self._size

    def open(self, next_seq: int) -> list[tuple[int, bytes]]:
        """Open the file for appending, creating it (mode 0600) if missing, and return its
        records as (sequence number, payload), in file order.

        A torn tail is cut off the file and not returned. The next record's sequence number is
        ``next_seq``, or the last record's plus one if that is greater. Raises
        ``JournalDamaged`` for a journal that cannot be replayed (the file is left as it was).
        """
        if self._fd >= 0:
            raise RuntimeError(f"redo journal {self.path} is already open")
        if not 0 <= next_seq <= MAX_SEQ:
            raise ValueError(f"redo journal {self.path}: next_seq {next_seq} is not a u64")
        fd = self._open_for_append()
        try:
            with open(self.path, "rb", opener=_read_only) as file:
                data = file.read()
            records, good = _parse(self.path, data)
            if good < len(data):
                os.ftruncate(fd, good)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._size = good
        self._next_seq = max(next_seq, records[-1][0] + 1) if records else next_seq
        return records

    def append(self, payload: bytes) -> int:
        """Write one record holding ``payload`` to the file (no fsync) and return its sequence
        number. Once this returns, the record survives a crash of the process."""
        fd = self._fd
        if fd < 0:
            raise RuntimeError(f"redo journal {self.path} is not open")
        length = len(payload)
        if length > MAX_PAYLOAD:
            raise ValueError(
                f"redo journal {self.path}: a payload of {length} bytes is over the "
                f"{MAX_PAYLOAD}-byte limit of a record"
            )
        seq = self._next_seq
        crc = zlib.crc32(payload, zlib.crc32(_SEQ.pack(seq)))
        record = HEADER.pack(MAGIC, length, seq, crc) + payload
        written = os.write(fd, record)
        while written < len(record):  # a regular file never writes short in practice
            written += os.write(fd, record[written:])
        self._next_seq = seq + 1
        self._size += written
        return seq

    def reset(self) -> None:
        """Empty the file; sequence numbers go on from where they were."""
        if self._fd < 0:
            raise RuntimeError(f"redo journal {self.path} is not open")
        os.ftruncate(self._fd, 0)
        self._size = 0

    def sync(self) -> None:
        """fsync the file: every record appended so far survives a power loss too."""
        if self._fd < 0:
            raise RuntimeError(f"redo journal {self.path} is not open")
        os.fsync(self._fd)

    def close(self) -> None:
        """Close the file (without an fsync: call ``sync`` first for that). Closing twice is
        allowed."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> RedoJournal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open_for_append(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, _MODE)
        except FileExistsError:
            return os.open(self.path, flags)
        try:
            # The umask may have taken bits off 0600 (never added any): set it exactly.
            os.fchmod(fd, _MODE)
            # The new name survives a power loss too, as ``sync`` promises of the records.
            directory = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except BaseException:
            os.close(fd)
            raise
        return fd


def _read_only(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC)


class _Bad(Exception):
    pass


def _parse(path: Path, data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    # The records and the end of the last good one.
    view = memoryview(data)
    records: list[tuple[int, bytes]] = []
    offset = 0
    last_seq = -1
    while offset < len(data):
        try:
            seq, end = _record(view, offset)
        except _Bad as bad:
            later = _later_record(data, view, offset + 1, last_seq)
            if later is not None:
                raise JournalDamaged(
                    path, offset, f"{bad} (and a whole record follows at byte {later})"
                ) from None
            return records, offset  # a torn tail
        if seq <= last_seq:
            raise JournalDamaged(path, offset, f"sequence number {seq} does not follow {last_seq}")
        records.append((seq, bytes(view[offset + HEADER.size : end])))
        last_seq = seq
        offset = end
    return records, offset


def _record(view: memoryview, offset: int) -> tuple[int, int]:
    # The sequence number and end of the whole, checked record at offset, or _Bad saying why not.
    if len(view) - offset < HEADER.size:
        raise _Bad(f"the header is cut short ({len(view) - offset} of {HEADER.size} bytes)")
    magic, length, seq, crc = HEADER.unpack_from(view, offset)
    if magic != MAGIC:
        raise _Bad(f"no magic {MAGIC!r} (found {bytes(magic)!r})")
    if length > MAX_PAYLOAD:
        raise _Bad(f"a payload length of {length} bytes is over the limit of {MAX_PAYLOAD}")
    start = offset + HEADER.size
    end = start + length
    if end > len(view):
        raise _Bad(f"the payload is cut short ({len(view) - start} of {length} bytes)")
    seq_bytes = view[offset + _SEQ_AT : offset + _SEQ_AT + _SEQ.size]
    if zlib.crc32(view[start:end], zlib.crc32(seq_bytes)) != crc:
        raise _Bad(f"its CRC does not match (its header says number {seq}, {length} bytes)")
    return seq, end


def _later_record(data: bytes, view: memoryview, start: int, last_seq: int) -> int | None:
    # The offset of a whole, checked record at or after start numbered above last_seq, if any:
    # proof that a bad record before it is damage, not the torn last write of a crash.
    offset = data.find(MAGIC, start)
    while offset >= 0:
        try:
            seq, _ = _record(view, offset)
        except _Bad:
            pass
        else:
            if seq > last_seq:
                return offset
        offset = data.find(MAGIC, offset + 1)
    return None
