"""``actorctl``: the command line, and the one composition root.

It may import from every package, lazily, inside the commands, so that ``actorctl --help`` stays
fast and a broken subsystem cannot break unrelated commands.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import attrs
import typer

app = typer.Typer(
    name="actorctl",
    help="actortrade: an actor-model, crash-safe trading runtime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"actorctl {version('actortrade')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """actortrade: an actor-model, crash-safe trading runtime."""


class Backend(enum.StrEnum):
    asyncio = "asyncio"
    trio = "trio"


class BrokerChoice(enum.StrEnum):
    embedded = "embedded"
    inprocess = "inprocess"
    ib = "ib"


class FeedChoice(enum.StrEnum):
    auto = "auto"
    replay = "replay"
    alpaca = "alpaca"
    ib = "ib"


class CheckBroker(enum.StrEnum):
    embedded = "embedded"
    inprocess = "inprocess"
    ib = "ib"


def _default_socket() -> Path:
    """The control socket when the config names none: $ACTORTRADE_SOCKET, else per user."""
    import os

    override = os.environ.get("ACTORTRADE_SOCKET")
    if override:
        return Path(override)
    return _per_user_socket()


def _per_user_socket() -> Path:
    """In the runtime directory, or in the temporary one (shared with other users) without."""
    import os
    import tempfile

    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"actortrade-{os.getuid()}" / "actorctl.sock"


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="TOML config (default: the shipped config/actortrade.toml)."),
]
SocketOption = Annotated[
    Path | None,
    typer.Option(
        "--socket",
        help="Control socket of the running service (default: from --config, else per user).",
    ),
]


def _load_config(path: Path | None) -> Any:
    from config.errors import ConfigError
    from config.load import DEFAULT_CONFIG, load_config

    try:
        return load_config(path if path is not None else DEFAULT_CONFIG)
    except ConfigError as exc:
        _fail(str(exc))


def _socket_path(socket: Path | None, config: Path | None) -> Path:
    if socket is not None:
        return socket
    if config is not None:
        configured = _load_config(config).control.socket
        if configured is not None:
            return Path(configured)
    return _default_socket()


@app.command()
def start(
    config: ConfigOption = None,
    replay: Annotated[
        Path | None,
        typer.Option(help="1-minute bar CSV to replay (default: a generated TQQQ-like day)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the generated session [14].")] = None,
    days: Annotated[
        int, typer.Option(help="Trading days to generate (without --replay), 1 to 1000.")
    ] = 1,
    speed: Annotated[
        float | None,
        typer.Option(
            help="Replay speed: times faster than the bars' clock; 0 = as fast as possible [1800].",
        ),
    ] = None,
    symbol: Annotated[
        str | None, typer.Option(help="Trade only this symbol (default: the config's).")
    ] = None,
    lots: Annotated[
        Path | None,
        typer.Option(help="Lot map CSV for --symbol (default: the shipped config/lots/tqqq.csv)."),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the ledger and the sim venue's books live; a run on the same directory "
            "resumes (default: a temporary one, discarded at exit)."
        ),
    ] = None,
    backend: Annotated[
        Backend | None,
        typer.Option(help="Event loop backend (asyncio uses uvloop when installed)."),
    ] = None,
    stop_timeout: Annotated[
        float | None,
        typer.Option(help="Seconds a graceful stop may take before cancelling [5]."),
    ] = None,
    socket: SocketOption = None,
    broker: Annotated[
        BrokerChoice | None,
        typer.Option(
            help="embedded: the sim venue through its TWS API server and ib_insync; inprocess: "
            "the sim venue without the socket; ib: a real TWS / IB Gateway at --host/--port "
            "(market data from IB too) [embedded]."
        ),
    ] = None,
    host: Annotated[str | None, typer.Option(help="TWS / IB Gateway host [127.0.0.1].")] = None,
    port: Annotated[
        int | None, typer.Option(help="TWS / IB Gateway port [7497, TWS paper].")
    ] = None,
    client_id: Annotated[
        int | None,
        typer.Option(help="IB API clientId for orders; market data uses the next one [1]."),
    ] = None,
    feed: Annotated[
        FeedChoice | None,
        typer.Option(
            help="Where every symbol's prices come from: auto (the venue's own), replay, alpaca "
            "(Alpaca's stream through alpaca-py; on the embedded venue its Alpaca server on "
            "loopback) or ib (IB's streaming market data) [each symbol's feed in the config].",
        ),
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help='Trade with real money (needs mode = "live").')
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Decide, check risk, commit intents (marked dry), trace and alert, but send "
            'nothing to the broker [config: mode = "dry-run"].',
        ),
    ] = False,
    tracing: Annotated[
        bool | None,
        typer.Option(
            "--tracing/--no-tracing",
            help="Export a trace per trading decision over OTLP/HTTP [config: telemetry.tracing].",
        ),
    ] = None,
    otlp_endpoint: Annotated[
        str | None,
        typer.Option(
            help="OTLP/HTTP base URL for traces, e.g. http://localhost:4318 (Jaeger) "
            "[config, $OTEL_EXPORTER_OTLP_ENDPOINT, http://localhost:4318]."
        ),
    ] = None,
) -> None:
    """Trade the grid on the embedded sim venue until SIGINT, SIGTERM or `actorctl stop`.

    Replays a session into the embedded venue, which the broker actor reaches through the
    venue's TWS API server with ib_insync (the production broker path, on loopback), printing
    every execution, and a summary when the replay ends and at stop. With --data-dir, the ledger
    and the venue's books are kept and a later start on the same directory resumes: it
    reconciles with the venue and carries on where the replay stopped.

    With --feed alpaca the prices come the seed bot's way: the venue's Alpaca stream server
    publishes the replay and the market-data actor reads it with alpaca-py, while orders go
    through ib_insync (the hybrid IB + Alpaca configuration, all on loopback).
    """
    from config.errors import ConfigError
    from config.lotmap import load_lot_map
    from config.options import override
    from config.schema import BrokerKind, FeedKind, Mode, feed_of, feed_problem
    from sim.replay import MAX_GENERATED_DAYS

    _configure_logging()
    loaded = _load_config(config)
    if dry_run:
        loaded = attrs.evolve(loaded, mode=Mode.DRY_RUN)
    settings = _broker_settings(
        loaded, broker, host=host, port=port, client_id=client_id, live=live
    )
    if not 1 <= days <= MAX_GENERATED_DAYS:
        _fail(f"--days: must be between 1 and {MAX_GENERATED_DAYS}, got {days}")
    try:
        # Each option has the range of the key it overrides (the schema's validators).
        symbols = settings.symbols
        if symbol is not None or lots is not None:
            symbols = (
                override(symbols[0], {"symbol": ("--symbol", symbol), "lots": ("--lots", lots)}),
            )
        if feed is not None:
            symbols = tuple(attrs.evolve(s, feed=FeedKind(feed.value)) for s in symbols)
        settings = attrs.evolve(
            settings,
            symbols=symbols,
            runtime=override(settings.runtime, {"stop_timeout": ("--stop-timeout", stop_timeout)}),
            venue=override(
                settings.venue,
                {
                    "replay": ("--replay", replay),
                    "seed": ("--seed", seed),
                    "speed": ("--speed", speed),
                },
            ),
            telemetry=override(
                settings.telemetry,
                {"tracing": ("--tracing", tracing), "endpoint": ("--otlp-endpoint", otlp_endpoint)},
            ),
        )
    except ConfigError as exc:
        _fail(str(exc))
    problem = feed_problem(settings)
    if problem is not None:
        _fail(problem)
    feeds = {feed_of(settings, s) for s in symbols}
    chosen_backend = backend or Backend(settings.runtime.backend.value)
    if chosen_backend is Backend.trio and (
        settings.broker.kind is not BrokerKind.INPROCESS or feeds - {FeedKind.REPLAY}
    ):
        _fail(
            "ib_insync and alpaca-py run on asyncio only: --backend trio needs --broker "
            "inprocess (the sim venue without the TWS API socket) and --feed replay"
        )
    _refuse_bad_places(settings, data_dir, config)
    venue = settings.venue
    replay, seed, speed = venue.replay, venue.seed, venue.speed
    try:
        lot_maps = {s.symbol: load_lot_map(s.lots) for s in symbols}
    except ConfigError as exc:
        _fail(str(exc))
    data_dir = data_dir if data_dir is not None else settings.data_dir
    live_broker = settings.broker.kind is BrokerKind.IB
    bars = [] if live_broker else _bars(settings, lot_maps, replay=replay, seed=seed, days=days)
    # Before the ledger, the venue or the broker is touched: a service nobody can control (or
    # someone else could) is not started.
    with _claim_control(socket or settings.control.socket or _default_socket()) as control:
        if live_broker:
            code = _start_live(
                settings,
                lot_maps,
                {s.symbol: s.grid for s in symbols},
                data_dir=data_dir,
                control=control,
                stop_timeout=settings.runtime.stop_timeout,
            )
        else:
            code = _start_embedded(
                settings,
                lot_maps,
                control=control,
                data_dir=data_dir,
                bars=bars,
                replay=replay,
                seed=seed,
                days=days,
                speed=speed,
                backend=chosen_backend,
                stop_timeout=settings.runtime.stop_timeout,
            )
    raise typer.Exit(code)


def _bars(
    settings: Any, lot_maps: dict[str, Any], *, replay: Path | None, seed: int, days: int
) -> list[Any]:
    """The bars to replay into the embedded venue: from ``replay`` (each traded symbol's bars
    checked against its tick), or generated."""
    from config.errors import ConfigError
    from sim.replay import ReplayError, generated_days, load_bars

    try:
        if replay is not None:
            bars = load_bars(replay, ticks={s.symbol: s.grid.tick for s in settings.symbols})
        else:
            bars = sorted(
                (b for s in lot_maps for b in generated_days(seed=seed, days=days, symbol=s)),
                key=lambda b: (b.start, b.symbol),
            )
    except (ConfigError, ReplayError) as exc:
        _fail(str(exc))
    if not bars:
        _fail(f"{replay}: no bars for {', '.join(lot_maps)}")
    return bars


def _start_embedded(
    settings: Any,
    lot_maps: dict[str, Any],
    *,
    control: Any,
    data_dir: Path | None,
    bars: list[Any],
    replay: Path | None,
    seed: int,
    days: int,
    speed: float,
    backend: Backend,
    stop_timeout: float,
) -> int:
    """Trade on the embedded sim venue, replaying ``bars``."""

    from config.schema import BrokerKind, FeedKind, feed_of

    symbols = settings.symbols
    feeds = {feed_of(settings, s) for s in symbols}
    with _data_dir(data_dir, settings, lot_maps) as (held, manifest):
        home = held.path
        trading, resumed, outside = _build(
            settings,
            home,
            bars=bars,
            lot_maps=lot_maps,
            grids={s.symbol: s.grid for s in symbols},
            speed=speed or None,
        )
        held.record(manifest)
        report = _Report(list(lot_maps))
        trading.on_finished.append(lambda: report.summary("replay finished"))
        report.attach(trading)
        generated = f"{days} generated days" if days > 1 else "a generated session"
        source = str(replay) if replay is not None else f"{generated} (seed {seed})"
        pace = "as fast as possible" if not speed else f"at {speed:g}x"
        kept = "kept" if data_dir is not None else "discarded at exit"
        path = (
            "orders through its TWS API server with ib_insync"
            if settings.broker.kind is BrokerKind.EMBEDDED
            else "orders in-process"
        )
        prices = ", ".join(
            f"{s.symbol} from {_FEED_WORDS[feed_of(settings, s).value]}" for s in symbols
        )
        # Not "trading" yet: that is said once every symbol actor has reconciled (_Report).
        _say(
            f"starting {', '.join(lot_maps)} in {settings.mode.value.upper()} mode on the "
            f"embedded sim venue ({path}; prices: {prices}; no account) replaying {source} "
            f"{pace}; data in {home} ({kept}); control socket {control.path}; Ctrl-C, SIGTERM "
            "or `actorctl stop` stops it"
        )
        if resumed is not None:
            _say(f"resuming: the venue has seen trades up to {resumed.isoformat()}")
        code = _serve(
            trading,
            control,
            backend=backend.value,
            stop_timeout=stop_timeout,
            outside=outside,
            # ib_insync reads its loop from the event loop policy: plain asyncio with it.
            uvloop=settings.broker.kind is BrokerKind.INPROCESS and FeedKind.IB not in feeds,
            on_started=report.reconciled,
            watch=report.watch,
            mode=settings.mode.value,
        )
        report.summary("at stop")
        report.never_traded()
    return code


def _refuse_bad_places(settings: Any, data_dir: Path | None, config: Path | None) -> None:
    """Refuse (exit 2) a data directory that cannot be used, before anything is created in it,
    a ledger map bigger than the process may map, and an OTLP endpoint from the environment
    that the exporter would refuse once running."""
    import os

    from config.files import data_dir_problem, map_size_problem
    from config.load import DEFAULT_CONFIG
    from config.schema import HTTP_URL, is_url, shown

    if data_dir is not None:
        where = f"--data-dir {data_dir}"
    else:
        data_dir = settings.data_dir
        where = f"{config or DEFAULT_CONFIG}: data_dir {data_dir}"
    if data_dir is not None and (problem := data_dir_problem(data_dir)) is not None:
        _fail(f"{where}: {problem}")
    mib = settings.ledger.map_size_mib
    if (problem := map_size_problem(mib)) is not None:
        _fail(f"{config or DEFAULT_CONFIG}: {problem}, got {mib} @ ledger.map_size_mib")
    t = settings.telemetry
    variable = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if t.tracing and not t.endpoint and variable and not is_url(variable, ("http", "https")):
        _fail(f"$OTEL_EXPORTER_OTLP_ENDPOINT: must be {HTTP_URL}, got {shown(repr(variable))}")


_FEED_WORDS = {
    "replay": "the replay",
    "alpaca": "its Alpaca stream server with alpaca-py",
    "ib": "its TWS API server's market data with ib_insync",
}


def _start_live(
    settings: Any,
    lot_maps: dict[str, Any],
    grids: dict[str, Any],
    *,
    data_dir: Path | None,
    control: Any,
    stop_timeout: float,
) -> int:
    """Trade through a real TWS / IB Gateway, on IB's own market data."""

    from actors.brokers.ib import IBPort
    from actors.lot_keeper import ledger_store
    from actors.trading import live_trading
    from runtime.store import Durability, StoreError

    b = settings.broker
    with _data_dir(data_dir, settings, lot_maps) as (held, manifest):
        home = held.path
        store = ledger_store(
            home / "ledger",
            durability=Durability(settings.ledger.durability.value),
            map_size=settings.ledger.map_size_mib << 20,
        )
        try:
            store.open()
        except StoreError as exc:
            _fail(str(exc))
        held.record(manifest)
        data_type = b.market_data_type or None
        feeds = _live_sources(settings, data_type)
        trading = live_trading(
            data_dir=home / "ledger",
            store=store,
            lots=lot_maps,
            params=_grid_params(grids),
            reconcile_interval=settings.reconcile.interval,
            port=IBPort(
                host=b.host,
                port=b.port,
                client_id=b.client_id,
                market_data_type=data_type,
                timeout=b.timeout,
            ),
            feeds=feeds,
            telemetry=_telemetry(settings),
            **_risk_and_dry_run(settings),
        )
        kept = "kept" if data_dir is not None else "discarded at exit"
        prices = "; ".join(
            f"{', '.join(sorted(f.symbols))} from {_describe_source(f.source, b)}" for f in feeds
        )
        _say(
            f"starting {', '.join(lot_maps)} in {settings.mode.value.upper()} mode through IB "
            f"at {b.host}:{b.port} (clientId {b.client_id} for orders; prices: {prices}); the "
            "account is the one TWS reports "
            f"(logged masked at connect); data in {home} ({kept}); control socket "
            f"{control.path}; Ctrl-C, SIGTERM or `actorctl stop` stops it"
        )
        report = _Report(list(lot_maps))
        report.trading = trading
        code = _serve(
            trading,
            control,
            backend="asyncio",
            stop_timeout=stop_timeout,
            outside=[],
            mode=settings.mode.value,
            venue=f"IB at {b.host}:{b.port}",
            uvloop=False,
            on_started=report.reconciled,
            watch=report.watch,
        )
        report.never_traded()
        return code


