"""The redo journal: what ``append`` returned is read back at ``open``, in order, even after a
SIGKILL; a torn last record is cut off; damage before the tail is refused, naming the file and
the byte offset."""

from __future__ import annotations

import os
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime._journal import MAX_PAYLOAD, JournalDamaged, RedoJournal

ROOT = Path(__file__).resolve().parents[2]


def frame(seq: int, payload: bytes) -> bytes:
    """A record as the module docstring lays it out, encoded here independently of it."""
    crc = zlib.crc32(seq.to_bytes(8, "little") + payload)
    return b"ATJ1" + struct.pack("<IQI", len(payload), seq, crc) + payload


def written(path: Path, payloads: list[bytes], next_seq: int = 1) -> list[int]:
    """Append ``payloads`` to a new journal at ``path``; the byte offset where each record
    starts, and the file's end last."""
    offsets = [0]
    with RedoJournal(path) as journal:
        assert journal.open(next_seq) == []
        for payload in payloads:
            journal.append(payload)
            offsets.append(journal.size)
    return offsets


def reopened(path: Path, next_seq: int = 1) -> list[tuple[int, bytes]]:
    with RedoJournal(path) as journal:
        return journal.open(next_seq)


def flipped(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x5A]) + data[at + 1 :]


PAYLOADS = [
    b"first",
    b"",
    b"third record " * 7,
    bytes(range(256)),
    b"last record: 30 bytes long....",
]


def test_records_are_read_back_in_order_with_their_sequence_numbers(tmp_path: Path) -> None:
    """Many appends, then a reopen: every payload, in order, numbered from ``next_seq`` on."""
    path = tmp_path / "redo"
    payloads = [n.to_bytes(4, "little") * (n % 50) for n in range(1000)]
    with RedoJournal(path) as journal:
        assert journal.open(7) == []
        assert journal.next_seq == 7
        seqs = [journal.append(payload) for payload in payloads]
        assert journal.size == path.stat().st_size
    assert seqs == list(range(7, 1007))
    assert reopened(path) == list(zip(seqs, payloads, strict=True))


def test_the_file_holds_the_documented_layout(tmp_path: Path) -> None:
    """magic, u32 length, u64 seq, CRC-32 of the seq bytes and payload, then the payload."""
    path = tmp_path / "redo"
    written(path, PAYLOADS, next_seq=2**40)
    expected = b"".join(frame(2**40 + n, payload) for n, payload in enumerate(PAYLOADS))
    assert path.read_bytes() == expected


def test_next_seq_continues_after_a_reopen_and_after_a_reset(tmp_path: Path) -> None:
    """Reopening continues after the last record unless the caller's ``next_seq`` is higher; a
    reset empties the file and numbers go on."""
    path = tmp_path / "redo"
    written(path, [b"a", b"b"], next_seq=10)  # 10, 11
    with RedoJournal(path) as journal:
        assert journal.open(1) == [(10, b"a"), (11, b"b")]
        assert journal.next_seq == 12
        assert journal.append(b"c") == 12
        journal.reset()
        assert journal.size == 0
        assert path.stat().st_size == 0
        assert journal.next_seq == 13
        assert journal.append(b"d") == 13
    with RedoJournal(path) as journal:
        assert journal.open(50) == [(13, b"d")]
        assert journal.next_seq == 50
        assert journal.append(b"e") == 50
    with RedoJournal(path) as journal:
        journal.open(1)
        journal.reset()
    with RedoJournal(path) as journal:
        assert journal.open(51) == []
        assert journal.next_seq == 51


def test_a_torn_tail_cut_at_any_byte_is_cut_off_and_appending_goes_on(tmp_path: Path) -> None:
    """The file cut at every length inside its last record: the earlier records are returned,
    the file shrinks to them, and a new append is read back after them."""
    path = tmp_path / "redo"
    offsets = written(path, PAYLOADS)
    data = path.read_bytes()
    good = [(n, payload) for n, payload in enumerate(PAYLOADS[:-1], start=1)]
    for cut in range(offsets[-2] + 1, offsets[-1]):
        path.write_bytes(data[:cut])
        with RedoJournal(path) as journal:
            assert journal.open(1) == good, cut
            assert journal.size == path.stat().st_size == offsets[-2]
            assert journal.append(b"after the cut") == len(PAYLOADS)
        assert reopened(path) == [*good, (len(PAYLOADS), b"after the cut")]


