"""The service's trees as the configuration asks for them: the ledger of ``[ledger]``, the
strategy of each ``[[symbols]]`` table (a grid, or a kind from the registry), the tracer and
metrics of ``[telemetry]``, the feeds of each symbol's ``feed``, and the broker of
``[broker]``, put together by ``sim_trading`` or ``live_trading``. What ``actorctl start``
runs; it prints nothing and exits nothing: what cannot be built is a ``CompositionError``
naming it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from actors.alerts import AlertSettings
from actors.domain import route
from actors.history import HistoryBySymbol, HistorySource
from actors.lot_keeper import ledger_store
from actors.option_data import OptionData
from actors.risk_rules import MarketHours, RiskLimits
from actors.strategies.grid import GridParams
from actors.strategies.protocol import StrategyKind
from actors.strategies.registry import StrategyError, strategy_kind
from config.schema import (
    Config,
    FeedKind,
    HistoryFrom,
    Mode,
    history_client_id,
    history_of,
    options_client_id,
    symbols_by_feed,
    trades_options,
)
from config.strategies import StrategyName
from runtime.store import Store, StoreError

from ._trading import LiveTrading, SimTrading, live_trading, sim_trading
from ._tree import LiveSource
from ._venue import venue_faces

if TYPE_CHECKING:
    from actors.domain import Bar
    from config.lotmap import LotMap
    from runtime.telemetry import Telemetry
    from supervisors.service import Outside


class CompositionError(RuntimeError):
    """Raised by ``open_ledger``, ``strategy_kinds``, ``embedded`` and ``live`` when the
    configuration asks for what cannot be built: a ledger or a venue journal that cannot be
    opened, a strategy's parameters it does not take, an Alpaca feed without keys. The message
    names the file or the setting."""


def open_ledger(settings: Config, path: Path) -> Store:
    """The ledger at ``path``, with ``[ledger]``'s durability and map size, opened here rather
    than by the lot-keeper, so that one that cannot be opened stops a start before anything
    runs (the store's own lock stays, behind the data directory's)."""
    store = ledger_store(
        path,
        durability=settings.ledger.durability,
        map_size=settings.ledger.map_size_mib << 20,
    )
    try:
        store.open()
    except StoreError as exc:
        raise CompositionError(str(exc)) from exc
    return store


def grid_params(settings: Config) -> dict[str, GridParams]:
    """Each grid symbol's grid, from its ``[symbols.grid]`` table."""
    return {
        s.symbol: GridParams(
            symbol=s.symbol,
            tick=s.grid.tick,
            level0_buffer=s.grid.level0_buffer,
            step=s.grid.step,
            profit=s.grid.profit,
            queue_depth=s.grid.queue_depth,
            fill_timeout=s.grid.fill_timeout,
        )
        for s in settings.symbols
        if s.strategy is StrategyName.GRID
    }


def strategy_kinds(settings: Config) -> dict[str, StrategyKind]:
    """Each strategy of a symbol that is not a grid (the grids are made from their lot maps
    and ``grid_params``), by route (``strategy:symbol``: a symbol may have several), in the
    config's order, from its parameter table, by ``actors.strategies.registry.strategy_kind``;
    parameters it refuses are a ``CompositionError`` naming ``symbols[i]``."""
    kinds: dict[str, StrategyKind] = {}
    for index, entry in enumerate(settings.symbols):
        if entry.strategy is StrategyName.GRID:
            continue
        try:
            kinds[route(entry.strategy.value, entry.symbol)] = strategy_kind(
                entry.strategy.value, entry.symbol, entry.strategy_parameters()
            )
        except StrategyError as exc:
            raise CompositionError(f"symbols[{index}].{entry.strategy.value}: {exc}") from exc
    return kinds


