"""``actorctl start``: the command line's options over the config, checked before anything is
created, then the service (``_run``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.ops.logs import LogFormat, new_run_id
from config.schema import BrokerKind, FeedKind, HistorySource
from runtime import Backend

from ._app import cli
from ._common import (
    ConfigOption,
    SocketOption,
    broker_settings,
    configure_logging,
    default_socket,
    fail,
    load_config,
)

if TYPE_CHECKING:
    from actors.alerts import AlertSettings
    from actors.domain import Bar
    from actors.strategies.protocol import StrategyKind
    from config.schema import Config


@cli.command()
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
        BrokerKind | None,
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
        FeedKind | None,
        typer.Option(
            help="Where every symbol's prices come from: auto (the venue's own), replay, alpaca "
            "(Alpaca's stream through alpaca-py; on the embedded venue its Alpaca server on "
            "loopback) or ib (IB's streaming market data) [each symbol's feed in the config].",
        ),
    ] = None,
    history: Annotated[
        HistorySource | None,
        typer.Option(
            help="Where bar strategies' warm-up comes from: auto (the replay on the embedded "
            "venue; through IB, Alpaca's bars for an Alpaca-fed symbol, else IB's), replay, "
            "broker (IB's reqHistoricalData, on the embedded venue its TWS API server), feed "
            "(the symbol's feed's) or none (a strategy that needs warm-up is refused) "
            "[config: history.source].",
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
    http_listen: Annotated[
        str | None,
        typer.Option(
            "--http",
            metavar="HOST:PORT",
            help="Serve /healthz, /readyz and /metrics (Prometheus) here; port 0: any free one "
            "[config: http.listen, 127.0.0.1:9464].",
        ),
    ] = None,
    no_http: Annotated[
        bool, typer.Option("--no-http", help="No HTTP endpoints [config: http.enabled].")
    ] = False,
    log_format: Annotated[
        LogFormat,
        typer.Option(
            help="The log on standard error: text, or JSON lines with the run, actor, symbol "
            "and a decision's trace and span ids (docs/runtime.md, Logs)."
        ),
    ] = LogFormat.TEXT,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose",
            "-v",
            count=True,
            help="More log: -v our loggers at DEBUG and ib_insync's at INFO; -vv all at DEBUG.",
        ),
    ] = 0,
) -> None:
    """Trade each symbol's strategy on the embedded sim venue until SIGINT, SIGTERM or
    `actorctl stop`.

    Replays a session into the embedded venue, which the broker actor reaches through the
    venue's TWS API server with ib_insync (the production broker path, on loopback), printing
    every execution, and a summary when the replay ends and at stop. With --data-dir, the ledger
    and the venue's books are kept and a later start on the same directory resumes: it
    reconciles with the venue and carries on where the replay stopped.

    With --feed alpaca the prices come the seed bot's way: the venue's Alpaca stream server
    publishes the replay and the market-data actor reads it with alpaca-py, while orders go
    through ib_insync (the hybrid IB + Alpaca configuration, all on loopback).
    """
    import attrs

    from config.errors import ConfigError
    from config.lotmap import load_lot_map
    from config.options import override
    from config.schema import Mode, feed_of, feed_problem, history_problem
    from sim.replay import MAX_GENERATED_DAYS

    from ._run import claim_control, start_embedded, start_live

    configure_logging(log_format.value, verbose, new_run_id())
    loaded = load_config(config)
    if dry_run:
        loaded = attrs.evolve(loaded, mode=Mode.DRY_RUN)
    settings = broker_settings(loaded, broker, host=host, port=port, client_id=client_id, live=live)
    if http_listen is not None and no_http:
        fail("--http and --no-http: give one of the two")
    http_on = True if http_listen is not None else None
    if not 1 <= days <= MAX_GENERATED_DAYS:
        fail(f"--days: must be between 1 and {MAX_GENERATED_DAYS}, got {days}")
    try:
        # Each option has the range of the key it overrides (the schema's validators).
        symbols = settings.symbols
        if symbol is not None or lots is not None:
            symbols = (
                override(symbols[0], {"symbol": ("--symbol", symbol), "lots": ("--lots", lots)}),
            )
        if feed is not None:
            symbols = tuple(attrs.evolve(s, feed=feed) for s in symbols)
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
            history=override(settings.history, {"source": ("--history", history)}),
            http=override(
                settings.http,
                {
                    "listen": ("--http", http_listen),
                    # --http turns the endpoints on, whatever the config says.
                    "enabled": ("--no-http", False if no_http else http_on),
                },
            ),
        )
    except ConfigError as exc:
        fail(str(exc))
    problem = feed_problem(settings) or history_problem(settings)
    if problem is not None:
        fail(problem)
    feeds = {feed_of(settings, s) for s in symbols}
    chosen_backend = backend or settings.runtime.backend
    if chosen_backend is Backend.TRIO and (
        settings.broker.kind is not BrokerKind.INPROCESS or feeds - {FeedKind.REPLAY}
    ):
        fail(
            "ib_insync and alpaca-py run on asyncio only: --backend trio needs --broker "
            "inprocess (the sim venue without the TWS API socket) and --feed replay"
        )
    _refuse_bad_places(settings, data_dir, config)
    alerting = _alerting(settings)  # before anything is written: a bad secret is bad input
    venue = settings.venue
    replay, seed, speed = venue.replay, venue.seed, venue.speed
    try:
        lot_maps = {s.symbol: load_lot_map(s.lots) for s in symbols if s.lots is not None}
    except ConfigError as exc:
        fail(str(exc))
    kinds = _kinds(settings, config)
    _refuse_cold(settings, kinds, config)
    data_dir = data_dir if data_dir is not None else settings.data_dir
    live_broker = settings.broker.kind is BrokerKind.IB
    bars = [] if live_broker else _bars(settings, replay=replay, seed=seed, days=days)
    # Before the ledger, the venue or the broker is touched: a service nobody can control (or
    # someone else could) is not started.
    with claim_control(socket or settings.control.socket or default_socket()) as control:
        if live_broker:
            code = start_live(
                settings,
                lot_maps,
                kinds=kinds,
                data_dir=data_dir,
                control=control,
                stop_timeout=settings.runtime.stop_timeout,
                alerting=alerting,
            )
        else:
            code = start_embedded(
                settings,
                lot_maps,
                kinds=kinds,
                control=control,
                data_dir=data_dir,
                bars=bars,
                replay=replay,
                seed=seed,
                days=days,
                speed=speed,
                backend=chosen_backend,
                stop_timeout=settings.runtime.stop_timeout,
                alerting=alerting,
            )
    raise typer.Exit(code)


def _alerting(settings: Config) -> AlertSettings:
    from app import compose

    try:
        return compose.alerting(settings)
    except compose.CompositionError as exc:
        fail(str(exc))


def _kinds(settings: Config, config: Path | None) -> dict[str, StrategyKind]:
    """The strategy of each symbol that is not a grid; parameters it refuses exit 2 naming the
    file and ``symbols[i]``."""
    from app import compose
    from config.load import DEFAULT_CONFIG

    try:
        return compose.strategy_kinds(settings)
    except compose.CompositionError as exc:
        fail(f"{config or DEFAULT_CONFIG}: {exc}")


def _refuse_cold(settings: Config, kinds: dict[str, StrategyKind], config: Path | None) -> None:
    """Refuse (exit 2) a strategy that needs warm-up and would get no history, before anything
    runs: it is never traded cold."""
    from app import compose
    from config.load import DEFAULT_CONFIG

    problem = compose.warmup_problem(settings, kinds)
    if problem is not None:
        fail(f"{config or DEFAULT_CONFIG}: {problem}")


def _bars(settings: Config, *, replay: Path | None, seed: int, days: int) -> list[Bar]:
    """The bars to replay into the embedded venue: from ``replay`` (each traded symbol's bars
    checked against its tick), or generated for every traded symbol."""
    from config.errors import ConfigError
    from sim.replay import ReplayError, generated_days, load_bars

    try:
        if replay is not None:
            bars = load_bars(replay, ticks={s.symbol: s.tick for s in settings.symbols})
        else:
            bars = sorted(
                (
                    b
                    for s in settings.symbols
                    for b in generated_days(seed=seed, days=days, symbol=s.symbol)
                ),
                key=lambda b: (b.start, b.symbol),
            )
    except (ConfigError, ReplayError) as exc:
        fail(str(exc))
    if not bars:
        fail(f"{replay}: no bars for {', '.join(s.symbol for s in settings.symbols)}")
    return bars


def _refuse_bad_places(settings: Config, data_dir: Path | None, config: Path | None) -> None:
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
        fail(f"{where}: {problem}")
    mib = settings.ledger.map_size_mib
    if (problem := map_size_problem(mib)) is not None:
        fail(f"{config or DEFAULT_CONFIG}: {problem}, got {mib} @ ledger.map_size_mib")
    t = settings.telemetry
    variable = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")
    if t.tracing and not t.endpoint and variable and not is_url(variable, ("http", "https")):
        fail(f"$OTEL_EXPORTER_OTLP_ENDPOINT: must be {HTTP_URL}, got {shown(repr(variable))}")
