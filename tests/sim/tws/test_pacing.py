"""IB's pacing at the TWS face (``sim.tws.pacing``), so a client's throttling can be tested:
error 100 for a flood of messages, 101 past the market data lines, 162 for historical requests
too close together. The limits are measured on a clock the test moves (never the wall clock),
except where ib_insync's own throttle, which runs on the wall clock, is the thing tested."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
import pytest
from ib_insync import IB, Option, Stock

from sim.engine import Engine
from sim.tws.pacing import MessageRate, PacingError, PacingLimits
from sim.tws.server import TwsServer
from tests.tws_venue import TQQQ, Clock, connect, trade, until

pytestmark = pytest.mark.anyio

HISTORICAL_PACING = (
    "Historical Market Data Service error message:Historical data request pacing violation"
)


class Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def paced_venue(
    engine: Engine, clock: Callable[[], float], limits: PacingLimits | None = None
) -> AsyncIterator[TwsServer]:
    server = TwsServer(
        engine,
        instruments=[TQQQ],
        clock=Clock(engine),
        pacing=limits if limits is not None else PacingLimits(),
        pacing_clock=clock,
    )
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        yield server
        tg.cancel_scope.cancel()


def record_errors(ib: IB) -> list[tuple[int, int, str]]:
    errors: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, msg, _contract: errors.append((req_id, code, msg))
    return errors


async def test_a_flood_past_50_messages_a_second_gets_error_100_for_each_one_over(
    client_errors: Callable[[], list[str]],
) -> None:
    """ib_insync with its throttle off sends 60 requests at once: every message past the
    50th of that second is refused with 100 (not served); a second later requests are
    served again."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    clock = Monotonic()
    async with paced_venue(engine, clock) as server:
        ib = await connect(server)
        ib.client.MaxRequests = 0
        errors = record_errors(ib)
        received = sum(server.requests.values())  # the connect's own requests
        for _ in range(60):
            ib.client.reqCurrentTime()
        total = received + 60
        await until(lambda: sum(server.requests.values()) == total)
        await until(lambda: len(errors) == total - 50)
        clock.now += 1.0
        assert await ib.reqCurrentTimeAsync() is not None
        ib.disconnect()
    assert {(req_id, code) for req_id, code, _ in errors} == {(-1, 100)}
    assert errors[0][2] == "Max rate of messages per second has been exceeded:max=50 rec=51 (1)"
    assert errors[-1][2].endswith(f"rec={total} ({total - 50})")
    assert server.protocol_errors == []
    assert client_errors() == []


