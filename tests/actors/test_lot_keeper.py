"""The lot-keeper actor over a real LMDB store: write-ahead intents, exactly-once fills, lots
derived from facts, and state that survives the actor's crash and restart."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import attrs
import msgspec
import pytest

from actors import ledger
from actors.domain import OrderFilled, PlaceOrder, PriceCondition, Side, TimeInForce
from actors.ledger import Binding
from actors.lot_keeper import (
    AcknowledgeConflicts,
    BindOrder,
    CommitIntent,
    Conflicted,
    Heal,
    LedgerFull,
    LedgerState,
    LoadLedger,
    LoadSnapshot,
    LotKeeper,
    RecordFill,
    Refused,
    SaveSnapshot,
    ledger_store,
)
from runtime import ActorCell, ActorCrashed
from supervisors import ChildSpec, ChildUnrecoverable, Supervisor, SupervisorSpec

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Real clocks on both backends: the store's writer thread does real disk work, and trio's
    autojumping MockClock would jump past it straight to the request timeouts."""
    return request.param, ({"use_uvloop": True} if request.param == "asyncio" else {})


BUY = PlaceOrder(
    ref="grid:TQQQ:L1:BUY:2:1",
    symbol="TQQQ",
    side=Side.BUY,
    quantity=95,
    limit=Decimal("99.00"),
    tif=TimeInForce.GTC,
    condition=PriceCondition(trigger=Decimal("99.00")),
)
SELL = PlaceOrder(
    ref="grid:TQQQ:L1:SELL:2:1",
    symbol="TQQQ",
    side=Side.SELL,
    quantity=95,
    limit=Decimal("99.99"),
    tif=TimeInForce.GTC,
)


def fill(ref: str, exec_id: str, quantity: int, price: str) -> RecordFill:
    return RecordFill(
        fill=OrderFilled(ref=ref, exec_id=exec_id, quantity=quantity, price=Decimal(price))
    )


def tree(path: Path) -> tuple[Supervisor, ActorCell[object]]:
    store = ledger_store(path)
    cell: ActorCell[object] = ActorCell("lot-keeper", lambda: LotKeeper(store))  # type: ignore[arg-type]
    return Supervisor(
        "root", SupervisorSpec(children=[ChildSpec(id="lot-keeper", start=cell)])
    ), cell


