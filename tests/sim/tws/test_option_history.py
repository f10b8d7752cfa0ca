"""reqHistoricalData for an option from ib_insync over a real socket: bars of the option's
quotes at its underlying's prints (TRADES the last, MIDPOINT, BID, ASK), the very quotes
``Engine.option_quote`` gave at those prints; 162 where there are none."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal

import pytest
from ib_insync import Option, Stock

from actors.domain.sessions import NEW_YORK
from sim.engine import Engine
from sim.options import OptionContract, OptionQuote
from tests.sim.tws.clients import Client
from tests.tws_venue import MONDAY, connect, until, venue

pytestmark = pytest.mark.anyio

CALL = OptionContract(underlying="TQQQ", expiry=date(2026, 12, 11), strike=50, right="C")
# (minute, second, price): two prints in minute 1, one in minutes 0 and 3
PRINTS = ((0, 0, "50.00"), (1, 10, "50.40"), (1, 40, "49.80"), (3, 5, "50.90"))


def run_prints(engine: Engine) -> list[tuple[int, OptionQuote]]:
    """The prints, and the option's quote as the engine gives it right after each."""
    seen = []
    for minute, second, price in PRINTS:
        at = MONDAY.replace(minute=minute, second=second)
        engine.on_trade("TQQQ", Decimal(price), 100, at)
        quote = engine.option_quote(CALL, at)
        assert quote is not None
        seen.append((minute, quote))
    return seen


def expected_bars(
    seen: list[tuple[int, OptionQuote]], price: Callable[[OptionQuote], Decimal]
) -> list[tuple[datetime, float, float, float, float, int]]:
    minutes: dict[int, list[Decimal]] = {}
    for minute, quote in seen:
        minutes.setdefault(minute, []).append(price(quote))
    return [
        (MONDAY.replace(minute=m), float(p[0]), float(max(p)), float(min(p)), float(p[-1]), len(p))
        for m, p in minutes.items()
    ]


SHOWS: dict[str, Callable[[OptionQuote], Decimal]] = {
    "TRADES": lambda q: q.last,
    "MIDPOINT": lambda q: (q.bid + q.ask) / 2,
    "BID": lambda q: q.bid,
    "ASK": lambda q: q.ask,
}


@pytest.mark.parametrize("what", sorted(SHOWS))
async def test_option_bars_are_its_quotes_at_the_underlyings_prints(
    what: str, client: Client, client_errors: Callable[[], list[str]]
) -> None:
    """One-minute bars over the day: open, high, low, close of the quote's price ``what``
    names; TRADES bars count their prints and have no volume, the others no volume, WAP or
    count (-1), as IB sends them."""
    engine = Engine()
    async with venue(engine, client.version) as server:
        seen = run_prints(engine)  # the server records the prints it sees
        ib = await client.connect(server)
        [contract] = await ib.qualifyContractsAsync(
            client.api.Option("TQQQ", "20261211", 50, "C", "SMART")
        )
        # (ending at the venue's clock, the window would leave out its last print: the end
        # is exclusive, as for a stock)
        end = MONDAY.replace(minute=10)
        rows = await ib.reqHistoricalDataAsync(
            contract, end, "1 D", "1 min", what, useRTH=True, formatDate=1
        )
        ib.disconnect()
    got = [(r.date.astimezone(NEW_YORK), r.open, r.high, r.low, r.close, r.barCount) for r in rows]
    bars = expected_bars(seen, SHOWS[what])
    if what == "TRADES":
        assert got == bars
        assert [r.volume for r in rows] == [0.0] * len(rows)
    else:
        assert [g[:5] for g in got] == [b[:5] for b in bars]
        assert {(r.volume, r.average, r.barCount) for r in rows} == {(-1.0, -1.0, -1)}
    assert len(rows) == 3
    assert server.protocol_errors == []
    assert client_errors() == []


async def test_an_option_without_prints_in_the_window_is_hmds_no_data() -> None:
    """A window before the underlying's first print: 162 naming the OCC symbol and the
    source; a stock's MIDPOINT is still refused (TRADES only)."""
    engine = Engine()
    async with venue(engine) as server:
        run_prints(engine)
        ib = await connect(server)
        errors: list[tuple[int, str]] = []
        ib.errorEvent += lambda _id, code, msg, _contract: errors.append((code, msg))
        option = Option("TQQQ", "20261211", 50, "C", "SMART")
        early = MONDAY.replace(hour=9, minute=40)
        assert (
            list(await ib.reqHistoricalDataAsync(option, early, "600 S", "1 min", "BID", True))
            == []
        )
        stock = Stock("TQQQ", "SMART", "USD")
        assert list(await ib.reqHistoricalDataAsync(stock, "", "1 D", "1 min", "BID", True)) == []
        await until(lambda: len(errors) == 2)
        ib.disconnect()
    assert errors[0] == (
        162,
        "Historical Market Data Service error message:HMDS query returned no data: "
        "TQQQ  261211C00050000@SMART Bid",
    )
    assert errors[1][0] == 321
    assert "What to show value of BID rejected" in errors[1][1]
    assert server.protocol_errors == []
