"""The trading tree, under a rest_for_one root (SPEC section 7):

    alerting (one_for_one: the alerts actor) -> lot-keeper -> risk -> broker
               -> symbols (one_for_one: one actor per strategy of a symbol) -> reconciler
               -> market data: one actor per live feed (market-data.alpaca, market-data.ib)
               -> the replay (market-data; on the embedded sim venue only)

A broker restart (a reconnect) restarts everything after it: the symbol actors reconcile as
they start, so every reconnect is followed by a reconciliation. A live feed's restart restarts
the replay after it, which resumes after the last trade the venue saw. The alerts actor comes
first, so that every other actor can tell it from its first moment; under a supervisor of its
own, so that its restarts (however many) never restart the trading after it.

Every symbol actor asks the risk actor (``actors.risk``) before committing an order. In a dry
run (``dry_run``) the broker actor's port is wrapped in ``actors.brokers.dry.DryPort``: nothing
reaches the venue, and the intents are marked dry.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from actors.alerts import AlertLog, AlertsActor, AlertSettings, AlertsInbox
from actors.broker import BrokerActor, BrokerInbox, OrderTraces
from actors.brokers.port import BrokerPort
from actors.domain import PriceTick, Trade, route
from actors.history import HistorySource
from actors.lot_keeper import LotKeeper, LotKeeperInbox
from actors.market_data import LiveFeed, LiveFeedInbox, Subscriber, TickSource
from actors.option_data import OptionData
from actors.reconciler import Reconciler, ReconcilerInbox
from actors.risk import Exposure, RiskActor, RiskInbox
from actors.risk_rules import RiskLimits
from actors.strategies.grid import GridKind, GridParams
from actors.strategies.protocol import StrategyKind
from actors.symbol import SymbolActor, SymbolInbox
from config.lotmap import LotMap
from runtime import Actor, ActorCell, ActorRef, Coalesce, MailboxConfig
from runtime import telemetry as telemetry_
from runtime.store import Store
from runtime.telemetry import Telemetry
from supervisors import Backoff, ChildSpec, Intensity, Strategy, SupervisorSpec


@attrs.frozen(kw_only=True)
class LiveSource:
    """A live feed of the tree: its source and the symbols it delivers. On the embedded venue,
    ``publish`` hands the source's server each trade of the replay (None: the venue's face
    publishes what it matches by itself)."""

    source: TickSource
    symbols: frozenset[str]
    publish: Callable[[Trade], None] | None = None


RECONNECT = Backoff(initial=0.05, maximum=5.0, immediate=1)
"""How the broker and the market-data feeds restart: one reconnect at once, then 50 ms, 100 ms,
... up to 5 s between attempts, each shortened by up to 20 % at random."""

SYMBOL_MAILBOX = MailboxConfig(
    capacity=1024, policies={PriceTick: Coalesce(key=operator.attrgetter("symbol"))}
)
"""Market data coalesces under pressure (SPEC 3): while a price tick waits in a symbol actor's
mailbox, a newer one replaces it; orders, fills and requests are never dropped."""

RISK_MAILBOX = MailboxConfig(
    capacity=1024, policies={Exposure: Coalesce(key=operator.attrgetter("route"))}
)
"""A strategy's exposure report replaces the one still waiting (it is told, never awaited);
checks and fills are never dropped."""


@attrs.frozen(kw_only=True)
class FeedRefs:
    """What a market-data actor is made with."""

    broker: ActorRef[BrokerInbox]
    symbols: Mapping[str, tuple[Subscriber, ...]]
    """The symbol actors of the feed's symbols, with what their strategies need."""
    delivering: Mapping[str, ActorRef[LiveFeedInbox]]
    """Symbol -> the feed before this one that delivers it (for the replay's lockstep)."""


@attrs.frozen(kw_only=True)
class FeedSpec:
    """One market-data actor of the tree: ``replay`` is cell ``market-data``, any other
    ``market-data.<name>``."""

    name: str
    symbols: frozenset[str]
    make: Callable[[FeedRefs], Actor[Any]]

    @property
    def cell_name(self) -> str:
        return "market-data" if self.name == "replay" else f"market-data.{self.name}"


def live_feeds(live: Sequence[LiveSource]) -> list[FeedSpec]:
    specs = []
    for entry in live:
        specs.append(
            FeedSpec(
                name=entry.source.name,
                symbols=entry.symbols,
                make=functools.partial(_live_feed, entry.source),
            )
        )
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"one live feed per source name, got {names}")
    return specs


def _live_feed(source: TickSource, refs: FeedRefs) -> LiveFeed:
    return LiveFeed(source, refs.symbols)