def _made_up_alpaca_keys() -> tuple[str, str]:
    # The embedded Alpaca server is no account: a key pair for this run only, never Alpaca's.
    import secrets

    return f"SIM{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)


def _live_sources(settings: Any, data_type: int | None) -> list[Any]:
    """The feeds of a service trading through IB: IB's market data, or Alpaca's stream with
    the keys from the environment."""
    from actors.trading import LiveSource
    from config.schema import FeedKind, symbols_by_feed
    from config.secrets import load_secrets

    fed = symbols_by_feed(settings)
    b = settings.broker
    sources = []
    if FeedKind.IB in fed:
        from actors.brokers.ib import IBMarketData

        ib_data = IBMarketData(
            host=b.host,
            port=b.port,
            client_id=b.client_id + 1,
            market_data_type=data_type,
            timeout=b.timeout,
        )
        sources.append(LiveSource(source=ib_data, symbols=fed[FeedKind.IB]))
    if FeedKind.ALPACA in fed:
        from actors.feeds.alpaca import AlpacaStream

        keys = load_secrets()
        if keys.alpaca_key is None or keys.alpaca_secret is None:
            _fail(
                f'{", ".join(sorted(fed[FeedKind.ALPACA]))}: feed = "alpaca" needs ALPACA_KEY '
                "and ALPACA_SECRET in the environment or in .env"
            )
        a = settings.alpaca
        stream = AlpacaStream(
            key=keys.alpaca_key,
            secret=keys.alpaca_secret,
            feed=a.feed.value,
            url=a.stream_url or None,
            data_timeout=a.data_timeout,
            backlog=a.backlog,
            auth_failures=a.auth_failures,
        )
        sources.append(LiveSource(source=stream, symbols=fed[FeedKind.ALPACA]))
    return sources


