"""A damaged ledger is refused at open with a message naming what is wrong, never mapped into a
SIGBUS; a record that does not decode is found at open; a disk that refuses writes is an error
of its own (``StoreUnwritable``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from actors import ledger
from actors.lot_keeper import ledger_store
from runtime import _lmdbfile
from runtime._lmdbfile import MAGIC, check_data_file, read_metas
from runtime.store import RecordDamaged, Store, StoreDamaged, StoreUnwritable
from tests.ledgers import corrupt_record, damage, fill_disk, fill_ledger, small_disk

pytestmark = pytest.mark.anyio

ADVICE = ": restore from a backup (actorctl backup) or start empty and reconcile"


async def test_the_header_offsets_are_those_lmdb_reports_for_a_real_ledger(tmp_path: Path) -> None:
    """The meta fields read with pread (page size, last page, txnid) are those py-lmdb reports
    for the same file, and the file holds every page up to the last."""
    await fill_ledger(tmp_path)
    data = tmp_path / "data.mdb"
    first, second = read_metas(data)
    newest, older = (second, first) if second.txnid > first.txnid else (first, second)
    env = lmdb.open(str(tmp_path), max_dbs=8, readonly=True, lock=False)
    try:
        info, stat = env.info(), env.stat()
    finally:
        env.close()
    assert newest.psize == older.psize == stat["psize"] == 4096
    assert newest.last_pg == info["last_pgno"]
    assert newest.txnid == info["last_txnid"]
    assert older.txnid == newest.txnid - 1
    assert data.stat().st_size >= (newest.last_pg + 1) * newest.psize
    assert int.from_bytes(data.read_bytes()[16:20], "little") == MAGIC
    assert check_data_file(data) is None


@pytest.mark.parametrize(
    ("how", "problem"),
    [
        ("half", r"needs page \d+, past its end \(it uses pages up to \d+, \d+ bytes\)"),
        ("4k", r"the file is 4096 bytes, shorter than its two meta pages \(8192 bytes"),
        ("meta-flip", r"meta page 0 has magic 0xbeefc021, not LMDB's 0xbeefc0de"),
        ("zeroed", r"page 0 is not a meta page \(flags 0x0000\)"),
        ("empty", r"the file is empty \(0 bytes\)"),
    ],
)
async def test_a_damaged_data_file_is_refused_at_open_naming_what_is_wrong(
    tmp_path: Path, how: str, problem: str
) -> None:
    """Cut to half (a SIGBUS before), to 4 KiB, a flipped meta byte, zeroed (lmdb tracebacks
    before), emptied (silently a new, empty ledger before): StoreDamaged, nothing mapped."""
    await fill_ledger(tmp_path)
    damage(tmp_path, how)
    size = (tmp_path / "data.mdb").stat().st_size
    store = ledger_store(tmp_path)
    with pytest.raises(StoreDamaged, match=problem) as info:
        store.open()
    message = str(info.value)
    assert message.startswith(f"ledger damaged: {tmp_path / 'data.mdb'}: ")
    assert message.endswith(ADVICE)
    assert not store.is_open
    assert (tmp_path / "data.mdb").stat().st_size == size  # nothing written to it


async def test_a_root_page_beyond_the_last_page_is_refused(tmp_path: Path) -> None:
    """A flipped byte in the newest meta's main root points outside the file: refused (LMDB
    would look for the page anywhere in its map)."""
    await fill_ledger(tmp_path)
    data = tmp_path / "data.mdb"
    first, second = read_metas(data)
    newest = 1 if second.txnid > first.txnid else 0
    content = bytearray(data.read_bytes())
    content[newest * first.psize + 88 + 40 + 3] ^= 0xFF  # MDB_meta.mm_dbs[MAIN_DBI].md_root
    data.write_bytes(bytes(content))
    with pytest.raises(StoreDamaged, match=r"the main database's root is page \d+, outside"):
        ledger_store(tmp_path).open()


async def test_lmdb_refusing_an_environment_at_open_is_damage_with_the_same_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the header check lets through, LMDB's own refusal (InvalidError here) is
    rendered as StoreDamaged, not a traceback."""
    await fill_ledger(tmp_path)
    damage(tmp_path, "meta-flip")
    monkeypatch.setattr("runtime.store.check_data_file", lambda _path: None)
    with pytest.raises(StoreDamaged, match="LMDB refuses it: InvalidError") as info:
        ledger_store(tmp_path).open()
    assert str(info.value).endswith(ADVICE)


