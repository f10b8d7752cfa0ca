"""The risk actor in the real tree: replay -> symbol actor -> risk actor -> lot-keeper (LMDB in
tmp_path) -> broker actor -> sim venue. Each rule refuses orders the grid wants, and the venue's
own books show that no buy ever reached it beyond a limit (``app.chaos.invariants.RiskWatch``,
fed every input of the engine before it takes effect); a refused order has no intent and is
counted, the strategy saw it, and the daily loss guard trips once and stays tripped across a
restart on the same directory."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import pytest

from actors import ledger
from actors.domain import Bar, PlaceOrder, Side, TimeInForce
from actors.domain.sessions import NEW_YORK
from actors.lot_keeper import LedgerState, ledger_state, ledger_store
from actors.risk import (
    Allowed,
    CheckOrder,
    DescribeRisk,
    Exposure,
    HaltTrading,
    ResumeTrading,
    RiskView,
)
from actors.risk import Refused as RiskRefused
from actors.risk_rules import MarketHours, RiskLimits, Working
from app.chaos import invariants
from app.compose import SimTrading, sim_trading
from config.lotmap import load_lot_map
from runtime.metrics import Metrics
from runtime.telemetry import Telemetry, Tracer
from sim.engine import Engine, Input
from supervisors import Supervisor

from .probe_strategy import ProbeKind
from .trading_checks import check_agreement

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
LOTS = load_lot_map(ROOT / "config/lots/tqqq.csv")
DAY = datetime(2026, 11, 23, 9, 30, tzinfo=NEW_YORK)


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Real clocks: the lot-keeper's writer thread does real disk work."""
    return request.param, {}


def drifting(
    minutes: int, *, per_minute: str, start: datetime = DAY, price: str = "52.00"
) -> list[Bar]:
    """1-minute TQQQ bars moving ``per_minute`` (a fraction) every minute, from ``start``."""
    bars, level, step = [], Decimal(price), 1 + Decimal(per_minute)
    for minute in range(minutes):
        close = (level * step).quantize(Decimal("0.01"))
        bars.append(
            Bar(
                symbol="TQQQ",
                start=(start + timedelta(minutes=minute)).astimezone(UTC),
                open=level,
                high=max(level, close),
                low=min(level, close),
                close=close,
                volume=100_000,
            )
        )
        level = close
    return bars


class Run:
    """One service on ``data`` over ``engine`` (kept between runs: the venue's books)."""

    def __init__(self, tmp_path: Path, engine: Engine, limits: RiskLimits) -> None:
        self.data = tmp_path / "ledger"
        self.engine = engine
        self.watch = invariants.RiskWatch(limits, "TQQQ")
        engine.recorder = self._record
        self.limits = limits
        self.metrics = Metrics()

    def _record(self, entry: Input) -> None:
        self.watch(self.engine, entry)

    async def __call__(
        self, bars: list[Bar], *, before: Any = None, speed: float | None = None
    ) -> tuple[SimTrading, LedgerState, RiskView]:
        self.metrics = Metrics()  # the counts of this run
        trading = sim_trading(
            data_dir=self.data,
            bars=bars,
            speed=speed,
            lots={"TQQQ": LOTS},
            engine=self.engine,
            risk=self.limits,
            telemetry=Telemetry(Tracer(enabled=False), self.metrics),
        )
        root = Supervisor("root", trading.spec)
        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                await tg.start(root.run)
                if before is not None:
                    await before(trading)
                await trading.finished.wait()
                view = await trading.cells["risk"].ref.request(DescribeRisk(), timeout=30)
                root.stop()
        assert root.restarts == 0
        assert isinstance(view, RiskView)
        # Read once the tree has stopped: a timer's decision after the replay ended would
        # otherwise place an order the snapshot does not hold yet.
        with ledger_store(self.data) as store:
            state = store.read(functools.partial(ledger_state, symbol="TQQQ"))
        return trading, state, view

    def refused_count(self, rule: str) -> int:
        return self.metrics.count(
            "actortrade.risk.refused", {"trading.symbol": "TQQQ", "trading.risk.rule": rule}
        ).value

    def risk_record(self) -> ledger.RiskRecord:
        with ledger_store(self.data) as store:
            return store.read(ledger.load_risk)


def assert_refused_and_never_sent(
    run: Run, trading: SimTrading, state: LedgerState, view: RiskView, rule: str
) -> None:
    """Refusals by ``rule`` happened, were counted and seen by the grid; none was committed or
    reached the venue; no buy at the venue broke a limit; the books agree."""
    assert view.refused.get(rule, 0) > 0, view
    assert run.refused_count(rule) == view.refused[rule]
    refused = {r.ref for r in view.last_refusals}
    intents = {i.ref for i in state.intents}
    assert refused
    assert not refused & intents
    assert not refused & set(run.engine.orders)
    assert any(a.kind == "order-refused" and rule in a.message for a in trading.alerts)
    run.watch.check(invariants.Tally(), run.risk_record(), run.engine.last_trade_at)
    check_agreement(trading, state, "TQQQ")