@pytest.mark.slow
async def test_ib_insyncs_own_throttle_keeps_a_burst_under_the_limit(
    client_errors: Callable[[], list[str]],
) -> None:
    """At its defaults (45 requests a second) ib_insync spreads 100 requests over a couple of
    seconds and never meets our 50 a second: no 100, every request served. (The one test on
    the wall clock: the client's throttle runs on it.)"""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with paced_venue(engine, anyio.current_time) as server:
        ib = await connect(server)
        errors = record_errors(ib)
        for _ in range(100):
            ib.client.reqCurrentTime()
        await until(lambda: server.requests[49] == 100, deadline=20)
        assert await ib.reqCurrentTimeAsync() is not None
        ib.disconnect()
    assert errors == []
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_market_data_lines_past_the_limit_get_101(
    client_errors: Callable[[], list[str]],
) -> None:
    """With 3 lines: the fourth subscription is 101 and streams nothing; a snapshot holds no
    line; a cancelled line frees one."""
    engine = Engine()
    trade(engine, "50.00", 100, 0)
    async with paced_venue(engine, Monotonic(), PacingLimits(market_data_lines=3)) as server:
        ib = await connect(server)
        errors = record_errors(ib)
        strikes = (48, 49, 50, 51)
        tickers = [ib.reqMktData(Option("TQQQ", "20261211", k, "C", "SMART")) for k in strikes]
        await until(lambda: errors)
        [(_, code, message)] = errors
        assert (code, message) == (101, "Max number of tickers has been reached")
        await until(lambda: all(t.bid == t.bid for t in tickers[:3]))
        [snapshot] = await ib.reqTickersAsync(Stock("TQQQ", "SMART", "USD"))
        assert snapshot.last == 50.0
        ib.cancelMktData(tickers[0].contract)
        again = ib.reqMktData(Option("TQQQ", "20261211", 52, "C", "SMART"))
        await until(lambda: again.bid == again.bid)
        ib.disconnect()
    assert tickers[3].bid != tickers[3].bid
    assert len(errors) == 1
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_historical_requests_too_close_together_get_162(
    client_errors: Callable[[], list[str]],
) -> None:
    """Small bars (30 s or less): an identical request within 15 s, a sixth for one contract
    within 2 s, the sixty-first in 10 minutes, each 162; larger bars are never paced."""
    engine = Engine()
    clock = Monotonic()
    limits = PacingLimits(historical_requests=8)
    async with paced_venue(engine, clock, limits) as server:
        for minute in range(3):
            trade(engine, f"50.{minute:02}", 100, minute)
        ib = await connect(server)
        errors = record_errors(ib)
        stock = Stock("TQQQ", "SMART", "USD")

        async def bars(duration: str, size: str = "5 secs") -> int:
            return len(await ib.reqHistoricalDataAsync(stock, "", duration, size, "TRADES", False))

        assert await bars("300 S") > 0
        assert await bars("300 S") == 0  # identical, at once
        assert errors[-1][1:] == (162, HISTORICAL_PACING)
        clock.now += 15.5
        assert await bars("300 S") > 0  # identical, 15.5 s later
        for seconds in (330, 360, 390, 420):
            assert await bars(f"{seconds} S") > 0
        assert await bars("450 S") == 0  # the sixth for TQQQ TRADES within 2 s
        assert len(errors) == 2
        clock.now += 2.5
        assert await bars("480 S") > 0
        assert await bars("1 D", "1 min") > 0  # not paced
        assert await bars("1 D", "1 min") > 0
        clock.now += 2.5
        assert await bars("510 S") > 0  # the eighth in 10 minutes
        clock.now += 2.5
        assert await bars("540 S") == 0  # the ninth
        assert len(errors) == 3
        clock.now += 600
        assert await bars("540 S") > 0
        ib.disconnect()
    assert {e[1:] for e in errors} == {(162, HISTORICAL_PACING)}
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_a_server_without_pacing_limits_serves_any_flood(
    client_errors: Callable[[], list[str]],
) -> None:
    """The default (``pacing=None``): the embedded venue's clients turn ib_insync's throttle
    off, and 300 requests at one instant, 150 market data lines and identical 5-second bar
    requests are all served."""
    engine = Engine()
    server = TwsServer(engine, instruments=[TQQQ], clock=Clock(engine), pacing_clock=Monotonic())
    assert server.pacing is None
    trade(engine, "49.90", 100, 0)  # a print of the server's: the bars' data
    trade(engine, "50.00", 100, 1)  # the venue's clock (the window ends before it)
    async with anyio.create_task_group() as tg:
        await tg.start(server.serve)
        ib = await connect(server)
        ib.client.MaxRequests = 0
        errors = record_errors(ib)
        for _ in range(300):
            ib.client.reqCurrentTime()
        await until(lambda: server.requests[49] == 300)
        stock = Stock("TQQQ", "SMART", "USD")
        tickers = [ib.reqMktData(stock) for _ in range(150)]
        await until(lambda: all(t.last == 50.0 for t in tickers))
        for _ in range(3):
            bars = await ib.reqHistoricalDataAsync(stock, "", "300 S", "5 secs", "TRADES", False)
            assert len(bars) == 1
        ib.disconnect()
        tg.cancel_scope.cancel()
    assert errors == []
    assert server.protocol_errors == []
    assert client_errors() == []


def test_the_message_rate_is_a_bucket_of_50_refilled_at_50_a_second() -> None:
    """51 messages in one instant: the 51st is over; half a second later 25 more pass and
    the 26th is over (77 received in that second); a second later a burst of 50 passes."""
    clock = Monotonic()
    rate = MessageRate(50, clock)
    assert [rate.arrive() for _ in range(50)] == [None] * 50
    assert rate.arrive() == "Max rate of messages per second has been exceeded:max=50 rec=51 (1)"
    clock.now += 0.5
    assert [rate.arrive() for _ in range(25)] == [None] * 25
    assert rate.arrive() == "Max rate of messages per second has been exceeded:max=50 rec=77 (2)"
    clock.now += 1.0
    assert [rate.arrive() for _ in range(50)] == [None] * 50
    assert rate.arrive() is not None


@pytest.mark.parametrize(
    ("field", "value"),
    [("messages_per_second", 0), ("market_data_lines", -1), ("identical_within", "15")],
)
def test_pacing_limits_refuse_what_is_not_a_positive_number(field: str, value: object) -> None:
    with pytest.raises(PacingError, match=f"pacing.{field}"):
        PacingLimits(**{field: value})  # type: ignore[arg-type]


def test_the_default_limits_are_ibs() -> None:
    limits = PacingLimits()
    assert (limits.messages_per_second, limits.market_data_lines) == (50, 100)
    assert (limits.historical_requests, limits.historical_window) == (60, 600.0)
    assert (limits.identical_within, limits.same_contract_requests) == (15.0, 5)
    assert (limits.same_contract_window, limits.small_bar_seconds) == (2.0, 30)
