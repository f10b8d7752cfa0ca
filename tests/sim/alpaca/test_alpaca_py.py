"""The unmodified alpaca-py 0.44 clients against the Alpaca face over loopback: the stream
(``StockDataStream``: data, a fragmented subscribe, reconnects, the terminal 409) and the
historical bars (``StockHistoricalDataClient``: pages, limit, 401, 422, 429 retried)."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import anyio.to_thread
import msgpack
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.live import StockDataStream
from alpaca.data.models import Bar, Quote, Trade
from alpaca.data.requests import StockBarsRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

from sim import replay
from sim.alpaca.server import AlpacaServer
from sim.engine import Engine
from tests.sim.alpaca.venue import CREDENTIALS, KEY, MONDAY, SECRET, serving, streaming

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


@pytest.fixture
def anyio_backend() -> str:
    """alpaca-py and websockets' server are asyncio's; real sockets need real clocks."""
    return "asyncio"


def stream_for(
    server: AlpacaServer, *, feed: str = "iex", secret: str = SECRET, raw_data: bool = False
) -> StockDataStream:
    stream = StockDataStream(KEY, secret, raw_data=raw_data, url_override=server.url(feed))
    # Reconnect within tens of milliseconds, not seconds.
    stream._reconnect_min_backoff = 0.02
    stream._reconnect_max_backoff = 0.05
    return stream


def subscriptions(server: AlpacaServer) -> int:
    return len(server.events_of("subscribe"))


@pytest.mark.parametrize("raw_data", [False, True], ids=["models", "raw"])
async def test_engine_trades_reach_alpaca_py_handlers_with_the_engines_prices(
    raw_data: bool,
) -> None:
    """Trades, quotes and the completed minute bar arrive as alpaca-py's models (or raw
    dicts with msgpack Timestamps), with the engine's prices, sizes and times."""
    got: list[Any] = []

    async def handler(item: Any) -> None:
        got.append(item)

    with anyio.fail_after(10):
        engine = Engine()
        server = AlpacaServer(engine, credentials=CREDENTIALS)
        async with serving(server):
            stream = stream_for(server, raw_data=raw_data)
            stream.subscribe_trades(handler, "TQQQ")
            stream.subscribe_quotes(handler, "TQQQ")
            stream.subscribe_bars(handler, "TQQQ")
            async with streaming(stream):
                await server.wait_for(lambda: subscriptions(server) == 1)
                engine.on_trade("TQQQ", Decimal("50.05"), 300, MONDAY)
                engine.on_trade("TQQQ", Decimal("50.25"), 100, MONDAY + timedelta(seconds=30))
                engine.on_trade("TQQQ", Decimal("50.15"), 200, MONDAY + timedelta(seconds=61))
                await server.wait_for(lambda: len(got) == 7)
        assert server.events_of("connect")[0]["user_agent"].startswith("APCA-PY/")
        assert server.events_of("connect")[0]["format"] == "msgpack"
        assert server.events_of("subscribe")[0]["trades"] == ["TQQQ"]
        if raw_data:
            trades = [g for g in got if g["T"] == "t"]
            assert [(t["p"], t["s"], t["i"]) for t in trades] == [
                (50.05, 300, 1),
                (50.25, 100, 2),
                (50.15, 200, 3),
            ]
            assert isinstance(trades[0]["t"], msgpack.Timestamp)
            assert trades[0]["t"].to_datetime() == MONDAY
            return
        trades = [g for g in got if isinstance(g, Trade)]
        assert [(t.symbol, t.price, t.size, t.id, t.exchange) for t in trades] == [
            ("TQQQ", 50.05, 300, 1, "V"),
            ("TQQQ", 50.25, 100, 2, "V"),
            ("TQQQ", 50.15, 200, 3, "V"),
        ]
        assert trades[0].timestamp == MONDAY
        quotes = [g for g in got if isinstance(g, Quote)]
        assert (quotes[0].bid_price, quotes[0].ask_price) == (50.04, 50.06)
        [bar] = [g for g in got if isinstance(g, Bar)]
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == (
            50.05,
            50.25,
            50.05,
            50.25,
            400,
        )
        assert (bar.trade_count, bar.vwap, bar.timestamp) == (2, 50.1, MONDAY)


async def test_a_subscribe_too_big_for_one_frame_arrives_whole() -> None:
    """alpaca-py sends its subscribe as a fragmented message (32 KiB slices): 2,000 symbols
    on three channels are all subscribed, and the last symbol's trades flow."""
    symbols = [f"S{i:04d}" for i in range(2000)]
    message = {"trades": symbols, "quotes": symbols, "bars": symbols, "action": "subscribe"}
    assert len(msgpack.packb(message)) > 32 * 1024
    got: list[Any] = []

    async def handler(item: Any) -> None:
        got.append(item)

    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS, symbol_limit=5000)
        async with serving(server):
            stream = stream_for(server)
            stream.subscribe_trades(handler, *symbols)
            stream.subscribe_quotes(handler, *symbols)
            stream.subscribe_bars(handler, *symbols)
            async with streaming(stream):
                await server.wait_for(lambda: subscriptions(server) == 1)
                server.publish_trade("S1999", Decimal("10"), 1, T0)
                await server.wait_for(lambda: len(got) == 2)
        [subscribed] = server.events_of("subscribe")
        assert subscribed["trades"] == subscribed["quotes"] == subscribed["bars"] == symbols
        assert {type(g) for g in got} == {Trade, Quote}