def _describe_source(source: Any, broker: Any) -> str:
    if source.name == "ib":
        return f"IB (clientId {source.client_id}, market data type {broker.market_data_type})"
    return f"Alpaca ({source.where}, keys from the environment)"


def _grid_params(grids: dict[str, Any]) -> dict[str, Any]:
    from actors.strategies.grid import GridParams

    return {
        symbol: GridParams(
            symbol=symbol,
            tick=grid.tick,
            level0_buffer=grid.level0_buffer,
            step=grid.step,
            profit=grid.profit,
            queue_depth=grid.queue_depth,
            fill_timeout=grid.fill_timeout,
        )
        for symbol, grid in grids.items()
    }


def _broker_settings(
    settings: Any,
    kind: enum.StrEnum | None,
    *,
    host: str | None = None,
    port: int | None = None,
    client_id: int | None = None,
    live: bool,
) -> Any:
    """The config with the command line's broker options applied; refused (exit 2) when it
    would move real money without both mode = "live" and --live."""
    from config.errors import ConfigError
    from config.options import override
    from config.schema import BrokerKind, live_problem

    options = {
        "kind": ("--broker", None if kind is None else BrokerKind(kind.value)),
        "host": ("--host", host),
        "port": ("--port", port),
        "client_id": ("--client-id", client_id),
    }
    try:
        settings = attrs.evolve(settings, broker=override(settings.broker, options))
    except ConfigError as exc:
        _fail(str(exc))
    problem = live_problem(settings, live_flag=live)
    if problem is not None:
        _fail(problem)
    return settings


def _claim_control(path: Path) -> Any:
    """The control socket at ``path``, bound and listening (a ``runtime.control.ControlSocket``);
    exit 2 if it cannot be, saying why."""
    from runtime.control import (
        ControlError,
        ControlSocketInUse,
        UnsafeControlDirectory,
        check_socket_path,
        claim_control,
        private_directory,
    )

    try:
        check_socket_path(path)
        if path == _per_user_socket():
            private_directory(path.parent)
        else:
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                _fail(
                    f"cannot create control socket {path}: cannot create its directory "
                    f"{exc.filename}: {exc.strerror}"
                )
        return claim_control(path)
    except ControlSocketInUse as exc:
        pid = "" if exc.pid is None else f" (pid {exc.pid})"
        _fail(f"another actorctl{pid} is already serving on {path}")
    except UnsafeControlDirectory as exc:
        _fail(f"{exc} (--socket, $ACTORTRADE_SOCKET or $XDG_RUNTIME_DIR)")
    except ControlError as exc:
        _fail(str(exc))