def trading_tree(
    *,
    store: Store,
    lots: Mapping[str, LotMap],
    params: Mapping[str, GridParams] | None,
    port: BrokerPort,
    strategies: dict[str, Any],
    reconcile_interval: float,
    feeds: Sequence[FeedSpec],
    telemetry: Telemetry | None = None,
    timer_interval: float = 1.0,
    lazy_timer: bool = False,
    history: HistorySource | None = None,
    kinds: Mapping[str, StrategyKind] | None = None,
    alerts: AlertLog | None = None,
    alerting: AlertSettings | None = None,
    risk: RiskLimits | None = None,
    dry_run: bool = False,
    venue_time: Callable[[], datetime] | None = None,
    option_data: OptionData | None = None,
) -> tuple[SupervisorSpec, dict[str, ActorCell[Any]]]:
    """The supervision tree (see the module doc) and its cells by name; ``telemetry`` gets the
    actors' spans, and watches the cells and the store's commits; ``history`` answers the
    strategies' warm-up. ``kinds`` (``actors.strategies.registry.strategy_kind``, keyed by
    symbol or by route: each kind says its symbol and name) trade beside the grids of ``lots``.
    The alerts actor delivers as ``alerting`` says, and keeps what it was told in ``alerts``.

    Several strategies may trade one symbol, each in a symbol actor of its own, routed by
    ``strategy:symbol``: the symbol's grid (of ``lots``) first, then ``kinds`` in their order.
    The first is the symbol's owner, which adopts the broker's orphan shares of it; its cell is
    ``symbol.<SYM>``, any other's ``symbol.<SYM>.<strategy>`` (``symbol_cell_name``). In the
    cells returned, the first is under the symbol, any other under its route.
    ``venue_time``: the venue's event time, at which the broker actor checks the market-hours
    gate again as each buy goes out (None: its clock, as live). ``option_data`` answers the
    options strategies' chains, quotes and equity (``actors.option_data``)."""
    telemetry = telemetry if telemetry is not None else telemetry_.off()
    alerting = alerting if alerting is not None else AlertSettings()
    log = alerts if alerts is not None else AlertLog(alerting.history)
    settings = alerting
    alerter: ActorCell[AlertsInbox] = ActorCell(
        "alerts",
        lambda: AlertsActor(settings, log),
        mailbox=MailboxConfig(capacity=alerting.mailbox),
    )
    keeper: ActorCell[LotKeeperInbox] = ActorCell("lot-keeper", lambda: LotKeeper(store))
    symbols: dict[str, ActorCell[SymbolInbox]] = {}
    """The symbol actors by route (``strategy:symbol``)."""
    routes: dict[str, ActorRef[SymbolInbox]] = {}
    limits = risk if risk is not None else RiskLimits()
    risk_cell: ActorCell[RiskInbox] = ActorCell(
        "risk",
        lambda: RiskActor(
            limits,
            lot_keeper=keeper.ref,
            symbols=routes,
            alerts=alerter.ref,
            telemetry=telemetry,
        ),
        mailbox=RISK_MAILBOX,
    )
    traces = OrderTraces()
    by_route = _by_route(lots, params, kinds)
    by_symbol: dict[str, list[str]] = {}
    for kind in by_route.values():
        by_symbol.setdefault(kind.symbol, []).append(kind.name)
    broker: ActorCell[BrokerInbox] = ActorCell(
        "broker",
        lambda: BrokerActor(
            port,
            {r: c.ref for r, c in symbols.items()},
            telemetry=telemetry,
            traces=traces,
            alerts=alerter.ref,
            market_hours=limits.market_hours,
            venue_time=venue_time,
        ),
    )
    for key, kind in by_route.items():
        family = by_symbol[kind.symbol]
        first = family[0] == kind.name
        symbols[key] = ActorCell(
            symbol_cell_name(kind.symbol, None if first else kind.name),
            functools.partial(
                SymbolActor,
                kind,
                lot_keeper=keeper.ref,
                broker=broker.ref,
                alerts=alerter.ref,
                published=strategies,
                telemetry=telemetry,
                timer_interval=timer_interval,
                lazy_timer=lazy_timer,
                history=history,
                risk=risk_cell.ref,
                dry_run=dry_run,
                option_data=option_data,
                # The symbol's first strategy adopts its orphan shares; the others only report
                # them, and take their siblings' orders for ours, not the operator's.
                owner=first,
                siblings=frozenset(name for name in family if name != kind.name),
            ),
            mailbox=SYMBOL_MAILBOX,
        )
        routes[key] = symbols[key].ref
    reconciler: ActorCell[ReconcilerInbox] = ActorCell(
        "reconciler",
        lambda: Reconciler({r: c.ref for r, c in symbols.items()}, interval=reconcile_interval),
    )
    feed_cells: dict[str, ActorCell[Any]] = {}
    delivering: dict[str, ActorRef[LiveFeedInbox]] = {}
    for feed in feeds:
        unknown = feed.symbols - by_symbol.keys()
        if unknown:
            raise ValueError(f"feed {feed.name!r} delivers symbols not traded: {sorted(unknown)}")
        refs = FeedRefs(
            broker=broker.ref,
            symbols={
                s: tuple(
                    Subscriber(
                        ref=symbols[route(name, s)].ref, needs=by_route[route(name, s)].needs
                    )
                    for name in by_symbol[s]
                )
                for s in sorted(feed.symbols)
            },
            delivering=dict(delivering),
        )
        cell: ActorCell[Any] = ActorCell(feed.cell_name, functools.partial(feed.make, refs))
        feed_cells[feed.cell_name] = cell
        delivering.update((s, cell.ref) for s in feed.symbols)
    symbols_spec = SupervisorSpec(
        strategy=Strategy.ONE_FOR_ONE,
        children=[ChildSpec(id=cell.name, start=cell) for cell in symbols.values()],
    )
    spec = SupervisorSpec(
        strategy=Strategy.REST_FOR_ONE,
        intensity=Intensity(max_restarts=10, period=60.0),
        children=[
            ChildSpec(id="alerting", start=_alerting(alerter)),
            ChildSpec(id="lot-keeper", start=keeper),
            ChildSpec(id="risk", start=risk_cell),
            # A broker restart is a reconnect: the first at once (a killed broker is back in
            # service in milliseconds), then back off (with jitter) so that a venue that is
            # down is not hammered.
            ChildSpec(id="broker", start=broker, backoff=RECONNECT),
            ChildSpec(id="symbols", start=symbols_spec),
            ChildSpec(id="reconciler", start=reconciler),
            # A lost market-data connection reconnects with backoff too.
            *(
                ChildSpec(id=name, start=cell, backoff=RECONNECT)
                for name, cell in feed_cells.items()
            ),
        ],
    )
    # Cells of every kind, by name: for watching and asking, each by its own inbox.
    cells: dict[str, ActorCell[Any]] = {
        "alerts": alerter,
        "lot-keeper": keeper,
        "risk": risk_cell,
        "broker": broker,
        "reconciler": reconciler,
        **feed_cells,
        # A symbol's first strategy under the symbol, any other under its route.
        **{
            (k.symbol if by_symbol[k.symbol][0] == k.name else r): symbols[r]
            for r, k in by_route.items()
        },
    }
    telemetry.metrics.watch(cells.values())
    telemetry.metrics.durations("actortrade.store.commit.duration", pending=store.commit_ns)
    return spec, cells


