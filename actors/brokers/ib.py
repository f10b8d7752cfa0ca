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

What it sends (``to_ib_order``): MKT, LMT, STP (the stop as ``auxPrice``) and STP LMT orders,
DAY or GTC, with ``orderRef``, ``outsideRth``, a price condition, an OCA group (``ocaGroup``
with ``ocaType`` 2, reduce with block) and a parent (``parentId``); on stocks (``Stock``) and
on options named by their OCC symbol (``Option``, multiplier 100: quantities in contracts,
prices per share). A ``PlaceBracket`` goes as IB's bracket: the entry and the take-profit
untransmitted, the stop-loss transmitting all three; a leg rejected while the entry has
filled nothing cancels the entry, which takes the other legs along, so nothing of a bracket
works in part. A child placed on its own (``place`` with ``parent``) is sent only under a
parent this connection has working. What comes back names an option by its OCC symbol
(``contract.localSymbol``), never by ``contract.symbol``, the underlying's, which would be
taken for shares of the stock; an option position's average cost is per share, as fill
prices are (IB's ``avgCost`` is per contract).

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
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from ib_insync import IB, Contract, Option, Order, RequestError, Stock, Trade
from ib_insync import PriceCondition as IBPriceCondition

from config.schema import masked

from ..domain import (
    MULTIPLIER,
    Bar,
    BrokerEvent,
    BrokerExecution,
    BrokerOrder,
    BrokerPosition,
    BrokerSnapshot,
    DomainError,
    ModifyOrder,
    OptionSymbol,
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
    is_option_symbol,
)
from ..domain.bars import DAY, SessionKind, window
from ..domain.sessions import NEW_YORK
from ..history import HistoryError, last_complete

if TYPE_CHECKING:
    from ..market_data import Sink

log = logging.getLogger("actortrade.broker.ib")

WARNINGS = frozenset({165, 202, 399, 404, 434, 492, 10167})
"""Error codes that are notices, not the end of an order (110 is not: see the module doc)."""
FARM_OK = frozenset({2104, 2106, 2107, 2108, 2158})
"""IB's notices that a data farm's connection is OK (or inactive, ready when needed)."""
OCA_REDUCE_WITH_BLOCK = 2
"""IB's ``ocaType`` for our OCA groups (``PlaceOrder.oca``): an execution of one order reduces
the others of its group by its quantity, cancelling those with nothing left."""
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
        self._held: set[str] = set()
        """Bracket legs sent untransmitted that have not been heard working yet: TWS reports
        such an order ``Inactive`` until its group's last leg transmits it, which is no
        cancel."""
        self._entries: dict[str, str] = {}
        """The entry's ref of each leg of the brackets sent on this connection."""
        self._cancelling: set[int] = set()
        """The orderIds we asked TWS to cancel: its 202 ("Order Canceled") for one of them is
        the answer we expected, logged at DEBUG; a 202 for any other stays a notice."""
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
        self._held = set()
        self._entries = {}
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
        """Send ``order``. A child (``parent``) is sent under its parent's order id when its
        parent is an order this connection has working (IB's ``parentId`` names an order of
        the same client); any other child is refused, nothing sent: a bracket's exits go
        with their entry (``place_bracket``). An order for a contract IB does not know (an
        option the venue does not list, say) is refused with IB's code 200, nothing sent."""
        ib = self._require()
        parent_id = self._parent_id(order)
        if parent_id is None:
            return [
                *self._take(),
                OrderRejected(
                    ref=order.ref,
                    reason=f"{order.ref}: its parent {order.parent} is not an order working on "
                    f"this connection to IB; a child is sent with its parent (a bracket); "
                    f"nothing sent",
                ),
            ]
        try:
            contract = await self._contract(order.symbol)
        except LookupError as exc:
            return [
                *self._take(),
                OrderRejected(ref=order.ref, reason=f"{order.ref}: {exc}; nothing sent", code=200),
            ]
        ib = self._require()
        self._changes += 1
        trade = ib.placeOrder(contract, to_ib_order(order, contract.conId, parent_id=parent_id))
        self._trades[order.ref] = trade
        return self._take()

    async def place_bracket(self, bracket: PlaceBracket) -> list[BrokerEvent]:
        """IB's bracket: the entry and the take-profit untransmitted (``transmit=False``),
        both exits children of the entry (``parentId``) in their OCA group (``ocaType`` 2),
        the stop-loss last with ``transmit=True``, which transmits the three; order ids from
        the client's sequence. TWS holds the first two (reporting them ``Inactive``, which is
        not taken for a cancel) until the last arrives, and discards them if it never does:
        a connection lost before the last leg is handed to ib_insync raises
        ``ConnectionError``. A contract IB does not know rejects every leg (code 200),
        nothing sent. A leg rejected later cancels the entry while it has filled nothing
        (see ``_abandon``). Events come back as any order's."""
        legs = bracket.legs
        entry = bracket.entry
        self._require()
        try:
            contract = await self._contract(entry.symbol)
        except LookupError as exc:
            reason = f"bracket {entry.ref}: {exc}; nothing sent"
            return [
                *self._take(),
                *(OrderRejected(ref=leg.ref, reason=reason, code=200) for leg in legs),
            ]
        ib = self._require()
        ids = [ib.client.getReqId() for _ in legs]
        last = len(legs) - 1
        for n, (leg, order_id) in enumerate(zip(legs, ids, strict=True)):
            try:
                ib = self._require()
                order = to_ib_order(
                    leg, contract.conId, parent_id=ids[0] if n else 0, transmit=n == last
                )
                order.orderId = order_id
                self._changes += 1
                trade = ib.placeOrder(contract, order)
            except ConnectionError as exc:
                raise ConnectionError(
                    f"bracket {entry.ref}: the connection to IB at {self.host}:{self.port} was "
                    f"lost before its last leg was sent ({n} of {len(legs)} sent): TWS discards "
                    f"the untransmitted legs"
                ) from exc
            self._trades[leg.ref] = trade
            self._entries[leg.ref] = entry.ref
            if n != last:
                self._held.add(leg.ref)
        return self._take()

    async def modify(self, change: ModifyOrder) -> list[BrokerEvent]:
        """IB's modify: the working order placed again under its own id, with the new
        quantity, limit and stop (transmitted, whatever the order was first sent with: a
        bracket's entry was sent untransmitted). A change of an order that is done, or that
        this connection does not know, or that would change its type (a limit's limit taken
        away, a stop added) is refused here (nothing sent); TWS refuses one it cannot make
        (error 104 or 105) and the order works as it was."""
        ib = self._require()
        trade = self._trades.get(change.ref)
        if trade is None or trade.isDone() or change.ref in self._ended:
            return [
                *self._take(),
                OrderRejected(ref=change.ref, reason=f"{change.ref} is not working: not modified"),
            ]
        if change.ref in self._held or trade.orderStatus.status == "Inactive":
            # A modify transmits (see below): it would send an untransmitted bracket in part.
            return [
                *self._take(),
                OrderRejected(
                    ref=change.ref,
                    reason=f"{change.ref} is a bracket leg not transmitted yet: not modified",
                ),
            ]
        kind = _order_type(change.limit, change.stop)
        if kind != trade.order.orderType:
            return [
                *self._take(),
                OrderRejected(
                    ref=change.ref,
                    reason=f"{change.ref} is a {trade.order.orderType} order: only its quantity "
                    f"and prices can change, not its type (the change is {kind})",
                ),
            ]
        order = copy.copy(trade.order)
        order.totalQuantity = change.quantity
        if change.limit is not None:
            order.lmtPrice = float(change.limit)
        if change.stop is not None:
            order.auxPrice = float(change.stop)
        order.transmit = True
        self._changes += 1
        self._trades[change.ref] = ib.placeOrder(trade.contract, order)
        return self._take()

    async def cancel(self, ref: str) -> list[BrokerEvent]:
        """Ask TWS to cancel the order (an entry's cancel takes its unfilled exits along);
        TWS's answer is the ``OrderCancelled``. An order this connection does not have
        working is left alone."""
        ib = self._require()
        trade = self._trades.get(ref)
        if trade is not None and not trade.isDone() and ref not in self._ended:
            self._changes += 1
            self._cancelling.add(trade.order.orderId)
            if ref in self._held:
                # A bracket leg not heard working yet: ib.cancelOrder would mark it Cancelled
                # at once (ib_insync takes an untransmitted order for never sent), though the
                # last leg has been sent and TWS may have transmitted it with the rest.
                ib.client.cancelOrder(trade.order.orderId, "")
            else:
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
        the moment after any reading.

        A child names its parent by the parent's ref (IB's ``parentId``, or a completed
        order's ``parentPermId``, looked up among the orders and executions of the reading:
        a filled entry is found by its executions after a restart; None when the parent is
        not among them) and its OCA group (``ocaGroup``; None when it has none)."""
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
        parents = _parent_refs(trades, [*ib.fills(), *fills])
        orders = []
        for ref, trade in trades.items():
            if ref in self._trades:
                working = trade.orderStatus.status in WORKING and ref not in self._ended
            else:
                working = ref in open_refs
            done = max(trade.orderStatus.filled, filled.get(trade.order.permId, 0))
            orders.append(
                BrokerOrder(
                    order=from_ib_trade(trade, parent=parents(trade)),
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
                symbol=symbol_of(fill.contract),
                side=Side.BUY if execution.side == "BOT" else Side.SELL,
                quantity=int(execution.shares),
                price=_decimal(execution.price),
                commission=_decimal(fill.commissionReport.commission)
                if fill.commissionReport.execId
                else None,
            )
        positions = tuple(
            BrokerPosition(
                symbol=symbol_of(p.contract),
                quantity=int(p.position),
                average_cost=average_cost(p.contract, p.avgCost),
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
        parent_id = self._parent_id(order)
        if parent_id is None:
            raise ValueError(f"{order.ref}: its parent {order.parent} is not working here")
        contract = await self._contract(order.symbol)
        state = await ib.whatIfOrderAsync(
            contract, to_ib_order(order, contract.conId, parent_id=parent_id)
        )
        return {
            "initial margin change": str(state.initMarginChange),
            "maintenance margin change": str(state.maintMarginChange),
            "commission": str(state.commission),
        }

    async def _contract(self, symbol: str) -> Contract:
        # LookupError: not a contract IB knows (or, for an OCC symbol, no option at all).
        contract = self._contracts.get(symbol)
        if contract is None:
            ib = self._require()
            wanted = ib_contract(symbol, self.exchange, self.currency)
            qualified = await ib.qualifyContractsAsync(wanted)
            if not qualified:
                kind = "option" if wanted.secType == "OPT" else "stock"
                raise LookupError(
                    f"IB knows no {symbol} {kind} on {self.exchange} in {self.currency}"
                )
            contract = self._contracts[symbol] = qualified[0]
        return contract

    def _parent_id(self, order: PlaceOrder) -> int | None:
        # IB's parentId for ``order``: 0 without a parent, None when the parent is not an
        # order this connection has working (IB would refuse the child, or TWS take it for
        # another client's order id).
        if order.parent is None:
            return 0
        parent = self._trades.get(order.parent)
        if (
            parent is None
            or not parent.order.orderId
            or parent.isDone()
            or order.parent in self._ended
            or order.parent in self._held
            or parent.orderStatus.status == "Inactive"
        ):
            return None
        return int(parent.order.orderId)

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
        if ref in self._held:
            if status == "Inactive":
                return  # an untransmitted leg, held until its bracket's last leg comes
            self._held.discard(ref)
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
                self._abandon(ref)
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
        if (code == 202 and req_id in self._cancelling) or code in FARM_OK:
            # Our own cancel's answer, or a farm that is fine: noise on every run.
            log.debug("IB notice %d (reqId %d): %s", code, req_id, message)
            if code == 202:
                self._cancelling.discard(req_id)
            return
        if code in WARNINGS or 2100 <= code < 2200 or code in (1100, 1101, 1102):
            log.info("IB notice %d (reqId %d): %s", code, req_id, message)
            return
        ref = self._ref_of(req_id)
        if ref is None or ref in self._ended:
            log.warning("IB error %d (reqId %d): %s", code, req_id, message)
            return
        self._rejected.add(ref)
        self._ended.add(ref)
        self._held.discard(ref)
        self._emit(OrderRejected(ref=ref, reason=message, code=code))
        self._abandon(ref)

    def _abandon(self, rejected: str) -> None:
        # A bracket leg rejected: the entry is cancelled while it has filled nothing, and its
        # cancel takes the other legs (TWS cancels the children of a parent cancelled
        # unfilled, held ones too), so no entry works without both exits. An entry that has
        # filled keeps the exit that is left: cancelling it would leave the shares unprotected.
        entry_ref = self._entries.get(rejected)
        if entry_ref is None or entry_ref == rejected:
            return
        entry = self._trades.get(entry_ref)
        ib = self.ib
        if (
            entry is None
            or ib is None
            or not ib.isConnected()
            or entry.isDone()
            or entry_ref in self._ended
            or entry.orderStatus.filled
            or entry.fills
        ):
            return
        log.warning("bracket %s: leg %s was rejected, cancelling the entry", entry_ref, rejected)
        self._changes += 1
        self._cancelling.add(entry.order.orderId)
        # The request alone: ib.cancelOrder would mark an untransmitted (Inactive) entry
        # Cancelled at once, though TWS may have transmitted it with the last leg meanwhile
        # (and it may fill before the cancel arrives); TWS's answer says what became of it.
        ib.client.cancelOrder(entry.order.orderId, "")

    def _on_disconnected(self) -> None:
        self.disconnects += 1
        log.warning("the connection to IB at %s:%d is lost", self.host, self.port)
        self._pending.set()

    def _ref_of(self, order_id: int) -> str | None:
        for ref, trade in self._trades.items():
            if trade.order.orderId == order_id:
                return ref
        return None


def to_ib_order(
    order: PlaceOrder, con_id: int, *, parent_id: int = 0, transmit: bool = True
) -> Order:
    """Our order as ib_insync's: its type from its prices (``PlaceOrder.order_type``: MKT,
    LMT with ``lmtPrice``, STP with the stop as ``auxPrice``, STP LMT with both), with orderRef,
    tif, outsideRth, the price condition (last price, on the same contract, SMART), the OCA
    group (``ocaGroup``, ``ocaType`` 2: reduce with block) and the parent: ``parent_id`` is the
    parent's order id (IB's ``parentId``), which only the connection that sent the parent
    knows; a child without it raises ``ValueError`` (the parent would be dropped).
    ``transmit=False`` leaves the order held at TWS until an order of its group transmits."""
    if order.parent is not None and not parent_id:
        raise ValueError(f"{order.ref}: a child of {order.parent} needs its parent's order id")
    if order.parent is None and parent_id:
        raise ValueError(f"{order.ref}: a parent id ({parent_id}) for an order without a parent")
    ib_order = Order(
        action=order.side.value,
        totalQuantity=order.quantity,
        orderType=order.order_type,
        orderRef=order.ref,
        tif=order.tif.value,
        outsideRth=order.outside_rth,
        transmit=transmit,
        parentId=parent_id,
    )
    if order.limit is not None:
        ib_order.lmtPrice = float(order.limit)
    if order.stop is not None:
        ib_order.auxPrice = float(order.stop)
    if order.oca is not None:
        ib_order.ocaGroup = order.oca
        ib_order.ocaType = OCA_REDUCE_WITH_BLOCK
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


def _order_type(limit: Decimal | None, stop: Decimal | None) -> str:
    # IB's name for the type an order with these prices has (``PlaceOrder.order_type``).
    if stop is None:
        return "MKT" if limit is None else "LMT"
    return "STP" if limit is None else "STP LMT"


def from_ib_trade(trade: Trade, *, parent: str | None = None) -> PlaceOrder:
    """An order as IB reports it, as ours (a foreign one gets the ref ``ib:<permId>``): its
    limit (LMT, STP LMT) from ``lmtPrice``, its stop (STP, STP LMT) from ``auxPrice``, its OCA
    group from ``ocaGroup``; ``parent`` is its parent's ref, which IB does not report (its
    ``parentId`` is an order id: ``IBPort.snapshot`` looks it up). An option is named by its
    OCC symbol (``symbol_of``)."""
    o = trade.order
    condition = None
    for c in o.conditions or []:
        if isinstance(c, IBPriceCondition):
            condition = PriceCondition(trigger=_decimal(c.price), is_more=c.isMore)
            break
    tif = TimeInForce.GTC if o.tif == "GTC" else TimeInForce.DAY
    return PlaceOrder(
        ref=o.orderRef or f"ib:{o.permId}",
        symbol=symbol_of(trade.contract),
        side=Side.BUY if o.action == "BUY" else Side.SELL,
        quantity=int(o.totalQuantity),
        limit=_decimal(o.lmtPrice) if o.orderType in ("LMT", "STP LMT") else None,
        stop=_decimal(o.auxPrice) if o.orderType in ("STP", "STP LMT") else None,
        tif=tif,
        outside_rth=bool(o.outsideRth),
        condition=condition,
        parent=parent,
        oca=o.ocaGroup or None,
    )


def ib_contract(symbol: str, exchange: str = "SMART", currency: str = "USD") -> Contract:
    """The contract to qualify for one of our symbols: an OCC symbol's option (``Option`` by
    underlying, last trade date, strike and right, multiplier 100), any other symbol's stock.
    ``LookupError`` for a symbol shaped as an OCC symbol that names no option (a 31st of
    February, say)."""
    if not is_option_symbol(symbol):
        return Stock(symbol, exchange, currency)
    try:
        option = OptionSymbol.parse(symbol)
    except DomainError as exc:
        raise LookupError(str(exc)) from None
    return Option(
        option.underlying,
        option.last_trade_date,
        float(option.strike),
        option.right,
        exchange,
        multiplier=str(MULTIPLIER),
        currency=currency,
    )


def symbol_of(contract: Contract) -> str:
    """Our symbol for an IB contract: a stock's symbol, an option's OCC symbol. IB's
    ``localSymbol`` of a US equity option is its OCC symbol (normalised by ``OptionSymbol``);
    when it is not one, the symbol is built from the contract's fields. Never an option's
    ``contract.symbol``, its underlying's: the option would be taken for shares."""
    if contract.secType != "OPT":
        return str(contract.symbol)
    try:
        return OptionSymbol.parse(contract.localSymbol).occ
    except DomainError:
        pass
    try:
        expiry = datetime.strptime(contract.lastTradeDateOrContractMonth[:8], "%Y%m%d").date()
        return OptionSymbol(
            underlying=contract.symbol,
            expiry=expiry,
            right="C" if contract.right.upper().startswith("C") else "P",
            strike=_decimal(contract.strike),
        ).occ
    except (DomainError, ValueError):
        # Not a US equity option as OCC names them: its own name, never the underlying's.
        return str(contract.localSymbol or f"OPT:{contract.conId}")


