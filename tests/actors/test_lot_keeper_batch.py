"""The lot-keeper's batches over a real LMDB store: requests queued together share one commit,
each answered after it with the reply it would get alone, in arrival order; a refused request
undoes only itself, and a batch a fault aborts keeps none of it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from actors import ledger
from actors.domain import OrderFilled, PlaceOrder, Side, TimeInForce
from actors.lot_keeper import (
    MAX_BATCH,
    CommitIntent,
    Conflicted,
    LedgerFull,
    LedgerState,
    LoadLedger,
    LotKeeper,
    LotKeeperInbox,
    RecordFill,
    Refused,
    SaveSnapshot,
    ledger_store,
)
from app.chaos.faults import Arms, ChaosKill, ChaosStore
from app.chaos.plan import Kind
from runtime import ActorCell, ActorCrashed
from runtime.store import Durability, Store
from supervisors import ChildSpec, ChildUnrecoverable, Supervisor, SupervisorSpec

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Real clocks on both backends: the store's writer thread does real disk work."""
    return request.param, ({"use_uvloop": True} if request.param == "asyncio" else {})


def buy(symbol: str, shares: int = 10) -> PlaceOrder:
    return PlaceOrder(
        ref=f"grid:{symbol}:L1:BUY:1:1",
        symbol=symbol,
        side=Side.BUY,
        quantity=shares,
        limit=Decimal("50.00"),
        tif=TimeInForce.DAY,
    )


def fill(order: PlaceOrder, n: int, price: str = "50.00") -> RecordFill:
    return RecordFill(
        fill=OrderFilled(
            ref=order.ref, exec_id=f"{order.symbol}.{n}", quantity=1, price=Decimal(price)
        )
    )


def keeper(store: Store) -> ActorCell[LotKeeperInbox]:
    return ActorCell("lot-keeper", lambda: LotKeeper(store))


@contextlib.asynccontextmanager
async def burst(
    cell: ActorCell[LotKeeperInbox],
    messages: Sequence[LotKeeperInbox],
    *,
    root: Supervisor | None = None,
    replies: list[object] | None = None,
    on_reply: Any = None,
) -> AsyncIterator[list[object]]:
    """Queue every message as a request, in order, while the lot-keeper is not running yet,
    then start it (under ``root``, or its cell alone), so that it finds the whole burst queued;
    yields each request's reply (or the ``ActorCrashed`` it raised), in order, once all are in,
    with the lot-keeper still running; stops it on leaving."""
    replies = replies if replies is not None else []
    replies[:] = [None] * len(messages)
    answered = anyio.Event()

    async def ask(index: int, message: LotKeeperInbox) -> None:
        try:
            replies[index] = await cell.ref.request(message, timeout=10)
        except ActorCrashed as exc:
            replies[index] = exc
        if on_reply is not None:
            on_reply(index, replies[index])
        if all(r is not None for r in replies):
            answered.set()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for index, message in enumerate(messages):
                tg.start_soon(ask, index, message)
                await anyio.wait_all_tasks_blocked()  # queued before the next one
            assert len(cell.mailbox) == len(messages)
            await tg.start(cell.run if root is None else root.run)
            await answered.wait()
            yield replies
            if root is None:
                cell.request_stop()
            else:
                root.stop()


def keeper_tree(store: Store) -> tuple[Supervisor, ActorCell[LotKeeperInbox]]:
    cell = keeper(store)
    root = Supervisor("root", SupervisorSpec(children=[ChildSpec(id="lot-keeper", start=cell)]))
    return root, cell


