"""The broker port onto Interactive Brokers (TWS or IB Gateway) through ib_insync: the only
module that imports ib_insync.

Vendor objects never leave this module: orders go out as ib_insync ``Order``s built from our
``PlaceOrder``, and every ib_insync event comes back as our broker events, exactly once:

* ``Submitted``/``PreSubmitted`` -> ``OrderAccepted``; ``Cancelled``/``ApiCancelled``/``Inactive``
  -> ``OrderCancelled``, unless the order was rejected (an error for the order id: IB's 201,
  103, 104, 200, ...) -> ``OrderRejected`` instead, once.
* every execution -> ``OrderFilled``, deduplicated by execId (a reconnect replays executions).
* ib_insync quirks (ref/ib-wire.md 1.6): after error 110 (price off the tick) it keeps the
  order in PendingSubmit forever, so the port treats 110 as a rejection and reports the order
  as not working; a socket drop surfaces as ``ConnectionError`` from the next call; completed
  orders come only in answer to ``reqCompletedOrders``, which ``snapshot`` sends.

Besides the broker port: ``IBMarketData`` (streaming ticks for a market-data actor) and
``IBHistory`` (``reqHistoricalData`` bars for strategies' warm-up, ``actors.history``), each on
a connection of its own.

``poll`` is also a barrier: a round trip (``reqCurrentTime``) first, so that everything TWS sent
before it (fills of the last trade, say) has been handled when ``poll`` returns; the lockstep
replay relies on that.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from ib_insync import IB, Contract, LimitOrder, MarketOrder, Order, RequestError, Stock, Trade
from ib_insync import PriceCondition as IBPriceCondition

from config.schema import masked

from ..domain import (
    Bar,
    BrokerEvent,
    BrokerExecution,
    BrokerOrder,
    BrokerPosition,
    BrokerSnapshot,
    ModifyOrder,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceBracket,
    PlaceOrder,
    PriceCondition,
    PriceTick,
    Quote,
    Side,
    TimeInForce,
    epoch_ns,
)
from ..domain.bars import DAY, SessionKind, window
from ..domain.sessions import NEW_YORK
from ..history import HistoryError, last_complete

if TYPE_CHECKING:
    from ..market_data import Sink

log = logging.getLogger("actortrade.broker.ib")

WARNINGS = frozenset({165, 202, 399, 404, 434, 492, 10167})
"""Error codes that are notices, not the end of an order (110 is not: see the module doc)."""
CANCELLED = frozenset({"Cancelled", "ApiCancelled", "Inactive"})
WORKING = frozenset({"PendingSubmit", "ApiPending", "PreSubmitted", "Submitted", "PendingCancel"})
BOOKS_TIMEOUT = 60.0
"""Seconds the reading of the books on connect may take (or ``timeout``, if longer) before the
connect fails and is retried: generous, since IB sends every working and completed order."""


@attrs.frozen
class _Books:
    """One reading of the broker's books: the answers to ``snapshot``'s three requests."""

    open_now: list[Trade]
    completed: list[Trade]
    fills: list[Any]


class IBPort:
    """A connection to TWS / IB Gateway. Reconnecting is the supervisor's job: a lost
    connection makes the next call raise ``ConnectionError``; ``connect`` opens a new one."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: int,
        account: str = "",
        market_data_type: int | None = None,
        timeout: float = 10.0,
        exchange: str = "SMART",
        currency: str = "USD",
        max_requests: int = 45,
        reuse_within: float = 1.0,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.account = account
        self.market_data_type = market_data_type
        self.timeout = timeout
        self.exchange = exchange
        self.currency = currency
        self.max_requests = max_requests
        """Requests per second ib_insync lets out (IB's pacing limit is 50); 0 = unthrottled,
        for the embedded venue, which has no pacing limit."""
        self.reuse_within = reuse_within
        """Seconds a reading of the books answers ``snapshot`` again, while nothing happens:
        the symbol actors starting together each ask for one (see ``snapshot``)."""
        self.ib: IB | None = None
        self._events: list[BrokerEvent] = []
        self._pending = anyio.Event()
        self._exec_ids: set[str] = set()
        self._rejected: set[str] = set()
        self._ended: set[str] = set()
        self._contracts: dict[str, Contract] = {}
        self._trades: dict[str, Trade] = {}
        self._changes = 0
        """Events from IB, orders placed and cancels sent, so far: what tells whether the
        last reading of the books still stands (see ``snapshot``)."""
        self._last: tuple[int, float, BrokerSnapshot] | None = None
        """The last reading: ``_changes`` before it, the monotonic time when it was complete
        (``-inf`` for the reading ``connect`` made, until it answers once: however long the
        tree takes to start, it answers the reconciliation that follows the connect), and what
        it read."""
        self.disconnects = 0

    # -- connection ----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.ib is not None and self.ib.isConnected()

    async def connect(self) -> None:
        """Connect, then read the books once (``snapshot``'s requests): that binds this
        client's working orders to ib_insync, and the reconciliation that follows every
        connect is answered from it. ib_insync's own start-up download of open and completed
        orders is skipped (``readonly``): the books' reading would ask for them again at once,
        and with a thousand orders each download costs a few hundred milliseconds."""
        if self.connected:
            return
        ib = IB()
        ib.client.MaxRequests = self.max_requests
        ib.orderStatusEvent += self._on_status
        ib.execDetailsEvent += self._on_execution
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        await ib.connectAsync(
            self.host,
            self.port,
            clientId=self.client_id,
            timeout=self.timeout,
            account=self.account,
            readonly=True,
        )
        if self.market_data_type is not None:
            ib.reqMarketDataType(self.market_data_type)
        self._trades = {}
        self._last = None
        changes = self._changes
        try:
            with anyio.fail_after(max(self.timeout, BOOKS_TIMEOUT)):
                books = await self._read_books(ib)
        except BaseException:
            ib.disconnectedEvent -= self._on_disconnected
            ib.disconnect()
            raise
        self.ib = ib
        # Every completed order, and this client's working ones (ib_insync keeps their
        # status; a working order wins over a completed one with the same ref). Other
        # clients' working orders are known only through each reading.
        self._trades = {t.order.orderRef: t for t in books.completed}
        self._trades.update(
            (t.order.orderRef, t) for t in books.open_now if t.order.clientId == self.client_id
        )
        self._trades.pop("", None)
        # Executions read on connect are not news: reconciliation reads them.
        self._exec_ids |= {f.execution.execId for f in ib.fills()}
        self._last = (changes, -math.inf, self._snapshot(ib, books))
        accounts = ",".join(masked(a) for a in ib.managedAccounts())
        log.info(
            "connected to %s:%d as clientId %d, accounts %s, server version %d",
            self.host,
            self.port,
            self.client_id,
            accounts,
            ib.client.serverVersion(),
        )

    async def close(self) -> None:
        if self.ib is not None:
            ib, self.ib = self.ib, None
            ib.disconnectedEvent -= self._on_disconnected
            ib.disconnect()

    def accounts(self) -> list[str]:
        """The accounts TWS manages for this login (secrets: mask before printing)."""
        return list(self._require().managedAccounts())

    def server_version(self) -> int:
        return int(self._require().client.serverVersion())

    def _require(self) -> IB:
        if self.ib is None or not self.ib.isConnected():
            raise ConnectionError(f"not connected to IB at {self.host}:{self.port}")
        return self.ib

    # -- orders --------------------------------------------------------------------------------

    async def place(self, order: PlaceOrder) -> list[BrokerEvent]:
        ib = self._require()
        unsupported = _unsupported(order)
        if unsupported is not None:
            return [*self._take(), OrderRejected(ref=order.ref, reason=unsupported)]
        contract = await self._contract(order.symbol)
        self._changes += 1
        trade = ib.placeOrder(contract, to_ib_order(order, contract.conId))
        self._trades[order.ref] = trade
        return self._take()

    async def place_bracket(self, bracket: PlaceBracket) -> list[BrokerEvent]:
        """Refused, every leg (nothing is sent): this port sends no stop orders nor children
        yet, and a bracket sent in part would leave an entry without its exits."""
        self._require()
        reason = _unsupported(bracket.stop_loss) or "brackets are not sent through IB yet"
        return [*self._take(), *(OrderRejected(ref=leg.ref, reason=reason) for leg in bracket.legs)]

    async def modify(self, change: ModifyOrder) -> list[BrokerEvent]:
        """IB's modify: the working order placed again under its own id, with the new
        quantity and limit. A change of an order that is done, or that this connection does
        not know, is refused here (nothing sent); TWS refuses one it cannot make (error 104
        or 105) and the order works as it was."""
        ib = self._require()
        trade = self._trades.get(change.ref)
        if trade is None or trade.isDone() or change.ref in self._ended:
            return [
                *self._take(),
                OrderRejected(ref=change.ref, reason=f"{change.ref} is not working: not modified"),
            ]
        if change.stop is not None or (change.limit is None) != (trade.order.orderType == "MKT"):
            return [
                *self._take(),
                OrderRejected(
                    ref=change.ref,
                    reason=f"{change.ref} is a {trade.order.orderType} order: only its quantity "
                    f"and limit can change",
                ),
            ]
        order = copy.copy(trade.order)
        order.totalQuantity = change.quantity
        if change.limit is not None:
            order.lmtPrice = float(change.limit)
        self._changes += 1
        self._trades[change.ref] = ib.placeOrder(trade.contract, order)
        return self._take()

    async def cancel(self, ref: str) -> list[BrokerEvent]:
        ib = self._require()
        trade = self._trades.get(ref)
        if trade is not None and not trade.isDone() and ref not in self._ended:
            self._changes += 1
            ib.cancelOrder(trade.order)
        return self._take()

    async def poll(self) -> list[BrokerEvent]:
        ib = self._require()
        await ib.reqCurrentTimeAsync()
        return self._take()

    async def wait(self) -> None:
        """Return when there are events to ``poll`` (or the connection is lost)."""
        while not self._events:
            if not self.connected:
                raise ConnectionError(f"the connection to IB at {self.host}:{self.port} is lost")
            await self._pending.wait()
            self._pending = anyio.Event()

    async def snapshot(self) -> BrokerSnapshot:
        """The broker's books now: every order (working or completed, every client's), every
        execution and the positions.

        A reading answers again while nothing has happened since (no event from IB, no order
        placed or cancelled) for ``reuse_within`` seconds: the reading ``connect`` makes
        answers the reconciliation that follows it, and one reading answers all the symbol
        actors that reconcile at start, instead of one download of every order per symbol.
        Only another client's orders may have changed unseen in that second, as they may in
        the moment after any reading."""
        ib = self._require()
        last = self._last
        if last is not None and last[0] == self._changes:
            if last[1] == -math.inf:  # connect's reading: its first answer starts the clock
                self._last = (last[0], time.monotonic(), last[2])
                return last[2]
            if time.monotonic() - last[1] <= self.reuse_within:
                return last[2]
        # The events counted before the requests (one that arrives while they are answered
        # may not be in the answers, so it makes the next call read again); the age from the
        # end of the reading (the requests take a while with thousands of orders).
        self._last = None
        changes = self._changes
        snapshot = self._snapshot(ib, await self._read_books(ib))
        self._last = (changes, time.monotonic(), snapshot)
        return snapshot

    async def _read_books(self, ib: IB) -> _Books:
        # Working orders first, then completed ones, then executions: an order that completes
        # in between is seen working and then completed (its execution with it), never missed.
        # Every client's working orders (not only ours): another client's sell holds shares
        # that reconciliation must not turn into a lot of ours.
        open_now = await ib.reqAllOpenOrdersAsync()
        completed = await ib.reqCompletedOrdersAsync(apiOnly=False)
        fills = await ib.reqExecutionsAsync()
        return _Books(open_now=open_now, completed=completed, fills=fills)

    def _snapshot(self, ib: IB, books: _Books) -> BrokerSnapshot:
        open_now, completed, fills = books.open_now, books.completed, books.fills
        # This session's trades first (their status is live), then those TWS reports as
        # completed (from earlier sessions too).
        trades: dict[str, Trade] = {}
        for trade in [*self._trades.values(), *open_now, *completed]:
            trades.setdefault(trade.order.orderRef or f"ib:{trade.order.permId}", trade)
        # Other clients' orders are not kept in sync by ib_insync: only the answer to this
        # request says which are working now.
        open_refs = {t.order.orderRef or f"ib:{t.order.permId}" for t in open_now}
        filled: dict[int, float] = {}
        for fill in ib.fills():
            filled[fill.execution.permId] = (
                filled.get(fill.execution.permId, 0) + fill.execution.shares
            )
        orders = []
        for ref, trade in trades.items():
            if ref in self._trades:
                working = trade.orderStatus.status in WORKING and ref not in self._ended
            else:
                working = ref in open_refs
            done = max(trade.orderStatus.filled, filled.get(trade.order.permId, 0))
            orders.append(
                BrokerOrder(
                    order=from_ib_trade(trade),
                    filled=int(done),
                    working=working,
                    order_id=trade.order.orderId or None,
                    perm_id=trade.order.permId or None,
                )
            )
        # A re-requested execution comes as a new Fill; its commission report went to the
        # Fill ib_insync first saw (ib.fills()), so take that one when there is one.
        seen = {f.execution.execId: f for f in ib.fills()}
        executions = {}
        for reported in fills:
            fill = seen.get(reported.execution.execId, reported)
            execution = fill.execution
            executions[execution.execId] = BrokerExecution(
                ref=execution.orderRef or f"ib:{execution.permId}",
                exec_id=execution.execId,
                symbol=fill.contract.symbol,
                side=Side.BUY if execution.side == "BOT" else Side.SELL,
                quantity=int(execution.shares),
                price=_decimal(execution.price),
                commission=_decimal(fill.commissionReport.commission)
                if fill.commissionReport.execId
                else None,
            )
        positions = tuple(
            BrokerPosition(
                symbol=p.contract.symbol,
                quantity=int(p.position),
                average_cost=_decimal(p.avgCost),
            )
            for p in ib.positions(self.account)
        )
        return BrokerSnapshot(
            orders=tuple(orders), executions=tuple(executions.values()), positions=positions
        )

    async def quote(self, symbol: str) -> Quote | None:
        """A snapshot quote (bid/ask; None when IB has none for the symbol)."""
        ib = self._require()
        [ticker] = await ib.reqTickersAsync(await self._contract(symbol))
        bid, ask = ticker.bid, ticker.ask
        if not (bid == bid and ask == ask and bid > 0 and ask > 0):  # NaN when IB sent none
            return None
        return Quote(symbol=symbol, bid=_decimal(bid), ask=_decimal(ask))

    async def what_if(self, order: PlaceOrder) -> dict[str, str]:
        """What IB says the order would do to the account, without placing it."""
        ib = self._require()
        contract = await self._contract(order.symbol)
        state = await ib.whatIfOrderAsync(contract, to_ib_order(order, contract.conId))
        return {
            "initial margin change": str(state.initMarginChange),
            "maintenance margin change": str(state.maintMarginChange),
            "commission": str(state.commission),
        }

    async def _contract(self, symbol: str) -> Contract:
        contract = self._contracts.get(symbol)
        if contract is None:
            ib = self._require()
            qualified = await ib.qualifyContractsAsync(Stock(symbol, self.exchange, self.currency))
            if not qualified:
                raise LookupError(
                    f"IB knows no {symbol} stock on {self.exchange} in {self.currency}"
                )
            contract = self._contracts[symbol] = qualified[0]
        return contract

    # -- events --------------------------------------------------------------------------------

    def _emit(self, event: BrokerEvent) -> None:
        if not isinstance(event, OrderAccepted):
            # An acceptance changes nothing a reading shows (the reading that binds our
            # working orders on connect makes one for each of them).
            self._changes += 1
        self._events.append(event)
        self._pending.set()

    def _take(self) -> list[BrokerEvent]:
        events, self._events = self._events, []
        return events

    def _on_status(self, trade: Trade) -> None:
        ref = trade.order.orderRef
        if not ref:
            return
        status = trade.orderStatus.status
        if status in ("Submitted", "PreSubmitted"):
            self._emit(
                OrderAccepted(ref=ref, order_id=trade.order.orderId, perm_id=trade.order.permId)
            )
        elif status in CANCELLED and ref not in self._ended:
            self._ended.add(ref)
            # ib_insync cancels an order locally on an error for it, before errorEvent fires:
            # the log entry tells a rejection (201, 103, ...) from a cancel (202).
            entry = trade.log[-1] if trade.log else None
            code = entry.errorCode if entry is not None else 0
            if code and code not in WARNINGS:
                self._rejected.add(ref)
                self._emit(OrderRejected(ref=ref, reason=entry.message if entry else "", code=code))
            else:
                self._emit(OrderCancelled(ref=ref, reason=_last_message(trade)))

    def _on_execution(self, trade: Trade, fill: Any) -> None:
        execution = fill.execution
        ref = execution.orderRef or trade.order.orderRef
        if not ref or execution.execId in self._exec_ids:
            return
        self._exec_ids.add(execution.execId)
        self._emit(
            OrderFilled(
                ref=ref,
                exec_id=execution.execId,
                quantity=int(execution.shares),
                price=_decimal(execution.price),
            )
        )

    def _on_error(self, req_id: int, code: int, message: str, _contract: Any) -> None:
        if code in WARNINGS or 2100 <= code < 2200 or code in (1100, 1101, 1102):
            log.info("IB notice %d (reqId %d): %s", code, req_id, message)
            return
        ref = self._ref_of(req_id)
        if ref is None or ref in self._ended:
            log.warning("IB error %d (reqId %d): %s", code, req_id, message)
            return
        self._rejected.add(ref)
        self._ended.add(ref)
        self._emit(OrderRejected(ref=ref, reason=message, code=code))

    def _on_disconnected(self) -> None:
        self.disconnects += 1
        log.warning("the connection to IB at %s:%d is lost", self.host, self.port)
        self._pending.set()

    def _ref_of(self, order_id: int) -> str | None:
        for ref, trade in self._trades.items():
            if trade.order.orderId == order_id:
                return ref
        return None