async def test_the_grid_trades_unchanged_without_limits(tmp_path: Path) -> None:
    """Without limits or halts nothing can refuse an order: the symbol actor does not ask (no
    round trip on the tick-to-order path) and the grid trades as it always did."""
    run = Run(tmp_path, Engine(), RiskLimits())
    trading, state, view = await run(drifting(90, per_minute="-0.002"))
    assert (view.allowed, view.refused) == (0, {})
    assert len(run.engine.orders) > 5
    assert not [a for a in trading.alerts if a.kind == "order-refused"]
    check_agreement(trading, state, "TQQQ")


async def test_a_limit_never_reached_asks_for_every_order_and_allows_it(tmp_path: Path) -> None:
    run = Run(tmp_path, Engine(), RiskLimits(max_open_orders=1_000))
    trading, state, view = await run(drifting(90, per_minute="-0.002"))
    assert view.refused == {}
    assert view.allowed == len(run.engine.orders) > 5
    assert view.open_orders == len(run.engine.open_orders())
    check_agreement(trading, state, "TQQQ")


async def test_max_open_orders_refuses_buys_beyond_it(tmp_path: Path) -> None:
    """The grid wants a queue of 3 conditional buys; at most 2 orders may work."""
    run = Run(tmp_path, Engine(), RiskLimits(max_open_orders=2))
    trading, state, view = await run(drifting(90, per_minute="-0.002"))
    assert_refused_and_never_sent(run, trading, state, view, "open_orders")
    assert run.watch.buys


async def test_the_symbol_notional_cap_refuses_buys_beyond_it(tmp_path: Path) -> None:
    """About 100 shares at $50 a lot: a $12,000 cap holds two lots' worth, position included."""
    run = Run(tmp_path, Engine(), RiskLimits(max_notional_per_symbol=Decimal(12_000)))
    trading, state, view = await run(drifting(90, per_minute="-0.002"))
    assert_refused_and_never_sent(run, trading, state, view, "symbol_notional")
    assert len(run.watch.buys) >= 2


async def test_the_gross_exposure_cap_refuses_buys_beyond_it(tmp_path: Path) -> None:
    run = Run(tmp_path, Engine(), RiskLimits(max_gross_exposure=Decimal(15_000)))
    trading, state, view = await run(drifting(90, per_minute="-0.002"))
    assert_refused_and_never_sent(run, trading, state, view, "gross_exposure")


async def test_trade_sizing_refuses_an_order_beyond_its_share_of_equity(tmp_path: Path) -> None:
    """4% of $100,000 is less than one lot (94 shares at $52): nothing is bought."""
    limits = RiskLimits(equity=Decimal(100_000), max_risk_pct_per_trade=Decimal(4))
    run = Run(tmp_path, Engine(), limits)
    trading, state, view = await run(drifting(30, per_minute="-0.002"))
    assert_refused_and_never_sent(run, trading, state, view, "trade_risk")
    assert not run.engine.orders
    assert not state.intents


async def test_the_market_hours_gate_goes_by_the_ticks_time(tmp_path: Path) -> None:
    """Regular hours only, on a replay of the last pre-market minute then the open, whatever the
    wall clock says: the first buy is placed at 09:30, none before. (Paced at 60x: the grid's
    retry backs off on the host's clock.)"""
    run = Run(tmp_path, Engine(), RiskLimits(market_hours=MarketHours.REGULAR))
    start = datetime(2026, 11, 23, 9, 29, tzinfo=NEW_YORK)
    bars = drifting(6, per_minute="-0.001", start=start)
    trading, state, view = await run(bars, speed=60)
    assert_refused_and_never_sent(run, trading, state, view, "market_hours")
    first = min(at for at, _ in run.watch.buys)
    assert first.astimezone(NEW_YORK).time() >= DAY.time()


async def test_the_operators_halt_refuses_new_orders_until_resumed(tmp_path: Path) -> None:
    """A halt of TQQQ refuses the grid's orders from then on and is durable: restarted, the
    service still buys nothing; resumed, the grid buys again. (Without limits the symbol actor
    asks only once a halt turned the checks on: an order decided in the very moment of the
    halt may still go, as one allowed just before it would.)"""
    run = Run(tmp_path, Engine(), RiskLimits())

    async def halt(trading: SimTrading) -> None:
        view = await trading.cells["risk"].ref.request(HaltTrading(symbol="TQQQ"), timeout=30)
        assert view.halts == ("TQQQ",)

    bars = drifting(60, per_minute="-0.002")
    trading, state, view = await run(bars[:20], before=halt)
    assert view.refused.get("halt", 0) > 0
    assert run.risk_record().halts == ("TQQQ",)
    placed = set(run.engine.orders)

    trading, state, view = await run(bars[:40])
    assert_refused_and_never_sent(run, trading, state, view, "halt")
    assert set(run.engine.orders) == placed

    async def resume(trading: SimTrading) -> None:
        view = await trading.cells["risk"].ref.request(ResumeTrading(), timeout=30)
        assert view.halts == ()

    trading, state, view = await run(bars, before=resume)
    assert run.risk_record().halts == ()
    assert len(run.engine.orders) > len(placed)
    check_agreement(trading, state, "TQQQ")


