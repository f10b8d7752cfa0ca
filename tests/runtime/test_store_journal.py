"""The crash-safe store: a write answered from its redo journal (no thread, no fsync), committed
into LMDB afterwards; reads and writes see the journaled writes meanwhile; a crash's journal is
replayed at the next open; a commit that fails on the writer thread is raised by the writes
after it and loses nothing. On a real disk, both backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import lmdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.store import (
    JOURNAL_NAME,
    Durability,
    Store,
    StoreDamaged,
    StoreError,
    StoreFull,
    Txn,
)

pytestmark = pytest.mark.anyio

DATABASES = ("fills", "lots")


def store(path: Path, **kwargs: object) -> Store:
    kwargs.setdefault("durability", Durability.CRASH_SAFE)
    return Store(path, databases=DATABASES, schema_version=1, **kwargs)  # type: ignore[arg-type]


def put(db: str, key: str, value: str) -> object:
    def write(txn: Txn) -> bool:
        return txn.put(db, key.encode(), value.encode())

    return write


def everything(txn: Txn) -> dict[str, dict[str, str]]:
    return {
        db: {k.decode(): v.decode() for k, v in txn.items(db)} | {"#": str(txn.count(db))}
        for db in DATABASES
    }


def in_lmdb(where: Path | Store) -> dict[str, dict[str, str]]:
    """What LMDB itself holds, past the store's journal: through an open store's environment
    (LMDB allows one per process), or a read-only one of a closed store's directory."""
    if isinstance(where, Store):
        assert where._env is not None
        env, close = where._env, False
    else:
        env, close = lmdb.open(str(where), max_dbs=4, readonly=True, lock=False), True
    try:
        out: dict[str, dict[str, str]] = {}
        with env.begin() as txn:
            for db in DATABASES:
                handle = env.open_db(db.encode(), txn=txn, create=False)
                out[db] = {bytes(k).decode(): bytes(v).decode() for k, v in txn.cursor(handle)}
        return out
    finally:
        if close:
            env.close()


def test_the_old_names_of_the_policies_still_read() -> None:
    assert Durability("group") is Durability.POWER_SAFE
    assert Durability("sync") is Durability.POWER_SAFE_EACH
    assert Durability("nosync") is Durability.UNSAFE
    assert Durability("crash-safe") is Durability.CRASH_SAFE
    with pytest.raises(ValueError, match="'fast'"):
        Durability("fast")


async def test_a_write_is_answered_from_the_journal_and_committed_into_lmdb_after(
    tmp_path: Path,
) -> None:
    """The write returns with its record in the journal; reads see it at once; LMDB holds it
    once flushed, and the journal's record is then forgotten."""
    with store(tmp_path) as s:
        assert await s.write(put("fills", "e1", "100")) is True
        assert (tmp_path / JOURNAL_NAME).stat().st_size > 0
        assert s.read(lambda txn: txn.get("fills", b"e1")) == b"100"
        await s.flush()
        assert s.pending == 0
        assert in_lmdb(s)["fills"] == {"e1": "100"}
        assert s.read(lambda txn: txn.get("fills", b"e1")) == b"100"
    # A clean close leaves an empty journal (everything is in LMDB, fsynced).
    assert (tmp_path / JOURNAL_NAME).stat().st_size == 0


async def test_a_write_that_raises_journals_nothing(tmp_path: Path) -> None:
    with store(tmp_path) as s:

        def doomed(txn: Txn) -> None:
            txn.put("fills", b"e1", b"1")
            raise ValueError("no")

        with pytest.raises(ValueError, match="no"):
            await s.write(doomed)
        assert s.pending == 0
        assert (tmp_path / JOURNAL_NAME).stat().st_size == 0
        assert s.read(lambda txn: txn.get("fills", b"e1")) is None


async def test_a_nested_attempt_that_raises_undoes_only_itself(tmp_path: Path) -> None:
    with store(tmp_path) as s:

        def batch(txn: Txn) -> list[str]:
            outcomes = []
            for key in ("a", "b", "c"):

                def one(child: Txn, key: str = key) -> str:
                    child.put("lots", key.encode(), b"1")
                    if key == "b":
                        raise KeyError(key)
                    assert child.get("lots", key.encode()) == b"1"
                    return key

                try:
                    outcomes.append(txn.attempt(one))
                except KeyError:
                    outcomes.append("undone")
            return outcomes

        assert await s.write(batch) == ["a", "undone", "c"]
        await s.flush()
    assert in_lmdb(tmp_path)["lots"] == {"a": "1", "c": "1"}