def to_ib_order(order: PlaceOrder, con_id: int) -> Order:
    """Our order as ib_insync's: LMT or MKT, with orderRef, tif, outsideRth and the price
    condition (last price, on the same contract, SMART)."""
    action = order.side.value
    if order.limit is None:
        ib_order: Order = MarketOrder(action, order.quantity)
    else:
        ib_order = LimitOrder(action, order.quantity, float(order.limit))
    ib_order.orderRef = order.ref
    ib_order.tif = order.tif.value
    ib_order.outsideRth = order.outside_rth
    if order.condition is not None:
        ib_order.conditions = [
            IBPriceCondition(
                isMore=order.condition.is_more,
                price=float(order.condition.trigger),
                conId=con_id,
                exch="SMART",
                triggerMethod=0,
            )
        ]
    return ib_order


def _unsupported(order: PlaceOrder) -> str | None:
    """Why this port cannot send ``order`` as it is, or None: ``to_ib_order`` sends limits and
    market orders only, and never drops a field it cannot send."""
    for field in ("stop", "parent", "oca"):
        if getattr(order, field) is not None:
            return f"{order.ref}: the IB port does not send {field!r} orders yet; nothing sent"
    return None


def from_ib_trade(trade: Trade) -> PlaceOrder:
    """An order as IB reports it, as ours (a foreign one gets the ref ``ib:<permId>``)."""
    o = trade.order
    condition = None
    for c in o.conditions or []:
        if isinstance(c, IBPriceCondition):
            condition = PriceCondition(trigger=_decimal(c.price), is_more=c.isMore)
            break
    tif = TimeInForce.GTC if o.tif == "GTC" else TimeInForce.DAY
    return PlaceOrder(
        ref=o.orderRef or f"ib:{o.permId}",
        symbol=trade.contract.symbol,
        side=Side.BUY if o.action == "BUY" else Side.SELL,
        quantity=int(o.totalQuantity),
        limit=_decimal(o.lmtPrice) if o.orderType == "LMT" else None,
        tif=tif,
        outside_rth=bool(o.outsideRth),
        condition=condition,
    )