def telemetry(settings: Config) -> Telemetry:
    """The service's tracer and metrics, as ``[telemetry]`` and the OTEL_* variables say."""
    from importlib.metadata import version as package_version

    from runtime.metrics import Metrics
    from runtime.telemetry import DEFAULT_ENDPOINT, Telemetry, Tracer

    t = settings.telemetry
    endpoint = t.endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT
    name = t.service_name or os.environ.get("OTEL_SERVICE_NAME") or "actortrade"
    version = package_version("actortrade")
    return Telemetry(
        Tracer(service_name=name, endpoint=endpoint, enabled=t.tracing, version=version),
        Metrics(
            service_name=name,
            endpoint=t.metrics_endpoint or None,
            export_interval=t.metrics_interval,
            version=version,
            # /metrics (app.ops.http) reads this reader's registry
            prometheus=settings.http.enabled,
        ),
    )


@attrs.frozen(kw_only=True)
class Embedded:
    """A tree trading on the embedded sim venue, and what to run beside it."""

    trading: SimTrading
    resumed: datetime | None
    """The last trade the venue's journal had seen (None: a fresh venue)."""
    outside: list[Outside]
    """The venue's servers, to start before the tree (``supervisors.service.run_service``)."""


def risk_and_dry_run(settings: Config) -> dict[str, Any]:
    """The tree's risk limits (``[risk]``, 0 meaning none) and whether it is a dry run."""
    r = settings.risk
    return {
        "risk": RiskLimits(
            max_notional_per_symbol=r.max_notional_per_symbol or None,
            max_gross_exposure=r.max_gross_exposure or None,
            max_open_orders=r.max_open_orders or None,
            max_positions=r.max_positions or None,
            market_hours=MarketHours(r.market_hours.value),
            max_risk_pct_per_trade=r.max_risk_pct_per_trade or None,
            max_daily_loss_pct=r.max_daily_loss_pct or None,
            equity=r.equity or None,
        ),
        "dry_run": settings.mode is Mode.DRY_RUN,
    }


def embedded(
    settings: Config,
    home: Path,
    *,
    lot_maps: Mapping[str, LotMap],
    bars: Sequence[Bar],
    speed: float | None,
    say: Callable[[str], None],
    kinds: Mapping[str, StrategyKind] | None = None,
    alerting: AlertSettings | None = None,
) -> Embedded:
    """The tree trading the grids of ``lot_maps`` and the strategies of ``kinds``
    (``strategy_kinds``) on the embedded sim venue whose books are in ``home``
    (``venue.journal``; the ledger in ``home/ledger``), replaying ``bars`` at ``speed`` (None:
    as fast as possible) through the faces ``[broker]`` and the feeds ask for; ``say`` is told
    where each face listens once it does."""
    from sim.journal import JournalError, open_engine

    store = open_ledger(settings, home / "ledger")
    try:
        engine = open_engine(home / "venue.journal")
    except (JournalError, OSError) as exc:
        store.close()
        raise CompositionError(str(exc)) from exc
    resumed = engine.last_trade_at
    faces = venue_faces(settings, engine, bars=bars, say=say)
    trading = sim_trading(
        data_dir=home / "ledger",
        store=store,
        bars=bars,
        lots=lot_maps,
        params=grid_params(settings),
        kinds=kinds,
        speed=speed,
        engine=engine,
        reconcile_interval=settings.reconcile.interval,
        port=faces.port,
        live=faces.live,
        history=faces.history,
        telemetry=telemetry(settings),
        alerting=alerting,
        option_data=faces.option_data,
        **risk_and_dry_run(settings),
    )
    return Embedded(trading=trading, resumed=resumed, outside=faces.outside)


def live(
    settings: Config,
    home: Path,
    *,
    lot_maps: Mapping[str, LotMap],
    store: Store,
    kinds: Mapping[str, StrategyKind] | None = None,
    alerting: AlertSettings | None = None,
) -> LiveTrading:
    """The tree trading the grids of ``lot_maps`` and the strategies of ``kinds`` through the
    TWS / IB Gateway of ``[broker]``, on the feeds each symbol names (IB's market data, or
    Alpaca's stream with the keys from the environment), warmed up as ``[history]`` says
    (``live_history``), its ledger ``store`` (``open_ledger``) in ``home/ledger``."""
    from actors.brokers.ib import IBPort

    b = settings.broker
    data_type = b.market_data_type or None
    return live_trading(
        data_dir=home / "ledger",
        store=store,
        lots=lot_maps,
        params=grid_params(settings),
        kinds=kinds,
        reconcile_interval=settings.reconcile.interval,
        port=IBPort(
            host=b.host,
            port=b.port,
            client_id=b.client_id,
            market_data_type=data_type,
            timeout=b.timeout,
        ),
        feeds=live_sources(settings, data_type),
        history=live_history(settings),
        telemetry=telemetry(settings),
        alerting=alerting,
        option_data=live_option_data(settings, data_type),
        **risk_and_dry_run(settings),
    )


