"""What-if orders through the TWS face, with ib_insync over a real socket (``ib.whatIfOrder``):
an OrderState with the margins before, their change and after, equity with loan, and IBKR's
fixed commission, for stocks (Reg-T) and options (premium long, Reg-T short); nothing placed,
journaled or kept, and the order id not taken."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal
from pathlib import Path

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st
from ib_insync import Contract, LimitOrder, MarketOrder, OrderState, Stock

from actors.domain import Instrument
from sim.engine import Engine
from sim.journal import open_engine
from sim.options import OptionContract
from sim.tws.server import TwsServer
from sim.tws.what_if import Holding, commission, margin
from tests.tws_venue import TQQQ, Clock, connect, trade, until, venue

pytestmark = pytest.mark.anyio

CALL = OptionContract(underlying="TQQQ", expiry=date(2026, 11, 27), strike="20.5", right="C")
CALL_INSTRUMENT = Instrument(symbol=CALL.local_symbol, con_id=CALL.con_id, long_name="TQQQ call")


@asynccontextmanager
async def option_venue(engine: Engine) -> AsyncIterator[TwsServer]:
    # The venue with TQQQ and one of its calls, named at the engine by its OCC symbol.
    server = TwsServer(engine, instruments=[TQQQ, CALL_INSTRUMENT], clock=Clock(engine))
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        yield server
        tg.cancel_scope.cancel()


def _margins(state: OrderState) -> tuple[str, ...]:
    return (
        state.initMarginBefore,
        state.initMarginChange,
        state.initMarginAfter,
        state.maintMarginBefore,
        state.maintMarginChange,
        state.maintMarginAfter,
    )


@pytest.mark.parametrize("version", [157, 176])
async def test_a_stock_what_if_answers_reg_t_margins_and_commission_and_places_nothing(
    version: int, tmp_path: Path, client_errors: Callable[[], list[str]]
) -> None:
    """BUY 100 at 50: initial 2,500 (50%), maintenance 1,250 (25%), commission $1 (the
    minimum), equity with loan down by it; the journal, the engine and the face keep nothing,
    and the next order may use the what-if's id."""
    journal = tmp_path / "venue.journal"
    engine = open_engine(journal)
    trade(engine, "50.00", 100, 0)
    async with venue(engine, version) as server:
        ib = await connect(server)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        written = journal.read_bytes()
        state = await ib.whatIfOrderAsync(contract, LimitOrder("BUY", 100, 50.00))
        assert _margins(state) == ("0.00", "2500.00", "2500.00", "0.00", "1250.00", "1250.00")
        assert (state.commission, state.minCommission, state.maxCommission) == (1.0, 1.0, 1.0)
        assert state.commissionCurrency == "USD"
        assert (state.equityWithLoanBefore, state.equityWithLoanChange) == (
            "1000000.00",
            "-1.00",
        )
        assert journal.read_bytes() == written
        assert engine.orders == {}
        assert server.orders == {}
        assert server.used_ids == {}
        assert ib.openTrades() == []
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_what_if_that_turns_a_long_into_a_short_releases_and_takes_margin(
    client_errors: Callable[[], list[str]],
) -> None:
    """Long 200 at 50, SELL 300 at market (the last, 50): initial 5,000 -> 2,500 (short 100 at
    50%), maintenance 2,500 (25% long) -> 1,500 (30% short); commission 300 x $0.005."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        bought = ib.placeOrder(contract, LimitOrder("BUY", 200, 50.00))
        await until(lambda: bought.orderStatus.status == "Submitted")
        trade(engine, "50.00", 200, 1)
        await until(lambda: bought.orderStatus.status == "Filled")
        state = await ib.whatIfOrderAsync(contract, MarketOrder("SELL", 300))
        assert _margins(state) == (
            "5000.00",
            "-2500.00",
            "2500.00",
            "2500.00",
            "-1000.00",
            "1500.00",
        )
        assert state.commission == 1.5
        assert len(engine.orders) == 1
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_market_what_if_with_no_price_is_refused_with_201(
    client_errors: Callable[[], list[str]],
) -> None:
    """Before the stock has traded a market what-if has nothing to be valued at: 201 naming
    whatIf, and ib_insync's request ends without a state (its empty result list)."""
    engine = Engine()
    async with venue(engine) as server:
        ib = await connect(server)
        messages: list[str] = []
        ib.errorEvent += lambda _req_id, _code, message, _contract: messages.append(message)
        [contract] = await ib.qualifyContractsAsync(Stock("TQQQ", "SMART", "USD"))
        assert await ib.whatIfOrderAsync(contract, MarketOrder("BUY", 10)) == []
        assert messages == [
            "Order rejected - reason:whatIf: no price to value the order at (TQQQ has not traded)"
        ]
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_an_option_what_if_charges_the_premium_long_and_reg_t_short(
    client_errors: Callable[[], list[str]],
) -> None:
    """A call (an OCC-named instrument): BUY 2 at 1.25 needs its premium, 250, and $1.30
    commission; SELL 1 at 0.80 needs 80 + max(20% x 20 - 0.50 out of the money, 10% x 20) x
    100 = 430, commission the $1 minimum; BUY 1 at market is valued at the venue's ask."""
    engine = Engine()
    trade(engine, "20.00", 100, 0)
    async with option_venue(engine) as server:
        ib = await connect(server)
        contract = Contract(conId=CALL.con_id, exchange="SMART")
        long = await ib.whatIfOrderAsync(contract, LimitOrder("BUY", 2, 1.25))
        assert (long.initMarginChange, long.maintMarginChange, long.commission) == (
            "250.00",
            "250.00",
            1.3,
        )
        short = await ib.whatIfOrderAsync(contract, LimitOrder("SELL", 1, 0.80))
        assert (short.initMarginChange, short.commission) == ("430.00", 1.0)
        quote = engine.option_quote(CALL, server.clock())
        assert quote is not None
        market = await ib.whatIfOrderAsync(contract, MarketOrder("BUY", 1))
        assert market.initMarginChange == f"{quote.ask * 100:.2f}"
        assert engine.orders == {}
        ib.disconnect()
    assert server.protocol_errors == []
    assert client_errors() == []