def _decimal(value: float) -> Decimal:
    # IB's prices are floats: their shortest repr is the price TWS printed.
    return Decimal(repr(float(value)))


def _last_message(trade: Trade) -> str:
    return trade.log[-1].message if trade.log else trade.orderStatus.status


class IBMarketData:
    """IB's streaming market data as our ``PriceTick``s, on a connection of its own (its own
    clientId), so that the market-data actor owns it as the broker actor owns the orders'.
    Only a new last price (or size) is a tick; the exchange's time is not sent by IB's
    top-of-book stream, so ticks carry their receipt time. ib_insync fires the ticker's event
    on our event loop (it reads the socket there), so a market-data actor's sink
    (``deliver_to``) takes each tick from that callback; without one, or while ticks wait here,
    they wait for ``next``."""

    name = "ib"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: int,
        market_data_type: int | None = None,
        timeout: float = 10.0,
        max_requests: int = 45,
        exchange: str = "SMART",
        currency: str = "USD",
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.market_data_type = market_data_type
        self.timeout = timeout
        self.max_requests = max_requests
        self.exchange = exchange
        self.currency = currency
        self.ib: IB | None = None
        self._ticks: list[PriceTick] = []
        self._pending = anyio.Event()
        self._symbols: dict[int, str] = {}
        self._seen: dict[str, tuple[float, float]] = {}
        self._sink: Sink | None = None

    async def connect(self, symbols: list[str]) -> None:
        await self.close()  # a crashed feed's old connection, if any
        self._symbols.clear()
        self._seen.clear()
        ib = IB()
        ib.client.MaxRequests = self.max_requests
        ib.disconnectedEvent += self._pending.set
        await ib.connectAsync(
            self.host, self.port, clientId=self.client_id, timeout=self.timeout, readonly=True
        )
        self.ib = ib
        if self.market_data_type is not None:
            ib.reqMarketDataType(self.market_data_type)
        for symbol in symbols:
            qualified = await ib.qualifyContractsAsync(Stock(symbol, self.exchange, self.currency))
            if not qualified:
                raise LookupError(f"IB knows no {symbol} stock on {self.exchange}")
            ticker = ib.reqMktData(qualified[0])
            self._symbols[id(ticker)] = symbol
            ticker.updateEvent += self._on_ticker
        log.info("market data from %s:%d for %s", self.host, self.port, ", ".join(symbols))

    def _on_ticker(self, ticker: Any) -> None:
        last = ticker.last
        if math.isnan(last) or last <= 0:  # NaN until a trade prints
            return
        symbol = self._symbols[id(ticker)]
        # A ticker update may be a bid or ask change: only a new last price (or size) is news.
        seen = (last, ticker.lastSize)
        if self._seen.get(symbol) == seen:
            return
        self._seen[symbol] = seen
        tick = PriceTick(
            symbol=symbol,
            price=_decimal(last),
            size=int(ticker.lastSize or 0),
            ts_event_ns=time.time_ns(),
        )
        sink = self._sink
        if sink is not None and not self._ticks and sink(tick):
            return
        self._ticks.append(tick)
        self._pending.set()

    def deliver_to(self, sink: Sink | None) -> None:
        """``market_data.DirectSource``: offer each new tick to ``sink`` in the callback first."""
        self._sink = sink

    def describe(self) -> dict[str, Any]:
        return {
            "where": f"{self.host}:{self.port}",
            "client_id": self.client_id,
            "connected": self.ib is not None and self.ib.isConnected(),
        }

    async def ready(self) -> None:
        # reqMktData has no acknowledgement: subscribed as far as anyone can tell.
        return None

    async def run(self) -> None:
        # ib_insync runs the connection on the event loop by itself; next() notices its end.
        await anyio.sleep_forever()

    async def next(self) -> list[PriceTick]:
        """The ticks since the last call; waits for one; ConnectionError when disconnected."""
        while not self._ticks:
            if self.ib is None or not self.ib.isConnected():
                raise ConnectionError(f"market data from IB at {self.host}:{self.port} is lost")
            await self._pending.wait()
            self._pending = anyio.Event()
        ticks, self._ticks = self._ticks, []
        return ticks

    async def close(self) -> None:
        if self.ib is not None:
            ib, self.ib = self.ib, None
            ib.disconnect()


