"""The bar-close strategies (MA-crossover, momentum) as pure logic: their signals equal a plain
re-implementation's by value, on a generated series and on the real TQQQ/QQQ minute bars;
orders time out, are retried and given up; partial fills count; and a strategy restored from
any prefix of a run's facts (its indicator re-warmed from bars) decides as the uninterrupted
one does."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.domain import (
    Bar,
    CancelOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRef,
    OrderRejected,
    PlaceOrder,
    Side,
    TimeInForce,
)
from actors.ledger import FillRecord, IntentRecord
from actors.messages import Alert, Command
from actors.strategies._position import PositionStrategy
from actors.strategies.ma_cross import MaCrossKind, MaCrossParams, MaCrossView
from actors.strategies.momentum import MomentumKind, MomentumParams, MomentumView
from actors.strategies.protocol import BarClosed, Facts, StrategyEvent, TimerFired
from actors.strategies.registry import StrategyError, strategy_kind
from sim.replay import generated_days, load_bars

ROOT = Path(__file__).resolve().parents[2]
MARKETDATA = ROOT.parent / "shared" / "marketdata" / "tqqq_1min"
REAL = [MARKETDATA / "TQQQ_60day_1min_data.csv", MARKETDATA / "QQQ_60day_1min_data.csv"]
START = datetime(2026, 11, 23, 14, 30, tzinfo=UTC)
NO_FACTS = Facts(intents=(), fills=(), working=frozenset(), placed_at={}, now=0.0)

Signal = tuple[int, Side, int]


# -- the plain re-implementations: loops over closes, exact fractions ---------------------------


def plain_ma_cross(closes: list[Decimal], fast: int, slow: int, notional: Decimal) -> list[Signal]:
    signals: list[Signal] = []
    held = 0
    previous: bool | None = None
    for i in range(len(closes)):
        if i + 1 < slow:
            continue
        fast_average = sum(Fraction(c) for c in closes[i + 1 - fast : i + 1]) / fast
        slow_average = sum(Fraction(c) for c in closes[i + 1 - slow : i + 1]) / slow
        above = fast_average > slow_average
        if previous is not None and above and not previous and held == 0:
            shares = int(Fraction(notional) / Fraction(closes[i]))
            if shares >= 1:
                signals.append((i, Side.BUY, shares))
                held = shares
        elif previous is not None and previous and not above and held > 0:
            signals.append((i, Side.SELL, held))
            held = 0
        previous = above
    return signals


def plain_momentum(
    closes: list[Decimal], lookback: int, threshold: Decimal, notional: Decimal
) -> list[Signal]:
    signals: list[Signal] = []
    held = 0
    for i in range(lookback, len(closes)):
        roc = Fraction(closes[i]) / Fraction(closes[i - lookback]) - 1
        if roc > Fraction(threshold) and held == 0:
            shares = int(Fraction(notional) / Fraction(closes[i]))
            if shares >= 1:
                signals.append((i, Side.BUY, shares))
                held = shares
        elif roc <= Fraction(threshold) and held > 0:
            signals.append((i, Side.SELL, held))
            held = 0
    return signals


# -- driving a strategy: a venue that fills every order at once --------------------------------


def bars_of(closes: Iterable[Decimal], symbol: str = "TQQQ", seconds: int = 60) -> list[Bar]:
    return [
        Bar(
            symbol=symbol,
            start=START + timedelta(seconds=seconds * i),
            open=close,
            high=close,
            low=close,
            close=close,
            volume=1000,
        )
        for i, close in enumerate(closes)
    ]


def run_filled_at_once(strategy: PositionStrategy, bars: list[Bar]) -> list[Signal]:
    """Feed ``bars``; every order is accepted and filled in full at its limit (or the close)."""
    signals: list[Signal] = []
    executions = 0
    for i, bar in enumerate(bars):
        pending: list[Command] = strategy.decide(BarClosed(bar=bar, seconds=60), float(i))
        while pending:
            command = pending.pop(0)
            if not isinstance(command, PlaceOrder):
                continue
            signals.append((i, command.side, command.quantity))
            executions += 1
            price = command.limit if command.limit is not None else bar.close
            pending += strategy.decide(OrderAccepted(ref=command.ref), float(i))
            fill = OrderFilled(
                ref=command.ref, exec_id=f"e{executions}", quantity=command.quantity, price=price
            )
            pending += strategy.decide(fill, float(i))
    return signals


def ma_cross(**settings: Any) -> MaCrossKind:
    return MaCrossKind(MaCrossParams(symbol=settings.pop("symbol", "TQQQ"), **settings))


def momentum(**settings: Any) -> MomentumKind:
    return MomentumKind(MomentumParams(symbol=settings.pop("symbol", "TQQQ"), **settings))


def generated_closes(days: int = 2, seed: int = 5) -> list[Decimal]:
    return [bar.close for bar in generated_days(seed=seed, days=days, symbol="TQQQ")]


@pytest.mark.parametrize(("fast", "slow"), [(3, 8), (10, 30), (5, 50)])
def test_ma_cross_signals_equal_the_plain_loop_on_a_generated_series(fast: int, slow: int) -> None:
    """Every entry and exit, by bar index, side and shares."""
    closes = generated_closes()
    kind = ma_cross(fast=fast, slow=slow, target_notional=Decimal(10_000))
    signals = run_filled_at_once(kind.restore(NO_FACTS), bars_of(closes))
    expected = plain_ma_cross(closes, fast, slow, Decimal(10_000))
    assert len(expected) > 6
    assert signals == expected


@pytest.mark.parametrize(("lookback", "threshold"), [(5, "0"), (15, "0.002"), (30, "-0.001")])
def test_momentum_signals_equal_the_plain_loop_on_a_generated_series(
    lookback: int, threshold: str
) -> None:
    """Hold while the rate of change is above the threshold, flat otherwise."""
    closes = generated_closes()
    kind = momentum(lookback=lookback, threshold=threshold, target_notional=Decimal(5_000))
    signals = run_filled_at_once(kind.restore(NO_FACTS), bars_of(closes))
    expected = plain_momentum(closes, lookback, Decimal(threshold), Decimal(5_000))
    assert len(expected) > 6
    assert signals == expected


@pytest.mark.skipif(not REAL[0].exists(), reason="../shared/marketdata is not on this machine")
@pytest.mark.parametrize("path", REAL, ids=["TQQQ", "QQQ"])
def test_both_strategies_equal_the_plain_loops_on_the_real_minute_bars(path: Path) -> None:
    """45 real sessions of TQQQ and of QQQ (extended hours included), bar after bar."""
    bars = load_bars(path)
    symbol = bars[0].symbol
    closes = [bar.close for bar in bars]
    notional = Decimal(25_000)
    crossing = ma_cross(symbol=symbol, fast=10, slow=30, target_notional=notional)
    signals = run_filled_at_once(crossing.restore(NO_FACTS), bars_of(closes, symbol))
    expected = plain_ma_cross(closes, 10, 30, notional)
    assert len(expected) > 100
    assert signals == expected
    rising = momentum(symbol=symbol, lookback=20, threshold="0.001", target_notional=notional)
    signals = run_filled_at_once(rising.restore(NO_FACTS), bars_of(closes, symbol))
    expected = plain_momentum(closes, 20, Decimal("0.001"), notional)
    assert len(expected) > 100
    assert signals == expected


def test_an_entry_is_sized_by_the_notional_and_skipped_with_an_alert_when_one_share_is_more() -> (
    None
):
    """floor(target / close) shares; a share dearer than the target is an alert, no order."""
    kind = momentum(lookback=1, target_notional=Decimal(100), slippage_bps=Decimal(25))
    strategy = kind.restore(NO_FACTS)
    bars = bars_of([Decimal("30"), Decimal("33"), Decimal("120"), Decimal("130")])
    assert strategy.decide(BarClosed(bar=bars[0], seconds=60), 0.0) == []
    (order,) = strategy.decide(BarClosed(bar=bars[1], seconds=60), 1.0)
    assert isinstance(order, PlaceOrder)
    assert (order.side, order.quantity, order.limit) == (Side.BUY, 3, Decimal("33.08"))
    assert order.ref == f"momentum:TQQQ:E.{int(bars[1].start.timestamp())}:1"
    assert order.tif is TimeInForce.DAY
    assert not order.outside_rth
    dear = kind.restore(NO_FACTS)
    assert dear.decide(BarClosed(bar=bars[2], seconds=60), 2.0) == []
    (alert,) = dear.decide(BarClosed(bar=bars[3], seconds=60), 3.0)
    assert isinstance(alert, Alert)
    assert alert.kind == "too-expensive"
    assert dear.live_orders() == []


def test_a_market_order_gtc_and_extended_hours_are_as_configured() -> None:
    """order_type market has no limit; tif and sessions reach the order."""
    kind = momentum(lookback=1, order_type="market", tif="GTC", sessions="extended")
    strategy = kind.restore(NO_FACTS)
    bars = bars_of([Decimal("50"), Decimal("51")])
    strategy.decide(BarClosed(bar=bars[0], seconds=60), 0.0)
    (order,) = strategy.decide(BarClosed(bar=bars[1], seconds=60), 1.0)
    assert isinstance(order, PlaceOrder)
    assert (order.limit, order.tif, order.outside_rth) == (None, TimeInForce.GTC, True)
    assert kind.needs.sessions == "extended"
    assert kind.needs.bars == (60,)


def test_an_unfilled_order_times_out_is_retried_for_the_rest_then_given_up() -> None:
    """A partial fill, a time-out, a retry for what is left at the latest price (attempt 2),
    then attempts run out: one gave-up alert, and the next signal starts afresh."""
    kind = momentum(lookback=1, fill_timeout=30.0, max_attempts=2, retry_delay=5.0)
    strategy = kind.restore(NO_FACTS)
    bars = bars_of([Decimal("100"), Decimal("101"), Decimal("102"), Decimal("103")])
    strategy.decide(BarClosed(bar=bars[0], seconds=60), 0.0)
    (first,) = strategy.decide(BarClosed(bar=bars[1], seconds=60), 60.0)
    assert isinstance(first, PlaceOrder)
    assert first.quantity == 99
    strategy.decide(OrderAccepted(ref=first.ref), 60.0)
    fill = OrderFilled(ref=first.ref, exec_id="a", quantity=40, price=Decimal("101.1"))
    assert strategy.decide(fill, 61.0) == []
    assert strategy.decide(TimerFired(), 89.0) == []
    (cancel,) = strategy.decide(TimerFired(), 90.0)
    assert cancel == CancelOrder(ref=first.ref, reason="not filled in 30 s")
    assert strategy.decide(TimerFired(), 91.0) == []  # asked once
    (second,) = strategy.decide(OrderCancelled(ref=first.ref), 92.0)
    assert isinstance(second, PlaceOrder)
    assert second.ref.endswith(":2")
    assert OrderRef.parse(second.ref).tag == OrderRef.parse(first.ref).tag
    assert (second.quantity, second.limit) == (59, Decimal("101.10"))
    commands = strategy.decide(OrderRejected(ref=second.ref, reason="no"), 93.0)
    assert [c.kind for c in commands if isinstance(c, Alert)] == ["order-rejected", "gave-up"]
    assert [c for c in commands if not isinstance(c, Alert)] == []
    assert strategy.decide(TimerFired(), 200.0) == []
    assert strategy.shares == 40
    view = strategy.view()
    assert isinstance(view, MomentumView)
    assert (view.position, view.warm, view.signal) == (40, True, "BUY")
    # The next BUY signal buys no more: shares are held.
    assert strategy.decide(BarClosed(bar=bars[2], seconds=60), 210.0) == []


def test_giving_up_is_told_once() -> None:
    """After max_attempts rejected entries: one gave-up alert, however many timer ticks."""
    kind = momentum(lookback=1, max_attempts=2, retry_delay=5.0)
    strategy = kind.restore(NO_FACTS)
    bars = bars_of([Decimal("10"), Decimal("11")])
    strategy.decide(BarClosed(bar=bars[0], seconds=60), 0.0)
    (first,) = strategy.decide(BarClosed(bar=bars[1], seconds=60), 0.0)
    assert isinstance(first, PlaceOrder)
    assert [type(c) for c in strategy.decide(OrderRejected(ref=first.ref, reason="x"), 1.0)] == [
        Alert
    ]
    assert strategy.decide(TimerFired(), 4.0) == []  # the retry waits retry_delay
    (second,) = strategy.decide(TimerFired(), 5.0)
    assert isinstance(second, PlaceOrder)
    commands = strategy.decide(OrderRejected(ref=second.ref, reason="x"), 6.0)
    assert [c.kind for c in commands if isinstance(c, Alert)] == ["order-rejected", "gave-up"]
    assert strategy.decide(TimerFired(), 100.0) == []


def test_the_signal_turning_cancels_the_working_entry_and_sells_what_it_bought() -> None:
    """Momentum goes flat while its entry works: the entry is cancelled, and the shares it
    bought before the cancel are sold (never more than are held)."""
    kind = momentum(lookback=1)
    strategy = kind.restore(NO_FACTS)
    bars = bars_of([Decimal("100"), Decimal("101"), Decimal("99")])
    strategy.decide(BarClosed(bar=bars[0], seconds=60), 0.0)
    (entry,) = strategy.decide(BarClosed(bar=bars[1], seconds=60), 1.0)
    assert isinstance(entry, PlaceOrder)
    strategy.decide(OrderFilled(ref=entry.ref, exec_id="a", quantity=30, price=Decimal(101)), 2.0)
    cancel, exit_ = strategy.decide(BarClosed(bar=bars[2], seconds=60), 3.0)
    assert cancel == CancelOrder(ref=entry.ref, reason="the signal turned")
    assert isinstance(exit_, PlaceOrder)
    assert (exit_.side, exit_.quantity, exit_.limit) == (Side.SELL, 30, Decimal("98.90"))
    assert OrderRef.parse(exit_.ref).tag == f"X.{int(bars[2].start.timestamp())}"
    # The entry fills 5 more before its cancel lands: those are sold too, as attempt 2, once
    # retry_delay has passed since attempt 1.
    late = OrderFilled(ref=entry.ref, exec_id="b", quantity=5, price=Decimal(101))
    assert strategy.decide(late, 4.0) == []
    (more,) = strategy.decide(TimerFired(), 8.0)
    assert isinstance(more, PlaceOrder)
    assert (more.side, more.quantity, more.ref.endswith(":2")) == (Side.SELL, 5, True)
    assert strategy.decide(OrderCancelled(ref=entry.ref), 5.0) == []
    strategy.decide(OrderFilled(ref=exit_.ref, exec_id="c", quantity=30, price=Decimal(99)), 6.0)
    strategy.decide(OrderFilled(ref=more.ref, exec_id="d", quantity=5, price=Decimal(98)), 6.0)
    assert strategy.shares == 0
    assert strategy.realized == 30 * Decimal(-2) + 5 * Decimal(-3)
    assert strategy.live_orders() == []


def test_realized_pnl_is_by_average_cost_and_the_view_shows_the_indicator() -> None:
    """Two buys at different prices, one sell in two fills: P&L against the average."""
    kind = ma_cross(fast=2, slow=3)
    strategy = kind.restore(NO_FACTS)
    closes = [Decimal(c) for c in ("10", "9", "8", "12", "13", "7", "6")]
    bars = bars_of(closes)
    placed: list[PlaceOrder] = []
    for i, bar in enumerate(bars[:5]):
        placed += [
            c
            for c in strategy.decide(BarClosed(bar=bar, seconds=60), float(i))
            if isinstance(c, PlaceOrder)
        ]
    (entry,) = placed
    assert entry.quantity == 10_000 // 12
    strategy.decide(OrderFilled(ref=entry.ref, exec_id="a", quantity=400, price=Decimal(12)), 5)
    strategy.decide(OrderFilled(ref=entry.ref, exec_id="b", quantity=433, price=Decimal(13)), 5)
    view = strategy.view()
    assert isinstance(view, MaCrossView)
    assert (view.fast, view.slow, view.warm, view.signal) == (
        Decimal("12.5000"),
        Decimal("11.0000"),
        True,
        "BUY",
    )
    (exit_,) = [
        c
        for c in strategy.decide(BarClosed(bar=bars[5], seconds=60), 6.0)
        if isinstance(c, PlaceOrder)
    ]
    assert (exit_.side, exit_.quantity) == (Side.SELL, 833)
    average = (400 * Decimal(12) + 433 * Decimal(13)) / 833
    strategy.decide(OrderFilled(ref=exit_.ref, exec_id="c", quantity=333, price=Decimal(7)), 7)
    strategy.decide(OrderFilled(ref=exit_.ref, exec_id="d", quantity=500, price=Decimal(7)), 7)
    assert abs(strategy.realized - 833 * (Decimal(7) - average)) < Decimal("1e-20")
    assert strategy.shares == 0
    assert strategy.positions() == []


def test_orphan_shares_are_adopted_into_the_position() -> None:
    """adopt() is a filled buy under a fresh A.<n> tag; restored, it is the position."""
    kind = ma_cross()
    taken = ["ma_cross:TQQQ:A.1:1", "grid:TQQQ:L0:BUY:4:1", "ma_cross:TQQQ:E.17:1"]
    order = kind.adopt(12, Decimal("50.1234"), taken)
    assert order.ref == "ma_cross:TQQQ:A.2:1"
    assert (order.side, order.quantity, order.limit) == (Side.BUY, 12, Decimal("50.12"))
    facts = Facts(
        intents=(IntentRecord(order=order, created_ns=0),),
        fills=(
            FillRecord(
                exec_id=f"orphan:{order.ref}",
                ref=order.ref,
                quantity=12,
                price=Decimal("50.1234"),
                commission=None,
            ),
        ),
        working=frozenset(),
        placed_at={},
        now=0.0,
    )
    strategy = kind.restore(facts)
    assert strategy.shares == 12
    (line,) = strategy.positions()
    assert (line.shares, line.purchase_price) == (12, Decimal("50.1234"))
    assert strategy.live_orders() == []


def test_the_registry_makes_each_strategy_and_names_bad_parameters() -> None:
    """Names and parameters in, StrategyKinds out; a typo or a bad value is an error."""
    assert isinstance(strategy_kind("ma_cross", "QQQ", {"fast": 5, "slow": 9}), MaCrossKind)
    made = strategy_kind("momentum", "QQQ", {"lookback": 4, "threshold": Decimal("0.01")})
    assert isinstance(made, MomentumKind)
    assert made.needs.warmup == 5
    with pytest.raises(StrategyError, match="takes no parameter 'fats'"):
        strategy_kind("ma_cross", "QQQ", {"fats": 5})
    with pytest.raises(StrategyError, match=r"fast \(9\) must be less than slow \(5\)"):
        strategy_kind("ma_cross", "QQQ", {"fast": 9, "slow": 5})
    with pytest.raises(StrategyError, match="unknown strategy 'macd'"):
        strategy_kind("macd", "QQQ", {})
    with pytest.raises(StrategyError, match="needs a lot map"):
        strategy_kind("grid", "QQQ", {})


# -- restore from any prefix -------------------------------------------------------------------

FATES = ("fill", "fill", "partial", "none", "reject")


@attrs.define
class Step:
    event: StrategyEvent
    now: float
    commands: list[Command]


@attrs.define
class Run:
    """An uninterrupted run: every event delivered, with its time and the commands it led
    to; and at each step, what the ledger and the broker would hold."""

    steps: list[Step] = attrs.Factory(list)


def simulate(strategy: PositionStrategy, bars: list[Bar], fates: list[str]) -> Run:
    run = Run()
    pending: list[tuple[StrategyEvent, float]] = []
    finished: set[str] = set()
    placed = 0
    executions = 0
    for i, bar in enumerate(bars):
        start = 60.0 * i
        pending.append((BarClosed(bar=bar, seconds=60), start))
        pending += [(TimerFired(), start + offset) for offset in (20.0, 40.0)]
        while pending:
            event, now = pending.pop(0)
            commands = strategy.decide(event, now)
            run.steps.append(Step(event=event, now=now, commands=commands))
            reactions: list[StrategyEvent] = []
            for command in commands:
                if isinstance(command, PlaceOrder):
                    fate = fates[placed % len(fates)]
                    placed += 1
                    price = command.limit if command.limit is not None else bar.close
                    if fate == "reject":
                        reactions.append(OrderRejected(ref=command.ref, reason="refused"))
                        finished.add(command.ref)
                        continue
                    reactions.append(OrderAccepted(ref=command.ref))
                    if fate == "fill" or (fate == "partial" and command.quantity == 1):
                        executions += 1
                        reactions.append(
                            OrderFilled(
                                ref=command.ref,
                                exec_id=f"x{executions}",
                                quantity=command.quantity,
                                price=price,
                            )
                        )
                        finished.add(command.ref)
                    elif fate == "partial":
                        executions += 1
                        reactions.append(
                            OrderFilled(
                                ref=command.ref,
                                exec_id=f"x{executions}",
                                quantity=command.quantity // 2,
                                price=price,
                            )
                        )
                elif isinstance(command, CancelOrder) and command.ref not in finished:
                    finished.add(command.ref)
                    reactions.append(OrderCancelled(ref=command.ref))
            # The venue answers a moment later, before the next timer tick.
            pending[:0] = [(reaction, now + 1.0) for reaction in reactions]
    return run


def facts_at(run: Run, cut: int) -> Facts:
    """What the ledger and the broker hold before step ``cut`` is delivered."""
    intents: list[IntentRecord] = []
    placed_at: dict[str, float] = {}
    fills: list[FillRecord] = []
    done: set[str] = set()
    quantities: dict[str, int] = {}
    filled: dict[str, int] = {}
    now = 0.0
    for step in run.steps[:cut]:
        now = step.now
        match step.event:
            case OrderFilled(ref=ref, quantity=quantity):
                fills.append(
                    FillRecord(
                        exec_id=step.event.exec_id,
                        ref=ref,
                        quantity=quantity,
                        price=step.event.price,
                        commission=None,
                        seq=len(fills) + 1,
                    )
                )
                filled[ref] = filled.get(ref, 0) + quantity
                if filled[ref] >= quantities[ref]:
                    done.add(ref)
            case OrderCancelled(ref=ref) | OrderRejected(ref=ref):
                done.add(ref)
        for command in step.commands:
            if isinstance(command, PlaceOrder):
                intents.append(IntentRecord(order=command, created_ns=int(step.now * 1e9)))
                placed_at[command.ref] = step.now
                quantities[command.ref] = command.quantity
    return Facts(
        intents=tuple(intents),
        fills=tuple(fills),
        working=frozenset(set(quantities) - done),
        placed_at=placed_at,
        now=now,
    )


def state(strategy: PositionStrategy) -> tuple[Any, ...]:
    latest = strategy.latest
    return (
        strategy.shares,
        strategy.cost,
        strategy.realized,
        sorted((o.ref, o.quantity, o.filled, o.limit) for o in strategy.live_orders()),
        None if latest is None else (latest.tag, latest.quantity, latest.attempts),
        strategy.last_price,
    )


kinds = st.one_of(
    st.builds(
        lambda fast, extra: ma_cross(fast=fast, slow=fast + extra, max_attempts=2),
        st.integers(1, 4),
        st.integers(1, 5),
    ),
    st.builds(
        lambda lookback, threshold: momentum(
            lookback=lookback, threshold=threshold, max_attempts=3
        ),
        st.integers(1, 6),
        st.sampled_from(["0", "0.003", "-0.002"]),
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=kinds,
    moves=st.lists(st.integers(-30, 30), min_size=10, max_size=45),
    fates=st.lists(st.sampled_from(FATES), min_size=1, max_size=8),
    data=st.data(),
)
def test_a_strategy_restored_from_any_prefix_decides_as_the_uninterrupted_one(
    kind: MaCrossKind | MomentumKind, moves: list[int], fates: list[str], data: st.DataObject
) -> None:
    """Cut anywhere: restore from the facts, re-warm the indicator from the bars before the cut,
    re-sync (which asks again only for the cancels still pending), and from there every event
    leads to the same commands; the state matches at the cut."""
    closes = [Decimal(100)]
    for move in moves:
        closes.append(max(Decimal(1), closes[-1] + Decimal(move) / 10))
    bars = bars_of(closes)
    original = kind.restore(NO_FACTS)
    run = simulate(original, bars, fates)
    cut = data.draw(st.integers(0, len(run.steps)), label="cut")
    # The uninterrupted strategy at the cut: run a second copy up to it.
    twin = kind.restore(NO_FACTS)
    for step in run.steps[:cut]:
        twin.decide(step.event, step.now)
    restored = kind.restore(facts_at(run, cut))
    seen = [s.event for s in run.steps[:cut] if isinstance(s.event, BarClosed)]
    restored.warm(seen[-kind.needs.warmup :] if seen else [])
    now = run.steps[cut - 1].now if cut else 0.0
    pending_cancels = sorted(o.ref for o in twin.live_orders() if o.cancel_requested)
    resynced = restored.resync(now)
    # It asks again for the cancels still pending (overdue or not: a cancel for a turned signal
    # is asked before the order's time-out), and may ask early for an order already past its
    # time-out that the twin would cancel at its next timer; nothing else.
    asked = {c.ref for c in resynced if isinstance(c, CancelOrder)}
    timeout = restored.params.fill_timeout
    overdue = {o.ref for o in twin.live_orders() if now - o.placed_at >= timeout}
    assert set(pending_cancels) <= asked <= set(pending_cancels) | overdue
    assert [c for c in resynced if not isinstance(c, CancelOrder)] == []
    assert state(restored) == state(twin)
    for step in run.steps[cut:]:
        expected = [c for c in step.commands if not (isinstance(c, CancelOrder) and c.ref in asked)]
        assert restored.decide(step.event, step.now) == expected
    assert state(restored) == state(original)
