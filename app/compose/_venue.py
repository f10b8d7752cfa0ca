"""The embedded sim venue's faces: its TWS API server (which the broker actor and IB market data
reach with ib_insync) and its Alpaca server (which the Alpaca feed reads with alpaca-py), each on
a free loopback port, started before the tree as tasks of the world outside it."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from config.schema import BrokerKind, Config, FeedKind, symbols_by_feed

from ._trading import LiveSource

if TYPE_CHECKING:
    from actors.brokers.port import BrokerPort
    from sim.engine import Engine
    from supervisors.service import Outside


def made_up_alpaca_keys() -> tuple[str, str]:
    """A key pair for the embedded Alpaca server: it is no account, so the pair is this run's
    only, never Alpaca's."""
    return f"SIM{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)


def venue_faces(
    settings: Config,
    engine: Engine,
    *,
    start: datetime,
    say: Callable[[str], None],
) -> tuple[BrokerPort | None, list[Outside], list[LiveSource]]:
    """The broker port (None: in-process, no socket), the tasks of the outside world to run
    before the tree (the embedded venue's TWS API server and Alpaca server, each on a free
    loopback port, ``say``-ing where once it listens), and the live feeds the symbols get their
    prices from. The TWS API server lists every traded symbol (``settings.symbols``) first."""
    from actors.brokers.ib import IBMarketData, IBPort

    fed = symbols_by_feed(settings)
    outside: list[Outside] = []
    live: list[LiveSource] = []
    if FeedKind.ALPACA in fed:
        from actors.feeds.alpaca import AlpacaStream
        from sim.alpaca.server import AlpacaServer

        key, secret = made_up_alpaca_keys()
        # Every feed: the embedded venue stands for a plan that includes the one configured.
        alpaca = AlpacaServer(credentials={key: secret}, entitled=("iex", "sip"))
        a = settings.alpaca
        stream = AlpacaStream(
            key=key,
            secret=secret,
            feed=a.feed.value,
            data_timeout=a.data_timeout,
            backlog=a.backlog,
            auth_failures=a.auth_failures,
        )

        async def alpaca_venue(
            *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
        ) -> None:
            async with anyio.create_task_group() as tg:
                await tg.start(alpaca.serve)
                stream.url = alpaca.url(a.feed.value)
                say(f"the embedded venue's Alpaca stream server listens on {stream.url}")
                task_status.started()

        outside.append(alpaca_venue)
        live.append(
            LiveSource(
                source=stream,
                symbols=fed[FeedKind.ALPACA],
                publish=lambda t: alpaca.publish_trade(t.symbol, t.price, t.size, t.at),
            )
        )
    if settings.broker.kind is BrokerKind.INPROCESS:
        return None, outside, live
    from actors.domain import Instrument
    from sim.tws.server import TwsServer

    # Every symbol the venue's books hold, not only those traded now: its executions, orders and
    # positions are reported with their contract, whoever asks (a directory's other symbols).
    known = (
        {o.symbol for o in engine.orders.values()} | engine.positions.keys() | engine.last.keys()
    )
    traded = [s.symbol for s in settings.symbols]
    listed = [*traded, *sorted(known - set(traded))]
    server = TwsServer(
        engine,
        instruments=[
            Instrument(symbol=symbol, con_id=900_001 + i) for i, symbol in enumerate(listed)
        ],
        clock=lambda: engine.last_trade_at or start,
    )
    # The embedded server has no pacing limit, so ib_insync's throttle is off.
    port = IBPort(
        host="127.0.0.1",
        port=0,
        client_id=settings.broker.client_id,
        timeout=settings.broker.timeout,
        max_requests=0,
    )

    ib_data = None
    if FeedKind.IB in fed:
        ib_data = IBMarketData(
            host="127.0.0.1",
            port=0,
            client_id=settings.broker.client_id + 1,
            timeout=settings.broker.timeout,
            max_requests=0,
        )
        live.append(LiveSource(source=ib_data, symbols=fed[FeedKind.IB]))

    async def embedded_venue(
        *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with anyio.create_task_group() as tg:
            port.port = await tg.start(server.serve)
            if ib_data is not None:
                ib_data.port = port.port
            say(f"the embedded venue's TWS API server listens on 127.0.0.1:{port.port}")
            task_status.started()

    return port, [embedded_venue, *outside], live