def test_a_file_shorter_than_its_last_page_opens_when_only_free_pages_are_missing(
    tmp_path: Path,
) -> None:
    """LMDB does not write pages a transaction allocated and freed again, so a sound file can
    end before its meta's last page (mdb.c says so on mm_last_pg): every reachable page is
    there, LMDB reads it, and so does the store. One reachable page cut off is damage."""
    env = lmdb.open(str(tmp_path), max_dbs=4)
    db = env.open_db(b"x")
    with env.begin(write=True) as txn:
        for n in range(20):
            txn.put(b"base%05d" % n, b"v" * 100, db=db)
    with env.begin(write=True) as txn:  # leaves free pages for the next one to reuse
        txn.put(b"big", os.urandom(8192), db=db)
        txn.delete(b"big", db=db)
    with env.begin(write=True) as txn:  # overflow pages allocated, committed, then freed
        child = env.begin(write=True, parent=txn)
        child.put(b"big3", os.urandom(50_000), db=db)
        child.commit()
        txn.delete(b"big3", db=db)
    env.close()
    data = tmp_path / "data.mdb"
    newest = max(read_metas(data), key=lambda meta: meta.txnid)
    assert data.stat().st_size < (newest.last_pg + 1) * newest.psize
    assert check_data_file(data) is None
    with Store(tmp_path, databases=("x",), schema_version=1) as store:
        assert len(store.read(lambda txn: list(txn.items("x")))) == 20
    shutil.copy(data, tmp_path / "whole")
    data.write_bytes((tmp_path / "whole").read_bytes()[: 4 * newest.psize])
    assert "past its end" in (check_data_file(data) or "")


async def test_a_record_that_does_not_decode_is_refused_at_open_naming_its_database_and_key(
    tmp_path: Path,
) -> None:
    """An intent whose origin is not one the ledger knows (written with raw LMDB): the ledger's
    check finds it at open and names it; the store stays closed."""
    await fill_ledger(tmp_path, orders=5)
    key = corrupt_record(tmp_path)
    store = ledger_store(tmp_path)
    with pytest.raises(RecordDamaged) as info:
        store.open()
    assert info.value.database == "intents"
    assert info.value.key == key
    assert f"record intents/{key.decode()!r} does not decode (Invalid enum value 'bogus'" in str(
        info.value
    )
    assert str(info.value).startswith(f"ledger damaged: {tmp_path}: ")
    assert not store.is_open


async def test_reading_a_damaged_record_names_it_instead_of_a_decode_error(
    tmp_path: Path,
) -> None:
    """Damage found after open (a store without the check): the ledger's reads raise
    RecordDamaged naming the record, which the lot-keeper turns into a stop."""
    await fill_ledger(tmp_path, orders=5)
    key = corrupt_record(tmp_path)
    with (
        Store(tmp_path, databases=ledger.DATABASES, schema_version=ledger.SCHEMA_VERSION) as store,
        pytest.raises(RecordDamaged, match="does not decode") as info,
    ):
        store.read(ledger.intents)
    assert (info.value.database, info.value.key) == ("intents", key)


def test_the_header_check_only_runs_where_the_offsets_are_known() -> None:
    """64-bit little-endian (this machine); elsewhere nothing is checked rather than misread."""
    assert _lmdbfile.SUPPORTED


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    mount = small_disk(tmp_path / "disk")
    try:
        where = mount.__enter__()
    except PermissionError as exc:
        pytest.skip(f"needs a small file system to fill: {exc}")
    try:
        yield where
    finally:
        mount.__exit__(None, None, None)


async def test_a_full_disk_is_store_unwritable_and_keeps_what_was_committed(disk: Path) -> None:
    """A real ENOSPC (a 2 MiB tmpfs filled up): the write that does not fit raises
    StoreUnwritable naming the store; every earlier write is still there."""
    store = Store(disk / "ledger", databases=("x",), schema_version=1)
    written = 0
    refused: StoreUnwritable | None = None
    with store:
        fill_disk(disk, leave=64 * 1024)
        for n in range(10_000):
            try:
                await store.write(lambda txn, n=n: txn.put("x", b"%06d" % n, b"v" * 3000))
            except StoreUnwritable as exc:
                refused = exc
                break
            written += 1
        assert refused is not None, "the disk never filled up"
        assert "No space left on device" in str(refused)
        assert str(disk / "ledger") in str(refused)
        assert 0 < written < 10_000
        assert len(store.read(lambda txn: list(txn.items("x")))) == written


@pytest.mark.parametrize(
    "error",
    [
        lmdb.DiskError("mdb_txn_commit: No space left on device"),
        lmdb.Error("mdb_txn_commit: Input/output error"),
        lmdb.Error("mdb_txn_commit", 30),
        OSError(28, "No space left on device"),
    ],
    ids=["ENOSPC", "EIO", "EROFS-cffi", "OSError"],
)
def test_a_commit_the_disk_refuses_is_unwritable_whichever_way_lmdb_says_it(
    tmp_path: Path, error: BaseException
) -> None:
    """A full disk often comes back from LMDB as EIO (its write came up short), and py-lmdb
    keeps no errno for that: the message is read. Each is StoreUnwritable."""
    translated = Store(tmp_path, databases=("x",), schema_version=1)._translate(error)
    assert isinstance(translated, StoreUnwritable)
    assert translated.path == tmp_path
