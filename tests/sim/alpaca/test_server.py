"""The Alpaca stream face against a bare websockets client over loopback, in msgpack and in
JSON: the handshake, auth and its errors, subscriptions, data and batching, and the faults."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import anyio
import anyio.lowlevel
import msgpack
import pytest
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from sim.alpaca.server import AlpacaConnection, AlpacaServer
from sim.engine import Engine
from tests.sim.alpaca.venue import CREDENTIALS, KEY, MONDAY, SECRET, authenticated, raw, serving

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
FORMATS = [pytest.param(True, id="msgpack"), pytest.param(False, id="json")]


@pytest.fixture
def anyio_backend() -> str:
    """websockets' server is asyncio's; real sockets need real clocks."""
    return "asyncio"


def errors(server: AlpacaServer) -> list[int]:
    return [e["code"] for e in server.events_of("error")]


def trade(server: AlpacaServer, price: str, seconds: float, symbol: str = "TQQQ") -> None:
    server.publish_trade(symbol, Decimal(price), 100, T0 + timedelta(seconds=seconds))


@pytest.mark.parametrize("binary", FORMATS)
async def test_welcome_then_auth_in_the_clients_format(binary: bool) -> None:
    """``connected`` first, then ``authenticated``; the frame type follows Content-Type."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), authenticated(server, binary=binary):
            [connect] = server.events_of("connect")
            assert connect["feed"] == "iex"
            assert connect["format"] == ("msgpack" if binary else "json")
            assert connect["user_agent"].startswith("Python/")
            assert server.events_of("auth") == [{"id": 1, "key": KEY, "feed": "iex"}]
            assert SECRET not in repr(server.events)


async def test_auth_errors_402_401_403_and_the_connection_stays_open() -> None:
    """A wrong secret is 402, data before auth 401, a second auth 403; none closes."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), raw(server) as client:
            bad = await client.ask({"action": "auth", "key": KEY, "secret": "wrong"})
            assert bad == {"T": "error", "code": 402, "msg": "auth failed"}
            early = await client.ask({"action": "subscribe", "trades": ["TQQQ"]})
            assert early == {"T": "error", "code": 401, "msg": "not authenticated"}
            good = await client.ask({"action": "auth", "key": KEY, "secret": SECRET})
            assert good == {"T": "success", "msg": "authenticated"}
            again = await client.ask({"action": "auth", "key": KEY, "secret": SECRET})
            assert again == {"T": "error", "code": 403, "msg": "already authenticated"}
            assert errors(server) == [402, 401, 403]


async def test_no_auth_within_the_timeout_is_404_then_a_close() -> None:
    """A client that never authenticates is told 404 and closed with 1008."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS, auth_timeout=0.1)
        async with serving(server), raw(server) as client:
            assert await client.recv() == [{"T": "error", "code": 404, "msg": "auth timeout"}]
            with pytest.raises(ConnectionClosed) as closed:
                await client.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008
            await server.wait_for(lambda: server.events_of("close"))
            assert server.events_of("close")[0]["code"] == 1008


async def test_a_feed_not_entitled_is_409_in_reply_to_auth() -> None:
    """sip without a subscription: alpaca-py's terminal error."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), raw(server, "sip") as client:
            reply = await client.ask({"action": "auth", "key": KEY, "secret": SECRET})
            assert reply == {"T": "error", "code": 409, "msg": "insufficient subscription"}
            assert server.connections[0].key is None


async def test_a_second_connection_on_the_key_is_406_until_the_first_goes() -> None:
    """One authenticated connection per key by default; the slot frees when it closes."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), raw(server) as second:
            async with authenticated(server):
                reply = await second.ask({"action": "auth", "key": KEY, "secret": SECRET})
                assert reply == {"T": "error", "code": 406, "msg": "connection limit exceeded"}
            await server.wait_for(lambda: server.sessions(KEY) == 0)
            reply = await second.ask({"action": "auth", "key": KEY, "secret": SECRET})
            assert reply == {"T": "success", "msg": "authenticated"}


