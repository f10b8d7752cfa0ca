"""The trading tree on the embedded sim venue with a replay (``sim_trading``) or on a broker's
own market data (``live_trading``): the venue's port, the feeds, the alerts' log and the
handles a caller watches, around the supervision tree of ``app.compose._tree``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import attrs

from actors.alerts import AlertHooks, AlertLog, AlertSettings
from actors.brokers.dry import DryPort
from actors.brokers.port import BrokerPort
from actors.brokers.sim import SimOptionData, SimPort
from actors.domain import Bar, CorporateAction, Trade
from actors.domain.bars import bar_trades
from actors.history import HistorySource, ReplayHistory
from actors.lot_keeper import ledger_store
from actors.option_data import OptionData
from actors.replay_feed import ReplayFeed
from actors.risk_rules import RiskLimits
from actors.strategies.grid import GridParams
from actors.strategies.protocol import StrategyKind
from config.lotmap import LotMap
from runtime import ActorCell, ActorRef, SupervisorHooks, VirtualClock, all_idle
from runtime import telemetry as telemetry_
from runtime.store import Durability, Store
from runtime.telemetry import Telemetry
from sim.engine import Engine
from supervisors import SupervisorSpec

from ._tree import (
    FeedRefs,
    FeedSpec,
    LiveSource,
    live_feeds,
    trading_tree,
)


@attrs.define(kw_only=True)
class SimTrading:
    """A built tree and the handles a caller (the CLI, a test) needs to watch it."""

    spec: SupervisorSpec
    engine: Engine
    port: BrokerPort
    strategies: dict[str, Any]
    """Each symbol actor's current strategy by route (``strategy:symbol``), as it publishes it
    (for watching, not for changing)."""
    cells: dict[str, ActorCell[Any]]
    alerts: AlertLog
    """The run's alerts (iterating yields them), their delivery and the channels' figures."""
    hooks: list[SupervisorHooks]
    """For the root supervisor (``Supervisor(..., hooks=...)``): restarts become alerts."""
    finished: anyio.Event
    on_finished: list[Callable[[], None]]
    """Called when the replay has ended."""
    feed: list[ReplayFeed]
    telemetry: Telemetry


def sim_trading(
    *,
    data_dir: str | Path,
    bars: Iterable[Bar],
    lots: Mapping[str, LotMap],
    params: Mapping[str, GridParams] | None = None,
    kinds: Mapping[str, StrategyKind] | None = None,
    durability: Durability = Durability.CRASH_SAFE,
    speed: float | None = None,
    lockstep: bool | None = None,
    max_pause: float | None = None,
    on_finished: Callable[[], None] | None = None,
    on_step: Callable[[], Awaitable[None] | None] | None = None,
    engine: Engine | None = None,
    reconcile_interval: float = 60.0,
    timer_interval: float = 1.0,
    map_size: int = 1 << 30,
    store: Store | None = None,
    port: BrokerPort | None = None,
    live: Sequence[LiveSource] = (),
    telemetry: Telemetry | None = None,
    step_timeout: float = 30.0,
    history: HistorySource | None = None,
    alerting: AlertSettings | None = None,
    risk: RiskLimits | None = None,
    dry_run: bool = False,
    skip_idle_polls: bool = True,
    clock: VirtualClock | None = None,
    actions: Sequence[CorporateAction] = (),
    lazy_timer: bool = True,
    shortcuts: bool = True,
    option_data: OptionData | None = None,
) -> SimTrading:
    """Build the tree trading the grids of ``lots`` (symbol -> lot map) and the strategies of
    ``kinds`` (as ``trading_tree`` takes them) on a replay of ``bars``.

    The replay moves the venue; each symbol gets its prices straight from it, or through one of
    the ``live`` feeds (the venue's Alpaca server and alpaca-py, say), which the replay keeps in
    lockstep when ``speed`` is None (``lockstep=True`` also steps a paced replay in lockstep, and
    ``max_pause`` caps the wait between two trades: see ``ReplayFeed``).

    ``engine`` is the venue (a fresh in-memory one by default; ``sim.journal.open_engine`` for
    one that outlives the process): the replay resumes after the last trade it has seen.
    ``port`` is how the broker actor reaches it: in-process (``SimPort``, the default), or over
    the wire (``IBPort`` to a ``sim.tws.server.TwsServer`` on the same engine).
    ``telemetry`` receives the tree's spans and metrics (tracing off by default).
    ``history`` answers the strategies' warm-up (by default the replay's bars the venue has
    already seen: ``ReplayHistory``).
    ``alerting`` says where the alerts actor delivers (nowhere by default: it keeps them).
    ``telemetry`` receives the tree's spans and metrics (tracing off by default). ``risk``: the
    risk actor's limits (none by default); ``dry_run``: send nothing to the venue.
    ``skip_idle_polls``: in lockstep on the in-process port, a step skips its polls of the
    broker when nothing is delivered or in flight (``ReplayFeed.settled``); False polls at every
    step, as before (the cross-check that both give the same outcome).
    ``shortcuts``: on a virtual ``clock``, the replay takes a bar's trades at once when they can
    make nothing happen, and runs its requests to idle actors in its own task
    (``ReplayFeed``); False steps every trade by round trips (the cross-check).
    ``option_data`` answers the options strategies (by default the venue itself, in-process:
    ``SimOptionData`` at the replay's time).
    """
    telemetry = telemetry if telemetry is not None else telemetry_.off()
    bar_list = list(bars)
    if not bar_list:
        raise ValueError("the replay has no bars")
    engine = engine if engine is not None else Engine()
    # A SimPort given as the port is also the one the replay moves the venue through.
    in_process = port if isinstance(port, SimPort) else SimPort(engine, bar_list[0].start)
    port = port if port is not None else in_process
    alerting = alerting if alerting is not None else AlertSettings()
    alerts = AlertLog(alerting.history)
    if dry_run:
        port = DryPort(port)
    finished = anyio.Event()

    finishers = [on_finished] if on_finished is not None else []

    def replay_finished() -> None:
        finished.set()
        for finisher in finishers:
            finisher()

    if store is None:
        store = ledger_store(data_dir, durability=durability, map_size=map_size)
    strategies: dict[str, Any] = {}
    feeds: list[ReplayFeed] = []

    publishers = {s: f.publish for f in live for s in f.symbols}
    if history is None:
        history = ReplayHistory(bar_list, until=lambda: engine.last_trade_at)

    def make_feed(refs: FeedRefs) -> ReplayFeed:
        # Resume after the last trade the venue saw (a restarted feed, a resumed service).
        seen = engine.last_trade_at
        feed = ReplayFeed(
            _after(bar_list, seen),
            market=in_process.trade,
            prints=in_process.prints if shortcuts else None,
            inline=shortcuts,
            broker=refs.broker,
            symbols=refs.symbols,
            remote={s: (ref, publishers[s]) for s, ref in refs.delivering.items()},
            speed=speed,
            lockstep=lockstep,
            max_pause=max_pause,
            finished=replay_finished,
            on_step=on_step,
            step_timeout=step_timeout,
            # In-process, a step may skip its polls when nothing is delivered or in flight
            # (the tree's actors all idle): what the poll would have left, without the round
            # trips. Over the wire (TWS, a dry run's port) events arrive on their own: always.
            settled=settled if port is in_process and skip_idle_polls else None,
            virtual=clock,
            actions=actions,
            corporate=engine.corporate_action,
        )
        feeds.append(feed)
        return feed

    tree_cells: list[ActorCell[Any]] = []

    tree_refs: list[ActorRef[Any]] = []

    def settled() -> bool:
        if not tree_refs:
            tree_refs.extend(cell.ref for cell in tree_cells)
        return in_process.link.quiet and all_idle(tree_refs)

    spec, cells = trading_tree(
        store=store,
        lots=lots,
        params=params,
        port=port,
        alerts=alerts,
        alerting=alerting,
        strategies=strategies,
        reconcile_interval=reconcile_interval,
        timer_interval=timer_interval,
        # On virtual time the symbol actors tick only when their strategies want it (a
        # backtest: the same run, without the timer's no-op ticks).
        lazy_timer=clock is not None and lazy_timer,
        feeds=[
            *live_feeds(live),
            FeedSpec(
                name="replay",
                symbols=frozenset(lots) | {k.symbol for k in (kinds or {}).values()},
                make=make_feed,
            ),
        ],
        telemetry=telemetry,
        history=history,
        kinds=kinds,
        risk=risk,
        dry_run=dry_run,
        # The broker actor's market-hours gate reads the replay's time, never the wall clock.
        venue_time=lambda: in_process.now,
        option_data=option_data
        if option_data is not None
        else SimOptionData(engine, clock=lambda: in_process.now),
    )
    tree_cells.extend(cells.values())
    if clock is not None:
        for cell in tree_cells:
            cell.clock = clock
    return SimTrading(
        spec=spec,
        engine=engine,
        port=port,
        strategies=strategies,
        cells=cells,
        alerts=alerts,
        hooks=[AlertHooks(cells["alerts"].ref)],
        finished=finished,
        on_finished=finishers,
        feed=feeds,
        telemetry=telemetry,
    )


@attrs.define(kw_only=True)
class LiveTrading:
    """A tree trading on a broker's own market data (no replay): IB, or any TWS API server."""

    spec: SupervisorSpec
    port: BrokerPort
    feeds: list[LiveSource]
    strategies: dict[str, Any]
    cells: dict[str, ActorCell[Any]]
    alerts: AlertLog
    hooks: list[SupervisorHooks]
    telemetry: Telemetry


def live_trading(
    *,
    data_dir: str | Path,
    lots: Mapping[str, LotMap],
    port: BrokerPort,
    feeds: Sequence[LiveSource],
    params: Mapping[str, GridParams] | None = None,
    kinds: Mapping[str, StrategyKind] | None = None,
    durability: Durability = Durability.CRASH_SAFE,
    reconcile_interval: float = 60.0,
    map_size: int = 1 << 30,
    store: Store | None = None,
    telemetry: Telemetry | None = None,
    history: HistorySource | None = None,
    alerting: AlertSettings | None = None,
    risk: RiskLimits | None = None,
    dry_run: bool = False,
    option_data: OptionData | None = None,
) -> LiveTrading:
    """Build the tree trading the grids of ``lots`` and the strategies of ``kinds`` through
    ``port``, with ticks from ``feeds``, and the strategies' warm-up from ``history``;
    ``alerting``, ``risk`` and ``dry_run`` as for ``sim_trading``; ``option_data`` answers the
    options strategies (IB's ``reqSecDefOptParams`` and quotes, ``actors.brokers.ib_options``)."""
    fed = {s for f in feeds for s in f.symbols}
    traded = set(lots) | {k.symbol for k in (kinds or {}).values()}
    if fed != traded:
        raise ValueError(f"every symbol needs one feed: traded {sorted(traded)}, fed {sorted(fed)}")
    if store is None:
        store = ledger_store(data_dir, durability=durability, map_size=map_size)
    alerting = alerting if alerting is not None else AlertSettings()
    alerts = AlertLog(alerting.history)
    strategies: dict[str, Any] = {}
    if dry_run:
        port = DryPort(port)
    spec, cells = trading_tree(
        store=store,
        lots=lots,
        params=params,
        port=port,
        alerts=alerts,
        alerting=alerting,
        strategies=strategies,
        reconcile_interval=reconcile_interval,
        feeds=live_feeds(feeds),
        telemetry=telemetry,
        history=history,
        kinds=kinds,
        risk=risk,
        dry_run=dry_run,
        option_data=option_data,
    )
    return LiveTrading(
        spec=spec,
        port=port,
        feeds=list(feeds),
        strategies=strategies,
        cells=cells,
        alerts=alerts,
        hooks=[AlertHooks(cells["alerts"].ref)],
        telemetry=telemetry if telemetry is not None else telemetry_.off(),
    )


def _after(bars: Iterable[Bar], seen: datetime | None) -> Iterator[Bar | Trade]:
    """The replay from after ``seen``: whole bars, and the trades after it of a bar it fell in."""
    for bar in bars:
        if seen is None or bar.start > seen:
            yield bar
        else:
            yield from (t for t in bar_trades(bar) if t.at > seen)