@pytest.mark.parametrize("fault", ["close_1011", "tcp_reset"])
async def test_after_a_server_drop_alpaca_py_reconnects_resubscribes_and_data_flows(
    fault: str,
) -> None:
    """A close frame or a reset: alpaca-py connects again, authenticates, subscribes to the
    same symbols (a second subscribe), and the next trades reach its handler."""
    prices: list[float] = []

    async def handler(item: Trade | dict[Any, Any]) -> None:
        assert isinstance(item, Trade)
        prices.append(item.price)

    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server):
            stream = stream_for(server)
            stream.subscribe_trades(handler, "TQQQ")
            async with streaming(stream):
                await server.wait_for(lambda: subscriptions(server) == 1)
                server.publish_trade("TQQQ", Decimal("50"), 1, T0)
                await server.wait_for(lambda: prices == [50])
                if fault == "close_1011":
                    server.drop_all(1011, "venue restart")
                else:
                    server.abort_all()
                await server.wait_for(lambda: subscriptions(server) == 2)
                server.publish_trade("TQQQ", Decimal("51"), 1, T0 + timedelta(seconds=1))
                await server.wait_for(lambda: prices == [50, 51])
        first_close = server.events_of("close")[0]
        assert first_close["code"] == (1011 if fault == "close_1011" else 1006)
        assert server.events_of("subscribe")[1]["trades"] == ["TQQQ"]
        assert [e["id"] for e in server.events_of("auth")] == [1, 2]


async def test_insufficient_subscription_409_ends_alpaca_pys_run_for_good() -> None:
    """On a feed the account is not entitled to, ``_run_forever`` returns, silently: no
    exception and no reconnect. This is what the adapter has to detect."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS, entitled=["iex"])
        async with serving(server):
            stream = stream_for(server, feed="sip")

            async def handler(_: object) -> None:
                pass

            stream.subscribe_trades(handler, "TQQQ")
            await stream._run_forever()
            await server.wait_for(lambda: server.events_of("close"))
        assert [e["code"] for e in server.events_of("error")] == [409]
        assert len(server.events_of("connect")) == 1


async def test_bad_credentials_402_make_alpaca_py_retry_with_backoff() -> None:
    """402 is not terminal for alpaca-py: it reconnects and asks again, forever."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server):
            stream = stream_for(server, secret="wrong")

            async def handler(_: object) -> None:
                pass

            stream.subscribe_trades(handler, "TQQQ")
            async with streaming(stream):
                await server.wait_for(lambda: len(server.events_of("error")) >= 3)
        assert {e["code"] for e in server.events_of("error")} == {402}
        assert len(server.events_of("connect")) >= 3


async def test_rejected_handshakes_are_retried_until_one_is_let_through() -> None:
    """HTTP 429 on the upgrade (a stale connection slot) is a WebSocketException to
    alpaca-py: it backs off and connects."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server):
            server.reject_handshakes(2, status=429)
            stream = stream_for(server)

            async def handler(_: object) -> None:
                pass

            stream.subscribe_trades(handler, "TQQQ")
            async with streaming(stream):
                await server.wait_for(lambda: subscriptions(server) == 1)
        assert [e["status"] for e in server.events_of("reject")] == [429, 429]


async def test_a_malformed_point_costs_alpaca_py_the_rest_of_its_frame_only() -> None:
    """A trade whose ``t`` is a string fails alpaca-py's cast: that frame is abandoned (and
    logged), the connection stays, and the next frame's trades arrive."""
    prices: list[float] = []

    async def handler(item: Trade | dict[Any, Any]) -> None:
        assert isinstance(item, Trade)
        prices.append(item.price)

    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server):
            stream = stream_for(server)
            stream.subscribe_trades(handler, "TQQQ")
            async with streaming(stream):
                await server.wait_for(lambda: subscriptions(server) == 1)
                server.publish_raw("TQQQ", {"T": "t", "S": "TQQQ", "p": 1.0, "t": "noon"})
                server.publish_trade("TQQQ", Decimal("49"), 1, T0)  # same frame: lost
                await server.wait_for(lambda: server.points_sent == 2)
                server.publish_trade("TQQQ", Decimal("50"), 1, T0 + timedelta(seconds=1))
                await server.wait_for(lambda: prices == [50])
        assert len(server.events_of("connect")) == 1


# -- historical bars --------------------------------------------------------------------------


def history(count: int) -> list[replay.Bar]:
    return [
        replay.Bar(
            symbol="TQQQ",
            start=T0 + timedelta(minutes=i),
            open=Decimal(50 + i),
            high=Decimal(52 + i),
            low=Decimal(49 + i),
            close=Decimal(51 + i),
            volume=400,
        )
        for i in range(count)
    ]