def test_a_flipped_byte_in_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    """Any byte of the last record changed (header or payload): that record is cut off."""
    path = tmp_path / "redo"
    offsets = written(path, PAYLOADS)
    data = path.read_bytes()
    good = [(n, payload) for n, payload in enumerate(PAYLOADS[:-1], start=1)]
    for at in range(offsets[-2], offsets[-1]):
        path.write_bytes(flipped(data, at))
        assert reopened(path) == good, at
        assert path.stat().st_size == offsets[-2]


def test_garbage_after_the_last_record_is_a_torn_tail(tmp_path: Path) -> None:
    """Zeros (pages a crash of the machine never wrote), a stray magic, or a bare header with no
    payload after the last record are cut off."""
    path = tmp_path / "redo"
    offsets = written(path, PAYLOADS)
    data = path.read_bytes()
    everything = list(enumerate(PAYLOADS, start=1))
    for garbage in (bytes(4096), b"ATJ1", b"ATJ1" + bytes(100), frame(9, b"payload")[:20]):
        path.write_bytes(data + garbage)
        assert reopened(path) == everything
        assert path.stat().st_size == offsets[-1]


def test_an_old_record_inside_a_torn_payload_does_not_make_it_damage(tmp_path: Path) -> None:
    """A torn last record whose payload holds a whole record numbered below the last good one
    (say, a copy of an earlier one) is still a torn tail: only a later number proves damage."""
    path = tmp_path / "redo"
    offsets = written(path, [b"a", b"b", frame(1, b"a") + b" and more"])
    path.write_bytes(path.read_bytes()[:-3])
    assert reopened(path) == [(1, b"a"), (2, b"b")]
    assert path.stat().st_size == offsets[2]


def test_a_flipped_byte_in_a_middle_record_is_damage_naming_file_and_offset(
    tmp_path: Path,
) -> None:
    """Any byte of a record followed by good ones changed: ``JournalDamaged`` with the file and
    the record's offset, and the file left as it was."""
    path = tmp_path / "redo"
    offsets = written(path, PAYLOADS)
    data = path.read_bytes()
    for at in range(offsets[2], offsets[3]):
        damaged = flipped(data, at)
        path.write_bytes(damaged)
        with pytest.raises(JournalDamaged) as caught:
            reopened(path)
        assert caught.value.path == path
        assert caught.value.offset == offsets[2], at
        assert str(path) in str(caught.value)
        assert f"at byte {offsets[2]}" in str(caught.value)
        assert path.read_bytes() == damaged


def test_a_damaged_record_says_what_is_wrong(tmp_path: Path) -> None:
    """The problem names the CRC, the magic, or a length over the limit."""
    path = tmp_path / "redo"
    offsets = written(path, PAYLOADS)
    data = path.read_bytes()
    start = offsets[2]
    cases = {
        start: "no magic",
        start + 7: "over the limit",  # the length's top byte
        start + 12: "CRC does not match",  # a byte of the sequence number
        start + 20: "CRC does not match",  # the payload's first byte
    }
    for at, problem in cases.items():
        path.write_bytes(flipped(data, at))
        with pytest.raises(JournalDamaged, match=problem):
            reopened(path)


@pytest.mark.parametrize("seqs", [[3, 4, 4], [3, 5, 4], [9, 2]])
def test_sequence_numbers_that_do_not_increase_are_damage(tmp_path: Path, seqs: list[int]) -> None:
    """Whole, checked records whose numbers do not increase strictly cannot be replayed."""
    path = tmp_path / "redo"
    records = [frame(seq, b"x" * seq) for seq in seqs]
    path.write_bytes(b"".join(records))
    with pytest.raises(JournalDamaged, match="does not follow") as caught:
        reopened(path)
    assert caught.value.offset == sum(len(record) for record in records[:-1])