async def test_a_burst_of_fills_shares_one_commit_and_each_sender_gets_its_reply(
    tmp_path: Path,
) -> None:
    """64 intents and their fills queued together: one commit for all 128, each request answered
    True, and each answer comes only once the write it answers is committed."""
    store = ledger_store(tmp_path, durability=Durability.POWER_SAFE)
    cell = keeper(store)
    orders = [buy(f"S{n:02d}") for n in range(64)]
    messages: list[LotKeeperInbox] = [CommitIntent(order=o) for o in orders]
    messages += [fill(o, 0) for o in orders]
    seen_on_reply: list[bool] = []

    def check(index: int, _reply: object) -> None:
        # Whoever is answered can already read its write in a fresh read transaction.
        message = messages[index]
        if isinstance(message, RecordFill):
            key = message.fill.exec_id.encode()
            seen_on_reply.append(store.read(lambda txn: txn.get("fills", key) is not None))

    async with burst(cell, messages, on_reply=check) as replies:
        pass
    assert replies == [True] * 128
    assert seen_on_reply == [True] * 64
    assert store.commits == 1
    assert store.writes == 1
    with ledger_store(tmp_path, durability=Durability.POWER_SAFE) as reopened:
        fills = reopened.read(lambda txn: list(ledger.fills(txn)))
    assert sorted(f.exec_id for f in fills) == sorted(f"S{n:02d}.0" for n in range(64))


async def test_each_request_of_a_batch_gets_the_reply_it_would_get_alone(tmp_path: Path) -> None:
    """New, duplicate, refused and conflicting requests in one batch: each gets its own answer;
    the refused and conflicting ones undo only themselves, the conflict is on record, and the
    requests after them are committed."""
    store = ledger_store(tmp_path, durability=Durability.POWER_SAFE)
    cell = keeper(store)
    a, b = buy("AAA"), buy("BBB")
    orphan = buy("ZZZ")  # no intent: its fill is refused
    messages: list[LotKeeperInbox] = [
        CommitIntent(order=a),
        fill(a, 1),
        fill(a, 1),  # the same execution again: a no-op
        fill(orphan, 1),
        fill(a, 1, price="51.00"),  # the same execId with other facts
        CommitIntent(order=attrs.evolve(a, quantity=3)),  # a reused ref: refused
        CommitIntent(order=b),
        fill(b, 1),
        LoadLedger(),
    ]
    async with burst(cell, messages) as replies:
        pass
    assert replies[:4] == [True, True, False, replies[3]]
    assert isinstance(replies[3], Refused)
    assert "has no intent" in replies[3].reason
    assert isinstance(replies[4], Conflicted)
    assert replies[4].conflict.exec_id == "AAA.1"
    assert isinstance(replies[5], Refused)
    assert replies[6:8] == [True, True]
    state = replies[8]
    assert isinstance(state, LedgerState)
    # The read taken behind the writes sees every one of them.
    assert {i.ref for i in state.intents} == {a.ref, b.ref}
    assert sorted(f.exec_id for f in state.fills) == ["AAA.1", "BBB.1"]
    assert [c.exec_id for c in state.conflicts] == ["AAA.1"]
    assert next(i for i in state.intents if i.ref == a.ref).order == a
    assert store.commits == 1


async def test_a_read_queued_between_writes_sees_those_before_it_only(tmp_path: Path) -> None:
    """Arrival order: a LoadLedger queued after one write and before another sees the first."""
    store = ledger_store(tmp_path, durability=Durability.POWER_SAFE)
    cell = keeper(store)
    a, b = buy("AAA"), buy("BBB")
    messages: list[LotKeeperInbox] = [
        CommitIntent(order=a),
        LoadLedger(),
        CommitIntent(order=b),
        LoadLedger(),
    ]
    async with burst(cell, messages) as replies:
        pass
    first, second = replies[1], replies[3]
    assert isinstance(first, LedgerState)
    assert isinstance(second, LedgerState)
    assert [i.ref for i in first.intents] == [a.ref]
    assert {i.ref for i in second.intents} == {a.ref, b.ref}


async def test_a_sync_store_keeps_one_commit_per_request(tmp_path: Path) -> None:
    """``sync`` promises an fsync per write: the lot-keeper does not group there."""
    store = ledger_store(tmp_path, durability=Durability.POWER_SAFE_EACH)
    cell = keeper(store)
    orders = [buy(f"S{n}") for n in range(5)]
    async with burst(cell, [CommitIntent(order=o) for o in orders]) as replies:
        pass
    assert replies == [True] * 5
    assert store.commits == 5