# A model of the store: each step is a write of puts and deletes (some of them with
# overwrite=False), checked against a plain dict after every step, while the writer thread
# commits behind it at its own pace.
keys = st.sampled_from([b"k0", b"k1", b"k2", b"k3", b"k10", b"j"])
op = st.tuples(
    st.sampled_from(DATABASES),
    st.sampled_from(["put", "put-new", "delete"]),
    keys,
    st.binary(min_size=0, max_size=8),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=st.lists(st.lists(op, min_size=1, max_size=5), min_size=1, max_size=25))
def test_reads_and_writes_see_the_journaled_writes_exactly_as_if_committed(
    tmp_path_factory: pytest.TempPathFactory, steps: list[list[tuple[str, str, bytes, bytes]]]
) -> None:
    """Through the overlay (journaled, not yet in LMDB) and LMDB, in any interleaving with the
    writer thread: every read (get, items in key order with a prefix, count) and every write's
    own reads answer as a dict model does, and a reopen holds the model."""
    folder = tmp_path_factory.mktemp("model")
    model: dict[str, dict[bytes, bytes]] = {db: {} for db in DATABASES}

    def step(changes: list[tuple[str, str, bytes, bytes]]) -> object:
        def write(txn: Txn) -> list[bool]:
            answers = []
            for db, kind, key, value in changes:
                if kind == "delete":
                    answers.append(txn.delete(db, key))
                else:
                    answers.append(txn.put(db, key, value, overwrite=kind == "put"))
            return answers

        return write

    def expected(changes: list[tuple[str, str, bytes, bytes]]) -> list[bool]:
        answers = []
        for db, kind, key, value in changes:
            table = model[db]
            if kind == "delete":
                answers.append(table.pop(key, None) is not None)
            elif kind == "put-new" and key in table:
                answers.append(False)
            else:
                table[key] = value
                answers.append(True)
        return answers

    def view(txn: Txn) -> dict[str, object]:
        return {
            db: (
                list(txn.items(db)),
                list(txn.items(db, b"k1")),
                txn.count(db),
                [txn.get(db, k) for k in (b"k0", b"k1", b"j")],
            )
            for db in DATABASES
        }

    def modelled() -> dict[str, object]:
        return {
            db: (
                sorted(model[db].items()),
                sorted((k, v) for k, v in model[db].items() if k.startswith(b"k1")),
                len(model[db]),
                [model[db].get(k) for k in (b"k0", b"k1", b"j")],
            )
            for db in DATABASES
        }

    async def run() -> None:
        with store(folder) as s:
            for i, changes in enumerate(steps):
                assert await s.write(step(changes)) == expected(changes)
                assert s.read(view) == modelled()
                if i % 7 == 3:
                    await s.flush()
                    assert s.read(view) == modelled()
        with store(folder) as s:
            assert s.read(view) == modelled()

    anyio.run(run)
    for path in folder.iterdir():
        path.unlink()


async def test_an_inline_store_reads_through_its_pending_writes(tmp_path: Path) -> None:
    """A simulation's crash-safe store commits its journaled writes a few at a time, inline:
    between those commits reads and writes go through the pending ones."""
    with store(tmp_path, inline=True) as s:
        for i in range(5):
            await s.write(put("fills", f"e{i}", str(i)))
        assert s.pending == 5
        assert in_lmdb(s)["fills"] == {}
        assert len(s.read(everything)["fills"]) == 6  # five and the count
        for i in range(5, 20):
            await s.write(put("fills", f"e{i}", str(i)))
        assert s.pending < 8
        assert len(in_lmdb(s)["fills"]) >= 16
        await s.flush()
        assert s.pending == 0
        assert len(in_lmdb(s)["fills"]) == 20


async def test_a_journal_left_by_a_crash_is_committed_at_the_next_open(tmp_path: Path) -> None:
    """What a crash leaves: records in the journal that LMDB does not hold (here written by a
    store whose process "died" before its writer thread committed them). The next open commits
    them, in order, under whatever policy it opens with, and empties the journal."""
    with store(tmp_path) as s:
        await s.write(put("lots", "first", "1"))
        await s.flush()
    # Records appended after the last committed one, as a killed process leaves them.
    with store(tmp_path, inline=True) as s:
        await s.write(put("lots", "second", "2"))
        await s.write(put("lots", "first", "changed"))
        assert s.pending == 2
        # Die here: no close, so nothing is committed into LMDB.
        s._journal = None  # what a SIGKILL leaves behind: the journal as it was
        assert s._env is not None
        s._env.close()
        s._env = None
        assert s._lock_file is not None
        os.close(s._lock_file)
        s._lock_file = None
    assert in_lmdb(tmp_path)["lots"] == {"first": "1"}
    with store(tmp_path, durability=Durability.POWER_SAFE) as s:
        assert s.replayed == 2
        assert s.read(everything)["lots"] == {"first": "changed", "second": "2", "#": "2"}
    # A store that is not crash-safe keeps no journal.
    assert not (tmp_path / JOURNAL_NAME).exists()
    with store(tmp_path) as s:
        assert s.replayed == 0