IB_BAR_SIZES = {
    1: "1 secs",
    5: "5 secs",
    10: "10 secs",
    15: "15 secs",
    30: "30 secs",
    60: "1 min",
    120: "2 mins",
    180: "3 mins",
    300: "5 mins",
    600: "10 mins",
    900: "15 mins",
    1200: "20 mins",
    1800: "30 mins",
    3600: "1 hour",
    7200: "2 hours",
    10800: "3 hours",
    14400: "4 hours",
    28800: "8 hours",
    DAY: "1 day",
}
"""Our bar sizes IB serves as they are; any other is composed of the largest that divides it."""
SESSION_SECONDS = {"regular": 23_400, "extended": 57_600}


class IBHistory:
    """Warm-up history (``actors.history.HistorySource``) from IB's ``reqHistoricalData``:
    TRADES bars, regular hours only (``useRTH``) when the strategy's bars are, asked for on a
    connection of its own (its own clientId), opened for each answer and closed after it (a
    symbol actor asks once per start). Dates come as Unix seconds (``formatDate=2``); the bar
    still in progress at TWS's clock (``reqCurrentTime``) is dropped. A request IB refuses
    raises ``HistoryError`` with IB's code and message; "no data" (162) is no history."""

    name = "ib"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: int,
        timeout: float = 10.0,
        max_requests: int = 45,
        exchange: str = "SMART",
        currency: str = "USD",
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.timeout = timeout
        self.max_requests = max_requests
        self.exchange = exchange
        self.currency = currency

    def __repr__(self) -> str:
        return f"IBHistory({self.host}:{self.port}, clientId {self.client_id})"

    async def recent(
        self, symbol: str, *, seconds: int, count: int, sessions: SessionKind
    ) -> list[Bar]:
        if count <= 0:
            return []
        asked = max(s for s in IB_BAR_SIZES if seconds % s == 0)
        days = math.ceil(count * seconds / SESSION_SECONDS[sessions]) + 1
        if seconds == DAY:
            days = count + count // 2 + 5  # trading days of the calendar, and a margin
        ib = IB()
        ib.client.MaxRequests = self.max_requests
        ib.RaiseRequestErrors = True
        try:
            await ib.connectAsync(
                self.host, self.port, clientId=self.client_id, timeout=self.timeout, readonly=True
            )
            qualified = await ib.qualifyContractsAsync(Stock(symbol, self.exchange, self.currency))
            if not qualified:
                raise HistoryError(f"ib: IB knows no {symbol} stock on {self.exchange}")
            now = await ib.reqCurrentTimeAsync()
            while True:
                duration = f"{days} D" if days <= 365 else f"{math.ceil(days / 250)} Y"
                rows = await ib.reqHistoricalDataAsync(
                    qualified[0],
                    endDateTime="",
                    durationStr=duration,
                    barSizeSetting=IB_BAR_SIZES[asked],
                    whatToShow="TRADES",
                    useRTH=sessions == "regular",
                    formatDate=2,
                    timeout=max(self.timeout, 60.0),
                )
                bars = _from_ib_bars(symbol, rows, asked, sessions)
                complete = last_complete(
                    bars, seconds=seconds, count=count, sessions=sessions, until_ns=epoch_ns(now)
                )
                if len(complete) >= count or days > 365 * 5:
                    return complete
                days *= 2  # sessions without a print in them: look further back
        except RequestError as exc:
            if exc.code == 162 and "no data" in exc.message:
                return []
            raise HistoryError(
                f"ib: historical bars of {symbol} from {self.host}:{self.port}: "
                f"error {exc.code}: {exc.message}"
            ) from None
        except (OSError, TimeoutError, ConnectionError) as exc:
            raise HistoryError(
                f"ib: historical bars of {symbol}: cannot reach {self.host}:{self.port}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        finally:
            ib.disconnect()


def _from_ib_bars(symbol: str, rows: Any, seconds: int, sessions: SessionKind) -> list[Bar]:
    bars = []
    for row in rows:
        when = row.date
        if isinstance(when, datetime):
            start = when.astimezone(UTC)
        else:  # a daily bar: dated by its day, starting at the session's open
            moment = datetime.combine(when, datetime.min.time(), tzinfo=NEW_YORK) + timedelta(
                hours=12
            )
            span = window(epoch_ns(moment), DAY, sessions)
            if span is None:
                continue
            start = span.start
        bars.append(
            Bar(
                symbol=symbol,
                start=start,
                open=_decimal(row.open),
                high=_decimal(row.high),
                low=_decimal(row.low),
                close=_decimal(row.close),
                volume=int(row.volume),
            )
        )
    return bars