def average_cost(contract: Contract, avg_cost: float) -> Decimal:
    """A position's average cost per share, comparable with fill prices: IB's ``avgCost`` is
    per unit held, a share of a stock but a contract of an option (the price x its multiplier,
    commissions included), so an option's is divided by its multiplier."""
    cost = _decimal(avg_cost)
    if contract.secType == "OPT":
        return cost / Decimal(contract.multiplier or MULTIPLIER)
    return cost


def _parent_refs(trades: dict[str, Trade], fills: list[Any]) -> Callable[[Trade], str | None]:
    # IB names a child's parent by its order id (parentId, per client), a completed child's by
    # its permId (parentPermId; completed orders carry no order id): both looked up among the
    # orders and the executions of one reading (a filled entry's executions carry its order id
    # after a restart, when its completed order does not).
    by_id: dict[tuple[int, int], str] = {}
    by_perm: dict[int, str] = {}
    for fill in fills:
        execution = fill.execution
        ref = execution.orderRef or f"ib:{execution.permId}"
        if execution.orderId:
            by_id.setdefault((execution.clientId, execution.orderId), ref)
        if execution.permId:
            by_perm.setdefault(execution.permId, ref)
    for ref, trade in trades.items():
        if trade.order.orderId:
            by_id[(trade.order.clientId, trade.order.orderId)] = ref
        if trade.order.permId:
            by_perm[trade.order.permId] = ref

    def parent(trade: Trade) -> str | None:
        o = trade.order
        if o.parentId:
            return by_id.get((o.clientId, o.parentId))
        if o.parentPermId:
            return by_perm.get(o.parentPermId)
        return None

    return parent


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
