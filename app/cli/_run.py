"""The service ``actorctl start`` runs: the tree ``app.compose`` builds in the data directory it
was admitted to (``_admit``), served under the root supervisor beside the control socket, the
telemetry's flush and the fill printer (``_report``)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.ops.logs import announce_run

from ._admit import data_dir_of
from ._common import Output, fail, per_user_socket, say
from ._report import Report

if TYPE_CHECKING:
    from actors.alerts import AlertSettings
    from actors.strategies.protocol import StrategyKind
    from app.compose import LiveSource, LiveTrading, SimTrading
    from app.control import ControlSocket
    from config.lotmap import LotMap
    from config.schema import BrokerConfig, Config, HttpConfig
    from runtime import Backend
    from supervisors import Supervisor
    from supervisors.service import Companion, Outside

_FEED_WORDS = {
    "replay": "the replay",
    "alpaca": "its Alpaca stream server with alpaca-py",
    "ib": "its TWS API server's market data with ib_insync",
}


def start_embedded(
    settings: Config,
    lot_maps: Mapping[str, LotMap],
    *,
    kinds: Mapping[str, StrategyKind],
    control: ControlSocket,
    data_dir: Path | None,
    bars: list[Any],
    replay: Path | None,
    seed: int,
    days: int,
    speed: float,
    backend: Backend,
    stop_timeout: float,
    alerting: AlertSettings | None = None,
) -> int:
    """Trade on the embedded sim venue, replaying ``bars``: the grids of ``lot_maps`` and the
    strategies of ``kinds`` (``app.compose.strategy_kinds``)."""
    from app import compose
    from config.schema import BrokerKind, FeedKind, feed_of

    symbols = settings.symbols
    feeds = {feed_of(settings, s) for s in symbols}
    with data_dir_of(data_dir, settings) as (held, manifest):
        home = held.path
        try:
            built = compose.embedded(
                settings,
                home,
                lot_maps=lot_maps,
                kinds=kinds,
                bars=bars,
                speed=speed or None,
                say=say,
                alerting=alerting,
            )
        except compose.CompositionError as exc:
            fail(str(exc))
        trading = built.trading
        held.record(manifest)
        report = Report(_routes(settings), trading, sessions=_sessions(bars))
        trading.on_finished.append(report.finished)
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
        # Not "trading" yet: that is said once every symbol actor has reconciled (Report).
        say(
            f"starting {', '.join(s.symbol for s in symbols)} in {settings.mode.value.upper()} "
            f"mode on the embedded sim venue ({path}; prices: {prices}; no account) replaying "
            f"{source} {pace}; data in {home} ({kept}); control socket {control.path}; Ctrl-C, "
            "SIGTERM or `actorctl stop` stops it"
        )
        announce_run()
        if built.resumed is not None:
            say(f"resuming: the venue has seen trades up to {built.resumed.isoformat()}")
        if alerting is not None:
            say(compose.describe_alerting(alerting))
        code = serve(
            trading,
            control,
            backend=backend.value,
            stop_timeout=stop_timeout,
            outside=built.outside,
            # ib_insync reads its loop from the event loop policy: plain asyncio with it.
            uvloop=settings.broker.kind is BrokerKind.INPROCESS and FeedKind.IB not in feeds,
            on_started=report.reconciled,
            watch=report.watch,
            mode=settings.mode.value,
            routes=_routes(settings),
            http=settings.http,
        )
        report.summary("at stop")
        report.never_traded()
    return code


def start_live(
    settings: Config,
    lot_maps: Mapping[str, LotMap],
    *,
    kinds: Mapping[str, StrategyKind],
    data_dir: Path | None,
    control: ControlSocket,
    stop_timeout: float,
    alerting: AlertSettings | None = None,
) -> int:
    """Trade through a real TWS / IB Gateway, on IB's own market data or Alpaca's: the grids of
    ``lot_maps`` and the strategies of ``kinds``."""
    from app import compose

    b = settings.broker
    with data_dir_of(data_dir, settings) as (held, manifest):
        home = held.path
        try:
            store = compose.open_ledger(settings, home / "ledger")
            held.record(manifest)
            trading = compose.live(
                settings, home, lot_maps=lot_maps, kinds=kinds, store=store, alerting=alerting
            )
        except compose.CompositionError as exc:
            fail(str(exc))
        kept = "kept" if data_dir is not None else "discarded at exit"
        prices = "; ".join(
            f"{', '.join(sorted(f.symbols))} from {_describe_source(f, b)}" for f in trading.feeds
        )
        say(
            f"starting {', '.join(s.symbol for s in settings.symbols)} in "
            f"{settings.mode.value.upper()} mode through IB "
            f"at {b.host}:{b.port} (clientId {b.client_id} for orders; prices: {prices}); the "
            "account is the one TWS reports "
            f"(logged masked at connect); data in {home} ({kept}); control socket "
            f"{control.path}; Ctrl-C, SIGTERM or `actorctl stop` stops it"
        )
        announce_run()
        if alerting is not None:
            say(compose.describe_alerting(alerting))
        report = Report(_routes(settings), trading)
        code = serve(
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
            routes=_routes(settings),
            http=settings.http,
        )
        report.never_traded()
        return code


def _sessions(bars: list[Any]) -> list[date]:
    # The replay's trading days (New York), in order: "session 2/3" in its progress line.
    from actors.domain.sessions import NEW_YORK

    return sorted({bar.start.astimezone(NEW_YORK).date() for bar in bars})


def _routes(settings: Config) -> list[str]:
    # Each traded strategy of a symbol, by the route it publishes itself under.
    from actors.domain import route

    return [route(s.strategy.value, s.symbol) for s in settings.symbols]


def _describe_source(feed: LiveSource, broker: BrokerConfig) -> str:
    from actors.brokers.ib import IBMarketData

    source = feed.source
    if isinstance(source, IBMarketData):
        return f"IB (clientId {source.client_id}, market data type {broker.market_data_type})"
    from actors.feeds.alpaca import AlpacaStream

    where = source.where if isinstance(source, AlpacaStream) else source.name
    return f"Alpaca ({where}, keys from the environment)"


def claim_control(path: Path) -> ControlSocket:
    """The control socket at ``path``, bound and listening; exit 2 if it cannot be, saying
    why."""
    from app.control import (
        ControlError,
        ControlSocketInUse,
        UnsafeControlDirectory,
        check_socket_path,
        private_directory,
    )
    from app.control import claim_control as claim

    try:
        check_socket_path(path)
        if path == per_user_socket():
            private_directory(path.parent)
        else:
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                fail(
                    f"cannot create control socket {path}: cannot create its directory "
                    f"{exc.filename}: {exc.strerror}"
                )
        return claim(path)
    except ControlSocketInUse as exc:
        pid = "" if exc.pid is None else f" (pid {exc.pid})"
        fail(f"another actorctl{pid} is already serving on {path}")
    except UnsafeControlDirectory as exc:
        fail(f"{exc} (--socket, $ACTORTRADE_SOCKET or $XDG_RUNTIME_DIR)")
    except ControlError as exc:
        fail(str(exc))


def serve(
    trading: SimTrading | LiveTrading,
    control_socket: ControlSocket,
    *,
    backend: str,
    stop_timeout: float,
    outside: list[Outside],
    mode: str = "paper",
    venue: str = "embedded sim venue",
    uvloop: bool = True,
    on_started: Callable[[Supervisor], None] | None = None,
    watch: Companion | None = None,
    routes: Sequence[str] = (),
    http: HttpConfig | None = None,
) -> int:
    """Run ``trading`` until it stops, with the control socket, the telemetry's flush, the
    health readings of ``routes`` (``app.ops.health``) and ``watch`` beside it; return the
    exit code."""
    from app.control import ControlError, serve_control
    from app.control.operations import Operations
    from app.ops.health import Health
    from app.ops.http import HttpEndpoints, serve_http
    from app.ops.notify import systemd_companions
    from supervisors.service import run_service

    health = Health(trading, routes)
    endpoints = HttpEndpoints.from_config(http, health, trading.telemetry.metrics) if http else None
    telemetry = trading.telemetry
    tracer = telemetry.tracer
    if tracer.enabled:
        say(
            f"tracing: a trace per decision to {tracer.endpoint} as service {tracer.service_name!r}"
        )

    async def flush(_root: Supervisor, _stop: Callable[[str], None]) -> None:
        await telemetry.run()

    async def control(root: Supervisor, stop: Callable[[str], None]) -> None:
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

    async def serve_endpoints(_root: Supervisor, _stop: Callable[[str], None]) -> None:
        if endpoints is not None:
            await serve_http(
                endpoints,
                lambda address: say(
                    f"HTTP endpoints on http://{address} (/healthz /readyz /metrics)"
                ),
            )

    closed: list[bool] = []

    def close() -> None:
        if not closed:  # the SDK's providers warn when shut down twice
            closed.append(True)
            telemetry.shutdown()

    try:
        return run_service(
            trading.spec,
            backend=backend,
            stop_timeout=stop_timeout,
            companions=[
                control,
                flush,
                health.run,
                *systemd_companions(health),  # none unless systemd runs it ($NOTIFY_SOCKET)
                serve_endpoints,
                *([watch] if watch is not None else []),
            ],
            outside=outside,
            # ib_insync takes its loop from the event loop policy, which is not the loop anyio
            # runs with uvloop: with ib_insync in the process, plain asyncio.
            uvloop=uvloop,
            hooks=[*telemetry.supervisor_hooks(), *trading.hooks],
            on_started=on_started,
            on_stopping=health.stopping,
            final=_log_final if Output.as_log else None,
            # The spans of the last moments (the stop itself) are exported before the exit,
            # and before the final line: whatever the export logs comes before the reason.
            before_exit=close,
        )
    finally:
        close()  # when the service itself raised


def _log_final(line: str, code: int) -> None:
    # With JSON logs, the service's last word is a record too: an error when it gave up.
    level = logging.INFO if code == 0 else logging.ERROR
    logging.getLogger("actortrade.actorctl").log(level, line)