@contextlib.contextmanager
def _data_dir(
    data_dir: Path | None, settings: Any, lot_maps: dict[str, Any]
) -> Iterator[tuple[Any, Any]]:
    """The data directory (a temporary one, discarded at exit, when ``data_dir`` is None),
    locked for this service before its ledger or journal is opened, and checked to be made for
    this start (exit 2 naming what it holds and what was asked, nothing changed in it); with the
    manifest to record once they are open."""
    import tempfile

    if data_dir is None:
        with (
            tempfile.TemporaryDirectory(prefix="actortrade-") as scratch,
            _data_dir(Path(scratch), settings, lot_maps) as claimed,
        ):
            yield claimed
        return
    home = data_dir
    from config.errors import ConfigError
    from config.schema import BrokerKind
    from config.secrets import load_secrets
    from runtime.datadir import Asked, DataDirError, claim

    ib = settings.broker.kind is BrokerKind.IB
    try:
        account = load_secrets().ib_account if ib else None
    except ConfigError as exc:
        _fail(str(exc))
    try:
        held = claim(home)
    except DataDirError as exc:
        _fail(str(exc))
    with held:
        holdings: dict[str, tuple[int, int]] = {}

        def open_lots(symbol: str) -> tuple[int, int]:
            if not holdings:
                holdings.update(_ledger_holdings(home / "ledger"))
            return holdings.get(symbol, (0, 0))

        asked = Asked(
            venue="ib" if ib else "sim",
            mode=settings.mode.value,
            symbols=tuple(lot_maps),
            account=account,
        )
        try:
            admission = held.admit(asked, open_lots=open_lots, inferred=lambda: _inferred(home))
        except DataDirError as exc:
            _fail(str(exc))
        if admission.left_out:
            _say(
                f"{home} holds {', '.join(admission.left_out)} too, with no open lots: not traded "
                "by this start; its orders still working at the broker, if any, are watched again "
                "when a start trades it"
            )
        if admission.account_unchecked:
            _say(
                f"{home} was made for one IB account and IB_ACCOUNT is not set: the account TWS "
                "reports is not checked against it"
            )
        held.subdir("ledger")
        yield held, admission.manifest


def _ledger_holdings(path: Path) -> dict[str, tuple[int, int]]:
    """Every symbol the ledger at ``path`` has an order of, with its open lots and their shares;
    read without writing anything, not even LMDB's lock file (the data directory's lock keeps
    every writer out)."""
    import lmdb
    import msgspec

    from actors import ledger
    from runtime.store import StoreDamaged, StoreError, Txn, check_data_file

    data = path / "data.mdb"
    if not data.exists():
        return {}
    # Before LMDB maps it: a file cut short would be a SIGBUS (docs/durability.md).
    problem = check_data_file(data)
    if problem is not None:
        _fail(str(StoreDamaged(data, problem)))
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=len(ledger.DATABASES) + 1)
    except lmdb.Error as exc:
        _fail(str(StoreDamaged(path, f"{type(exc).__name__}: {exc}")))
    try:
        with env.begin() as txn:
            try:
                dbs = {
                    name: env.open_db(name.encode(), txn=txn, create=False)
                    for name in ("intents", "fills")
                }
            except lmdb.NotFoundError:
                return {}  # a ledger that never recorded an order
            view = Txn(txn, dbs, path)
            held = {intent.symbol: (0, 0) for intent in ledger.intents(view)}
            for lot in ledger.lots(view):
                if lot.open_shares > 0:
                    lots, shares = held.get(lot.symbol, (0, 0))
                    held[lot.symbol] = (lots + 1, shares + lot.open_shares)
    except StoreError as exc:
        _fail(str(exc))
    except (lmdb.Error, msgspec.MsgspecError, ValueError) as exc:
        _fail(str(StoreDamaged(path, f"{type(exc).__name__}: {exc}")))
    finally:
        env.close()
    return held


def _inferred(home: Path) -> Any:
    """What a data directory made before manifests was for: the symbols its ledger has orders
    of, on the sim venue if it has the venue's journal (else the venue is not known: an IB
    directory, a sim one whose journal is gone, a ledger restored into a new directory); None
    when it holds nothing."""
    from runtime.datadir import Manifest

    symbols = tuple(_ledger_holdings(home / "ledger"))
    journal = (home / "venue.journal").exists()
    if not symbols and not journal:
        return None
    return Manifest(venue="sim" if journal else None, symbols=symbols)


def _build(
    settings: Any,
    home: Path,
    *,
    bars: list[Any],
    lot_maps: dict[str, Any],
    grids: dict[str, Any],
    speed: float | None,
) -> tuple[Any, Any, list[Any]]:
    from actors.lot_keeper import ledger_store
    from actors.trading import sim_trading
    from runtime.store import Durability, StoreError
    from sim.journal import JournalError, open_engine

    store = ledger_store(
        home / "ledger",
        durability=Durability(settings.ledger.durability.value),
        map_size=settings.ledger.map_size_mib << 20,
    )
    try:
        # Opened here, not in the lot-keeper, so that a ledger that cannot be opened stops the
        # start before anything runs (the store's own lock stays, behind the directory's).
        store.open()
    except StoreError as exc:
        _fail(str(exc))
    try:
        engine = open_engine(home / "venue.journal")
    except (JournalError, OSError) as exc:
        store.close()
        _fail(str(exc))
    resumed = engine.last_trade_at
    params = _grid_params(grids)
    port, outside, live = _venue_face(settings, engine, lot_maps, start=bars[0].start)
    trading = sim_trading(
        data_dir=home / "ledger",
        store=store,
        bars=bars,
        lots=lot_maps,
        params=params,
        speed=speed,
        engine=engine,
        reconcile_interval=settings.reconcile.interval,
        port=port,
        live=live,
        telemetry=_telemetry(settings),
        **_risk_and_dry_run(settings),
    )
    return trading, resumed, outside


def _risk_and_dry_run(settings: Any) -> dict[str, Any]:
    """The tree's risk limits (``[risk]``, 0 meaning none) and whether it is a dry run."""
    from actors.risk_rules import MarketHours, RiskLimits

    r = settings.risk
    return {
        "risk": RiskLimits(
            max_notional_per_symbol=r.max_notional_per_symbol or None,
            max_gross_exposure=r.max_gross_exposure or None,
            max_open_orders=r.max_open_orders or None,
            market_hours=MarketHours(r.market_hours.value),
            max_risk_pct_per_trade=r.max_risk_pct_per_trade or None,
            max_daily_loss_pct=r.max_daily_loss_pct or None,
            equity=r.equity or None,
        ),
        "dry_run": settings.mode.value == "dry-run",
    }


def _telemetry(settings: Any) -> Any:
    """The service's tracer and metrics, as ``[telemetry]`` and the OTEL_* variables say."""
    import os

    from runtime.metrics import Metrics
    from runtime.telemetry import DEFAULT_ENDPOINT, Telemetry, Tracer

    t = settings.telemetry
    endpoint = t.endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT
    name = t.service_name or os.environ.get("OTEL_SERVICE_NAME") or "actortrade"
    from importlib.metadata import version as package_version

    version = package_version("actortrade")
    return Telemetry(
        Tracer(service_name=name, endpoint=endpoint, enabled=t.tracing, version=version),
        Metrics(
            service_name=name,
            endpoint=t.metrics_endpoint or None,
            export_interval=t.metrics_interval,
            version=version,
        ),
    )


