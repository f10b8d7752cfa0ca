"""The embedded sim venue's faces: its TWS API server (which the broker actor, IB market data and
IB's history reach with ib_insync) and its Alpaca server (which the Alpaca feed and Alpaca's
history read with alpaca-py), each on a free loopback port, started before the tree as tasks of
the world outside it; and the warm-up history ``[history] source`` chooses for each symbol."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import attrs

from actors.history import HistoryBySymbol, HistorySource, ReplayHistory
from actors.option_data import OptionData
from config.schema import (
    BrokerKind,
    Config,
    FeedKind,
    HistoryFrom,
    history_client_id,
    history_of,
    options_client_id,
    symbols_by_feed,
    trades_options,
)

from ._tree import LiveSource

if TYPE_CHECKING:
    from actors.brokers.port import BrokerPort
    from actors.domain import Bar
    from actors.domain.bars import SessionKind
    from actors.feeds.alpaca import AlpacaHistory
    from sim.alpaca.server import AlpacaServer
    from sim.engine import Engine
    from supervisors.service import Outside


@attrs.frozen(kw_only=True)
class Faces:
    """What ``venue_faces`` makes of the embedded venue for the tree."""

    port: BrokerPort | None
    """The broker port (None: in-process, no socket)."""
    outside: list[Outside]
    """The tasks of the world outside the tree, to start before it: the venue's servers."""
    live: list[LiveSource]
    """The live feeds the symbols get their prices from."""
    history: HistorySource
    """Each symbol's warm-up, as ``[history] source`` says (``config.schema.history_of``)."""
    option_data: OptionData | None = None
    """The options strategies' chains, quotes and equity over the venue's TWS API server
    (None: in-process, from the engine, or no options strategy)."""


def made_up_alpaca_keys() -> tuple[str, str]:
    """A key pair for the embedded Alpaca server: it is no account, so the pair is this run's
    only, never Alpaca's."""
    return f"SIM{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)


def venue_faces(
    settings: Config,
    engine: Engine,
    *,
    bars: Sequence[Bar],
    say: Callable[[str], None],
) -> Faces:
    """The embedded venue replaying ``bars`` as the tree sees it (``Faces``): its servers each
    on a free loopback port, ``say``-ing where once it listens. The TWS API server lists every
    traded symbol (``settings.symbols``) first. Both servers serve the replay's bars the venue
    has already printed (its journal's, on a resumed venue) as history, besides what they see
    printed from then on, so that IB's and Alpaca's history over the wire answer what
    ``ReplayHistory`` does (less the bar in progress at the venue's clock: its last trade's)."""
    from actors.brokers.ib import IBHistory, IBMarketData, IBPort
    from actors.brokers.ib_options import IBOptionData

    start = bars[0].start
    fed = symbols_by_feed(settings)
    outside: list[Outside] = []
    live: list[LiveSource] = []
    seen = engine.last_trade_at
    printed = [b for b in bars if seen is not None and b.start <= seen]

    def venue_clock() -> datetime:
        return engine.last_trade_at or start

    sources: dict[str, HistorySource] = {}
    wanted = {s.symbol: history_of(settings, s) for s in settings.symbols}
    if HistoryFrom.REPLAY in wanted.values():
        replay = ReplayHistory(bars, until=lambda: engine.last_trade_at)
        sources.update((s, replay) for s, w in wanted.items() if w is HistoryFrom.REPLAY)
    alpaca_history: _VenueAlpacaHistory | None = None
    if FeedKind.ALPACA in fed:
        from actors.feeds.alpaca import AlpacaStream
        from sim.alpaca.server import AlpacaServer

        key, secret = made_up_alpaca_keys()
        # Every feed: the embedded venue stands for a plan that includes the one configured.
        alpaca = AlpacaServer(credentials={key: secret}, entitled=("iex", "sip"), history=printed)
        a = settings.alpaca
        if HistoryFrom.ALPACA in wanted.values():
            alpaca_history = _VenueAlpacaHistory(
                alpaca, key=key, secret=secret, feed=a.feed.value, clock=venue_clock
            )
            alpaca_fed = (s for s, w in wanted.items() if w is HistoryFrom.ALPACA)
            sources.update((s, alpaca_history) for s in alpaca_fed)
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
        return Faces(port=None, outside=outside, live=live, history=HistoryBySymbol(sources))
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
        clock=venue_clock,
        history=printed,
        history_until=seen,
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
    ib_options = None
    if trades_options(settings):
        ib_options = IBOptionData(
            host="127.0.0.1",
            port=0,
            client_id=options_client_id(settings),
            timeout=settings.broker.timeout,
            requests_per_second=0,  # no pacing limit at the embedded venue
            clock=venue_clock,
        )
    ib_history = None
    if HistoryFrom.IB in wanted.values():
        ib_history = IBHistory(
            host="127.0.0.1",
            port=0,
            client_id=history_client_id(settings),
            timeout=settings.broker.timeout,
            max_requests=0,
        )
        sources.update((s, ib_history) for s, w in wanted.items() if w is HistoryFrom.IB)

    async def embedded_venue(
        *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        async with anyio.create_task_group() as tg:
            port.port = await tg.start(server.serve)
            if ib_data is not None:
                ib_data.port = port.port
            if ib_history is not None:
                ib_history.port = port.port
            if ib_options is not None:
                ib_options.port = port.port
            say(f"the embedded venue's TWS API server listens on 127.0.0.1:{port.port}")
            task_status.started()

    return Faces(
        port=port,
        outside=[embedded_venue, *outside],
        live=live,
        history=HistoryBySymbol(sources),
        option_data=ib_options,
    )


class _VenueAlpacaHistory:
    # AlpacaHistory on the embedded Alpaca server, made at the first question: its URL is
    # known only once the server listens.
    name = "alpaca"

    def __init__(
        self,
        server: AlpacaServer,
        *,
        key: str,
        secret: str,
        feed: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.server = server
        self.key = key
        self.secret = secret
        self.feed = feed
        self.clock = clock
        self._history: AlpacaHistory | None = None

    def __repr__(self) -> str:
        return f"_VenueAlpacaHistory(feed={self.feed!r})"

    async def recent(
        self, symbol: str, *, seconds: int, count: int, sessions: SessionKind
    ) -> list[Bar]:
        if self._history is None:
            from actors.feeds.alpaca import AlpacaHistory

            self._history = AlpacaHistory(
                key=self.key,
                secret=self.secret,
                feed=self.feed,
                url=self.server.rest_url,
                clock=self.clock,
            )
        return await self._history.recent(symbol, seconds=seconds, count=count, sessions=sessions)