async def test_the_daily_loss_guard_trips_once_and_stays_tripped_after_a_restart(
    tmp_path: Path,
) -> None:
    """A falling day loses more than 0.05% of $100,000: the guard trips with one alert, the
    working buys are cancelled at the venue, no buy follows; sells for the lots held still go.
    Restarted on the same directory the same day: still tripped, no buy, no second alert. The
    next day's first tick starts a new session and the grid buys again."""
    limits = RiskLimits(equity=Decimal(100_000), max_daily_loss_pct=Decimal("0.05"))
    engine = Engine()
    run = Run(tmp_path, engine, limits)
    bars = drifting(120, per_minute="-0.002")
    trading, state, view = await run(bars[:60])
    assert view.tripped is not None
    assert "lost" in view.tripped
    assert [a.kind for a in trading.alerts].count("risk-tripped") == 1
    record = run.risk_record()
    assert record.tripped == view.tripped
    assert record.session == "2026-11-23"
    assert not [o for o in engine.open_orders() if o.side is Side.BUY]
    assert any(o.side is Side.SELL for o in engine.open_orders())
    run.watch.check(invariants.Tally(), record, run.engine.last_trade_at)
    check_agreement(trading, state, "TQQQ")
    bought = len(run.watch.buys)

    trading, state, view = await run(bars)
    assert view.tripped == record.tripped
    assert "risk-tripped" not in [a.kind for a in trading.alerts]
    assert len(run.watch.buys) == bought
    assert view.refused.get("daily_loss", 0) > 0
    run.watch.check(invariants.Tally(), run.risk_record(), run.engine.last_trade_at)
    check_agreement(trading, state, "TQQQ")

    tomorrow = drifting(30, per_minute="0.001", start=DAY + timedelta(days=1), price="45.00")
    trading, state, view = await run(bars + tomorrow)
    assert view.tripped is None
    assert view.session == "2026-11-24"
    assert len(run.watch.buys) > bought
    check_agreement(trading, state, "TQQQ")


async def test_an_allowed_order_counts_against_the_limits_before_its_strategy_reports_it(
    tmp_path: Path,
) -> None:
    """Two strategies of one symbol under a $10,000 cap ask for $6,000 each, the second before
    the first has reported its working orders (its order is still being committed and sent):
    the second is refused, because the first counts from the moment it is allowed. Found by
    the 1,000-seed campaign with the bar strategies (seeds 523 and 592: the grid's buy and
    momentum's together beyond a cap). The first's report then replaces what was counted."""

    def order(route: str) -> PlaceOrder:
        return PlaceOrder(
            ref=f"{route}:E.1:1",
            symbol="TQQQ",
            side=Side.BUY,
            quantity=100,
            limit=Decimal("60.00"),
            tif=TimeInForce.DAY,
        )

    bars = drifting(30, per_minute="0")
    trading = sim_trading(
        data_dir=tmp_path / "ledger",
        bars=bars,
        lots={},
        kinds={"probe:TQQQ": ProbeKind(symbol="TQQQ", script=lambda *_: [])},
        risk=RiskLimits(max_notional_per_symbol=Decimal(10_000)),
    )
    root = Supervisor("root", trading.spec)
    at_ns = int(bars[0].start.timestamp() * 1e9)
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            risk = trading.cells["risk"].ref

            async def ask(route: str) -> object:
                return await risk.request(
                    CheckOrder(
                        order=order(route),
                        route=route,
                        position=0,
                        working=Working(symbol="TQQQ"),
                        price=Decimal("60.00"),
                        at_ns=at_ns,
                    ),
                    timeout=10,
                )

            first = await ask("ma_cross:TQQQ")
            second = await ask("momentum:TQQQ")
            # The first reports its order gone (refused at commit, say): room again.
            risk.tell(
                Exposure(
                    route="ma_cross:TQQQ",
                    working=Working(symbol="TQQQ"),
                    price=Decimal("60.00"),
                    at_ns=at_ns,
                )
            )
            third = await ask("momentum:TQQQ")
            await trading.finished.wait()
            root.stop()
    assert isinstance(first, Allowed)
    assert isinstance(second, RiskRefused)
    assert second.rule == "symbol_notional"
    assert "12,000" in second.reason or "12000" in second.reason
    assert isinstance(third, Allowed)