def _venue_face(
    settings: Any, engine: Any, lot_maps: dict[str, Any], *, start: Any
) -> tuple[Any, list[Any], list[Any]]:
    """The broker port, the tasks of the outside world to run before the tree (the embedded
    venue's TWS API server and Alpaca server, each on a free loopback port), and the live feeds
    the symbols get their prices from."""

    import anyio

    from actors.brokers.ib import IBMarketData, IBPort
    from actors.trading import LiveSource
    from config.schema import BrokerKind, FeedKind, symbols_by_feed

    fed = symbols_by_feed(settings)
    outside: list[Any] = []
    live: list[Any] = []
    if FeedKind.ALPACA in fed:
        from actors.feeds.alpaca import AlpacaStream
        from sim.alpaca.server import AlpacaServer

        key, secret = _made_up_alpaca_keys()
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

        async def alpaca_venue(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
            async with anyio.create_task_group() as tg:
                await tg.start(alpaca.serve)
                stream.url = alpaca.url(a.feed.value)
                _say(f"the embedded venue's Alpaca stream server listens on {stream.url}")
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
    listed = [*lot_maps, *sorted(known - lot_maps.keys())]
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

    async def embedded_venue(*, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        async with anyio.create_task_group() as tg:
            port.port = await tg.start(server.serve)
            if ib_data is not None:
                ib_data.port = port.port
            _say(f"the embedded venue's TWS API server listens on 127.0.0.1:{port.port}")
            task_status.started()

    return port, [embedded_venue, *outside], live


def _serve(
    trading: Any,
    control_socket: Any,
    *,
    backend: str,
    stop_timeout: float,
    outside: list[Any],
    mode: str = "paper",
    venue: str = "embedded sim venue",
    uvloop: bool = True,
    on_started: Any = None,
    watch: Any = None,
) -> int:
    from actors.operations import Operations
    from runtime.control import ControlError, serve_control
    from supervisors.service import run_service

    telemetry = trading.telemetry
    tracer = telemetry.tracer
    if tracer.enabled:
        _say(
            f"tracing: a trace per decision to {tracer.endpoint} as service {tracer.service_name!r}"
        )

    async def flush(_root: Any, _stop: Any) -> None:
        await telemetry.run()

    async def control(root: Any, stop: Any) -> None:
        try:
            await serve_control(
                control_socket, Operations(trading, root, stop, mode=mode, venue=venue)
            )
        except Exception as exc:
            # Trading goes on without the control socket, whatever stopped it; the operator is
            # told why (with the traceback when it is a bug of ours).
            logging.getLogger("actortrade.control").warning(
                "no control socket: %s", exc, exc_info=not isinstance(exc, ControlError | OSError)
            )

    try:
        return run_service(
            trading.spec,
            backend=backend,
            stop_timeout=stop_timeout,
            companions=[control, flush, *([watch] if watch is not None else [])],
            outside=outside,
            # ib_insync takes its loop from the event loop policy, which is not the loop anyio
            # runs with uvloop: with ib_insync in the process, plain asyncio.
            uvloop=uvloop,
            hooks=telemetry.supervisor_hooks(),
            on_started=on_started,
        )
    finally:
        # The spans of the last moments (the stop itself) are exported before the exit.
        telemetry.shutdown()


class _Report:
    """Prints each execution as the venue reports it, and summaries from the strategies; on
    standard output, whose failure stops the printing but never the trading (``_Output``)."""

    def __init__(self, symbols: list[str]) -> None:
        self.symbols = symbols
        self.trading: Any = None
        self.pending: list[str] | None = None
        """Symbols not reconciled yet when the tree started (None: it has not started)."""
        self.traded = False

    def attach(self, trading: Any) -> None:
        from actors.domain import OrderFilled

        self.trading = trading
        engine = trading.engine

        def on_event(event: object) -> None:
            if isinstance(event, OrderFilled) and event.ref.startswith("grid:"):
                execution = engine.executions[-1]
                when = execution.time.strftime("%Y-%m-%d %H:%M:%S")
                side = execution.side.value
                level = event.ref.split(":")[2]
                position = engine.positions[execution.symbol].quantity
                _STDOUT.line(
                    f"{when} {side:4} {event.quantity:>4} {execution.symbol} @ {event.price} "
                    f"({level}) position {position}"
                )

        engine.listeners.append(on_event)

    def reconciled(self, _root: object = None) -> None:
        # Called once the tree has started, which is not proof of trading: a symbol actor whose
        # on_start (its reconciliation) failed is restarting. "trading" is printed only once
        # every symbol actor is running, so reconciled; until then the watch companion waits.
        self.pending = self._unreconciled()
        if self.pending:
            print(
                f"started, not trading yet: {', '.join(self.pending)} not reconciled with the "
                "venue (restarting); trading begins once they are",
                flush=True,
            )
            return
        self._trading_line()

    async def watch(self, _root: object, _stop: object) -> None:
        import anyio

        while self.pending is None or self.pending:
            await anyio.sleep(0.05)
            if self.pending and not self._unreconciled():
                self.pending = []
                self._trading_line()

    def never_traded(self) -> None:
        if not self.traded:
            _say(f"it never traded: {', '.join(self.symbols)} never reconciled with the venue")

    def _unreconciled(self) -> list[str]:
        from runtime import LifecycleState

        cells = self.trading.cells
        return [
            symbol
            for symbol in self.symbols
            if f"grid:{symbol}" not in self.trading.strategies
            or cells[symbol].state is not LifecycleState.RUNNING
        ]

    def _trading_line(self) -> None:
        self.traded = True
        parts = []
        for symbol in self.symbols:
            strategy = self.trading.strategies.get(f"grid:{symbol}")
            if strategy is None:
                parts.append(f"{symbol} not reconciled")
                continue
            live = strategy.live_orders()
            sells = sum(1 for order in live if order.side.value == "SELL")
            diffs = sum(
                1 for a in self.trading.alerts if a.symbol == symbol and a.kind == "reconcile"
            )
            found = f"{diffs} differences repaired" if diffs else "in agreement"
            halted = f", HALTED: {strategy.halted}" if strategy.halted else ""
            parts.append(
                f"{symbol} {len(strategy.open_lots())} open lots, {sells} sells and "
                f"{len(live) - sells} buys working, {found}{halted}"
            )
        _STDOUT.line(f"reconciled with the venue: {'; '.join(parts)}; trading")

    def summary(self, when: str) -> None:
        engine = self.trading.engine
        for symbol in self.symbols:
            strategy = self.trading.strategies.get(f"grid:{symbol}")
            if strategy is None:
                _STDOUT.line(f"{when}: {symbol} has not started")
                continue
            executions = [e for e in engine.executions if e.symbol == symbol]
            sells = sum(1 for e in executions if e.side.value == "SELL")
            orders = sum(1 for o in engine.orders.values() if o.symbol == symbol)
            open_lots = strategy.open_lots()
            shares = sum(lot.open_shares for lot in open_lots)
            halted = f"; HALTED: {strategy.halted}" if strategy.halted else ""
            _STDOUT.line(
                f"{when}: {symbol} {orders} orders, {len(executions) - sells} buy and "
                f"{sells} sell executions, {len(open_lots)} open lots ({shares} shares), "
                f"realized P&L {strategy.realized:.2f}{halted}"
            )


def _ask(socket: Path | None, config: Path | None, command: str, **args: Any) -> Any:
    from runtime.control import ControlError, ControlUnavailable, request

    path = _socket_path(socket, config)
    try:
        return request(path, command, args, timeout=60)
    except ControlUnavailable as exc:
        _say(f"{exc} (start it with `actorctl start`, or point --socket at it)")
        raise typer.Exit(1) from None
    except ControlError as exc:
        _say(f"{command}: {exc}")
        raise typer.Exit(1) from None


def _print_json(value: Any) -> None:
    import json

    print(json.dumps(value, indent=2, sort_keys=True))


JsonOption = Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")]


@app.command()
def status(
    config: ConfigOption = None, socket: SocketOption = None, json: JsonOption = False
) -> None:
    """Show the running service: actor tree with states, restarts and mailboxes, each
    symbol's lots and P&L, and the last reconciliation."""
    reply = _ask(socket, config, "status")
    if json:
        _print_json(reply)
        return
    print(
        f"actortrade pid {reply['pid']}: {reply['mode']} on the {reply['venue']}, venue time "
        f"{reply['venue_time'] or '-'}, {reply['restarts']} restarts at the root"
    )
    print(f"{'actor':<28} {'state':<10} {'restarts':>8} {'mailbox':>8} {'peak':>6} {'handled':>9}")

    def tree(nodes: list[dict[str, Any]], depth: int) -> None:
        for node in nodes:
            box = node.get("mailbox") or {}
            name = "  " * depth + node["id"]
            print(
                f"{name:<28} {node['state']:<10} {node['restarts']:>8} "
                f"{box.get('depth', ''):>8} {box.get('high_water_mark', ''):>6} "
                f"{box.get('processed', ''):>9}"
            )
            tree(node.get("children") or [], depth + 1)

    tree(reply["tree"], 1)
    for view in reply["symbols"]:
        shares = sum(lot["shares"] for lot in view["lots"])
        halted = f"  HALTED: {view['halted']}" if view["halted"] else ""
        detail = view.get("detail") or {}
        own = "".join(
            f" {key} {'-' if value is None else value}"
            for key, value in detail.items()
            if key != "kind"
        )
        print(
            f"{view['symbol']}: {len(view['lots'])} open lots ({shares} shares), realized P&L "
            f"{view['realized']}, last price {view['last_price'] or '-'}; {view['strategy']}"
            f"{own}; {view['live_buys']} buys and {view['live_sells']} sells working{halted}"
        )
        for event in view.get("lot_events", [])[-3:]:
            if "realized" in event:
                print(
                    f"  lot {event['lot']} (L{event['level']}) closed: {event['shares']} shares, "
                    f"realized {event['realized']}"
                )
            else:
                print(
                    f"  lot {event['lot']} (L{event['level']}) opened: {event['shares']} @ "
                    f"{float(event['purchase_price']):.4f}, selling at {event['sell_price']}"
                )
        dropped = view.get("ticks_dropped") or {}
        if dropped:
            print(f"  bad ticks dropped: {dropped}")
        diff = view.get("last_diff")
        if diff is not None:
            _print_diff_lines(_diff_lines(diff), "  last reconcile: clean")
    for feed in reply.get("feeds", []):
        c = feed["connection"]
        figures = (
            f"{c['received']} trades received, {c['malformed']} malformed, {c['coalesced']} "
            f"coalesced, {c['connects']} connects, {c['reconnects']} reconnects"
            if feed["feed"] == "alpaca"
            else f"clientId {c.get('client_id')}, connected {c.get('connected')}"
        )
        print(
            f"feed {feed['feed']} ({c.get('where')}) for {', '.join(feed['symbols'])}: "
            f"{feed['ticks']} ticks handed on; {figures}"
        )
        if c.get("last_error"):
            print(f"  last error: {c['last_error']} (all: {c.get('refusals')})")
    _print_risk(reply.get("risk"), reply.get("dry_run"))
    last = reply["last_reconcile"]
    if last is None:
        print("periodic reconcile: not run yet")
    else:
        _print_diff_lines(last["lines"], "periodic reconcile: clean")
    if "metrics" in reply:
        _print_metrics(reply["metrics"], reply["tracing"])


def _print_risk(risk: dict[str, Any] | None, dry: dict[str, Any] | None) -> None:
    if risk is not None:
        refused = ", ".join(f"{n} {rule}" for rule, n in sorted(risk["refused"].items()))
        state = f"TRIPPED: {risk['tripped']}" if risk["tripped"] else "daily loss guard armed"
        halts = f"; HALTED by the operator: {', '.join(risk['halts'])}" if risk["halts"] else ""
        print(
            f"risk: {risk['allowed']} orders allowed, refused {refused or 'none'}; "
            f"{risk['open_orders']} working, exposure {risk['exposure']}; session "
            f"{risk['session'] or '-'} from equity {risk['start_equity'] or '-'}; {state}{halts}"
        )
        for refusal in risk["last_refusals"][-3:]:
            print(f"  refused {refusal['ref']} ({refusal['rule']}): {refusal['reason']}")
    if dry is not None:
        print(
            f"DRY RUN: {dry['sent']} orders would have been sent (none was); "
            f"{len(dry['working'])} working:"
        )
        for order in dry["working"]:
            print(
                f"  {order['ref']} {order['side']} {order['quantity']} @ "
                f"{order['limit'] or 'MKT'} {order['tif']}"
            )


def _print_metrics(metrics: dict[str, Any], tracing: dict[str, Any]) -> None:
    """The figures the OTel SDK collects (and exports, when configured)."""
    print(f"metrics (OpenTelemetry SDK, over {metrics['uptime_s']} s):")

    def by(name: str, key: str) -> dict[str, list[dict[str, Any]]]:
        rows: dict[str, list[dict[str, Any]]] = {}
        for row in metrics["counts"].get(name, []):
            rows.setdefault(str(row["attributes"].get(key, "")), []).append(row)
        return rows

    labels = {
        "actortrade.tick_to_order.duration": "tick-to-order",
        "actortrade.store.commit.duration": "LMDB commit",
    }
    for name, label in labels.items():
        for row in metrics["durations"].get(name, []):
            symbol = row["attributes"].get("trading.symbol")
            what = f"{label} {symbol}" if symbol else label
            if row["count"]:
                print(
                    f"  {what}: {row['count']} samples, p50 {row['p50_us']:g} µs, p99 "
                    f"{row['p99_us']:g} µs, max {row['max_us']:g} µs"
                )
    for symbol, rows in by("actortrade.ticks", "trading.symbol").items():
        outcomes = {row["attributes"]["outcome"]: row["value"] for row in rows}
        submitted = {
            row["attributes"]["trading.side"]: row["value"]
            for row in metrics["counts"].get("actortrade.orders.submitted", [])
            if row["attributes"].get("trading.symbol") == symbol
        }
        print(
            f"  ticks {symbol}: {outcomes.get('decided', 0)} decided, "
            f"{outcomes.get('no_decision', 0)} without a decision, {outcomes.get('rejected', 0)} "
            f"rejected; orders submitted: {submitted.get('BUY', 0)} buys, "
            f"{submitted.get('SELL', 0)} sells"
        )
    runs = {s: r[0]["value"] for s, r in by("actortrade.reconcile.runs", "trading.symbol").items()}
    diffs = {
        s: r[0]["value"] for s, r in by("actortrade.reconcile.diffs", "trading.symbol").items()
    }
    for symbol, count in runs.items():
        print(f"  reconciles {symbol}: {count} runs, {diffs.get(symbol, 0)} differences repaired")
    reconnects = sum(r["value"] for r in metrics["counts"].get("actortrade.broker.reconnects", []))
    print(f"  broker reconnects: {reconnects}")
    print("  actor                  depth  processed      msg/s  restarts")
    for row in metrics["actors"]:
        print(
            f"  {row['actor']:<22} {row.get('depth', 0):>5} {row.get('processed', 0):>10} "
            f"{row['per_second']:>10} {row.get('restarts', 0):>9}"
        )
    if tracing["enabled"]:
        exported = tracing["exported"] if tracing["exported"] is not None else "-"
        print(
            f"tracing: to {tracing['endpoint']}: {tracing['built']} spans built, {exported} "
            f"exported, {tracing['failed'] or 0} failed; {tracing['waiting']} decisions waiting "
            f"for the flush, {tracing['dropped']} dropped"
        )
    else:
        print("tracing: off")


def _diff_lines(diff: dict[str, Any]) -> list[str]:
    from cattrs import Converter

    from actors.reconcile import Diff

    return Converter().structure(diff, Diff).lines()


def _print_diff_lines(lines: list[str], clean: str) -> None:
    if not lines:
        print(clean)
    for line in lines:
        print(f"  {line}")


@app.command()
def stop(config: ConfigOption = None, socket: SocketOption = None) -> None:
    """Stop the running service gracefully (GTC orders stay at the broker)."""
    reply = _ask(socket, config, "stop")
    print(f"actortrade pid {reply['pid']} is stopping")


SymbolArgument = Annotated[
    str | None, typer.Argument(help="The symbol (default: every symbol).", show_default=False)
]


@app.command()
def halt(
    symbol: SymbolArgument = None, config: ConfigOption = None, socket: SocketOption = None
) -> None:
    """Stop new orders of SYMBOL (or of every symbol) until `actorctl resume`; survives
    restarts. Working orders stay; sells that reduce a position still go."""
    reply = _ask(socket, config, "halt", symbol=symbol)
    print(f"halted: {', '.join(reply['halts']) or '-'} (`actorctl resume` lifts it)")


@app.command()
def resume(
    symbol: SymbolArgument = None, config: ConfigOption = None, socket: SocketOption = None
) -> None:
    """Lift the operator's halt of SYMBOL (or every halt). A tripped daily loss guard lifts
    only at the next session."""
    reply = _ask(socket, config, "resume", symbol=symbol)
    print(f"halted: {', '.join(reply['halts']) or 'nothing'}")
    if reply["tripped"]:
        print(f"the daily loss guard stays tripped until the next session: {reply['tripped']}")


@app.command(name="lots")
def lots_command(
    config: ConfigOption = None, socket: SocketOption = None, json: JsonOption = False
) -> None:
    """List the open lots of the running service, with their sells."""
    reply = _ask(socket, config, "lots")
    if json:
        _print_json(reply)
        return
    print(
        f"{'symbol':<8} {'strategy':<10} {'lot':>5} {'level':>5} {'shares':>7} {'bought at':>10} "
        f"{'sell at':>9}"
    )
    for view in reply["symbols"]:
        for lot in view["lots"]:
            print(
                f"{view['symbol']:<8} {view['strategy']:<10} {lot['id']:>5} {lot['label']:>5} "
                f"{lot['shares']:>7} {float(lot['purchase_price']):>10.4f} "
                f"{lot['sell_price'] or '-':>9}"
            )
        print(f"{view['symbol']:<8} {view['strategy']:<10} realized P&L {view['realized']}")


@app.command()
def reconcile(
    config: ConfigOption = None,
    socket: SocketOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would change; change nothing.")
    ] = False,
    acknowledge_conflicts: Annotated[
        bool,
        typer.Option(
            "--acknowledge-conflicts",
            help="You have looked at the execution conflicts on record (an execId the broker "
            "reported with other facts than the ledger holds): lift the halt they caused. "
            "They stay on record.",
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Reconcile the running service's ledger with the broker now, and print the diff."""
    if dry_run and acknowledge_conflicts:
        _fail("--acknowledge-conflicts changes the ledger: it cannot go with --dry-run")
    reply = _ask(
        socket,
        config,
        "reconcile",
        dry_run=dry_run,
        acknowledge_conflicts=acknowledge_conflicts,
    )
    if json:
        _print_json(reply)
        return
    _print_diff_lines(reply["lines"], "clean: the ledger and the broker agree")


@app.command()
def backup(
    target: Annotated[Path, typer.Argument(help="An empty or new directory for the copy.")],
    config: ConfigOption = None,
    socket: SocketOption = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Back up this data directory's ledger (when no service runs on it)."),
    ] = None,
) -> None:
    """Write a consistent, compacted copy of the ledger: through the running service, or
    straight from --data-dir when none is running."""
    from actors.lot_keeper import ledger_store
    from runtime.store import StoreError, StoreLocked

    target = target.resolve()
    if data_dir is None:
        reply = _ask(socket, config, "backup", path=str(target))
        print(f"ledger copied to {reply['path']}")
        return
    store = ledger_store(data_dir / "ledger")
    if not (data_dir / "ledger" / "data.mdb").exists():
        _fail(f"{data_dir}: no ledger there (expected {data_dir / 'ledger' / 'data.mdb'})")
    try:
        with store:
            copied = store.backup(target)
    except StoreLocked as exc:
        _fail(f"{exc} (if a service runs on it, back up through it: drop --data-dir)")
    except StoreError as exc:
        _fail(str(exc))
    print(f"ledger copied to {copied}")


@app.command()
def restore(
    backup_dir: Annotated[
        Path, typer.Argument(metavar="BACKUP", help="A directory `actorctl backup` wrote.")
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option(help="The data directory whose ledger to restore [config: data_dir]."),
    ] = None,
    config: ConfigOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an existing ledger (it is moved aside, not deleted)."
        ),
    ] = False,
) -> None:
    """Restore a ledger backup into a data directory (no service may run on it).

    The backup is verified first (its file against its header, every record read back) and
    refused if damaged or partial. An existing ledger is kept unless --force, which moves it to
    ledger.replaced-<UTC time> beside it. The next `actorctl start` on the directory reconciles
    the restored ledger with the broker.
    """
    from actors.lot_keeper import ledger_store
    from runtime.datadir import DataDirError, claim
    from runtime.store import StoreDamaged, StoreError

    home = data_dir if data_dir is not None else _load_config(config).data_dir
    if home is None:
        _fail("no data directory to restore into: pass --data-dir (or set data_dir in --config)")
    ledger = Path(home) / "ledger"
    try:
        if Path(home).is_dir():
            # The whole directory's lock, as a start takes it: no service may be using it.
            with claim(Path(home)):
                moved = ledger_store(ledger).restore(backup_dir, force=force)
        else:
            moved = ledger_store(ledger).restore(backup_dir, force=force)
    except DataDirError as exc:
        _fail(str(exc))
    except StoreDamaged as exc:
        _fail(
            f"backup damaged: {exc.path}: {exc.problem}: not restored, nothing changed; use "
            "another backup"
        )
    except StoreError as exc:
        _fail(str(exc))
    kept = f"; the ledger it replaced is in {moved}" if moved is not None else ""
    print(f"ledger restored from {backup_dir} into {ledger}{kept}")
    print(f"the next `actorctl start --data-dir {home}` reconciles it with the broker")


@app.command()
def check(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="TWS / IB Gateway host (for kind ib).")] = None,
    port: Annotated[int | None, typer.Option(help="TWS / IB Gateway port (for kind ib).")] = None,
    broker: Annotated[
        CheckBroker | None, typer.Option(help="Which broker connection to test [the config's].")
    ] = None,
    what_if: Annotated[
        bool,
        typer.Option(
            "--what-if", help="Also ask the broker what a level-0 buy would do (never placed)."
        ),
    ] = False,
    feed: Annotated[
        FeedChoice | None,
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
    from config.errors import ConfigError
    from config.load import DEFAULT_CONFIG, render_config
    from config.lotmap import load_lot_map
    from config.secrets import load_secrets

    settings = _broker_settings(_load_config(config), broker, host=host, port=port, live=live)
    if feed is not None:
        from config.schema import FeedKind

        symbols = tuple(attrs.evolve(s, feed=FeedKind(feed.value)) for s in settings.symbols)
        settings = attrs.evolve(settings, symbols=symbols)
    print(f"config {config or DEFAULT_CONFIG}: ok")
    problems = 0
    for symbol in settings.symbols:
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


def _check_alpaca(settings: Any) -> bool | None:
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
        from sim.alpaca.server import AlpacaServer
        from sim.replay import generated_session

        key, secret = _made_up_alpaca_keys()
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


def _check_broker(settings: Any, *, what_if: bool) -> bool:
    import anyio

    from actors.brokers.ib import IBPort
    from actors.domain import Instrument, PlaceOrder, Side, TimeInForce, round_to_tick
    from config.lotmap import load_lot_map
    from config.schema import BrokerKind, masked
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
                if what_if and quote is not None:
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


def _config_dir() -> str:
    import config

    return str(Path(config.__file__).parent)


def _say(message: str) -> None:
    _STDERR.line(f"actorctl: {message}")


class _Output:
    """One of the process's standard streams, as the service writes to it: a write that fails
    (a closed pipe, a full disk) is logged once and ends the printing, never the trading, which
    the caller may be in the middle of (the fill printer runs inside the venue)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failed = False

    def line(self, text: str) -> None:
        if self.failed:
            return
        stream = getattr(sys, self.name)
        try:
            print(text, file=stream, flush=True)
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed
            self.failed = True
            self._silence(stream)
            # Logging never raises: a handler whose stream fails reports it to stderr, if it can.
            logging.getLogger("actortrade.output").warning(
                "%s failed (%s: %s): nothing more is printed there; trading goes on",
                "standard output" if self.name == "stdout" else "standard error",
                type(exc).__name__,
                exc,
            )

    @staticmethod
    def _silence(stream: Any) -> None:
        # The stream's descriptor now goes to /dev/null: what is still buffered, and any later
        # write (ours, a library's, the interpreter's flush at exit), succeeds there instead of
        # raising again ("Exception ignored ... BrokenPipeError" at exit).
        import os

        try:
            fd = stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
        except (OSError, ValueError):
            return
        try:
            os.dup2(null, fd)
        except OSError:
            pass
        finally:
            os.close(null)


_STDOUT = _Output("stdout")
_STDERR = _Output("stderr")


def _fail(message: str) -> NoReturn:
    _say(message)
    raise typer.Exit(2)


@app.command()
def demo(
    backend: Annotated[
        Backend, typer.Option(help="Event loop backend (asyncio uses uvloop when installed).")
    ] = Backend.asyncio,
    report_every: Annotated[
        float, typer.Option(min=0.05, help="Seconds between report lines.")
    ] = 1.0,
    crash_every: Annotated[
        float,
        typer.Option(
            min=0.0, help="Crash a random symbol actor this often, in seconds (0: never)."
        ),
    ] = 0.0,
    stop_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds a graceful stop may take before cancelling.")
    ] = 5.0,
    seed: Annotated[int | None, typer.Option(help="Seed for the demo price walk.")] = None,
) -> None:
    """Run the supervision example until SIGINT or SIGTERM (no trading).

    A price feed, one actor per symbol under a one_for_one supervisor, and a reporter;
    --crash-every shows actors crashing and being restarted.
    """
    from actors.demo import demo_tree
    from supervisors.service import run_service

    _configure_logging()

    def out(line: str) -> None:
        print(line, flush=True)

    spec = demo_tree(report_interval=report_every, crash_every=crash_every, seed=seed, out=out)
    print(
        f"actorctl: example tree running on {backend.value} "
        f"(feed, symbols: TQQQ QQQ SPY, reporter); Ctrl-C or SIGTERM stops it",
        file=sys.stderr,
        flush=True,
    )
    code = run_service(spec, backend=backend.value, stop_timeout=stop_timeout)
    raise typer.Exit(code)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def bench(ctx: typer.Context) -> None:
    """Run the bench suite (bench/suite.py; `actorctl bench --help` lists its options).

    Needs a source checkout: bench/ is not part of an installed package.
    """
    import subprocess

    suite = Path(__file__).resolve().parents[1] / "bench" / "suite.py"
    if not suite.is_file():
        _fail(
            f"the bench suite is not installed with the package ({suite} does not exist): run "
            "it from a source checkout with `make bench`"
        )
    raise typer.Exit(
        subprocess.run([sys.executable, str(suite), *ctx.args], check=False).returncode
    )


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # ib_insync logs every order event at INFO with its whole repr; ours say what matters.
    logging.getLogger("ib_insync").setLevel(logging.WARNING)


def main() -> None:
    app()