def symbol_cell_name(symbol: str, strategy: str | None = None) -> str:
    """A symbol actor's cell name: ``symbol.<SYM>`` for the symbol's first strategy (None),
    ``symbol.<SYM>.<strategy>`` for any other."""
    return f"symbol.{symbol}" if strategy is None else f"symbol.{symbol}.{strategy}"


def _by_route(
    lots: Mapping[str, LotMap],
    params: Mapping[str, GridParams] | None,
    kinds: Mapping[str, StrategyKind] | None,
) -> dict[str, StrategyKind]:
    # Every strategy of the tree by its route, the grids of ``lots`` first, then ``kinds`` in
    # their order (the kind says its symbol and name; the keys of ``kinds`` are only labels).
    # A symbol's first strategy is its owner. One route twice would be two copies of one
    # strategy on the same orders, the second silently replacing the first.
    grids = [
        GridKind((params or {}).get(symbol, GridParams(symbol=symbol)), lot_map)
        for symbol, lot_map in lots.items()
    ]
    by_route: dict[str, StrategyKind] = {}
    for kind in (*grids, *(kinds or {}).values()):
        key = route(kind.name, kind.symbol)
        if key in by_route:
            raise ValueError(f"two strategies of one route: {key} (a lot map and a kind, say)")
        by_route[key] = kind
    return by_route


ALERTS_RESTART = Backoff(initial=0.1, maximum=30.0)


def _alerting(alerter: ActorCell[Any]) -> SupervisorSpec:
    # However often the alerts actor fails (a bug meeting some answer of a webhook), it is
    # restarted, with backoff, and never gives up nor escalates: alerting must not take
    # trading down with it. Its mailbox outlives its restarts.
    return SupervisorSpec(
        strategy=Strategy.ONE_FOR_ONE,
        intensity=Intensity(max_restarts=1000, period=1.0),
        children=[
            ChildSpec(
                id="alerts",
                start=alerter,
                backoff=ALERTS_RESTART,
                give_up_after=None,
            )
        ],
    )
