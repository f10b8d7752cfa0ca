"""The LMDB store, on a real disk, on both backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from runtime.store import Durability, Store, StoreError, StoreFull, StoreLocked, Txn

pytestmark = pytest.mark.anyio


def store(path: Path, **kwargs: object) -> Store:
    return Store(path, databases=("fills", "lots"), schema_version=1, **kwargs)  # type: ignore[arg-type]


def put(db: str, key: str, value: str) -> object:
    def write(txn: Txn) -> bool:
        return txn.put(db, key.encode(), value.encode())

    return write


def get_all(db: str) -> object:
    def read(txn: Txn) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in txn.items(db)}

    return read


@pytest.mark.parametrize("durability", list(Durability))
async def test_a_completed_write_is_there_after_reopening(
    tmp_path: Path, durability: Durability
) -> None:
    """Whatever the policy, a write that returned is read back by the next process."""
    with store(tmp_path, durability=durability) as s:
        assert await s.write(put("fills", "e1", "100")) is True
    with store(tmp_path, durability=durability) as s:
        assert s.read(get_all("fills")) == {"e1": "100"}


async def test_concurrent_writes_are_grouped_and_each_is_committed(tmp_path: Path) -> None:
    """Many writers at once: fewer commits than writes (group commit), every write stored."""
    with store(tmp_path) as s:
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(s.write, put("fills", f"e{i:03}", str(i)))
        assert s.writes == 200
        assert s.commits < 200
        assert len(s.read(get_all("fills"))) == 200


async def test_sync_durability_commits_each_write_on_its_own(tmp_path: Path) -> None:
    """SYNC: one commit (and fsync) per write."""
    with store(tmp_path, durability=Durability.POWER_SAFE_EACH) as s:
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(s.write, put("fills", f"e{i}", "x"))
        assert (s.writes, s.commits) == (20, 20)


async def test_a_write_that_raises_leaves_no_trace_and_spares_its_batch(tmp_path: Path) -> None:
    """A failing write is undone whole; writes grouped with it are kept."""

    def half_then_fail(txn: Txn) -> None:
        txn.put("lots", b"half", b"written")
        raise ValueError("bad lot")

    with store(tmp_path) as s:
        results: dict[str, object] = {}

        async def attempt(name: str, fn: object) -> None:
            try:
                results[name] = await s.write(fn)  # type: ignore[arg-type]
            except ValueError as exc:
                results[name] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(attempt, "before", put("lots", "a", "1"))
            tg.start_soon(attempt, "bad", half_then_fail)
            tg.start_soon(attempt, "after", put("lots", "b", "2"))
        assert isinstance(results["bad"], ValueError)
        assert s.read(get_all("lots")) == {"a": "1", "b": "2"}


async def test_put_without_overwrite_keeps_the_first_value(tmp_path: Path) -> None:
    """The primitive for exactly-once records (fills keyed by execId)."""

    def once(txn: Txn) -> bool:
        return txn.put("fills", b"exec-1", b"first", overwrite=False)

    with store(tmp_path) as s:
        assert await s.write(once) is True
        assert await s.write(once) is False


async def test_a_full_map_is_a_clear_error_and_loses_nothing_stored(tmp_path: Path) -> None:
    """Map full: the write fails with StoreFull naming the setting; earlier data intact."""
    with store(tmp_path, map_size=256 * 1024) as s:
        await s.write(put("lots", "keep", "me"))

        def too_big(txn: Txn) -> None:
            for i in range(10_000):
                txn.put("fills", f"{i:08}".encode(), b"x" * 200)

        with pytest.raises(
            StoreFull,
            match=r"map is full .* nothing of this write was stored; the map must be made larger",
        ):
            await s.write(too_big)
        assert s.read(get_all("lots")) == {"keep": "me"}
        assert s.read(lambda txn: txn.count("fills")) == 0
        await s.write(put("lots", "still", "works"))
    with store(tmp_path, map_size=256 * 1024) as s:
        assert s.read(get_all("lots")) == {"keep": "me", "still": "works"}


HOLDER = """
import sys
from runtime.store import Store
with Store(sys.argv[1], databases=("fills", "lots"), schema_version=1):
    print("ready", flush=True)
    sys.stdin.read()
"""


def test_a_second_process_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    """One process per data directory: the second gets StoreLocked naming the holder's pid."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(
            StoreLocked, match=rf"in use by another actortrade process \(pid {holder.pid}\)"
        ):
            store(tmp_path).open()
    finally:
        holder.communicate(timeout=30)
    with store(tmp_path):
        pass


async def test_the_schema_version_is_kept_and_migrations_run_once(tmp_path: Path) -> None:
    """Opening with a newer schema runs the missing migrations in order, then records it."""
    with store(tmp_path) as s:
        await s.write(put("lots", "old", "format"))
    ran: list[int] = []

    def v1_to_v2(txn: Txn) -> None:
        ran.append(1)
        txn.put("lots", b"old", b"migrated")

    def v2_to_v3(txn: Txn) -> None:
        ran.append(2)

    migrations = {1: v1_to_v2, 2: v2_to_v3}
    with Store(tmp_path, databases=("fills", "lots"), schema_version=3, migrations=migrations) as s:
        assert s.read(get_all("lots")) == {"old": "migrated"}
    with Store(tmp_path, databases=("fills", "lots"), schema_version=3, migrations=migrations):
        pass
    assert ran == [1, 2]
    with pytest.raises(StoreError, match=r"newer actortrade \(schema 3"):
        store(tmp_path).open()


async def test_backup_writes_a_consistent_copy_that_opens(tmp_path: Path) -> None:
    """backup() copies the environment compacted; the copy reads the same data."""
    with store(tmp_path / "live") as s:
        for i in range(50):
            await s.write(put("fills", f"e{i:02}", str(i)))
        s.backup(tmp_path / "copy")
        with pytest.raises(StoreError, match="not empty"):
            s.backup(tmp_path / "copy")
    with store(tmp_path / "copy") as copy:
        assert len(copy.read(get_all("fills"))) == 50


async def test_writing_to_a_closed_store_is_an_error(tmp_path: Path) -> None:
    """A clear error, not a hang."""
    s = store(tmp_path)
    with pytest.raises(StoreError, match="is not open"):
        await s.write(put("fills", "x", "y"))
