"""The engine's cost options for backtests: slippage in basis points on market orders, and a
volume cap (the share of each trade's size the venue lets our orders take)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.domain import Side
from sim.engine import Engine, EngineError
from tests.sim.test_engine import at, order

D = Decimal


def test_market_orders_pay_the_slippage_and_limits_do_not() -> None:
    engine = Engine(slippage_bps=D(10))
    engine.place(order("b", Side.BUY, 100, limit=None), at("10:00"))
    engine.place(order("l", Side.BUY, 100, "100.00"), at("10:00"))
    engine.on_trade("TQQQ", D("100.00"), 1000, at("10:01"))
    engine.place(order("s", Side.SELL, 50, limit=None), at("10:02"))
    engine.on_trade("TQQQ", D("101.00"), 1000, at("10:03"))
    prices = {e.ref: e.price for e in engine.executions}
    assert prices == {"b": D("100.1000"), "l": D("100.00"), "s": D("100.8990")}
    # The commission is on what changed hands at the slipped price.
    [buy] = engine.executions_of("b")
    assert buy.commission == D("1.00")
    assert engine.positions["TQQQ"].quantity == 150


def test_a_volume_cap_fills_an_order_over_several_trades() -> None:
    engine = Engine(participation=D("0.1"))
    engine.place(order("b", Side.BUY, 250, "100.00"), at("10:00"))
    for minute, size in enumerate((1000, 1000, 999, 2000), start=1):
        engine.on_trade("TQQQ", D("99.00"), size, at(f"10:0{minute}"))
    assert [e.quantity for e in engine.executions] == [100, 100, 50]
    assert engine.orders["b"].filled == 250
    # 10 % of 999 shares is 99 (whole shares, rounded down).
    capped = Engine(participation=D("0.1"))
    capped.place(order("c", Side.BUY, 500, "100.00"), at("10:00"))
    capped.on_trade("TQQQ", D("99.00"), 999, at("10:01"))
    assert [e.quantity for e in capped.executions] == [99]


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"slippage_bps": D(-1)}, "slippage_bps must be between 0 and 1000"),
        ({"slippage_bps": D(1001)}, "slippage_bps must be between 0 and 1000"),
        ({"participation": D(0)}, "participation must be above 0 and at most 1"),
        ({"participation": D("1.5")}, "participation must be above 0 and at most 1"),
    ],
)
def test_bad_cost_options_are_refused(options: dict[str, Decimal], problem: str) -> None:
    with pytest.raises(EngineError, match=problem):
        Engine(**options)  # type: ignore[arg-type]
