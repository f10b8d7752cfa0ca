"""Options at the close of their expiration day: exercised, assigned or expired against the
underlying's last trade, at the first input at or after 16:00 New York (a trade, a placing,
``Engine.advance``), journaled."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from actors.domain import BrokerEvent, Side, TimeInForce
from sim.engine import Advance, Engine, Execution
from sim.journal import open_engine
from sim.options import OptionContract
from tests.sim.option_desk import D, at, cancels, option, order, recording

FRIDAY = "2026-12-11"


def _holding(
    contract: OptionContract, contracts: int, *, engine: Engine | None = None
) -> tuple[Engine, list[BrokerEvent], list[Execution]]:
    # An engine holding ``contracts`` (negative: short) of ``contract``, bought or sold at
    # the market on Monday; its settlement executions collected.
    e = engine if engine is not None else Engine()
    events: list[BrokerEvent] = []
    e.listeners.append(events.append)
    settled: list[Execution] = []
    e.settlement_listeners.append(settled.append)
    e.on_trade("TQQQ", D("50.00"), 100, at("10:00"))
    side = Side.BUY if contracts > 0 else Side.SELL
    e.place(order("open", contract.local_symbol, side, abs(contracts)), at("10:00:01"))
    e.on_trade("TQQQ", D("50.00"), 100, at("10:01"))
    assert e.positions[contract.local_symbol].quantity == contracts
    return e, events, settled


def _close_friday(e: Engine, last: str) -> None:
    e.on_trade("TQQQ", D(last), 100, at("15:59", FRIDAY))


def _legs(executions: list[Execution]) -> list[tuple[str, str, Side, int, Decimal, int]]:
    return [(x.ref, x.symbol, x.side, x.quantity, x.price, x.multiplier) for x in executions]


def test_a_long_in_the_money_call_is_exercised_into_shares_at_the_strike() -> None:
    """2 calls at 50 with TQQQ last at 52 on Friday: advanced to 17:00, the calls close at 0
    and 200 shares are bought at 50; no commission; the listeners hear both legs; the
    working sell of the calls is cancelled as expired."""
    call = option(50, "C")
    e, events, settled = _holding(call, 2)
    e.place(order("exit", call.local_symbol, Side.SELL, 2, limit="9.00"), at("10:02"))
    _close_friday(e, "52.00")
    assert settled == []
    e.advance(at("17:00", FRIDAY))
    ref = f"exercise:{call.local_symbol}"
    assert _legs(settled) == [
        (ref, call.local_symbol, Side.SELL, 2, D(0), 100),
        (ref, "TQQQ", Side.BUY, 200, D(50), 1),
    ]
    assert settled == e.executions[-2:]
    assert e.executions_of(ref) == settled
    assert all(x.commission == 0 for x in settled)
    assert len({x.exec_id for x in e.executions}) == len(e.executions)
    assert e.positions[call.local_symbol].quantity == 0
    assert (e.positions["TQQQ"].quantity, e.positions["TQQQ"].average_cost) == (200, D(50))
    assert cancels(events) == [("exit", "expired")]
    assert settled[0].time == at("16:00", FRIDAY)


def test_a_long_out_of_the_money_put_expires_worthless() -> None:
    """A put at 50 with TQQQ at 52: only the option leg, ref ``expiry:``; no shares."""
    put = option(50, "P")
    e, _, settled = _holding(put, 1)
    _close_friday(e, "52.00")
    e.advance(at("17:00", FRIDAY))
    assert _legs(settled) == [
        (f"expiry:{put.local_symbol}", put.local_symbol, Side.SELL, 1, D(0), 100)
    ]
    assert "TQQQ" not in e.positions or e.positions["TQQQ"].quantity == 0


def test_a_long_in_the_money_put_is_exercised_selling_shares() -> None:
    """A put at 50 with TQQQ at 47: 100 shares sold at 50 (a short position of 100)."""
    put = option(50, "P")
    e, _, settled = _holding(put, 1)
    _close_friday(e, "47.00")
    e.advance(at("17:00", FRIDAY))
    assert _legs(settled)[1] == (f"exercise:{put.local_symbol}", "TQQQ", Side.SELL, 100, D(50), 1)
    assert (e.positions["TQQQ"].quantity, e.positions["TQQQ"].average_cost) == (-100, D(50))


def test_a_short_call_in_the_money_is_assigned() -> None:
    """A written call at 50, TQQQ at 53: the short closes at 0 (bought back) and 100 shares
    are sold at 50."""
    call = option(50, "C")
    e, _, settled = _holding(call, -1)
    _close_friday(e, "53.00")
    e.advance(at("17:00", FRIDAY))
    ref = f"assignment:{call.local_symbol}"
    assert _legs(settled) == [
        (ref, call.local_symbol, Side.BUY, 1, D(0), 100),
        (ref, "TQQQ", Side.SELL, 100, D(50), 1),
    ]
    assert e.positions[call.local_symbol].quantity == 0


def test_a_short_put_in_the_money_is_assigned_buying_shares() -> None:
    """A written put at 50, TQQQ at 45: 100 shares bought at 50."""
    put = option(50, "P")
    e, _, settled = _holding(put, -1)
    _close_friday(e, "45.00")
    e.advance(at("17:00", FRIDAY))
    assert _legs(settled)[1] == (f"assignment:{put.local_symbol}", "TQQQ", Side.BUY, 100, D(50), 1)
    assert e.positions["TQQQ"].quantity == 100


@pytest.mark.parametrize(
    ("last", "outcome"),
    [("50.01", "exercise"), ("50.00", "expiry"), ("49.99", "expiry")],
)
def test_the_exercise_threshold_is_one_cent_in_the_money(last: str, outcome: str) -> None:
    """OCC's exercise by exception: in the money by $0.01 or more."""
    call = option(50, "C")
    e, _, settled = _holding(call, 1)
    _close_friday(e, last)
    e.advance(at("17:00", FRIDAY))
    assert settled[0].ref == f"{outcome}:{call.local_symbol}"


