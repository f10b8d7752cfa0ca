"""Corporate actions in the ledger, through the lot-keeper on a real LMDB store: a split
restates its symbol's intents and fills once, a dividend is kept with the shares held, and a
ledger of schema 3 migrates."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import msgspec
import pytest

from actors import ledger
from actors.domain import Dividend, PlaceOrder, Side, Split, TimeInForce
from actors.lot_keeper import (
    ApplyAction,
    CommitIntent,
    LedgerState,
    LoadLedger,
    Refused,
    ledger_store,
)
from tests.actors.test_lot_keeper import BUY, SELL, fill, tree

pytestmark = pytest.mark.anyio
D = Decimal
SPLIT = Split(symbol="TQQQ", ex_date=date(2026, 11, 24), ratio=D(2))
OTHER = PlaceOrder(
    ref="ma_cross:QQQ:E:BUY:3:1",
    symbol="QQQ",
    side=Side.BUY,
    quantity=7,
    limit=D("401.00"),
    tif=TimeInForce.GTC,
)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return request.param, ({"use_uvloop": True} if request.param == "asyncio" else {})


async def test_a_split_restates_its_symbols_facts_once(tmp_path: Path) -> None:
    root, keeper = tree(tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        ask = keeper.ref.request
        for order in (BUY, SELL, OTHER):
            assert await ask(CommitIntent(order=order), timeout=10) is True
        assert await ask(fill(BUY.ref, "e1", 60, "99.00"), timeout=10) is True
        assert await ask(fill(BUY.ref, "e2", 35, "99.01"), timeout=10) is True
        assert await ask(fill(OTHER.ref, "q1", 7, "400.50"), timeout=10) is True
        before = await ask(LoadLedger(), timeout=10)
        assert isinstance(before, LedgerState)

        assert await ask(ApplyAction(action=SPLIT), timeout=10) is True
        state = await ask(LoadLedger(symbol="TQQQ"), timeout=10)
        assert isinstance(state, LedgerState)
        intents = {i.ref: i for i in state.intents}
        buy, sell = intents[BUY.ref], intents[SELL.ref]
        assert (buy.order.quantity, buy.order.limit, buy.restated) == (190, D("49.50"), 2)
        assert buy.order.condition is not None
        assert buy.order.condition.trigger == D("49.50")
        assert (sell.order.quantity, sell.order.limit) == (190, D("50.00"))  # 49.995 half up
        assert [(f.exec_id, f.quantity, f.price, f.restated) for f in state.fills] == [
            ("e1", 120, D("49.50"), 2),
            ("e2", 70, D("49.505"), 2),
        ]
        [lot] = state.lots
        [old_lot] = [lot for lot in before.lots if lot.symbol == "TQQQ"]
        assert (lot.bought, lot.cost) == (190, old_lot.cost)  # the cost basis kept
        [action] = state.actions
        assert (action.id, action.kind, action.ratio) == (SPLIT.id, "split", D(2))
        # Another symbol's facts are untouched.
        qqq = await ask(LoadLedger(symbol="QQQ"), timeout=10)
        assert isinstance(qqq, LedgerState)
        assert qqq.intents == tuple(i for i in before.intents if i.symbol == "QQQ")
        assert qqq.fills == tuple(f for f in before.fills if f.ref == OTHER.ref)
        assert qqq.actions == ()

        # Again: already applied, nothing changes.
        assert await ask(ApplyAction(action=SPLIT), timeout=10) is False
        assert await ask(LoadLedger(symbol="TQQQ"), timeout=10) == state
        # The venue reports the execution restated as the ledger holds it: a duplicate.
        assert await ask(fill(BUY.ref, "e1", 120, "49.50"), timeout=10) is False
        root.stop()


async def test_a_split_leaving_a_fraction_of_a_share_is_refused_and_writes_nothing(
    tmp_path: Path,
) -> None:
    root, keeper = tree(tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        ask = keeper.ref.request
        await ask(CommitIntent(order=BUY), timeout=10)
        await ask(fill(BUY.ref, "e1", 95, "99.00"), timeout=10)
        before = await ask(LoadLedger(), timeout=10)
        reverse = Split(symbol="TQQQ", ex_date=date(2026, 11, 24), ratio=D("0.1"))
        refused = await ask(ApplyAction(action=reverse), timeout=10)
        assert isinstance(refused, Refused)
        assert reverse.id in refused.reason
        assert "95 shares split 0.1:1 make 9.5" in refused.reason
        assert await ask(LoadLedger(), timeout=10) == before
        root.stop()


async def test_a_dividend_is_kept_with_the_shares_then_held(tmp_path: Path) -> None:
    root, keeper = tree(tmp_path)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        ask = keeper.ref.request
        for order in (BUY, SELL):
            await ask(CommitIntent(order=order), timeout=10)
        await ask(fill(BUY.ref, "e1", 95, "99.00"), timeout=10)
        await ask(fill(SELL.ref, "e2", 40, "99.99"), timeout=10)
        paid = Dividend(symbol="TQQQ", ex_date=date(2026, 12, 1), amount_per_share=D("0.25"))
        assert await ask(ApplyAction(action=paid), timeout=10) is True
        state = await ask(LoadLedger(symbol="TQQQ"), timeout=10)
        assert isinstance(state, LedgerState)
        [action] = state.actions
        assert (action.kind, action.shares, action.cash) == ("dividend", 55, D("13.75"))
        assert [f.quantity for f in state.fills] == [95, 40]  # no restatement
        root.stop()


def test_a_schema_3_ledger_migrates_and_an_older_actortrade_is_refused(tmp_path: Path) -> None:
    """Schema 4 adds the corporate actions and the restated factor of intents and fills: a
    schema 3 ledger opens with everything at factor 1 and no action; once migrated, code that
    knows only schema 3 (and would read restated shares as traded) refuses it."""
    from runtime.store import Store, StoreError

    old = tuple(name for name in ledger.DATABASES if name != "actions")
    v3_intent = b'{"order":' + msgspec.json.encode(BUY) + b',"created_ns":1,"origin":"strategy"}'
    with Store(tmp_path, databases=old, schema_version=3) as v3:
        anyio.run(v3.write, lambda txn: txn.put("intents", BUY.ref.encode(), v3_intent))
    with ledger_store(tmp_path) as v4:
        (intent,) = v4.read(ledger.intents)
        assert (intent.ref, intent.restated) == (BUY.ref, 1)
        assert v4.read(ledger.actions) == []
        anyio.run(v4.write, lambda txn: ledger.apply_action(txn, SPLIT))
        (intent,) = v4.read(ledger.intents)
        assert (intent.order.quantity, intent.restated) == (190, 2)
    with (
        pytest.raises(StoreError, match="newer actortrade"),
        Store(tmp_path, databases=old, schema_version=3),
    ):
        pass