async def test_an_intent_is_committed_once_and_a_reused_ref_is_refused(tmp_path: Path) -> None:
    """Write-ahead: the same intent twice is a no-op; a different order under its ref is refused."""
    root, keeper = tree(tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        assert await keeper.ref.request(CommitIntent(order=BUY), timeout=10) is True
        assert await keeper.ref.request(CommitIntent(order=BUY), timeout=10) is False
        changed = CommitIntent(
            order=PlaceOrder(
                ref=BUY.ref,
                symbol="TQQQ",
                side=Side.BUY,
                quantity=1,
                limit=BUY.limit,
                tif=BUY.tif,
                condition=BUY.condition,
            )
        )
        reply = await keeper.ref.request(changed, timeout=10)
        assert isinstance(reply, Refused)
        assert "already names a different intent" in reply.reason
        root.stop()


async def test_each_execution_is_recorded_exactly_once_and_lots_follow(tmp_path: Path) -> None:
    """Duplicate execIds change nothing; the lot view is the sum of the facts."""
    root, keeper = tree(tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        for order in (BUY, SELL):
            await keeper.ref.request(CommitIntent(order=order), timeout=10)
        assert await keeper.ref.request(fill(BUY.ref, "e1", 40, "99.00"), timeout=10) is True
        assert await keeper.ref.request(fill(BUY.ref, "e2", 55, "98.98"), timeout=10) is True
        assert await keeper.ref.request(fill(BUY.ref, "e2", 55, "98.98"), timeout=10) is False
        assert await keeper.ref.request(fill(SELL.ref, "e3", 95, "99.99"), timeout=10) is True
        state: LedgerState = await keeper.ref.request(LoadLedger(symbol="TQQQ"), timeout=10)
        (lot,) = state.lots
        assert (lot.lot, lot.level, lot.bought, lot.sold, lot.open_shares) == (2, 1, 95, 95, 0)
        assert lot.cost == Decimal("99.00") * 40 + Decimal("98.98") * 55
        assert lot.realized == Decimal("99.99") * 95 - lot.cost
        assert [f.exec_id for f in state.fills] == ["e1", "e2", "e3"]
        root.stop()


async def test_an_execution_id_reported_again_with_other_facts_is_a_conflict_not_a_duplicate(
    tmp_path: Path,
) -> None:
    """Exactly once means the same execId and the same facts: an execId the ledger holds,
    reported for another order (or quantity, or price), is refused with the conflict, which is
    kept on record (once) until an operator acknowledges it; the fill the ledger holds stays."""
    root, keeper = tree(tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        for order in (BUY, SELL):
            await keeper.ref.request(CommitIntent(order=order), timeout=10)
        assert await keeper.ref.request(fill(BUY.ref, "e1", 95, "99.00"), timeout=10) is True
        # The same facts (the commission comes apart at IB): a duplicate.
        again = RecordFill(
            fill=OrderFilled(
                ref=BUY.ref,
                exec_id="e1",
                quantity=95,
                price=Decimal("99.000"),
                commission=Decimal("1"),
            )
        )
        assert await keeper.ref.request(again, timeout=10) is False
        for other in (
            fill(SELL.ref, "e1", 95, "99.99"),
            fill(BUY.ref, "e1", 94, "99.00"),
            fill(BUY.ref, "e1", 95, "98.99"),
        ):
            reply = await keeper.ref.request(other, timeout=10)
            assert isinstance(reply, Conflicted)
            assert reply.conflict.reported == other.fill
            assert (reply.conflict.recorded.ref, reply.conflict.recorded.quantity) == (BUY.ref, 95)
        assert isinstance(
            await keeper.ref.request(fill(SELL.ref, "e1", 95, "99.99"), timeout=10), Conflicted
        )
        state: LedgerState = await keeper.ref.request(LoadLedger(symbol="TQQQ"), timeout=10)
        assert [(f.exec_id, f.ref, f.quantity) for f in state.fills] == [("e1", BUY.ref, 95)]
        assert len(state.conflicts) == 3
        assert len(state.open_conflicts) == 3
        assert "reported as grid:TQQQ:L1:SELL:2:1 95 @ 99.99" in state.conflicts[-1].describe()
        acknowledged = AcknowledgeConflicts(symbol="TQQQ")
        assert await keeper.ref.request(acknowledged, timeout=10) == 3
        assert await keeper.ref.request(acknowledged, timeout=10) == 0
        state = await keeper.ref.request(LoadLedger(symbol="TQQQ"), timeout=10)
        assert len(state.conflicts) == 3
        assert state.open_conflicts == ()
        root.stop()


async def test_a_heal_keeps_a_conflict_with_another_symbols_fill_and_the_rest_of_its_repairs(
    tmp_path: Path,
) -> None:
    """The reconciler compares a symbol's executions with that symbol's fills only: an execId
    another symbol's fill holds is a conflict the heal keeps, while its other repairs stand."""
    other = attrs.evolve(BUY, ref="grid:QQQ:L1:BUY:2:1", symbol="QQQ")
    root, keeper = tree(tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        for order in (BUY, other):
            await keeper.ref.request(CommitIntent(order=order), timeout=10)
        assert await keeper.ref.request(fill(other.ref, "x7", 95, "400.00"), timeout=10) is True
        heal = Heal(
            fills=(
                OrderFilled(ref=BUY.ref, exec_id="x7", quantity=95, price=Decimal("99.00")),
                OrderFilled(ref=BUY.ref, exec_id="x8", quantity=5, price=Decimal("99.00")),
            )
        )
        assert await keeper.ref.request(heal, timeout=10) == (0, 1)
        state: LedgerState = await keeper.ref.request(LoadLedger(symbol="TQQQ"), timeout=10)
        assert [f.exec_id for f in state.fills] == ["x8"]
        (conflict,) = state.open_conflicts
        assert (conflict.exec_id, conflict.symbol, conflict.recorded.ref) == (
            "x7",
            "TQQQ",
            other.ref,
        )
        root.stop()


def test_a_schema_1_ledger_is_migrated_and_an_older_actortrade_is_refused(tmp_path: Path) -> None:
    """Schema 2 adds the execution conflicts: a ledger of schema 1 opens with everything it
    held; once migrated, code that knows only schema 1 (and would trade a symbol halted by a
    conflict) refuses it."""
    from runtime.store import Store, StoreError

    old = tuple(name for name in ledger.DATABASES if name not in ("conflicts", "risk"))
    with Store(tmp_path, databases=old, schema_version=1) as v1:
        anyio.run(
            v1.write,
            lambda txn: ledger.commit_intent(txn, ledger.IntentRecord(order=BUY, created_ns=1)),
        )
    with ledger_store(tmp_path) as v2:
        assert v2.read(lambda txn: [i.ref for i in ledger.intents(txn)]) == [BUY.ref]
        assert v2.read(ledger.conflicts) == []
    with (
        pytest.raises(StoreError, match="newer actortrade"),
        Store(tmp_path, databases=old, schema_version=1),
    ):
        pass


def test_a_schema_2_ledger_and_its_backups_open_with_the_risk_state_and_dry_flag(
    tmp_path: Path,
) -> None:
    """Schema 3 adds the risk actor's database and an intent's dry flag: a schema 2 ledger
    (its intents without the flag) opens with every intent not dry and an empty risk state, a
    backup of it verifies and restores, and once migrated code that knows only schema 2 (and
    would trade on a tripped daily loss guard) refuses it."""
    from runtime.store import Store, StoreError

    old = tuple(name for name in ledger.DATABASES if name != "risk")
    v2_intent = b'{"order":' + msgspec.json.encode(BUY) + b',"created_ns":1,"origin":"strategy"}'
    with Store(tmp_path / "v2", databases=old, schema_version=2) as v2:
        anyio.run(v2.write, lambda txn: txn.put("intents", BUY.ref.encode(), v2_intent))
        v2.backup(tmp_path / "backup")
    ledger_store(tmp_path / "v2").verify(tmp_path / "backup")
    ledger_store(tmp_path / "restored").restore(tmp_path / "backup")
    for where in ("v2", "restored"):
        with ledger_store(tmp_path / where) as v3:
            (intent,) = v3.read(ledger.intents)
            assert (intent.ref, intent.dry) == (BUY.ref, False)
            assert v3.read(ledger.load_risk) == ledger.RiskRecord()
            tripped = ledger.RiskRecord(session="2026-11-23", tripped="lost", halts=("*",))
            anyio.run(v3.write, lambda txn, r=tripped: ledger.save_risk(txn, r))
            assert v3.read(ledger.load_risk) == tripped
    with (
        pytest.raises(StoreError, match="newer actortrade"),
        Store(tmp_path / "v2", databases=old, schema_version=2),
    ):
        pass


def test_a_copy_of_the_current_schema_missing_a_database_is_damaged(tmp_path: Path) -> None:
    """Only an older schema's copy may lack the databases added since."""
    from runtime.store import Store, StoreDamaged

    old = tuple(name for name in ledger.DATABASES if name != "risk")
    with Store(tmp_path / "odd", databases=old, schema_version=ledger.SCHEMA_VERSION) as odd:
        odd.backup(tmp_path / "backup")
    with pytest.raises(StoreDamaged, match="its database 'risk' is missing"):
        ledger_store(tmp_path / "x").verify(tmp_path / "backup")


async def test_an_execution_without_an_intent_is_refused(tmp_path: Path) -> None:
    """Only orders we committed are ours to record; the rest is the reconciler's."""
    root, keeper = tree(tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        reply = await keeper.ref.request(fill("grid:TQQQ:L0:BUY:9:1", "x", 1, "1"), timeout=10)
        assert isinstance(reply, Refused)
        assert "has no intent" in reply.reason
        bind = BindOrder(binding=Binding(ref="nope", order_id=1, perm_id=2))
        assert isinstance(await keeper.ref.request(bind, timeout=10), Refused)
        root.stop()


async def test_the_ledger_survives_a_killed_lot_keeper_and_a_full_restart(tmp_path: Path) -> None:
    """Killed: the next incarnation reads the same facts; stopped and reopened: still there."""
    root, keeper = tree(tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        await keeper.ref.request(CommitIntent(order=BUY), timeout=10)
        await keeper.ref.request(fill(BUY.ref, "e1", 95, "99.00"), timeout=10)
        await keeper.ref.request(SaveSnapshot(actor="symbol.TQQQ", data=b"v1"), timeout=10)
        root.kill("lot-keeper")
        state = await keeper.ref.request(LoadLedger(), timeout=10)
        assert keeper.incarnation == 2
        assert [lot.bought for lot in state.lots] == [95]
        root.stop()
    root, keeper = tree(tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        state = await keeper.ref.request(LoadLedger(symbol="TQQQ"), timeout=10)
        assert [i.ref for i in state.intents] == [BUY.ref]
        assert await keeper.ref.request(LoadSnapshot(actor="symbol.TQQQ"), timeout=10) == b"v1"
        assert await keeper.ref.request(LoadSnapshot(actor="other"), timeout=10) is None
        root.stop()


async def test_regression_map_full_stops_the_tree_at_once_instead_of_a_restart_loop(
    tmp_path: Path,
) -> None:
    """A full LMDB map crashed the lot-keeper, whose restarts each failed the same way until
    the root's restart intensity gave up about a minute later, naming a setting that does not
    exist (``store.map_size``). Now the first full write is unrecoverable: no restart, the root
    stops naming ``ledger.map_size_mib``, and everything committed before is still there."""
    store = ledger_store(tmp_path, map_size=64 * 1024)
    cell: ActorCell[object] = ActorCell("lot-keeper", lambda: LotKeeper(store))  # type: ignore[arg-type]
    root = Supervisor("root", SupervisorSpec(children=[ChildSpec(id="lot-keeper", start=cell)]))
    committed: list[str] = []
    crashed: list[ActorCrashed] = []
    with anyio.fail_after(20), pytest.RaisesGroup(ChildUnrecoverable) as info:
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            for n in range(10_000):
                order = attrs.evolve(BUY, ref=f"grid:TQQQ:L1:BUY:{n}:1")
                try:
                    await cell.ref.request(CommitIntent(order=order), timeout=10)
                except ActorCrashed as exc:
                    crashed.append(exc)
                    await anyio.sleep_forever()  # until the root's escalation cancels us
                committed.append(order.ref)
    (error,) = info.value.exceptions
    assert isinstance(error.__cause__, LedgerFull)
    assert "raise ledger.map_size_mib in the config" in str(error.__cause__)
    assert str(tmp_path) in str(error.__cause__)
    # The requester sees the crash, unless the root's escalation cancels it first (trio may
    # run the supervisor before it): either way the cause is the full map, and nothing retried.
    assert all(isinstance(exc.__cause__, LedgerFull) for exc in crashed)
    assert 0 < len(committed) < 10_000
    assert cell.incarnation == 1
    assert root.restarts == 0
    store.close()
    with ledger_store(tmp_path, map_size=1 << 20) as reopened:
        kept = reopened.read(lambda txn: [i.ref for i in ledger.intents(txn)])
    assert sorted(kept) == sorted(committed)