@pytest.mark.parametrize("umask", [0o000, 0o277])
def test_the_file_is_created_owner_read_write_only(tmp_path: Path, umask: int) -> None:
    """Mode 0600 whatever the umask: neither more (umask 000) nor less (umask 277)."""
    path = tmp_path / "redo"
    old = os.umask(umask)
    try:
        with RedoJournal(path) as journal:
            journal.open(1)
            journal.append(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert reopened(path) == [(1, b"x")]


def test_a_payload_over_the_limit_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    """A record ``open`` would take for damage is never written."""
    path = tmp_path / "redo"
    with RedoJournal(path) as journal:
        journal.open(1)
        with pytest.raises(ValueError, match=str(path)):
            journal.append(bytes(MAX_PAYLOAD + 1))
        assert journal.append(bytes(MAX_PAYLOAD)) == 1
    assert path.stat().st_size == 20 + MAX_PAYLOAD
    assert reopened(path) == [(1, bytes(MAX_PAYLOAD))]


def test_a_journal_is_opened_once_and_used_only_while_open(tmp_path: Path) -> None:
    """Appending before ``open`` or after ``close``, or opening twice, is an error naming it."""
    path = tmp_path / "redo"
    journal = RedoJournal(path)
    with pytest.raises(RuntimeError, match="not open"):
        journal.append(b"x")
    journal.open(1)
    with pytest.raises(RuntimeError, match="already open"):
        journal.open(1)
    journal.sync()
    journal.close()
    journal.close()
    for use in (lambda: journal.append(b"x"), journal.reset, journal.sync):
        with pytest.raises(RuntimeError, match=f"{path}.*not open"):
            use()


@given(st.lists(st.binary(max_size=300), max_size=30), st.integers(0, 2**63))
def test_any_payloads_round_trip(payloads: list[bytes], next_seq: int) -> None:
    """Any payloads, empty ones included, are read back in order, numbered from ``next_seq``."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "redo"
        written(path, payloads, next_seq)
        with RedoJournal(path) as journal:
            records = journal.open(0)
            assert journal.next_seq == (next_seq + len(payloads) if payloads else 0)
    assert records == [(next_seq + n, payload) for n, payload in enumerate(payloads)]


@given(st.lists(st.binary(max_size=300), min_size=1, max_size=30), st.data())
def test_a_cut_keeps_exactly_the_records_wholly_before_it(
    payloads: list[bytes], data: st.DataObject
) -> None:
    """The file cut anywhere: the records that end at or before the cut are returned, and the
    file is cut back to the last of them."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "redo"
        offsets = written(path, payloads)
        cut = data.draw(st.integers(0, offsets[-1]), label="cut")
        os.truncate(path, cut)
        whole = sum(1 for end in offsets[1:] if end <= cut)
        assert reopened(path) == [(n + 1, payload) for n, payload in enumerate(payloads[:whole])]
        assert path.stat().st_size == offsets[whole]


APPENDER = """
import sys
from runtime._journal import RedoJournal

journal = RedoJournal(sys.argv[1])
journal.open(1)
while True:
    seq = journal.append(journal.next_seq.to_bytes(8, "little") * 25)
    print(seq, flush=True)  # appended: append returned
"""


def test_every_appended_record_survives_a_sigkill(tmp_path: Path) -> None:
    """A child appends and reports each sequence number; SIGKILLed after some lines, three times
    over: every reported record is there, in order, with at most one unreported after them."""
    path = tmp_path / "redo"
    previous: list[int] = []
    for lines in (1, 200, 3000):
        child = subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(path)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        try:
            read = [child.stdout.readline() for _ in range(lines)]
        finally:
            os.kill(child.pid, signal.SIGKILL)
            # Not communicate(timeout=...): it reads the pipe itself, past what readline buffered.
            rest = child.stdout.read()
            child.wait(timeout=30)
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL
        reported = [int(line) for line in [*read, *rest.splitlines()]]
        assert len(reported) >= lines
        records = reopened(path)
        seqs = [seq for seq, _ in records]
        assert all(payload == seq.to_bytes(8, "little") * 25 for seq, payload in records)
        assert seqs[: len(previous)] == previous
        this_round = seqs[len(previous) :]
        assert this_round[: len(reported)] == reported
        assert len(this_round) - len(reported) <= 1
        previous = seqs
