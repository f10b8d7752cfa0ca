"""``actorctl check``: the config and every lot map, then the broker and the Alpaca connections,
as the seed bot's connection test did."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from config.schema import BrokerKind, FeedKind

from ._app import cli
from ._common import ConfigOption, broker_settings, load_config

if TYPE_CHECKING:
    from config.schema import Config


@cli.command()
def check(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="TWS / IB Gateway host (for kind ib).")] = None,
    port: Annotated[int | None, typer.Option(help="TWS / IB Gateway port (for kind ib).")] = None,
    broker: Annotated[
        BrokerKind | None, typer.Option(help="Which broker connection to test [the config's].")
    ] = None,
    what_if: Annotated[
        bool,
        typer.Option(
            "--what-if",
            help="Also ask the broker what an entry would do (never placed): the grid's "
            "level-0 buy, an options strategy's bracket on the option it would choose.",
        ),
    ] = False,
    feed: Annotated[
        FeedKind | None,
        typer.Option(help="Check this feed for every symbol [each symbol's feed in the config]."),
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help='Allow a live port (needs mode = "live").')
    ] = False,
) -> None:
    """Check the config and every lot map, then the broker connection like the seed's
    connection test: connect, qualify each symbol, a snapshot quote, optionally a what-if
    order (never placed); for symbols fed by Alpaca, its history and its stream; print the
    config (never a secret)."""
    import attrs

    from config.errors import ConfigError
    from config.load import DEFAULT_CONFIG, render_config
    from config.lotmap import load_lot_map
    from config.secrets import load_secrets

    settings = broker_settings(load_config(config), broker, host=host, port=port, live=live)
    if feed is not None:
        symbols = tuple(attrs.evolve(s, feed=feed) for s in settings.symbols)
        settings = attrs.evolve(settings, symbols=symbols)
    print(f"config {config or DEFAULT_CONFIG}: ok")
    problems = 0
    for symbol in settings.symbols:
        if symbol.lots is None:
            parameters = ", ".join(f"{k} {v}" for k, v in symbol.strategy_parameters().items())
            print(f"strategy for {symbol.symbol}: {symbol.strategy.value} ({parameters})")
            continue
        try:
            lot_map = load_lot_map(symbol.lots)
        except ConfigError as exc:
            problems += 1
            print(f"lot map for {symbol.symbol}: {exc}")
            continue
        print(
            f"lot map for {symbol.symbol} {symbol.lots}: {len(lot_map)} levels, "
            f"{sum(lot_map)} shares in all"
        )
    print(f"secrets (from the environment or .env): {load_secrets()!r}")
    connected = _check_broker(settings, what_if=what_if)
    if _check_alpaca(settings) is False:
        connected = False
    print()
    print(render_config(settings), end="")
    if problems:
        raise typer.Exit(2)
    if not connected:
        raise typer.Exit(1)


def _check_alpaca(settings: Config) -> bool | None:
    """For the symbols fed by Alpaca: its history (the last minute bars) and its stream (keys
    accepted, subscribed). With the embedded venue, against its own Alpaca server. None when
    no symbol uses Alpaca."""
    from datetime import UTC, datetime, timedelta

    import anyio

    from config.schema import BrokerKind, FeedKind, feed_of
    from config.secrets import load_secrets

    symbols = [s.symbol for s in settings.symbols if feed_of(settings, s) is FeedKind.ALPACA]
    if not symbols:
        return None
    from actors.feeds.alpaca import AlpacaHistory, AlpacaStream, FeedRefused, HistoryError

    a = settings.alpaca
    feed = a.feed.value

    async def probe(key: str, secret: str, stream_url: str | None, data_url: str | None) -> bool:
        history = AlpacaHistory(key=key, secret=secret, feed=feed, url=data_url)
        since = datetime.now(UTC) - timedelta(days=7)
        try:
            bars = await anyio.to_thread.run_sync(lambda: history.bars(symbols[0], since))
        except (HistoryError, OSError) as exc:
            print(f"alpaca history from {data_url or 'Alpaca'}: failed: {exc}")
            return False
        last = f"; the last at {bars[-1].start:%Y-%m-%d %H:%M} UTC closed {bars[-1].close}"
        print(
            f"alpaca history from {data_url or 'Alpaca'}: {len(bars)} minute bars of "
            f"{symbols[0]} in 7 days{last if bars else ''}"
        )
        stream = AlpacaStream(key=key, secret=secret, feed=feed, url=stream_url, auth_failures=1)
        await stream.connect(symbols)
        refused: list[str] = []

        async def run() -> None:
            try:
                await stream.run()
            except FeedRefused as exc:
                refused.append(str(exc))
                tg.cancel_scope.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            with anyio.move_on_after(settings.broker.timeout):
                await stream.ready()
            tg.cancel_scope.cancel()
        await stream.close()
        subscribed = stream.statistics.subscriptions > 0
        reason = refused[0] if refused else stream.statistics.last_error or "no answer in time"
        print(
            f"alpaca stream {stream.where}: "
            + (f"subscribed to {feed} trades of {', '.join(symbols)}" if subscribed else reason)
        )
        return subscribed

    if settings.broker.kind is not BrokerKind.IB:
        from app.compose import made_up_alpaca_keys
        from sim.alpaca.server import AlpacaServer
        from sim.replay import generated_session

        key, secret = made_up_alpaca_keys()
        day = (datetime.now(UTC) - timedelta(days=1)).date()
        server = AlpacaServer(
            credentials={key: secret},
            entitled=("iex", "sip"),
            history=(b for s in symbols for b in generated_session(seed=14, day=day, symbol=s)),
        )

        async def embedded() -> bool:
            async with anyio.create_task_group() as tg:
                await tg.start(server.serve)
                ok = await probe(key, secret, server.url(feed), server.rest_url)
                tg.cancel_scope.cancel()
            return ok

        print("alpaca: the embedded venue's Alpaca server (no keys needed)")
        return anyio.run(embedded, backend="asyncio")
    keys = load_secrets()
    if keys.alpaca_key is None or keys.alpaca_secret is None:
        print(f"alpaca: {', '.join(symbols)} need ALPACA_KEY and ALPACA_SECRET (not set)")
        return False
    return anyio.run(
        probe,
        keys.alpaca_key,
        keys.alpaca_secret,
        a.stream_url or None,
        a.data_url or None,
        backend="asyncio",
    )


def _check_broker(settings: Config, *, what_if: bool) -> bool:
    import anyio

    from actors.brokers.ib import IBPort
    from actors.domain import Instrument, PlaceOrder, Side, TimeInForce, round_to_tick
    from config.lotmap import load_lot_map
    from config.schema import OPTION_STRATEGIES, BrokerKind, masked
    from sim.engine import Engine
    from sim.replay import generated_session
    from sim.tws.server import TwsServer

    kind = settings.broker.kind
    if kind is BrokerKind.INPROCESS:
        print("broker: the embedded sim venue, in-process: nothing to connect to")
        return True
    symbols = [s.symbol for s in settings.symbols]

    async def probe(port: IBPort, where: str) -> bool:
        try:
            await port.connect()
        except (OSError, TimeoutError, ConnectionError) as exc:
            print(f"broker: cannot connect to {where}: {type(exc).__name__}: {exc}")
            return False
        try:
            accounts = ", ".join(masked(a) for a in port.accounts())
            version = port.server_version()
            print(f"broker: connected to {where} (server version {version}, accounts {accounts})")
            ok = True
            for symbol, entry in zip(symbols, settings.symbols, strict=True):
                try:
                    quote = await port.quote(symbol)
                except LookupError as exc:
                    print(f"  {symbol}: {exc}")
                    ok = False
                    continue
                shown = f"bid {quote.bid} ask {quote.ask}" if quote else "no quote"
                print(f"  {symbol}: qualified; snapshot {shown}")
                if what_if and quote is not None and entry.lots is not None:
                    lots = load_lot_map(entry.lots)
                    limit = round_to_tick(
                        quote.ask * (1 + entry.grid.level0_buffer), entry.grid.tick
                    )
                    order = PlaceOrder(
                        ref=f"check:{symbol}",
                        symbol=symbol,
                        side=Side.BUY,
                        quantity=lots[0],
                        limit=limit,
                        tif=TimeInForce.DAY,
                    )
                    answer = await port.what_if(order)
                    shown = ", ".join(f"{k} {v}" for k, v in answer.items())
                    print(f"  {symbol}: what-if BUY {lots[0]} @ {limit} (not placed): {shown}")
                if what_if and quote is not None and str(entry.strategy) in OPTION_STRATEGIES:
                    ok = await _what_if_bracket(port, settings, entry, quote.ask) and ok
            return ok
        finally:
            await port.close()

    async def embedded() -> bool:
        engine = Engine()
        for i, symbol in enumerate(symbols):
            first = generated_session(seed=settings.venue.seed + i, symbol=symbol)[0]
            engine.on_trade(symbol, first.open, first.volume, first.start)
        opened = first.start
        server = TwsServer(
            engine,
            instruments=[Instrument(symbol=s, con_id=900_001 + i) for i, s in enumerate(symbols)],
            clock=lambda: engine.last_trade_at or opened,
        )
        async with anyio.create_task_group() as tg:
            number = await tg.start(server.serve)
            port = IBPort(host="127.0.0.1", port=number, client_id=settings.broker.client_id)
            ok = await probe(port, f"the embedded venue's TWS API server at 127.0.0.1:{number}")
            tg.cancel_scope.cancel()
        return ok

    async def real() -> bool:
        b = settings.broker
        port = IBPort(
            host=b.host,
            port=b.port,
            client_id=b.client_id,
            timeout=b.timeout,
            market_data_type=b.market_data_type or None,
        )
        return await probe(port, f"IB at {b.host}:{b.port} ({settings.mode.value} mode)")

    return bool(anyio.run(embedded if kind is BrokerKind.EMBEDDED else real, backend="asyncio"))


async def _what_if_bracket(port: Any, settings: Config, entry: Any, price: Decimal) -> bool:
    """The options strategy's connection test (``--what-if``): its chain, the call its
    contract rule chooses at ``price``, the quote, the liquidity filter, the bracket's prices
    and size from the account's equity, and IB's what-if of the entry (never placed; IB
    answers what-if for one order, so the exits are shown, not asked). False when the venue
    could not answer; a skip (no contract, an illiquid quote, too small an account) is said
    and is no failure."""
    from actors.brokers.ib_options import IBOptionData
    from actors.domain import PlaceOrder, Side, TimeInForce
    from actors.domain.sessions import NEW_YORK
    from actors.option_data import OptionDataError
    from actors.options.choice import (
        Skip,
        choose_contract,
        contracts_for,
        entry_limit,
        exit_prices,
        liquidity_problem,
    )
    from actors.strategies.options import OptionsKind
    from actors.strategies.registry import strategy_kind
    from config.schema import options_client_id

    symbol = entry.symbol
    kind = strategy_kind(str(entry.strategy), symbol, entry.strategy_parameters())
    assert isinstance(kind, OptionsKind)
    params = kind.params
    data = IBOptionData(
        host=port.host,
        port=port.port,
        client_id=options_client_id(settings),
        timeout=port.timeout,
        market_data_type=port.market_data_type,
        requests_per_second=port.max_requests and 10,
    )
    try:
        chain = await data.chain(symbol)
        # The venue's date (TWS's clock: the embedded venue's is its replay's).
        now = await port.ib.reqCurrentTimeAsync()
        chosen = choose_contract(
            chain,
            underlying_price=price,
            today=now.astimezone(NEW_YORK).date(),
            bullish=True,
            params=params.contract,
        )
        if isinstance(chosen, Skip):
            print(f"  {symbol}: {kind.name} what-if: no contract ({chosen.code}): {chosen.reason}")
            return True
        quote = await data.quote(chosen.occ)
        equity = await data.equity()
    except OptionDataError as exc:
        print(f"  {symbol}: {kind.name} what-if: {exc}")
        return False
    finally:
        await data.close()
    option = chosen.occ.replace(" ", "")
    print(
        f"  {symbol}: {kind.name}: chain of {len(chain.expirations)} expiries, "
        f"{len(chain.strikes)} strikes; {option} bid {quote.bid} ask {quote.ask} volume "
        f"{quote.volume} open interest {quote.open_interest}; equity {equity}"
    )
    problem = liquidity_problem(quote, params.liquidity)
    limit = entry_limit(quote, params.entry)
    if problem is None and isinstance(limit, Skip):
        problem = limit
    if problem is not None or isinstance(limit, Skip):
        assert problem is not None
        print(f"  {symbol}: {kind.name} what-if: would skip ({problem.code}): {problem.reason}")
        return True
    size = contracts_for(
        equity=equity,
        premium=limit,
        multiplier=chain.multiplier,
        sl_pct=params.entry.sl_pct,
        params=params.sizing,
    )
    if isinstance(size, Skip):
        print(f"  {symbol}: {kind.name} what-if: would skip ({size.code}): {size.reason}")
        return True
    take_profit, stop = exit_prices(limit, params.entry)
    order = PlaceOrder(
        ref=f"check:{symbol}",
        symbol=chosen.occ,
        side=Side.BUY,
        quantity=size,
        limit=limit,
        tif=TimeInForce.DAY,
        outside_rth=False,
    )
    answer = await port.what_if(order)
    shown = ", ".join(f"{k} {v}" for k, v in answer.items())
    print(
        f"  {symbol}: {kind.name} what-if bracket (not placed): BUY {size} {option} @ {limit}, "
        f"take-profit {take_profit}, stop {stop}; the entry: {shown}"
    )
    return True
