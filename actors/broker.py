"""The broker actor: the only user of the venue connection (a ``BrokerPort``).

Symbol actors send it ``PlaceOrder`` (only after the intent is committed) and ``CancelOrder``;
it forwards every broker event to the symbol actor named in the order's orderRef, with
backpressure (events are never dropped). Events for orders that are not ours are alerts.

Tracing (``actors.tracing``): placing an order is a ``broker.place`` span, child of the symbol
actor's submit span, and every later event of that order (acknowledgement, fills, cancel) goes
to the symbol actor with that span as its parent, so a fill that arrives hours later still
joins its decision's trace. Each connection is a ``broker.connect`` span (a reconnect when it is
not the first).

**The market-hours gate holds at delivery.** An order allowed inside the session may wait in
this actor's mailbox while the venue is down or the connection restarts, and go out hours (or
days) later. Before it calls the port for a buy, the actor checks the ``[risk] market_hours``
gate again at the venue's time (``venue_time``: the event time; the actor's clock only when no
venue time is given, as live, where the two are the same). Outside the allowed sessions it sends
nothing and answers ``OrderRejected`` to the symbol actor, which ends the order for its
strategy; reconciliation later retires the intent, whose order never reached the broker. A
sell that reaches this actor is a protective exit (the symbol actor refuses every other sell),
and protective exits always go (``docs/risk.md``).
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any, Final

import attrs

from runtime import Actor, ActorRef, Request
from runtime import telemetry as telemetry_
from runtime.metrics import Durations
from runtime.telemetry import (
    AttributeValue,
    SpanRecord,
    Telemetry,
    TraceContext,
    new_span_id,
    new_trace_id,
)

from .brokers.port import BrokerPort
from .domain import (
    BrokerEvent,
    BrokerSnapshot,
    CancelOrder,
    DomainError,
    ModifyOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRef,
    OrderRejected,
    PlaceBracket,
    PlaceOrder,
    Side,
)
from .messages import Alert
from .risk_rules import MarketHours, outside_hours
from .tracing import order_attributes, ref_attributes

log = logging.getLogger("actortrade.broker")

if TYPE_CHECKING:
    from .alerts import AlertsInbox
    from .symbol import SymbolInbox


@attrs.frozen(kw_only=True)
class Poll:
    """Collect events that arrived on their own (fills) and forward them."""


@attrs.frozen(kw_only=True)
class Snapshot(Request[BrokerSnapshot]):
    """Reply with the broker's ``BrokerSnapshot`` (of one symbol, or all), after forwarding
    every event that arrived before it: a symbol actor that asks has seen all of them queued."""

    symbol: str | None = None


BrokerInbox = PlaceOrder | PlaceBracket | ModifyOrder | CancelOrder | Poll | Snapshot


class OrderTraces:
    """orderRef -> the trace context its events join, and the shares still to fill. Outlives
    the broker actor's incarnations (a reconnect does not orphan the traces of working orders);
    bounded: the oldest entries go first."""

    LIMIT: Final = 100_000

    def __init__(self) -> None:
        self._entries: collections.OrderedDict[str, list[Any]] = collections.OrderedDict()

    def open(self, ref: str, context: TraceContext, quantity: int) -> None:
        self._entries[ref] = [context, quantity]
        if len(self._entries) > self.LIMIT:
            self._entries.popitem(last=False)

    def of(self, event: BrokerEvent) -> TraceContext | None:
        """The context ``event`` joins; an order's last event closes its entry."""
        entry = self._entries.get(event.ref)
        if entry is None:
            return None
        context: TraceContext = entry[0]
        if isinstance(event, OrderFilled):
            entry[1] -= event.quantity
            if entry[1] <= 0:
                del self._entries[event.ref]
        elif isinstance(event, OrderCancelled | OrderRejected):
            del self._entries[event.ref]
        return context

    def __len__(self) -> int:
        return len(self._entries)