@pytest.mark.parametrize("binary", FORMATS)
async def test_subscribe_and_unsubscribe_echo_the_whole_subscription(binary: bool) -> None:
    """Every reply lists every channel; corrections and cancelErrors mirror trades."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), authenticated(server, binary=binary) as client:
            first = await client.ask(
                {"action": "subscribe", "trades": ["TQQQ"], "quotes": ["TQQQ", "SQQQ"]}
            )
            assert first == {
                "T": "subscription",
                "trades": ["TQQQ"],
                "quotes": ["TQQQ", "SQQQ"],
                "bars": [],
                "updatedBars": [],
                "dailyBars": [],
                "statuses": [],
                "lulds": [],
                "corrections": ["TQQQ"],
                "cancelErrors": ["TQQQ"],
            }
            second = await client.ask({"action": "subscribe", "trades": ["SQQQ"], "bars": ["*"]})
            assert (second["trades"], second["quotes"], second["bars"]) == (
                ["TQQQ", "SQQQ"],
                ["TQQQ", "SQQQ"],
                ["*"],
            )
            assert second["corrections"] == second["cancelErrors"] == ["TQQQ", "SQQQ"]
            third = await client.ask({"action": "unsubscribe", "quotes": ["TQQQ"], "bars": ["*"]})
            assert (third["trades"], third["quotes"], third["bars"]) == (
                ["TQQQ", "SQQQ"],
                ["SQQQ"],
                [],
            )
            assert [e["quotes"] for e in server.events_of("subscribe")] == [
                ["TQQQ", "SQQQ"],
                ["TQQQ", "SQQQ"],
            ]
            assert server.events_of("unsubscribe")[0]["quotes"] == ["SQQQ"]
            assert server.connections[0].subscription.channels["quotes"] == ("SQQQ",)


@pytest.mark.parametrize(
    "message",
    [
        b"\xc1",
        [{"action": "subscribe"}],
        {"trades": ["TQQQ"]},
        {"action": "dance"},
        {"action": "subscribe", "trades": "TQQQ"},
    ],
    ids=["undecodable", "array", "no-action", "unknown-action", "not-a-list"],
)
async def test_a_malformed_message_is_400_and_changes_nothing(message: Any) -> None:
    """The connection goes on; the subscription is as it was."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), authenticated(server) as client:
            await client.ask({"action": "subscribe", "trades": ["TQQQ"]})
            if isinstance(message, bytes):
                await client.ws.send(message)
                [reply] = await client.recv()
            else:
                reply = await client.ask(message)
            assert reply == {"T": "error", "code": 400, "msg": "invalid syntax"}
            assert server.connections[0].subscription.channels["trades"] == ("TQQQ",)


async def test_an_unknown_channel_is_410() -> None:
    """orderbooks are crypto's; nothing is subscribed."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), authenticated(server) as client:
            reply = await client.ask({"action": "subscribe", "orderbooks": ["TQQQ"], "trades": []})
            assert reply["code"] == 410
            assert server.events_of("subscribe") == []


async def test_the_symbol_limit_is_405_and_the_subscription_stays_as_it_was() -> None:
    """Trades and quotes count together; the refused request changes nothing, and data for
    its symbols does not flow."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS, symbol_limit=2)
        async with serving(server), authenticated(server) as client:
            ok = await client.ask({"action": "subscribe", "trades": ["TQQQ"], "quotes": ["SQQQ"]})
            assert ok["trades"] == ["TQQQ"]
            refused = await client.ask({"action": "subscribe", "trades": ["SPY"], "bars": ["X"]})
            assert refused == {"T": "error", "code": 405, "msg": "symbol limit exceeded"}
            subscription = server.connections[0].subscription
            assert (subscription.channels["trades"], subscription.channels["bars"]) == (
                ("TQQQ",),
                (),
            )
            trade(server, "400", 0, symbol="SPY")
            trade(server, "50", 1, symbol="TQQQ")
            [point] = await client.points(1)
            assert (point["T"], point["S"]) == ("t", "TQQQ")


async def test_a_handler_failure_is_500_and_the_connection_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An internal error is reported to the client, not fatal to the connection."""

    def broken(*_: object) -> dict[str, Any]:
        raise RuntimeError("bug")

    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), authenticated(server) as client:
            monkeypatch.setattr(AlpacaConnection, "_subscribe", broken)
            reply = await client.ask({"action": "subscribe", "trades": ["TQQQ"]})
            assert reply == {"T": "error", "code": 500, "msg": "internal error"}
            again = await client.ask({"action": "auth", "key": KEY, "secret": SECRET})
            assert again["code"] == 403


async def test_trades_quotes_and_bars_in_msgpack_carry_alpacas_fields() -> None:
    """Trade ids increase per symbol; ``t`` is a msgpack Timestamp (ext -1) to the
    microsecond; a trade of a new minute completes the last minute's bar, with n and vw."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), authenticated(server) as client:
            await client.ask({"action": "subscribe", "trades": ["TQQQ"], "bars": ["TQQQ"]})
            await client.ask({"action": "subscribe", "quotes": ["TQQQ"]})
            trade(server, "50.00", 0.000001)
            trade(server, "50.20", 30)
            trade(server, "50.10", 61, symbol="SQQQ")
            trade(server, "50.10", 61)
            points = await client.points(7)
            assert [(p["T"], p.get("i")) for p in points] == [
                ("t", 1),
                ("q", None),
                ("t", 2),
                ("q", None),
                ("t", 3),
                ("q", None),
                ("b", None),
            ]
            first, quote, bar = points[0], points[1], points[6]
            assert first == {
                "T": "t",
                "S": "TQQQ",
                "i": 1,
                "x": "V",
                "p": 50.0,
                "s": 100,
                "c": ["@"],
                "z": "C",
                "t": msgpack.Timestamp.from_unix_nano(int(T0.timestamp()) * 10**9 + 1000),
            }
            assert (quote["bp"], quote["ap"], quote["bs"], quote["as"]) == (49.99, 50.01, 100, 100)
            assert set(quote) == {"T", "S", "bx", "bp", "bs", "ax", "ap", "as", "c", "z", "t"}
            assert bar == {
                "T": "b",
                "S": "TQQQ",
                "o": 50.0,
                "h": 50.2,
                "l": 50.0,
                "c": 50.2,
                "v": 200,
                "t": msgpack.Timestamp.from_unix_nano(int(T0.timestamp()) * 10**9),
                "n": 2,
                "vw": 50.1,
            }
            assert [b.start for b in server.bars("TQQQ")] == [T0]