def bars_request(**kwargs: Any) -> StockBarsRequest:
    return StockBarsRequest(symbol_or_symbols="TQQQ", timeframe=TimeFrame.Minute, **kwargs)


async def get_bars(server: AlpacaServer, request: StockBarsRequest, secret: str = SECRET) -> Any:
    client = StockHistoricalDataClient(KEY, secret, url_override=server.rest_url)
    client._retry_wait = 0  # 429s are retried after 3 s by default
    return await anyio.to_thread.run_sync(client.get_stock_bars, request)


async def test_rest_pages_are_followed_to_every_bar_of_the_history() -> None:
    """Seven bars in pages of three: three requests, the second and third with a token,
    every bar back with its OHLCV, trade count and VWAP."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS, history=history(7), page_size=3)
        async with serving(server):
            barset = await get_bars(server, bars_request(start=T0))
        bars = barset["TQQQ"]
        assert [(b.timestamp, b.open, b.close, b.volume) for b in bars] == [
            (T0 + timedelta(minutes=i), 50 + i, 51 + i, 400) for i in range(7)
        ]
        assert {(b.trade_count, b.vwap - b.open) for b in bars} == {(4, 0.5)}
        requests = server.events_of("rest")
        assert [r["status"] for r in requests] == [200, 200, 200]
        assert ["page_token" in r["params"] for r in requests] == [False, True, True]
        assert requests[0]["params"]["start"] == T0.isoformat()


async def test_rest_limit_and_bars_completed_from_published_trades() -> None:
    """Bars built from the trades published are served too; ``limit`` caps the total
    (alpaca-py asks for the remainder on the next page)."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS, history=history(3), page_size=3)
        async with serving(server):
            for minute in range(3, 7):
                price = Decimal(60 + minute)
                server.publish_trade("TQQQ", price, 10, T0 + timedelta(minutes=minute))
            barset = await get_bars(server, bars_request(limit=5, end=T0 + timedelta(hours=1)))
        bars = barset["TQQQ"]
        assert [b.timestamp.minute for b in bars] == [0, 1, 2, 3, 4]
        assert (bars[3].open, bars[3].trade_count, bars[3].vwap) == (63, 1, 63)
        assert [r["params"]["limit"] for r in server.events_of("rest")] == ["5", "2"]
        assert [b.start.minute for b in server.bars("TQQQ")] == [0, 1, 2, 3, 4, 5]


async def test_rest_refuses_bad_credentials_with_401() -> None:
    """APIError with the status; the body carries a code and a message."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS, history=history(1))
        async with serving(server):
            with pytest.raises(APIError) as refused:
                await get_bars(server, bars_request(), secret="wrong")
        assert refused.value.status_code == 401
        assert refused.value.message == "request is not authorized"


async def test_rest_composes_longer_bars_and_refuses_what_divides_no_day() -> None:
    """5-minute bars are the minute bars composed (paginated like any); 7 minutes is 422."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS, history=history(12), page_size=1)
        async with serving(server):
            five = StockBarsRequest(
                symbol_or_symbols="TQQQ", timeframe=TimeFrame(5, TimeFrameUnit.Minute)
            )
            bars = (await get_bars(server, five))["TQQQ"]
            seven = StockBarsRequest(
                symbol_or_symbols="TQQQ", timeframe=TimeFrame(7, TimeFrameUnit.Minute)
            )
            with pytest.raises(APIError) as refused:
                await get_bars(server, seven)
        assert [(b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in bars] == [
            (T0 + timedelta(minutes=m), 50 + m, 52 + m + n - 1, 49 + m, 51 + m + n - 1, 400 * n)
            for m, n in ((0, 5), (5, 5), (10, 2))
        ]
        assert [b.trade_count for b in bars] == [20, 20, 8]
        assert refused.value.status_code == 422
        assert "divide a day" in refused.value.message


async def test_rest_single_symbol_path_pages_with_tokens() -> None:
    """GET /v2/stocks/{symbol}/bars: a list of bars and the symbol, page after page."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS, history=history(5), page_size=2)
        async with serving(server):
            pages: list[dict[str, Any]] = []
            token = ""
            while True:
                query = f"timeframe=1Min&page_token={token}" if token else "timeframe=1Min"
                url = f"{server.rest_url}/v2/stocks/TQQQ/bars?{query}"
                request = urllib.request.Request(
                    url, headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
                )
                body = await anyio.to_thread.run_sync(
                    lambda r=request: json.loads(urllib.request.urlopen(r, timeout=5).read())
                )
                pages.append(body)
                token = body["next_page_token"]
                if token is None:
                    break
        assert [len(p["bars"]) for p in pages] == [2, 2, 1]
        assert {p["symbol"] for p in pages} == {"TQQQ"}
        assert [b["o"] for p in pages for b in p["bars"]] == [50, 51, 52, 53, 54]


async def test_rest_429s_are_retried_by_alpaca_py() -> None:
    """Two 429s, then the bars."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS, history=history(2))
        async with serving(server):
            server.fail_next_rest(2, status=429)
            barset = await get_bars(server, bars_request())
        assert len(barset["TQQQ"]) == 2
        assert [r["status"] for r in server.events_of("rest")] == [429, 429, 200]