class BrokerActor(Actor[BrokerInbox]):
    def __init__(
        self,
        port: BrokerPort,
        routes: Mapping[str, ActorRef[SymbolInbox]],
        *,
        telemetry: Telemetry | None = None,
        traces: OrderTraces | None = None,
        alerts: ActorRef[AlertsInbox] | None = None,
        market_hours: MarketHours = MarketHours.ANY,
        venue_time: Callable[[], datetime] | None = None,
    ) -> None:
        """``market_hours``: the ``[risk]`` gate, checked again as each buy goes out, at
        ``venue_time()`` (the venue's event time: a sim venue's virtual clock), or at this
        actor's clock when None."""
        self.port = port
        self.routes = routes
        self.alerts = alerts
        self.market_hours = market_hours
        self.venue_time = venue_time
        telemetry = telemetry if telemetry is not None else telemetry_.off()
        self.tracer = telemetry.tracer
        self.metrics = telemetry.metrics
        self.traces = traces if traces is not None else OrderTraces()
        self._tick_to_order: dict[str, Durations] = {}
        self._reconnects = self.metrics.count("actortrade.broker.reconnects")
        self._venue: dict[str, AttributeValue] = {}
        host, port_number = getattr(port, "host", None), getattr(port, "port", None)
        if isinstance(host, str) and isinstance(port_number, int):
            self._venue = {"server.address": host, "server.port": port_number}

    async def on_start(self) -> None:
        started = perf_counter_ns()
        reconnect = self.context.incarnation > 1
        error: str | None = None
        try:
            await self.port.connect()
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if reconnect:
                self._reconnects.value += 1
            if self.tracer.enabled:
                self.tracer.record(
                    SpanRecord(
                        name="broker.connect",
                        trace_id=new_trace_id(),
                        span_id=new_span_id(),
                        parent_id=None,
                        start_ns=started,
                        end_ns=perf_counter_ns(),
                        kind="client",
                        attributes={
                            **self._venue,
                            "actortrade.reconnect": reconnect,
                            "actortrade.incarnation": self.context.incarnation,
                        },
                        error=error,
                    )
                )

    async def background(self) -> None:
        # Events that arrive on their own (fills) are forwarded by a Poll through the mailbox,
        # so that all forwarding happens in order, in ``handle``. A lost connection raises
        # here: the actor crashes and its supervisor restarts (reconnects) it.
        while True:
            await self.port.wait()
            # One Poll at a time: wait for it to be handled, or the events still waiting
            # would send Poll after Poll ahead of the orders in the mailbox.
            await self.context.self_ref.request(Poll(), timeout=60)

    async def on_stop(self) -> None:
        await self.port.close()

    async def handle(self, message: BrokerInbox) -> BrokerSnapshot | None:
        match message:
            case PlaceOrder():
                await self._place(message)
                return None
            case PlaceBracket():
                await self._place(message)
                return None
            case ModifyOrder(ref=ref):
                started = perf_counter_ns()
                events = await self.port.modify(message)
                self._note("broker.modify", started, ref_attributes(ref))
            case CancelOrder(ref=ref):
                started = perf_counter_ns()
                events = await self.port.cancel(ref)
                self._note("broker.cancel", started, ref_attributes(ref))
            case Poll():
                events = await self.port.poll()
            case Snapshot(symbol=symbol):
                for event in await self.port.poll():
                    await self._forward(event)
                snapshot = await self.port.snapshot()
                return snapshot if symbol is None else snapshot.for_symbol(symbol)
        for event in events:
            await self._forward(event)
        return None

    async def _place(self, message: PlaceOrder | PlaceBracket) -> None:
        # A bracket goes as one (its legs in order); the market-hours gate holds for its
        # entry, and a late entry rejects every leg: no leg is sent. Its exits are protective.
        bracket = message if isinstance(message, PlaceBracket) else None
        legs = message.legs if isinstance(message, PlaceBracket) else (message,)
        order = legs[0]
        late = self._too_late(order)
        if late is not None:
            for leg in legs:
                await self._forward(attrs.evolve(late, ref=leg.ref))
            return
        started = perf_counter_ns()
        envelope = self.context.envelope
        cause = envelope.trace if envelope is not None else None
        if isinstance(cause, TraceContext) and cause.origin_ns:
            durations = self._tick_to_order.get(order.symbol)
            if durations is None:
                durations = self._tick_to_order[order.symbol] = self.metrics.durations(
                    "actortrade.tick_to_order.duration", {"trading.symbol": order.symbol}
                )
            durations.record(started - cause.origin_ns)
        error: str | None = None
        try:
            if bracket is None:
                events = await self.port.place(order)
            else:
                events = await self.port.place_bracket(bracket)
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if isinstance(cause, TraceContext):
                span_id = new_span_id()
                for leg in legs:
                    self.traces.open(leg.ref, TraceContext(cause.trace_id, span_id), leg.quantity)
                if self.tracer.enabled:
                    attributes = order_attributes(order)
                    if bracket is not None:
                        attributes["trading.bracket.take_profit"] = bracket.take_profit.ref
                        attributes["trading.bracket.stop_loss"] = bracket.stop_loss.ref
                    if error is None:
                        for event in events:
                            if (
                                isinstance(event, OrderAccepted)
                                and event.ref == order.ref
                                and event.order_id is not None
                            ):
                                attributes["trading.orderId"] = event.order_id
                    name = "broker.place" if bracket is None else "broker.place_bracket"
                    self._note(name, started, attributes, span_id=span_id, error=error)
        for event in events:
            await self._forward(event)

    def _too_late(self, order: PlaceOrder) -> OrderRejected | None:
        """The rejection of a buy that would reach the venue outside the allowed sessions."""
        if self.market_hours is MarketHours.ANY or order.side is not Side.BUY:
            return None
        at = (
            self.venue_time()
            if self.venue_time is not None
            else datetime.fromtimestamp(self.context.clock.time_ns() / 1e9, tz=UTC)
        )
        refusal = outside_hours(self.market_hours, at)
        if refusal is None:
            return None
        log.warning("%s not sent, the market-hours gate is closed: %s", order.ref, refusal.reason)
        return OrderRejected(
            ref=order.ref, reason=f"not sent ({refusal.rule.value}): {refusal.reason}"
        )

    def _note(
        self,
        name: str,
        started: int,
        attributes: dict[str, AttributeValue],
        *,
        span_id: int | None = None,
        error: str | None = None,
    ) -> None:
        # A client span of the current message, child of the context it came with (if any).
        envelope = self.context.envelope
        cause = envelope.trace if envelope is not None else None
        if not self.tracer.enabled or not isinstance(cause, TraceContext):
            return
        self.tracer.record(
            SpanRecord(
                name=name,
                trace_id=cause.trace_id,
                span_id=span_id if span_id is not None else new_span_id(),
                parent_id=cause.span_id,
                start_ns=started,
                end_ns=perf_counter_ns(),
                kind="client",
                attributes={**attributes, **self._venue},
                error=error,
            )
        )

    async def _forward(self, event: BrokerEvent) -> None:
        try:
            parsed = OrderRef.parse(event.ref)
        except DomainError:
            log.warning("event for an order that is not ours: %r", event)
            self._alert("", f"{type(event).__name__} for an order that is not ours: {event.ref!r}")
            return
        route = parsed.route
        target = self.routes.get(route)
        if target is None:
            log.warning("event for %s, which no symbol actor trades: %r", route, event)
            self._alert(
                parsed.symbol,
                f"{type(event).__name__} for {event.ref}, which no symbol actor trades",
            )
            return
        await self.context.send(target, event, trace=self.traces.of(event))

    def _alert(self, symbol: str, message: str) -> None:
        if self.alerts is not None:
            self.alerts.try_tell(
                Alert(
                    symbol=symbol,
                    kind="foreign-order",
                    message=message,
                    at_ns=self.context.clock.time_ns(),
                )
            )