async def test_trades_quotes_and_bars_in_json_carry_rfc3339_times() -> None:
    """The same points as text: ``t`` is RFC-3339 with nanoseconds and Z."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), authenticated(server, binary=False) as client:
            await client.ask({"action": "subscribe", "trades": ["*"], "bars": ["TQQQ"]})
            trade(server, "50.00", 1.25)
            trade(server, "50.00", 60)
            first, second, bar = await client.points(3)
            assert (first["t"], first["p"], first["i"]) == ("2026-11-23T15:00:01.250000000Z", 50, 1)
            assert second["t"] == "2026-11-23T15:01:00.000000000Z"
            assert (bar["T"], bar["t"], bar["n"], bar["vw"]) == (
                "b",
                "2026-11-23T15:00:00.000000000Z",
                1,
                50,
            )


async def test_only_subscribed_symbols_arrive_and_the_wildcard_takes_all() -> None:
    """Two clients, one on TQQQ, one on every symbol's trades."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials={KEY: SECRET, "other": "pw"})
        async with serving(server), authenticated(server) as narrow, raw(server) as wide:
            await wide.ask({"action": "auth", "key": "other", "secret": "pw"})
            await narrow.ask({"action": "subscribe", "trades": ["TQQQ"]})
            await wide.ask({"action": "subscribe", "trades": ["*"]})
            trade(server, "20", 0, symbol="SQQQ")
            trade(server, "50", 1, symbol="TQQQ")
            assert [p["S"] for p in await narrow.points(1)] == ["TQQQ"]
            assert [p["S"] for p in await wide.points(2)] == ["SQQQ", "TQQQ"]


async def test_a_burst_leaves_in_frames_of_batch_max_points() -> None:
    """1,000 trades published at once reach the client in ten frames of 100."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS, batch_max=100)
        async with serving(server), authenticated(server) as client:
            await client.ask({"action": "subscribe", "trades": ["TQQQ"]})
            frames_before = client.frames
            for i in range(1000):
                trade(server, "50", i / 1000)
            points = await client.points(1000)
            assert [p["i"] for p in points] == list(range(1, 1001))
            assert client.frames - frames_before <= math.ceil(1000 / 100) + 2
            assert server.points_sent == 1000


async def test_publish_raw_sends_any_point_on_a_symbols_trades() -> None:
    """Malformed points go out as they are, batched with the rest, in order."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), authenticated(server) as client:
            await client.ask({"action": "subscribe", "trades": ["TQQQ"]})
            server.publish_raw("TQQQ", {"T": "t", "S": "TQQQ", "i": 9, "t": "not a timestamp"})
            server.publish_raw("SQQQ", {"T": "t", "S": "SQQQ"})
            server.publish_raw("TQQQ", ["not", "a", "dict"])
            trade(server, "50", 0)
            points = await client.points(3)
            assert points[0] == {"T": "t", "S": "TQQQ", "i": 9, "t": "not a timestamp"}
            assert points[1] == ["not", "a", "dict"]
            assert points[2]["p"] == 50