async def test_a_burst_larger_than_a_batch_is_split(tmp_path: Path) -> None:
    """No batch holds more than ``MAX_BATCH`` requests: the rest form the next one."""
    store = ledger_store(tmp_path, durability=Durability.POWER_SAFE)
    cell = keeper(store)
    orders = [buy(f"S{n:03d}") for n in range(MAX_BATCH + 3)]
    async with burst(cell, [CommitIntent(order=o) for o in orders]) as replies:
        pass
    assert replies == [True] * len(orders)
    assert store.commits == 2  # a full batch, then the 3 left


async def test_a_batch_aborted_mid_transaction_keeps_none_of_it(tmp_path: Path) -> None:
    """The chaos campaign's ``store-abort`` on a batch: the lot-keeper dies inside the
    transaction, every request of the batch fails, none of it is on disk, and the restarted
    lot-keeper answers the next requests."""
    arms = Arms(writes=(1, Kind.STORE_ABORT))
    root, cell = keeper_tree(ChaosStore(tmp_path, arms))
    orders = [buy(f"S{n}") for n in range(6)]
    async with burst(cell, [CommitIntent(order=o) for o in orders], root=root) as replies:
        state = await cell.ref.request(LoadLedger(), timeout=10)
        again = await cell.ref.request(CommitIntent(order=orders[0]), timeout=10)
    assert arms.fired[str(Kind.STORE_ABORT)] == 1
    assert all(isinstance(r, ActorCrashed) for r in replies)
    assert all(isinstance(r.__cause__, ChaosKill) for r in replies if isinstance(r, Exception))
    assert cell.restarts == 1
    assert isinstance(state, LedgerState)
    assert state.intents == ()
    assert again is True


async def test_a_batch_killed_after_its_commit_keeps_all_of_it(tmp_path: Path) -> None:
    """``store-after-commit`` on a batch: every request fails (no reply was sent) and every one
    of them is on disk, whole."""
    arms = Arms(writes=(1, Kind.STORE_AFTER_COMMIT))
    root, cell = keeper_tree(ChaosStore(tmp_path, arms))
    orders = [buy(f"S{n}") for n in range(6)]
    async with burst(cell, [CommitIntent(order=o) for o in orders], root=root) as replies:
        state = await cell.ref.request(LoadLedger(), timeout=10)
    assert arms.fired[str(Kind.STORE_AFTER_COMMIT)] == 1
    assert all(isinstance(r, ActorCrashed) for r in replies)
    assert isinstance(state, LedgerState)
    assert sorted(i.ref for i in state.intents) == sorted(o.ref for o in orders)


async def test_a_full_map_mid_batch_keeps_what_came_before_and_stops_the_service(
    tmp_path: Path,
) -> None:
    """A write that does not fit in the map, in the middle of a batch: the requests before it
    are committed and answered, it and those after it fail, the service stops (``LedgerFull``)
    instead of restarting, and the disk holds exactly the answered ones."""
    store = ledger_store(tmp_path, durability=Durability.POWER_SAFE, map_size=256 * 1024)
    root, cell = keeper_tree(store)
    small = [buy(f"S{n}") for n in range(3)]
    messages: list[LotKeeperInbox] = [CommitIntent(order=o) for o in small]
    messages += [
        SaveSnapshot(actor="huge", data=b"x" * 400_000),
        CommitIntent(order=buy("LATE")),
    ]
    replies: list[object] = []
    with pytest.RaisesGroup(ChildUnrecoverable) as info:
        async with burst(cell, messages, root=root, replies=replies):
            await anyio.sleep_forever()  # until the root stops on the unrecoverable error
    (error,) = info.value.exceptions
    assert isinstance(error.__cause__, LedgerFull)
    assert replies[:3] == [True, True, True]
    assert all(isinstance(r, ActorCrashed) for r in replies[3:])
    assert cell.restarts == 0
    store.close()
    with ledger_store(tmp_path, durability=Durability.POWER_SAFE, map_size=256 * 1024) as reopened:
        kept = reopened.read(lambda txn: sorted(i.ref for i in ledger.intents(txn)))
    assert kept == sorted(o.ref for o in small)