prices = st.decimals(min_value="0.01", max_value="500", places=2)


@given(st.integers(-1000, 1000), prices)
def test_stock_margin_is_reg_t_of_the_value(quantity: int, price: Decimal) -> None:
    """Initial half the value either way; maintenance a quarter long, 30% short."""
    initial, maintenance = margin(Holding(quantity=quantity, price=price))
    value = abs(quantity) * price
    assert initial == value / 2
    assert maintenance == value * (Decimal("0.25") if quantity >= 0 else Decimal("0.30"))


@given(st.integers(1, 100_000), prices)
def test_stock_commission_stays_within_ibkr_fixed_bounds(quantity: int, price: Decimal) -> None:
    """$0.005 a share, at least $1, at most 1% of the value (to the cent)."""
    fee = commission(quantity, price, None)
    value = quantity * price
    half_cent = Decimal("0.005")
    assert fee <= value / 100 + half_cent
    assert fee >= min(Decimal(1), value / 100) - half_cent
    if quantity >= 200 and value >= quantity:  # $0.005 a share is above $1 and below 1%
        assert fee == (quantity * half_cent).quantize(Decimal("0.01"))


@given(st.integers(1, 500), prices, st.decimals(min_value="1", max_value="200", places=2))
def test_a_short_option_needs_more_than_its_premium_and_a_long_one_its_premium(
    contracts: int, premium: Decimal, underlying: Decimal
) -> None:
    """A long option's margin is what it cost; a short one's is above what it brought in."""
    long = margin(
        Holding(quantity=contracts, price=premium, option=CALL, underlying_price=underlying)
    )
    short = margin(
        Holding(quantity=-contracts, price=premium, option=CALL, underlying_price=underlying)
    )
    assert long == (premium * 100 * contracts,) * 2
    assert short[0] > premium * 100 * contracts
    assert commission(contracts, premium, CALL) == max(Decimal("0.65") * contracts, Decimal(1))