async def test_a_damaged_journal_is_refused_at_open_naming_the_record(tmp_path: Path) -> None:
    """A record damaged in the middle of the journal (good records after it) is damage, not a
    torn tail: the store refuses to open, naming the file and the byte, and writes nothing."""
    with store(tmp_path, inline=True) as s:
        for i in range(3):
            await s.write(put("fills", f"e{i}", str(i)))
        s._journal = None
        assert s._env is not None
        assert s._lock_file is not None
        s._env.close()
        s._env = None
        os.close(s._lock_file)
        s._lock_file = None
    journal = tmp_path / JOURNAL_NAME
    data = bytearray(journal.read_bytes())
    data[25] ^= 0xFF  # inside the first record's payload
    journal.write_bytes(bytes(data))
    with pytest.raises(StoreDamaged, match=rf"{JOURNAL_NAME}.*record at byte 0"):
        store(tmp_path).open()
    assert journal.read_bytes() == bytes(data)
    assert in_lmdb(tmp_path)["fills"] == {}


async def test_a_commit_that_fails_on_the_writer_thread_is_raised_and_loses_nothing(
    tmp_path: Path,
) -> None:
    """The map fills up while the writer thread commits journaled writes that were answered:
    the failure is raised by every write after it (``failure``), nothing after it is
    committed out of order, and a reopen with a larger map commits every answered write."""
    with store(tmp_path, map_size=256 * 1024) as s:
        await s.write(put("lots", "keep", "me"))
        answered = 0
        refused: StoreFull | None = None
        for i in range(10_000):

            def big(txn: Txn, i: int = i) -> None:
                txn.put("fills", f"{i:08}".encode(), b"x" * 2000)

            try:
                await s.write(big)
            except StoreFull as exc:
                refused = exc
                break
            answered += 1
            if s.failure is None and i % 50 == 49:
                await anyio.sleep(0.01)
        assert refused is not None, "the map never filled up"
        assert isinstance(s.failure, StoreFull)
        with pytest.raises(StoreFull):
            await s.write(put("lots", "after", "failure"))
        with pytest.raises(StoreFull):
            await s.flush()
        # Reads still answer, journaled writes included.
        assert s.read(lambda txn: txn.count("fills")) == answered
    # The same store object opened again (a lot-keeper's successor does that) with room:
    # the failure was the last open's, and the journal is replayed.
    s.map_size = 64 << 20
    with s:
        assert s.failure is None
        assert s.replayed > 0
        assert s.read(lambda txn: txn.count("fills")) == answered
    with store(tmp_path, map_size=64 << 20) as s:
        assert s.replayed == 0
        assert s.read(lambda txn: txn.count("fills")) == answered
        assert s.read(lambda txn: txn.get("lots", b"keep")) == b"me"
        assert s.read(lambda txn: txn.get("lots", b"after")) is None


def test_reading_from_a_store_that_is_not_crash_safe_with_write_now_is_an_error(
    tmp_path: Path,
) -> None:
    with (
        store(tmp_path, durability=Durability.POWER_SAFE) as s,
        pytest.raises(StoreError, match="not open with a redo journal"),
    ):
        s.write_now(put("fills", "e", "1"))  # type: ignore[arg-type]


WRITER = """
import sys
from runtime.store import Durability, Store

def put(i):
    def write(txn):
        txn.put("fills", b"e%06d" % i, b"%d" % i)
    return write

async def main():
    with Store(sys.argv[1], databases=("fills", "lots"), schema_version=1,
               durability=Durability.CRASH_SAFE) as store:
        i = 0
        while True:
            await store.write(put(i))
            print(i, flush=True)
            i += 1

import anyio
anyio.run(main)
"""


@pytest.mark.parametrize("after", [1, 50, 2000])
def test_every_answered_write_survives_a_sigkill(tmp_path: Path, after: int) -> None:
    """A process writes as fast as it can and prints each write once answered; SIGKILL after
    ``after`` lines: the next open holds every write that was answered (at most one more)."""
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert child.stdout is not None
    reported = []
    for _ in range(after):
        line = child.stdout.readline()
        assert line, "the writer died on its own"
        reported.append(int(line))
    child.send_signal(signal.SIGKILL)
    child.wait()
    reported += [int(line) for line in child.stdout.read().split()]
    child.stdout.close()
    with store(tmp_path) as s:
        held = s.read(lambda txn: [int(v) for _, v in txn.items("fills")])
    assert held[: len(reported)] == reported
    assert len(held) - len(reported) <= 1
