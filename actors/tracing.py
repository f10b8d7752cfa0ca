"""The spans of a trading decision, noted while an actor handles an event, built later.

One trace per decision (SPEC 10)::

    tick [consumer]                     the tick, from entering the symbol's mailbox
    └─ decide [internal]                the strategy's decision and carrying it out
       ├─ intent.commit [client]        the write-ahead intent, durable in LMDB
       └─ order.submit [producer]       handed to the broker actor
          └─ broker.place [client]      the broker actor placing it with the venue
             ├─ order.accepted [consumer]
             └─ order.filled [consumer]
                ├─ fill.record [client]
                └─ decide [internal]    the follow-up sell: intent.commit, order.submit, ...

A sell decided for a fill stays in its buy's trace, so a lot's whole life, from the tick that
bought it to the fill that closed it, is one trace. A new buy decided while handling a traced
event (the ladder moving down as a level fills) starts a trace of its own, linked to that event.
Reconciliation (``reconcile``) and the timer (``timer``) root their own traces when they decide.

A ``Trail`` only keeps what happened: the message, ``perf_counter_ns`` stamps, the commands and
the ids it drew. ``finish`` hands the trail itself to the tracer (an append), and the tracer's
flush, off the hot path, calls ``records`` to build the ``SpanRecord``s and their attributes.
The ids are drawn whether tracing is on or not, because the ``TraceContext`` also carries the
tick's stamp that the broker actor measures tick-to-order from.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from time import perf_counter_ns
from typing import Any

from runtime.telemetry import (
    AttributeValue,
    SpanRecord,
    TraceContext,
    Tracer,
    new_span_id,
    new_trace_id,
)

from .domain import (
    CancelOrder,
    DomainError,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRef,
    OrderRejected,
    PlaceOrder,
    PriceTick,
    Side,
)
from .messages import Alert, LotClosed, LotOpened
from .strategies._gridref import GridRef

LMDB_COMMIT: Mapping[str, AttributeValue] = {
    "db.system.name": "lmdb",
    "db.operation.name": "commit_intent",
}
TO_BROKER: Mapping[str, AttributeValue] = {
    "messaging.destination.name": "broker",
    "messaging.operation.type": "send",
}


def order_attributes(order: PlaceOrder) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "trading.symbol": order.symbol,
        "trading.orderRef": order.ref,
        "trading.side": order.side.value,
        "trading.quantity": order.quantity,
        "trading.tif": order.tif.value,
    }
    if order.limit is not None:
        attributes["trading.price"] = float(order.limit)
    if order.condition is not None:
        attributes["trading.trigger"] = float(order.condition.trigger)
    attributes.update(ref_attributes(order.ref))
    return attributes


def ref_attributes(ref: str) -> dict[str, AttributeValue]:
    # Every strategy's ref names its strategy and tag; the grid's tag its level, side and lot,
    # which the grid's operators search by in Jaeger (docs/tracing.md).
    try:
        parsed = OrderRef.parse(ref)
    except DomainError:
        return {"trading.orderRef": ref}
    attributes: dict[str, AttributeValue] = {
        "trading.orderRef": ref,
        "trading.strategy": parsed.strategy,
        "trading.tag": parsed.tag,
    }
    with contextlib.suppress(DomainError):
        grid = GridRef.parse(ref)
        attributes.update(
            {"trading.level": grid.level, "trading.lot": grid.lot, "trading.side": grid.side.value}
        )
    return attributes


def event_attributes(message: object) -> tuple[str, dict[str, AttributeValue]]:
    """The span name and attributes of a handled message."""
    match message:
        case PriceTick():
            return "tick", {
                "trading.symbol": message.symbol,
                "trading.price": float(message.price),
                "trading.size": message.size,
            }
        case OrderAccepted():
            attributes = ref_attributes(message.ref)
            if message.order_id is not None:
                attributes["trading.orderId"] = message.order_id
            if message.perm_id is not None:
                attributes["trading.permId"] = message.perm_id
            return "order.accepted", attributes
        case OrderFilled():
            return "order.filled", {
                **ref_attributes(message.ref),
                "trading.execId": message.exec_id,
                "trading.quantity": message.quantity,
                "trading.price": float(message.price),
            }
        case OrderCancelled():
            return "order.cancelled", {
                **ref_attributes(message.ref),
                "trading.reason": message.reason,
            }
        case OrderRejected():
            attributes = {**ref_attributes(message.ref), "trading.reason": message.reason}
            if message.code is not None:
                attributes["trading.code"] = message.code
            return "order.rejected", attributes
    return type(message).__name__, {}


def command_event(
    command: Alert | LotOpened | LotClosed,
) -> tuple[str, dict[str, AttributeValue]]:
    """A command carried out as a span event: its name and attributes."""
    if isinstance(command, Alert):
        return "alert", {"trading.alert": command.kind, "message": command.message}
    if isinstance(command, LotOpened):
        return "lot.opened", {
            "trading.lot": command.lot,
            "trading.level": command.level,
            "trading.quantity": command.shares,
            "trading.price": float(command.purchase_price),
            "trading.sell_price": float(command.sell_price),
        }
    return "lot.closed", {
        "trading.lot": command.lot,
        "trading.level": command.level,
        "trading.quantity": command.shares,
        "trading.realized": float(command.realized),
    }


class Trail:
    """What one handled event led to, kept raw until the flush builds its spans: the event's
    own span (child of ``cause`` when the message came with one), ``decide`` under it when
    something was decided, and each order's and cancel's spans under ``decide``."""

    __slots__ = (
        "tracer",
        "on",
        "name",
        "kind",
        "message",
        "symbol",
        "actor",
        "cause",
        "trace_id",
        "event_id",
        "decide_id",
        "origin_ns",
        "start_ns",
        "decide_ns",
        "end_ns",
        "attributes",
        "notes",
        "events",
        "fresh",
        "link",
        "error",
    )

    def __init__(
        self,
        tracer: Tracer,
        *,
        kind: str,
        symbol: str,
        actor: str,
        cause: TraceContext | None,
        start_ns: int,
        decide_ns: int,
        message: object = None,
        name: str = "",
        origin_ns: int = 0,
        attributes: Mapping[str, AttributeValue] | None = None,
        link: TraceContext | None = None,
    ) -> None:
        self.tracer = tracer
        self.on = tracer.enabled
        self.name = name
        self.kind = kind
        self.message = message
        self.symbol = symbol
        self.actor = actor
        self.cause = cause
        self.trace_id = cause.trace_id if cause is not None else new_trace_id()
        self.event_id = new_span_id()
        self.decide_id = new_span_id()
        self.origin_ns = origin_ns
        self.start_ns = start_ns
        self.decide_ns = decide_ns
        self.end_ns = 0
        self.attributes = attributes
        self.notes: list[tuple[Any, ...]] = []
        self.events: list[tuple[int, Any]] = []
        self.fresh: Trail | None = None
        self.link = link
        self.error: str | None = None

    def for_order(self, order: PlaceOrder) -> Trail:
        """The trail an order's spans go in: this one, or, for a new buy decided while handling
        a traced event, a fresh trace linked to it."""
        if self.cause is None or order.side is not Side.BUY:
            return self
        if self.fresh is None:
            self.fresh = Trail(
                self.tracer,
                name="decide",
                kind="internal",
                symbol=self.symbol,
                actor=self.actor,
                cause=None,
                start_ns=self.decide_ns,
                decide_ns=self.decide_ns,
                message=self.message,
                link=TraceContext(self.trace_id, self.event_id),
            )
        return self.fresh

    def submitted(self, submit_id: int) -> TraceContext:
        """The context the broker actor gets with an order: child of its submit span."""
        return TraceContext(self.trace_id, submit_id, self.origin_ns)

    def placed(
        self,
        order: PlaceOrder,
        committing: int,
        sending: int,
        sent: int,
        submit_id: int,
        error: str | None = None,
    ) -> None:
        """An order's intent committed (``committing`` to ``sending``) and, unless ``error``,
        its submission to the broker actor (to ``sent``, as span ``submit_id``)."""
        self.notes.append(("order", order, committing, sending, sent, submit_id, error))

    def cancelled(self, command: CancelOrder, sending: int, sent: int, span_id: int) -> None:
        self.notes.append(("cancel", command, sending, sent, span_id))

    def span(
        self,
        name: str,
        kind: str,
        start_ns: int,
        end_ns: int,
        attributes: Mapping[str, AttributeValue],
        *,
        under_event: bool = False,
    ) -> None:
        """Another child span, of ``decide`` or (``under_event``) of the event's span."""
        self.notes.append(("span", name, kind, start_ns, end_ns, attributes, under_event))

    def event(self, what: Alert | LotOpened | LotClosed | tuple[str, dict[str, Any]]) -> None:
        """An event on the decide span (a lot opened or closed, an alert, a finding)."""
        self.events.append((perf_counter_ns(), what))

    def finish(self, error: str | None = None) -> None:
        """Stamp the end and hand the trail to the tracer (its spans are built at the flush)."""
        if self.fresh is not None:
            self.fresh.finish()
        if not self.on:
            return
        self.end_ns = perf_counter_ns()
        self.error = error
        self.tracer.record(self)

    # -- at the flush, off the hot path -------------------------------------------------------

    def records(self) -> Iterator[SpanRecord]:
        decided = bool(self.events) or any(n[0] != "span" or not n[6] for n in self.notes)
        events = tuple(
            (name, at, attributes)
            for at, what in self.events
            for name, attributes in (what if isinstance(what, tuple) else command_event(what),)
        )
        root_decide = self.cause is None and self.name == "decide"
        if root_decide:
            yield SpanRecord(
                name="decide",
                trace_id=self.trace_id,
                span_id=self.decide_id,
                parent_id=None,
                start_ns=self.start_ns,
                end_ns=self.end_ns,
                attributes=self._decide_attributes(),
                events=events,
                links=(self.link,) if self.link is not None else (),
                error=self.error,
            )
        else:
            name, attributes = event_attributes(self.message)
            if self.message is None:
                name, attributes = self.name, {}
            attributes = {
                "trading.symbol": self.symbol,
                **attributes,
                **(self.attributes or {}),
            }
            if self.kind == "consumer":
                attributes["messaging.destination.name"] = self.actor
                attributes["messaging.operation.type"] = "process"
            yield SpanRecord(
                name=name,
                trace_id=self.trace_id,
                span_id=self.event_id,
                parent_id=self.cause.span_id if self.cause is not None else None,
                start_ns=self.start_ns,
                end_ns=self.end_ns,
                kind=self.kind,
                attributes=attributes,
                events=() if decided else events,
                error=self.error,
            )
            if decided:
                yield SpanRecord(
                    name="decide",
                    trace_id=self.trace_id,
                    span_id=self.decide_id,
                    parent_id=self.event_id,
                    start_ns=self.decide_ns,
                    end_ns=self.end_ns,
                    attributes=self._decide_attributes(),
                    events=events,
                )
        for note in self.notes:
            yield from self._note_records(note)

    def _decide_attributes(self) -> dict[str, AttributeValue]:
        attributes: dict[str, AttributeValue] = {"trading.symbol": self.symbol}
        if self.link is not None:  # a fresh trace: what the linked event was
            cause, about = event_attributes(self.message)
            attributes["trading.cause"] = cause
            if "trading.orderRef" in about:
                attributes["trading.cause.orderRef"] = about["trading.orderRef"]
        orders = [n[1].ref for n in self.notes if n[0] == "order"]
        if orders:
            attributes["trading.orders"] = orders
        return attributes

    def _note_records(self, note: tuple[Any, ...]) -> Iterator[SpanRecord]:
        trace_id, decide_id = self.trace_id, self.decide_id
        match note:
            case ("order", order, committing, sending, sent, submit_id, error):
                attributes = order_attributes(order)
                yield SpanRecord(
                    name="intent.commit",
                    trace_id=trace_id,
                    span_id=new_span_id(),
                    parent_id=decide_id,
                    start_ns=committing,
                    end_ns=sending,
                    kind="client",
                    attributes={**attributes, **LMDB_COMMIT},
                    error=error,
                )
                if error is None:
                    yield SpanRecord(
                        name="order.submit",
                        trace_id=trace_id,
                        span_id=submit_id,
                        parent_id=decide_id,
                        start_ns=sending,
                        end_ns=sent,
                        kind="producer",
                        attributes={**attributes, **TO_BROKER},
                    )
            case ("cancel", command, sending, sent, span_id):
                yield SpanRecord(
                    name="order.cancel",
                    trace_id=trace_id,
                    span_id=span_id,
                    parent_id=decide_id,
                    start_ns=sending,
                    end_ns=sent,
                    kind="producer",
                    attributes={
                        **ref_attributes(command.ref),
                        "trading.reason": command.reason,
                        **TO_BROKER,
                    },
                )
            case ("span", name, kind, start_ns, end_ns, attributes, under_event):
                yield SpanRecord(
                    name=name,
                    trace_id=trace_id,
                    span_id=new_span_id(),
                    parent_id=self.event_id if under_event else decide_id,
                    start_ns=start_ns,
                    end_ns=end_ns,
                    kind=kind,
                    attributes=attributes,
                )