def live_option_data(settings: Config, data_type: int | None) -> OptionData | None:
    """The options strategies' chains, quotes and equity from the TWS / IB Gateway of
    ``[broker]`` on a clientId of their own (``options_client_id``), paced under IB's limits;
    None when no symbol trades options."""
    if not trades_options(settings):
        return None
    from actors.brokers.ib_options import IBOptionData

    b = settings.broker
    return IBOptionData(
        host=b.host,
        port=b.port,
        client_id=options_client_id(settings),
        market_data_type=data_type,
        timeout=b.timeout,
    )


def live_sources(settings: Config, data_type: int | None) -> list[LiveSource]:
    """The feeds of a service trading through IB: IB's market data, or Alpaca's stream with
    the keys from the environment."""
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
            raise CompositionError(
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


def live_history(settings: Config) -> HistoryBySymbol:
    """Each symbol's warm-up through IB, as ``[history] source`` says
    (``config.schema.history_of``): IB's ``reqHistoricalData`` on a clientId of its own
    (``history_client_id``), or Alpaca's REST bars with the keys from the environment (and
    ``[alpaca] data_url``); a symbol of ``none`` has no source (``warmup_problem`` refuses a
    strategy that needs one)."""
    from config.secrets import load_secrets

    wanted = {s.symbol: history_of(settings, s) for s in settings.symbols}
    sources: dict[str, HistorySource] = {}
    if HistoryFrom.IB in wanted.values():
        from actors.brokers.ib import IBHistory

        b = settings.broker
        ib = IBHistory(
            host=b.host, port=b.port, client_id=history_client_id(settings), timeout=b.timeout
        )
        sources.update((s, ib) for s, w in wanted.items() if w is HistoryFrom.IB)
    if HistoryFrom.ALPACA in wanted.values():
        from actors.feeds.alpaca import AlpacaHistory

        keys = load_secrets()
        alpaca = sorted(s for s, w in wanted.items() if w is HistoryFrom.ALPACA)
        if keys.alpaca_key is None or keys.alpaca_secret is None:
            raise CompositionError(
                f"{', '.join(alpaca)}: warm-up from Alpaca's bars needs ALPACA_KEY and "
                "ALPACA_SECRET in the environment or in .env"
            )
        a = settings.alpaca
        history = AlpacaHistory(
            key=keys.alpaca_key,
            secret=keys.alpaca_secret,
            feed=a.feed.value,
            url=a.data_url or None,
        )
        sources.update((s, history) for s in alpaca)
    return HistoryBySymbol(sources)


def warmup_problem(settings: Config, kinds: Mapping[str, StrategyKind]) -> str | None:
    """Why a strategy of ``kinds`` that needs warm-up would find no history to warm it (its
    symbol's ``[history] source`` resolves to none), or None: such a start is refused, never
    traded cold. Names the symbol's table, the strategy and why."""
    index = {(s.symbol, s.strategy.value): i for i, s in enumerate(settings.symbols)}
    for kind in kinds.values():
        warmup = kind.needs.warmup
        i = index.get((kind.symbol, kind.name))
        if not warmup or i is None:
            continue
        if history_of(settings, settings.symbols[i]) is HistoryFrom.NONE:
            return (
                f"symbols[{i}] ({kind.symbol}): {kind.name} needs {warmup} bars of warm-up, "
                'but history.source = "none" gives it no history: refusing to trade it cold '
                '(set [history] source to "auto", "broker" or "feed", or --history)'
            )
    return None