async def test_engine_trades_are_published_and_never_raise_into_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine's trade listener: its prices reach the client; a connection that went
    away, or a failure to publish, is this face's trouble, never the engine's."""
    with anyio.fail_after(10):
        engine = Engine()
        server = AlpacaServer(engine, credentials=CREDENTIALS)
        async with serving(server):
            async with authenticated(server) as client:
                await client.ask({"action": "subscribe", "trades": ["TQQQ"]})
                engine.on_trade("TQQQ", Decimal("50.05"), 300, MONDAY)
                [point] = await client.points(1)
                assert (point["p"], point["s"]) == (50.05, 300)
                assert point["t"].to_datetime() == MONDAY
                server.abort_all()
                engine.on_trade("TQQQ", Decimal("50.06"), 100, MONDAY + timedelta(seconds=1))
            await server.wait_for(lambda: not server.connections)
            engine.on_trade("TQQQ", Decimal("50.07"), 100, MONDAY + timedelta(seconds=2))

            def broken(*_: object) -> None:
                raise RuntimeError("bug")

            monkeypatch.setattr(server, "publish_trade", broken)
            engine.on_trade("TQQQ", Decimal("50.08"), 100, MONDAY + timedelta(seconds=3))
            assert engine.last["TQQQ"] == Decimal("50.08")


async def test_drop_all_closes_with_the_given_code() -> None:
    """A close frame with code and reason; the close is recorded."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), authenticated(server) as client:
            with pytest.raises(ValueError, match="1006"):
                server.drop_all(1006)
            server.drop_all(1011, "venue restart")
            with pytest.raises(ConnectionClosed) as closed:
                await client.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1011, "venue restart")
            await server.wait_for(lambda: server.events_of("close"))
            assert server.events_of("close")[0]["code"] == 1011


async def test_abort_all_resets_without_a_close_frame() -> None:
    """The client sees the stream end abnormally (1006), no close frame received."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), authenticated(server) as client:
            server.abort_all()
            with pytest.raises(ConnectionClosedError) as closed:
                await client.recv()
            assert closed.value.rcvd is None
            await server.wait_for(lambda: server.events_of("close"))
            assert server.events_of("abort") == [{"id": 1}]
            assert server.events_of("close")[0]["code"] == 1006


async def test_a_muted_server_sends_no_data_but_still_answers() -> None:
    """Trades while muted are never sent (the first point after unmuting is the next id);
    subscriptions are still acknowledged."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server), authenticated(server) as client:
            await client.ask({"action": "subscribe", "trades": ["TQQQ"]})
            server.mute(True)
            trade(server, "50", 0)
            assert server.connections[0].backlog == type(server.connections[0].backlog)()
            reply = await client.ask({"action": "subscribe", "quotes": ["TQQQ"]})
            assert reply["quotes"] == ["TQQQ"]
            server.mute(False)
            trade(server, "51", 1)
            first = (await client.points(2))[0]
            assert (first["i"], first["p"]) == (2, 51)
            assert server.points_sent == 2


async def test_rejected_handshakes_get_the_http_status_then_connections_work() -> None:
    """429 for the next n upgrades, 404 for a path that is no feed."""
    with anyio.fail_after(10):
        server = AlpacaServer(credentials=CREDENTIALS)
        async with serving(server):
            server.reject_handshakes(2, status=429)
            for _ in range(2):
                with pytest.raises(InvalidStatus) as rejected:
                    async with raw(server):
                        pass
                assert rejected.value.response.status_code == 429
            with pytest.raises(InvalidStatus) as missing:
                async with raw(server, "crypto"):
                    pass
            assert missing.value.response.status_code == 404
            async with authenticated(server):
                pass
            assert [e["status"] for e in server.events_of("reject")] == [429, 429, 404]


async def test_a_client_that_stops_reading_is_told_407_and_closed() -> None:
    """Its socket fills, its queue passes max_backlog: the queue is dropped, 407 is queued
    after what was already written, then a close (1008)."""
    with anyio.fail_after(20):
        server = AlpacaServer(credentials=CREDENTIALS, max_backlog=2_000, close_timeout=10)
        async with (
            serving(server),
            authenticated(server, compression=None, max_queue=2) as client,
        ):
            await client.ask({"action": "subscribe", "trades": ["TQQQ"], "quotes": ["TQQQ"]})
            published = 0
            while 407 not in errors(server):
                for _ in range(500):
                    trade(server, "50", published / 1e6)
                    published += 1
                await anyio.lowlevel.checkpoint()  # the server's sender runs (and blocks)
            assert server.connections[0].backlog == type(server.connections[0].backlog)()
            received: list[Any] = []

            async def read_to_the_end() -> None:
                while True:
                    received.extend(await client.recv())

            with pytest.raises(ConnectionClosed) as closed:
                await read_to_the_end()
            assert received[-1] == {"T": "error", "code": 407, "msg": "slow client"}
            assert all(p["T"] in ("t", "q") for p in received[:-1])
            assert len(received) - 1 < 2 * published
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008
            await server.wait_for(lambda: not server.connections)