def test_the_first_trade_after_the_close_settles_at_the_last_price_before_it() -> None:
    """No advance: Monday's first trade (of another symbol) settles Friday's expiry first,
    against Friday's TQQQ last; a Monday TQQQ trade far lower changes nothing of it."""
    call = option(50, "C")
    e, _, settled = _holding(call, 1)
    _close_friday(e, "52.00")
    e.on_trade("QQQ", D("400"), 10, at("09:31", "2026-12-14"))
    assert [x.ref for x in settled] == [f"exercise:{call.local_symbol}"] * 2
    e.on_trade("TQQQ", D("40.00"), 10, at("09:32", "2026-12-14"))
    assert len(settled) == 2
    assert settled[1].price == D(50)


def test_a_trade_of_the_underlying_after_the_close_settles_before_it_counts() -> None:
    """The underlying trading at 16:05 at 45: the call settles against 15:59's 52."""
    call = option(50, "C")
    e, _, settled = _holding(call, 1)
    _close_friday(e, "52.00")
    e.on_trade("TQQQ", D("45.00"), 10, at("16:05", FRIDAY))
    assert settled[0].ref.startswith("exercise:")


def test_nothing_settles_before_the_close() -> None:
    """Advanced to 15:59:59 on the expiry day: the position stays; options are still quoted."""
    call = option(50, "C")
    e, _, settled = _holding(call, 1)
    _close_friday(e, "52.00")
    e.advance(at("15:59:59", FRIDAY))
    assert settled == []
    assert e.positions[call.local_symbol].quantity == 1


def test_advance_expires_the_day_orders_of_earlier_days() -> None:
    """A DAY order of Monday is cancelled by an advance to Tuesday, as a trade would."""
    e, events = recording()
    e.place(order("d", "TQQQ", limit="1.00", tif=TimeInForce.DAY), at("10:00"))
    e.advance(at("08:00", "2026-12-08"))
    assert cancels(events) == [("d", "expired (DAY)")]


def test_an_expiry_survives_the_journal(tmp_path: Path) -> None:
    """Reopened after the settlement (the advance journaled): the same executions, positions
    and orders; reopened before it, the next input settles the same way."""
    call, put = option(50, "C"), option(51, "P")
    path = tmp_path / "journal"
    e = open_engine(path)
    _holding(call, 2, engine=e)
    e.place(order("p", put.local_symbol, Side.SELL, 1), at("11:00"))
    e.on_trade("TQQQ", D("50.00"), 100, at("11:01"))
    e.place(order("w", put.local_symbol, Side.BUY, 1, limit="0.01"), at("11:02"))
    _close_friday(e, "50.50")
    before = open_engine(path)
    e.advance(at("17:00", FRIDAY))
    assert b'["advance"' in path.read_bytes()
    assert {x.ref.split(":")[0] for x in e.executions[-3:]} == {"exercise", "assignment"}
    again = open_engine(path)
    assert again.executions == e.executions
    assert again.positions == e.positions
    assert again.orders == e.orders
    before.on_trade("TQQQ", D("60"), 1, at("09:30", "2026-12-14"))
    assert before.executions == e.executions
    assert before.positions == e.positions
    assert again.positions["TQQQ"].quantity == 200 + 100
    assert again.orders["w"].done


def test_advance_is_an_input_record() -> None:
    """``Engine.apply`` replays an advance."""
    call = option(50, "C")
    e, _, settled = _holding(call, 1)
    _close_friday(e, "52.00")
    e.apply(Advance(at=at("17:00", FRIDAY)))
    assert len(settled) == 2
