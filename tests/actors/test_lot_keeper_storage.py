"""The lot-keeper when the storage under it fails: a damaged record or a disk that refuses
writes stops the tree at once with the reason, instead of a restart loop."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from actors.lot_keeper import (
    CommitIntent,
    LedgerDamaged,
    LedgerUnwritable,
    LoadLedger,
    LotKeeper,
    ledger_store,
)
from runtime import ActorCell, ActorCrashed
from runtime.store import Store
from supervisors import ChildSpec, ChildUnrecoverable, Supervisor, SupervisorSpec
from tests.ledgers import fill_disk, fill_ledger, order, small_disk

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Real clocks on both backends: the store's writer thread does real disk work."""
    return request.param, ({"use_uvloop": True} if request.param == "asyncio" else {})


def tree(store: Store) -> tuple[Supervisor, ActorCell[Any]]:
    cell: ActorCell[Any] = ActorCell("lot-keeper", lambda: LotKeeper(store))
    return Supervisor(
        "root", SupervisorSpec(children=[ChildSpec(id="lot-keeper", start=cell)])
    ), cell


async def test_a_record_damaged_while_running_stops_the_tree_naming_the_record(
    tmp_path: Path,
) -> None:
    """An intent that stops decoding while the service runs (here overwritten through the
    store, as a bad disk would): the lot-keeper's read raises LedgerDamaged naming
    ``intents/<key>``, its requester gets ActorCrashed, and the root stops at once without a
    restart (before: a restart loop every 30 s, each symbol actor timing out on LoadLedger)."""
    await fill_ledger(tmp_path, orders=3)
    store = ledger_store(tmp_path)
    root, cell = tree(store)
    key = order(1).ref.encode()
    crashed: list[ActorCrashed] = []
    with anyio.fail_after(20), pytest.RaisesGroup(ChildUnrecoverable) as info:
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await store.write(lambda txn: txn.put("intents", key, b'{"order": 1}'))
            try:
                await cell.ref.request(LoadLedger(), timeout=10)
            except ActorCrashed as exc:
                crashed.append(exc)
                await anyio.sleep_forever()  # until the root's escalation cancels us
    (error,) = info.value.exceptions
    damaged = error.__cause__
    assert isinstance(damaged, LedgerDamaged)
    assert isinstance(crashed[0].__cause__, LedgerDamaged)
    assert f"ledger damaged: {tmp_path}: record intents/{key.decode()!r} does not decode" in str(
        damaged
    )
    assert root.restarts == 0
    assert cell.incarnation == 1
    store.close()  # a crashed lot-keeper leaves it open (for its successor); the process exits


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


async def test_a_full_disk_stops_the_tree_at_once_keeping_every_committed_intent(
    disk: Path,
) -> None:
    """ENOSPC under the ledger (a 2 MiB tmpfs filled up): the intent that does not fit is
    LedgerUnwritable, the root stops without a restart (before: a crash loop every 5 s,
    forever), and every intent committed before is still there."""
    store = ledger_store(disk / "ledger")
    root, cell = tree(store)
    committed: list[str] = []
    with anyio.fail_after(30), pytest.RaisesGroup(ChildUnrecoverable) as info:
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            fill_disk(disk, leave=96 * 1024)
            for n in range(10_000):
                intent = attrs.evolve(order(n), ref=f"grid:TQQQ:L1:BUY:{n}:1")
                try:
                    await cell.ref.request(CommitIntent(order=intent), timeout=10)
                except ActorCrashed:
                    await anyio.sleep_forever()
                committed.append(intent.ref)
    (error,) = info.value.exceptions
    unwritable = error.__cause__
    assert isinstance(unwritable, LedgerUnwritable)
    message = str(unwritable)
    # LMDB reports a full disk as ENOSPC, or as EIO when its write came up short: which one
    # depends on how the last records fall on the pages (runtime.store._errno_of).
    assert "No space left on device" in message or "Input/output error" in message
    # The handler whose write failed says which it was; the lot-keeper's failure poll
    # (every FAILURE_POLL s) may see the writer thread's failure first on a loaded machine.
    assert "CommitIntent was not stored" in message or "a journaled write was not stored" in message
    assert "free space on (or repair) that disk and start again" in message
    assert 0 < len(committed) < 10_000
    assert root.restarts == 0
    store.close()
    (disk / "filler").unlink()
    with ledger_store(disk / "ledger") as reopened:
        kept = reopened.read(lambda txn: sorted(k.decode() for k, _ in txn.items("intents")))
    assert kept == sorted(committed)
