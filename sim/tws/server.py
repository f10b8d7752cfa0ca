"""The TWS API socket server: the sim venue's face for the unmodified ib_insync client.

One ``TwsServer`` serves any number of client connections (one ``Session`` each, identified
by its clientId) over one ``sim.engine.Engine``. Each session holds its own ``sim.link.Link``, so
the engine's events reach it with that link's faults (lost, late, doubled, reordered), and a
venue restart drops every connection. Orders placed through this face are kept in the engine
under their orderRef (or ``tws:<clientId>:<orderId>`` when it is empty or taken), with the
placeOrder message itself as the engine's tag, so a server rebuilt on a reopened (journaled)
engine knows every order again, with all its fields.

What a session answers (ref/ib-wire.md): the handshake (server versions ``min_version`` to
``max_version``, 157..178 by default), startApi (managedAccounts, nextValidId, the farm
notices; 326 for a clientId in use), and the requests ib_insync sends: positions, open orders
(this client's, or all), completed orders, executions (with their commission reports), account
updates (single and multi), contract details, market data (live or delayed, streamed or a
snapshot), market data type, ids, current time, historical bars (``reqHistoricalData``, TRADES
bars of the venue's prints and the ``history`` it was given: ``sim.tws.history``), placeOrder
(place and modify), cancelOrder, global cancel. Parsing is strict: a malformed request is a
protocol error, counted in ``protocol_errors``, answered with error 320, and the connection goes
on.

Every request that names a contract resolves it by all the fields it gives
(``sim.tws.contracts``), else 200 and nothing more; a placeOrder (or modify) that sets any field
the venue does not implement is refused with 201 naming it (``sim.tws.refusals``). Stops,
brackets and OCA groups go to the engine; untransmitted orders (``transmit=False``) wait at the
face until their group transmits (``sim.tws.brackets``); what-if orders are answered, never
placed (``sim.tws.what_if``).

Errors it produces: 103 (duplicate order id), 104 (modify of a finished order), 105 (a modify
of what cannot change), 110 (price off the tick), 200 (no such contract), 201 (rejected), 202
(cancelled), 326 (clientId in use), 399 (outside regular hours without outsideRth), 10147
(cancel of an unknown order), 10148 (cancel of a finished order), 1100/1101/1102
(connectivity, ``connectivity_lost``/``connectivity_restored``, and around
``nightly_restart``). Price conditions chain with and/or, left to right.
Wire-level faults on top of the link's: ``commission_first_next`` (a commissionReport before its
execDetails, as real TWS sometimes does).
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
import attrs
import msgspec

from actors.domain import (
    Bar,
    BrokerEvent,
    Instrument,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PriceCondition,
    Side,
    TimeInForce,
    epoch_ns,
)
from actors.domain.sessions import NEW_YORK, session_at
from actors.domain.sessions import Session as MarketSession
from sim.engine import Engine, Execution, SimOrder
from sim.link import Link, VenueDisconnected
from sim.options import OptionChain, OptionContract, OptionError, is_option_con_id

from . import messages as m
from .brackets import HeldOrder, HeldOrders
from .contracts import (
    NO_SECURITY_DEFINITION,
    NO_SECURITY_DEFINITION_TEXT,
    OPTION,
    mismatch,
    resolve,
    resolve_option,
)
from .history import (
    HistoryRefused,
    Print,
    check_request,
    historical_data,
    history_bars,
    history_prints,
)
from .listing import Listing, held_options, is_listed, listed_chain, reference_price
from .option_data import (
    OPTION_SHOWS,
    GenericTicksRefused,
    chain_totals,
    option_prints,
    option_ticks,
    parse_generic_ticks,
    stock_generic_ticks,
)
from .orders import (
    HIGHEST_SERVER_VERSION,
    WireContract,
    WireOrder,
    WireOrderState,
    completed_order_fields,
    open_order_fields,
    parse_cancel_order,
    parse_contract12,
    parse_place_order,
)
from .pacing import (
    HISTORICAL_PACING_TEXT,
    MAX_TICKERS_TEXT,
    HistoryPacing,
    MessageRate,
    PacingLimits,
)
from .refusals import LIMITED, STOPPED, not_supported, refusal
from .what_if import Holding, what_if
from .wire import HELLO, Fields, FrameReader, ProtocolError, frame

log = logging.getLogger("actortrade.sim.tws")

FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)
STARTING_CASH = Decimal("1000000")
TAG_PREFIX = "tws:"
BRACKET_OCA_PREFIX = "bracket:"
"""The engine's OCA group of a bracket's children placed without one: this and the parent's
ref."""
WRITE_BATCH = 64 * 1024
"""The most a session's writer joins into one socket write (bytes)."""
CANCELS_TOLD = (
    "cancelled by the client",
    "global cancel",
    "OCA group ",
    "its parent ",
)
"""The engine's cancel reasons the client hears 202 for (its own cancel, a global cancel, an
OCA sibling's fill, a parent ended unfilled); a DAY order's expiry and a restart come as the
Cancelled status alone."""


@attrs.define(kw_only=True)
class TwsOrder:
    """An order placed through this face: who placed it, and the message as it came."""

    ref: str
    client_id: int
    order_id: int
    wire: WireOrder
    fields: list[str]
    server_version: int


@attrs.frozen(kw_only=True)
class _Tag:
    client: int
    version: int
    fields: list[str]


class TwsServer:
    def __init__(
        self,
        engine: Engine,
        *,
        instruments: Iterable[Instrument],
        clock: Callable[[], datetime],
        account: str = "DU1234567",
        min_version: int = 157,
        # ib_insync offers 157..176, ib_async 157..178
        max_version: int = HIGHEST_SERVER_VERSION,
        name: str = "tws",
        history: Iterable[Bar] = (),
        history_until: datetime | None = None,
        listing: Listing | None = None,
        pacing: PacingLimits | None = None,
        pacing_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``history``: bars the venue printed before it started (the replay file's before the
        replay's start), which ``reqHistoricalData`` serves besides its own trades;
        ``history_until``: the time the venue printed them up to (a bar of ``history`` may have
        been cut there: a replay stopped inside a minute prints the rest of it when it
        resumes), the prints of ``history`` after it dropped (None: all of them);
        ``listing``: which options it lists (``sim.tws.listing``, its defaults when None);
        ``pacing``: the pacing limits it enforces (``sim.tws.pacing``; ``PacingLimits()`` are
        IB's), measured on ``pacing_clock`` (monotonic seconds); None, the default, enforces
        none (the embedded venue's clients turn their own throttle off)."""
        self.engine = engine
        self.instruments = {i.symbol: i for i in instruments}
        self.by_con_id = {i.con_id: i for i in self.instruments.values()}
        self.clock = clock
        self.account = account
        self.min_version = min_version
        self.max_version = max_version
        self.name = name
        self.sessions: dict[int, Session] = {}
        self.protocol_errors: list[str] = []
        self.requests: collections.Counter[int] = collections.Counter()
        """Requests served, by message id, from every client (what a client asked for)."""
        self.orders: dict[str, TwsOrder] = {}
        self.by_client_order: dict[tuple[int, int], str] = {}
        self.used_ids: dict[int, int] = {}
        self.held = HeldOrders()
        """Untransmitted orders (``transmit=False``): the face's, not the engine's."""
        self._children: dict[tuple[int, int], list[str]] = {}
        """The refs of each (client, order id)'s children."""
        self._executions: dict[str, Execution] = {}
        self._indexed = 0
        self.port: int | None = None
        self.placed_listeners: list[Callable[[str], None]] = []
        """Told the orderRef of every placeOrder once it is decoded (benchmarks stop there)."""
        self._restored_for: set[int] | None = None
        """After a nightly restart, the clients already told 1102."""
        self.prints: dict[str, list[Print]] = history_prints(history)
        if history_until is not None:
            cut_ns = epoch_ns(history_until)
            self.prints = {
                symbol: [p for p in prints if p.ts_ns <= cut_ns]
                for symbol, prints in self.prints.items()
            }
        """Every symbol's prints, oldest first: what historical bars are made of."""
        self.listing = listing if listing is not None else Listing()
        self.pacing = pacing
        self.pacing_clock = pacing_clock
        self.history_pacing = HistoryPacing(pacing, pacing_clock) if pacing is not None else None
        self._chains: dict[str, tuple[object, OptionChain, dict[int, OptionContract]]] = {}
        self._chain_totals: dict[str, tuple[object, dict[int, int]]] = {}
        for sim in engine.orders.values():
            self._adopt(sim)
        engine.trade_listeners.append(self._on_trade)
        self._stops: set[str] = {
            ref for ref, sim in engine.orders.items() if sim.stopped and ref in self.orders
        }
        """This face's stop orders not yet triggered: told Submitted when a trade triggers them."""
        engine.trade_listeners.append(self._stops_reached)
        engine.settlement_listeners.append(self._on_settlement)

    # -- state ---------------------------------------------------------------------------------

    def _adopt(self, sim: SimOrder) -> None:
        # An order of this face found in a (reopened) engine: re-read its placeOrder message.
        if not sim.tag.startswith(TAG_PREFIX):
            return
        tag = msgspec.json.decode(sim.tag[len(TAG_PREFIX) :], type=_Tag)
        wire = parse_place_order(tag.fields, tag.version)
        if not wire.account:
            wire = attrs.evolve(wire, account=self.account)
        self._remember(
            TwsOrder(
                ref=sim.ref,
                client_id=tag.client,
                order_id=wire.order_id,
                wire=wire,
                fields=tag.fields,
                server_version=tag.version,
            )
        )

    def _remember(self, order: TwsOrder) -> None:
        self.orders[order.ref] = order
        if order.wire.parent_id:
            self._children.setdefault((order.client_id, order.wire.parent_id), []).append(order.ref)
        self.by_client_order[(order.client_id, order.order_id)] = order.ref
        self.used_ids[order.client_id] = max(self.used_ids.get(order.client_id, 0), order.order_id)

    def _stops_reached(self, symbol: str, _price: Decimal, _size: int, _at: datetime) -> None:
        # A stop a trade triggered without filling it whole now works at the exchange: IB
        # reports it Submitted (filled, its fill says so).
        for ref in list(self._stops):
            sim = self.engine.orders.get(ref)
            if sim is None or sim.done:
                self._stops.discard(ref)
                continue
            if sim.symbol != symbol or sim.stopped:
                continue
            self._stops.discard(ref)
            order = self.orders[ref]
            session = self.sessions.get(order.client_id)
            if session is not None:
                session.stop_triggered(order, sim)

    def children_of(self, parent: TwsOrder) -> list[TwsOrder]:
        """The orders placed through this face as children (``parentId``) of ``parent``."""
        refs = self._children.get((parent.client_id, parent.order_id), ())
        return [self.orders[ref] for ref in refs if ref in self.orders]

    def next_valid_id(self) -> int:
        return max(self.used_ids.values(), default=0) + 1

    def execution(self, exec_id: str) -> Execution:
        executions = self.engine.executions
        for execution in executions[self._indexed :]:
            self._executions[execution.exec_id] = execution
        self._indexed = len(executions)
        return self._executions[exec_id]

    def resolve(self, contract: WireContract) -> Instrument | None:
        """The instrument ``contract`` names by every field it gives (``sim.tws.contracts``),
        or None: the request is answered with error 200 and nothing else happens. An option
        (secType OPT or an option conId) is one the venue lists today (``sim.tws.listing``),
        as ``option_instrument`` makes it: its OCC local symbol is the engine's symbol."""
        if contract.sec_type == OPTION or (
            contract.sec_type == "" and is_option_con_id(contract.con_id)
        ):
            return self._resolve_option(contract)
        instrument = resolve(contract, self.instruments, self.by_con_id)
        if instrument is None:
            known = self.by_con_id.get(contract.con_id) or self.instruments.get(contract.symbol)
            why = mismatch(contract, known) if known is not None else "no such instrument"
            log.info(
                "%s: no security definition for %s %s (%s)",
                self.name,
                contract.sec_type,
                contract.symbol or contract.con_id,
                why,
            )
        return instrument

    # -- options -------------------------------------------------------------------------------

    def _resolve_option(self, contract: WireContract) -> Instrument | None:
        held = self._held_options()
        found = resolve_option(
            contract,
            underlyings=self.instruments,
            by_con_id=lambda con_id: self._option_by_con_id(con_id, held),
            listed=lambda option: self._is_listed(option) or option.con_id in held,
        )
        if isinstance(found, str):
            log.info(
                "%s: no security definition for OPT %s (%s)",
                self.name,
                contract.local_symbol or contract.symbol or contract.con_id,
                found,
            )
            return None
        return self.option_instrument(found)

    def option_instrument(self, option: OptionContract) -> Instrument:
        """The instrument an option is at this face: its OCC local symbol (what the engine's
        orders and positions name it by), its conId, the underlying as trading class."""
        underlying = self.instruments.get(option.underlying)
        return Instrument(
            symbol=option.local_symbol,
            con_id=option.con_id,
            trading_class=option.trading_class,
            min_tick=Decimal("0.01"),
            primary_exchange="SMART",
            long_name=underlying.long_name if underlying is not None else option.underlying,
        )

    def instrument_of(self, symbol: str) -> Instrument | None:
        """The instrument an engine symbol is at this face: a stock it trades, or an option by
        its OCC local symbol (listed today or not: an execution or position may outlive the
        listing); None for anything else."""
        instrument = self.instruments.get(symbol)
        if instrument is not None:
            return instrument
        try:
            option = OptionContract.from_local_symbol(symbol)
        except OptionError:
            return None
        return self.option_instrument(option) if option.underlying in self.instruments else None

    def option_of(self, instrument: Instrument) -> OptionContract | None:
        """The option ``instrument`` is (one ``resolve`` returned), or None for a stock."""
        if not is_option_con_id(instrument.con_id):
            return None
        try:
            return OptionContract.from_local_symbol(instrument.symbol)
        except OptionError:
            return None

    def today(self) -> date:
        """The venue clock's New York date: the day the listing is of."""
        return self.clock().astimezone(NEW_YORK).date()

    def option_chain(self, symbol: str) -> OptionChain | None:
        """The options the venue lists on ``symbol`` today (``sim.tws.listing``); None for a
        symbol it does not trade or one that has never traded."""
        listed = self._listing(symbol)
        return listed[1] if listed is not None else None

    def _listing(self, symbol: str) -> tuple[object, OptionChain, dict[int, OptionContract]] | None:
        if symbol not in self.instruments:
            return None
        today = self.today()
        reference = reference_price(today, self.engine.opens, self.engine.last, symbol)
        if reference is None:
            return None
        key = (today, reference)
        cached = self._chains.get(symbol)
        if cached is None or cached[0] != key:
            try:
                chain = listed_chain(symbol, reference, today, self.listing)
            except OptionError as exc:
                log.warning("%s: no options listed on %s: %s", self.name, symbol, exc)
                return None
            cached = (key, chain, {c.con_id: c for c in chain.contracts()})
            self._chains[symbol] = cached
        return cached

    def _option_by_con_id(
        self, con_id: int, held: dict[int, OptionContract]
    ) -> OptionContract | None:
        # Option conIds are hashed from their fields, per underlying: two underlyings' options
        # may (rarely) share one. Such a conId names no option here (200): the client names it
        # by symbol, expiry, strike and right instead, and never trades the other one.
        found = {
            listed[2][con_id]
            for symbol in self.instruments
            if (listed := self._listing(symbol)) is not None and con_id in listed[2]
        }
        if con_id in held:
            found.add(held[con_id])
        if len(found) > 1:
            log.warning(
                "%s: conId %d names %s: refused as ambiguous",
                self.name,
                con_id,
                " and ".join(sorted(o.local_symbol for o in found)),
            )
            return None
        return next(iter(found), None)

    def _is_listed(self, option: OptionContract) -> bool:
        chain = self.option_chain(option.underlying)
        return chain is not None and is_listed(chain, option)

    def _held_options(self) -> dict[int, OptionContract]:
        # Options with a working order or an open position stay listed until they expire.
        engine = self.engine
        symbols = [o.symbol for o in engine.orders.values() if not o.done]
        symbols += [s for s, p in engine.positions.items() if p.quantity]
        return held_options(symbols, self.today())

    def chain_totals(self, symbol: str) -> dict[int, int]:
        """Generic ticks 100 and 101 of a stock: its listed chain's call and put volume and
        open interest (tick types 29, 30, 27, 28), held still through the day as they are."""
        listed = self._listing(symbol)
        if listed is None:
            return chain_totals(())
        key = (listed[0], self.engine.opens.get(symbol))
        cached = self._chain_totals.get(symbol)
        if cached is None or cached[0] != key:
            now = self.clock()
            quotes = (self.engine.option_quote(c, now) for c in listed[1].contracts())
            cached = (key, chain_totals(q for q in quotes if q is not None))
            self._chain_totals[symbol] = cached
        return cached[1]

    def cash(self) -> Decimal:
        cash = STARTING_CASH
        for execution in self.engine.executions:
            value = execution.value  # x 100 for an option
            cash += -value if execution.side is Side.BUY else value
            cash -= execution.commission
        return cash

    def mark(self, symbol: str, average_cost: Decimal) -> Decimal:
        """The value of one unit of ``symbol`` now: a stock's last trade, an option's quoted
        last x its multiplier (``average_cost``, IB's per unit, when there is neither)."""
        contract = self.engine.option_of(symbol)
        if contract is None:
            return self.engine.last.get(symbol, average_cost)
        quote = self.engine.option_quote(contract, self.clock())
        return quote.last * contract.multiplier if quote is not None else average_cost

    def _on_settlement(self, execution: Execution) -> None:
        # An option's expiry leg: every connected client hears of it (no client placed it)
        # after what the engine told before it (the expired orders' cancels), then of the
        # position it changed.
        sessions = [s for s in self.sessions.values() if s.link.connected]
        for session in sessions:
            session.drain_now()
            session._execution(-1, None, execution)
            session.put(m.commission_report(execution.exec_id, execution.commission))
            session.wake()
        if sessions:
            sessions[0]._position_changed(execution.symbol)  # tells every session

    # -- serving -------------------------------------------------------------------------------

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` (0: any free port, reported through ``task_status``)."""
        listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        async with listener, anyio.create_task_group() as tg:
            self.port = int(listener.extra(anyio.abc.SocketAttribute.local_port))
            log.info("%s: TWS API server listening on %s:%d", self.name, host, self.port)
            task_status.started(self.port)
            await listener.serve(self._connection, task_group=tg)

    async def _connection(self, stream: anyio.abc.ByteStream) -> None:
        session = Session(self, stream)
        try:
            await session.run()
        except* (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the client went away mid-handshake
        finally:
            session.close()
            await anyio.aclose_forcefully(stream)

    def protocol_error(self, problem: str) -> None:
        log.warning("%s: protocol error: %s", self.name, problem)
        self.protocol_errors.append(problem)

    # -- faults and operator controls ----------------------------------------------------------

    def connectivity_lost(self) -> None:
        for session in list(self.sessions.values()):
            session.notice(1100, "Connectivity between IB and Trader Workstation has been lost.")

    def connectivity_restored(self, *, data_lost: bool = False) -> None:
        code, text = (
            (1101, "Connectivity between IB and TWS has been restored - data lost.")
            if data_lost
            else (1102, "Connectivity between IB and TWS has been restored - data maintained.")
        )
        for session in list(self.sessions.values()):
            session.notice(code, text)

    def nightly_restart(self) -> None:
        """IB's nightly reset: every client hears 1100 (connectivity lost), the venue restarts
        (DAY orders cancelled, GTC kept, every connection dropped), and each client that
        connects afterwards hears 1102 (restored, data maintained) once."""
        self.connectivity_lost()
        for session in list(self.sessions.values()):
            session.drain_now()
        self._restored_for = set()
        self.engine.restart()

    def kick(self, client_id: int) -> None:
        """Drop one client's connection."""
        session = self.sessions.get(client_id)
        if session is not None:
            session.link.disconnect()
            session.wake()

    # -- market data ---------------------------------------------------------------------------

    def _on_trade(self, symbol: str, price: Decimal, size: int, at: datetime) -> None:
        prints = self.prints.setdefault(symbol, [])
        ts_ns = epoch_ns(at)
        if prints and ts_ns < prints[-1].ts_ns:
            prints.sort(key=lambda p: p.ts_ns)  # given history after trades: rare, keep order
        prints.append(Print(ts_ns=ts_ns, price=price, size=size))
        for session in list(self.sessions.values()):
            session.on_trade(symbol, price, Decimal(size))


class Session:
    """One client connection."""

    def __init__(self, server: TwsServer, stream: anyio.abc.ByteStream) -> None:
        self.server = server
        self.stream = stream
        self.version = 0
        self.client_id: int | None = None
        self.link = Link(server.engine, f"{server.name} session")
        self.data_type = 1
        self.subscriptions: dict[int, Instrument] = {}
        self.positions_subscribed = False
        self.account_subscribed = False
        self.commission_first_next = False
        self.generic_ticks: dict[int, frozenset[int]] = {}
        """The generic ticks of each market data subscription (``sim.tws.option_data``)."""
        self.message_rate = (
            MessageRate(server.pacing.messages_per_second, server.pacing_clock)
            if server.pacing is not None
            else None
        )
        self._send, self._outbox = anyio.create_memory_object_stream[bytes](10_000)
        self._wake = anyio.Event()
        self.server.engine.listeners.append(self._on_event)

    # -- plumbing ------------------------------------------------------------------------------

    def put(self, fields: list[object]) -> None:
        try:
            self._send.send_nowait(frame(fields))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            # The connection is going away (its writer ended): nothing more reaches this
            # client, and nothing of it may reach whoever moved the engine (market data, say).
            self.link.disconnect()
            self.wake()
        except anyio.WouldBlock:
            # A client that reads nothing for 10,000 messages is cut off, as TWS does.
            log.warning(
                "%s: client %s is not reading: disconnecting", self.server.name, self.client_id
            )
            self.link.disconnect()
            self.wake()

    def notice(self, code: int, text: str) -> None:
        self.put(m.error(-1, code, text, server_version=self.version))

    def wake(self) -> None:
        self._wake.set()

    def _on_event(self, _event: BrokerEvent) -> None:
        self._wake.set()

    def close(self) -> None:
        if self.server.engine.listeners.count(self._on_event):
            self.server.engine.listeners.remove(self._on_event)
        self.link.close()
        if self.client_id is not None and self.server.sessions.get(self.client_id) is self:
            del self.server.sessions[self.client_id]
        self._send.close()
        self._outbox.close()

    async def run(self) -> None:
        reader = FrameReader()
        pending = await self._handshake(reader)
        if pending is None:
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._writer)
            tg.start_soon(self._pump, tg.cancel_scope)
            for fields in pending:
                self._dispatch(fields)
            while True:
                try:
                    data = await self.stream.receive()
                except (anyio.EndOfStream, anyio.BrokenResourceError):
                    break  # the client closed the connection
                try:
                    batch = reader.feed(data)
                except ProtocolError as exc:
                    self.server.protocol_error(str(exc))
                    break
                for fields in batch:
                    self._dispatch(fields)
            tg.cancel_scope.cancel()

    async def _handshake(self, reader: FrameReader) -> list[list[str]] | None:
        data = b""
        while len(data) < len(HELLO):
            data += await self.stream.receive()
        if not data.startswith(HELLO):
            self.server.protocol_error(f"handshake: expected {HELLO!r}, got {data[:8]!r}")
            return None
        data = data[len(HELLO) :]
        # The version range is framed but, unlike every later message, has no terminator.
        while len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
            data += await self.stream.receive()
        size = int.from_bytes(data[:4], "big")
        hello = [data[4 : 4 + size].decode(errors="backslashreplace")]
        try:
            rest = reader.feed(data[4 + size :])
            low, high = _version_range(hello)
        except ProtocolError as exc:
            self.server.protocol_error(str(exc))
            return None
        version = min(high, self.server.max_version)
        if version < max(low, self.server.min_version):
            log.warning("%s: no common server version with %s", self.server.name, hello)
            return None
        self.version = version
        now = self.server.clock()
        await self.stream.send(frame([version, f"{now:%Y%m%d %H:%M:%S} EST"]))
        log.info("%s: handshake %s -> server version %d", self.server.name, hello[0], version)
        return rest

    async def _writer(self) -> None:
        # What is queued when the writer wakes goes out in one write, up to WRITE_BATCH
        # bytes: a request answered with a thousand messages (the open orders, the
        # executions) costs the client a few reads instead of a thousand, as TWS's stream
        # does. Nothing waits to fill a batch: a lone message is written at once.
        outbox = self._outbox
        async with outbox:
            async for data in outbox:
                chunks = [data]
                size = len(data)
                while size < WRITE_BATCH:
                    try:
                        more = outbox.receive_nowait()
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                    chunks.append(more)
                    size += len(more)
                try:
                    await self.stream.send(data if len(chunks) == 1 else b"".join(chunks))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    return  # the client is gone; the reader side ends the session

    async def _pump(self, scope: anyio.CancelScope) -> None:
        # Delivers the engine's events through this session's link, in the link's order.
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            self._drain()
            if not self.link.connected:
                # Dropped (a fault, a venue restart): what was delivered is flushed, then the
                # connection goes, as a real socket would.
                await anyio.lowlevel.checkpoint()
                self._send.close()
                await anyio.sleep(0.05)
                scope.cancel()
                return

    # -- requests ------------------------------------------------------------------------------

    def drain_now(self) -> None:
        self._drain()

    def _drain(self) -> None:
        # Deliver what the engine emitted so far before answering a request: a reply then
        # comes after every event that happened before the request, as on one TWS socket.
        try:
            events = self.link.take()
        except VenueDisconnected:
            return
        for event in events:
            self._deliver(event)

    def _dispatch(self, fields: list[str]) -> None:
        self._drain()
        try:
            message_id = int(fields[0])
        except (ValueError, IndexError):
            self.server.protocol_error(f"a message without a numeric id: {fields[:3]}")
            return
        self.server.requests[message_id] += 1
        over = self.message_rate.arrive() if self.message_rate is not None else None
        if over is not None:
            # IB's pacing (sim.tws.pacing): a message over the rate is refused, not served.
            self.put(m.error(-1, 100, over, server_version=self.version))
            return
        handler = _HANDLERS.get(message_id)
        if handler is None:
            self.server.protocol_error(f"unsupported request {message_id}: {fields[:6]}")
            self.put(
                m.error(-1, 320, f"unsupported request {message_id}", server_version=self.version)
            )
            return
        if self.client_id is None and message_id != 71:
            self.server.protocol_error(f"request {message_id} before startApi")
            return
        try:
            handler(self, fields)
        except ProtocolError as exc:
            self.server.protocol_error(str(exc))
            self.put(m.error(-1, 320, f"Error reading request: {exc}", server_version=self.version))

    def start_api(self, fields: list[str]) -> None:
        f = Fields("startApi", fields, 1)
        f.integer("version")
        client_id = f.integer("clientId")
        f.text("optCapab")
        f.done()
        if client_id in self.server.sessions:
            self.put(
                m.error(
                    -1,
                    326,
                    "Unable to connect as the client id is already in use. Retry with a unique "
                    "client id.",
                    server_version=self.version,
                )
            )
            self.link.disconnect()
            self.wake()
            return
        self.client_id = client_id
        self.server.sessions[client_id] = self
        self.put(m.managed_accounts(self.server.account))
        self.put(m.next_valid_id(self.server.next_valid_id()))
        for code, text in FARM_NOTICES:
            self.notice(code, text)
        told = self.server._restored_for
        if told is not None and client_id not in told:
            told.add(client_id)
            self.notice(
                1102, "Connectivity between IB and TWS has been restored - data maintained."
            )

    def req_positions(self, fields: list[str]) -> None:
        _expect(fields, "reqPositions", 2)
        self.positions_subscribed = True
        for symbol, position in self.server.engine.positions.items():
            instrument = self.server.instrument_of(symbol)
            if instrument is not None and position.quantity:
                self.put(
                    m.position(
                        self.server.account,
                        instrument,
                        Decimal(position.quantity),
                        position.average_cost,
                    )
                )
        self.put(m.position_end())

    def cancel_positions(self, fields: list[str]) -> None:
        _expect(fields, "cancelPositions", 2)
        self.positions_subscribed = False

    def req_open_orders(self, fields: list[str]) -> None:
        _expect(fields, "reqOpenOrders", 2)
        self._open_orders(mine_only=self.client_id != 0)

    def req_all_open_orders(self, fields: list[str]) -> None:
        _expect(fields, "reqAllOpenOrders", 2)
        self._open_orders(mine_only=False)

    def req_auto_open_orders(self, fields: list[str]) -> None:
        _expect(fields, "reqAutoOpenOrders", 3)

    def _open_orders(self, *, mine_only: bool) -> None:
        for order in list(self.server.orders.values()):
            sim = self.server.engine.orders.get(order.ref)
            if sim is None or sim.done:
                continue
            if mine_only and order.client_id != self.client_id:
                continue
            self._order_state(order, sim)
        for held in self.server.held.of(self.client_id if mine_only else None):
            self._held_state(held)
        self.put(m.open_order_end())

    def req_completed_orders(self, fields: list[str]) -> None:
        f = Fields("reqCompletedOrders", fields, 1)
        f.flag("apiOnly")
        f.done()
        for order in self.server.orders.values():
            sim = self.server.engine.orders.get(order.ref)
            if sim is None or not sim.done:
                continue
            status = "Filled" if _filled(sim) else "Cancelled"
            state = WireOrderState(
                status=status,
                completed_time=m.ib_time(self.server.clock()),
                completed_status=f"{status} Size: {sim.filled}",
            )
            self.put(
                completed_order_fields(
                    order.wire,
                    state,
                    perm_id=sim.perm_id,
                    filled=Decimal(sim.filled),
                    server_version=self.version,
                )
            )
        self.put(m.completed_orders_end())

    def req_account_updates(self, fields: list[str]) -> None:
        f = Fields("reqAccountUpdates", fields, 1)
        f.integer("version")
        subscribe = f.flag("subscribe")
        f.text("acctCode")
        f.done()
        self.account_subscribed = subscribe
        if subscribe:
            self._account_snapshot()
            self.put(m.account_download_end(self.server.account))

    def _account_values(self) -> list[tuple[str, str]]:
        cash = self.server.cash()
        engine = self.server.engine
        gross = sum(
            (
                Decimal(p.quantity) * self.server.mark(s, p.average_cost)
                for s, p in engine.positions.items()
            ),
            Decimal(0),
        )
        net = cash + gross
        return [
            ("NetLiquidation", f"{net:.2f}"),
            ("TotalCashValue", f"{cash:.2f}"),
            ("GrossPositionValue", f"{gross:.2f}"),
            ("AvailableFunds", f"{cash:.2f}"),
            ("BuyingPower", f"{max(cash, Decimal(0)) * 4:.2f}"),
            ("EquityWithLoanValue", f"{net:.2f}"),
        ]

    def _account_snapshot(self) -> None:
        account = self.server.account
        for key, value in self._account_values():
            self.put(m.account_value(key, value, "USD", account))
        engine = self.server.engine
        for symbol, position in engine.positions.items():
            instrument = self.server.instruments.get(symbol)
            if instrument is None:
                continue
            self.put(
                m.portfolio(
                    instrument=instrument,
                    quantity=Decimal(position.quantity),
                    market_price=engine.last.get(symbol, position.average_cost),
                    average_cost=position.average_cost,
                    realized=Decimal(0),
                    account=account,
                )
            )
        self.put(m.account_time(self.server.clock()))

    def req_account_updates_multi(self, fields: list[str]) -> None:
        f = Fields("reqAccountUpdatesMulti", fields, 1)
        f.integer("version")
        req_id = f.integer("reqId")
        f.text("account")
        f.text("modelCode")
        f.flag("ledgerAndNLV")
        f.done()
        for key, value in self._account_values():
            self.put(m.account_update_multi(req_id, self.server.account, key, value, "USD"))
        self.put(m.account_update_multi_end(req_id))

    def req_account_summary(self, fields: list[str]) -> None:
        f = Fields("reqAccountSummary", fields, 1)
        f.integer("version")
        req_id = f.integer("reqId")
        f.text("groupName")
        tags = set(f.text("tags").split(","))
        f.done()
        account = self.server.account
        for key, value in self._account_values():
            if key in tags:
                self.put(m.account_summary(req_id, account, key, value, "USD"))
        if "AccountType" in tags:
            self.put(m.account_summary(req_id, account, "AccountType", "INDIVIDUAL", ""))
        self.put(m.account_summary_end(req_id))

    def cancel_account_summary(self, fields: list[str]) -> None:
        _expect(fields, "cancelAccountSummary", 3)

    def cancel_account_updates_multi(self, fields: list[str]) -> None:
        _expect(fields, "cancelAccountUpdatesMulti", 3)

    def req_executions(self, fields: list[str]) -> None:
        f = Fields("reqExecutions", fields, 1)
        f.integer("version")
        req_id = f.integer("reqId")
        client_filter = f.integer("clientId", empty=0)
        f.text("acctCode")
        f.text("time")
        symbol_filter = f.text("symbol")
        f.text("secType")
        f.text("exchange")
        side_filter = f.text("side")
        f.done()
        for execution in self.server.engine.executions:
            order = self.server.orders.get(execution.ref)
            if order is None and not execution.settles:
                continue
            if client_filter and order is not None and order.client_id != client_filter:
                continue
            if symbol_filter and symbol_filter not in self._symbols_of(execution.symbol):
                continue
            if side_filter and execution.side.value != side_filter.upper():
                continue
            self._execution(req_id, order, execution)
            self.put(m.commission_report(execution.exec_id, execution.commission))
        self.put(m.exec_details_end(req_id))

    def _symbols_of(self, symbol: str) -> tuple[str, ...]:
        # What an execution filter's symbol may name: the engine's symbol, and for an option
        # its underlying (IB's contract symbol of an option).
        contract = self.server.engine.option_of(symbol)
        return (symbol,) if contract is None else (symbol, contract.underlying)

    def _execution(self, req_id: int, order: TwsOrder | None, execution: Execution) -> None:
        # ``order`` None: a leg of an option's settlement (order and perm ids 0, its ref as
        # the orderRef: exercise:, assignment: or expiry: and the OCC symbol).
        instrument = self.server.instrument_of(execution.symbol)
        if instrument is None:
            self.server.protocol_error(f"an execution of {execution.symbol}, not an instrument")
            return
        ref = order.ref if order is not None else execution.ref
        cumulative, value = 0, Decimal(0)
        for other in self.server.engine.executions_of(ref):
            cumulative += other.quantity
            value += other.price * other.quantity
            if other.exec_id == execution.exec_id:
                break
        if execution.settles:
            cumulative, value = execution.quantity, execution.price * execution.quantity
        self.put(
            m.exec_details(
                req_id=req_id,
                order_id=order.order_id if order is not None else 0,
                instrument=instrument,
                exec_id=execution.exec_id,
                at=execution.time,
                account=self.server.account,
                server_version=self.version,
                side=execution.side.value,
                shares=Decimal(execution.quantity),
                price=execution.price,
                perm_id=self.server.engine.orders[order.ref].perm_id if order is not None else 0,
                client_id=order.client_id if order is not None else 0,
                cumulative=Decimal(cumulative),
                average_price=value / cumulative if cumulative else Decimal(0),
                order_ref=order.wire.order_ref if order is not None else execution.ref,
            )
        )

    def req_contract_details(self, fields: list[str]) -> None:
        f = Fields("reqContractDetails", fields, 1)
        f.integer("version")
        req_id = f.integer("reqId")
        contract = parse_contract12(f)
        f.flag("includeExpired")
        contract = attrs.evolve(contract, sec_id_type=f.text("secIdType"), sec_id=f.text("secId"))
        if self.version >= 176:
            f.text("issuerId")
        f.done()
        instrument = self.server.resolve(contract)
        if instrument is None:
            self._no_security_definition(req_id)
            return
        option = self.server.option_of(instrument)
        if option is not None:
            self.put(self._option_details(req_id, option, instrument))
        else:
            self.put(m.contract_details(req_id, instrument, server_version=self.version))
        self.put(m.contract_details_end(req_id))

    def _option_details(
        self, req_id: int, option: OptionContract, instrument: Instrument
    ) -> list[object]:
        return m.option_contract_details(
            req_id,
            con_id=option.con_id,
            underlying=self.server.instruments[option.underlying],
            local_symbol=option.local_symbol,
            expiry=option.last_trade_date,
            strike=option.strike,
            right=option.right.value,
            multiplier=option.multiplier,
            long_name=instrument.long_name,
            min_tick=instrument.min_tick,
            server_version=self.version,
        )

    def req_sec_def_opt_params(self, fields: list[str]) -> None:
        f = Fields("reqSecDefOptParams", fields, 1)
        req_id = f.integer("reqId")
        symbol = f.text("underlyingSymbol")
        exchange = f.text("futFopExchange")
        sec_type = f.text("underlyingSecType")
        con_id = f.integer("underlyingConId", empty=0)
        f.done()
        underlying = self.server.instruments.get(symbol)
        if underlying is None or sec_type != "STK" or con_id not in (0, underlying.con_id):
            log.info(
                "%s: reqSecDefOptParams: no underlying %s %s conId %s",
                self.server.name,
                sec_type,
                symbol,
                con_id,
            )
            self._no_security_definition(req_id)
            return
        chain = self.server.option_chain(symbol)
        # The sim lists options on SMART only: asked for another exchange, it has none there.
        if chain is not None and exchange in ("", "SMART"):
            self.put(
                m.sec_def_opt_params(
                    req_id,
                    exchange="SMART",
                    underlying_con_id=underlying.con_id,
                    trading_class=chain.trading_class,
                    multiplier=chain.multiplier,
                    expirations=[f"{e:%Y%m%d}" for e in chain.expiries],
                    strikes=list(chain.strikes),
                )
            )
        self.put(m.sec_def_opt_params_end(req_id))

    def req_market_data_type(self, fields: list[str]) -> None:
        f = Fields("reqMarketDataType", fields, 1)
        f.integer("version")
        data_type = f.integer("marketDataType")
        f.done()
        if data_type not in (1, 2, 3, 4):
            raise ProtocolError(f"reqMarketDataType: unknown market data type {data_type}")
        self.data_type = data_type

    def req_mkt_data(self, fields: list[str]) -> None:
        f = Fields("reqMktData", fields, 1)
        f.integer("version")
        req_id = f.integer("reqId")
        contract = parse_contract12(f)
        if contract.sec_type == "BAG":
            raise ProtocolError("reqMktData: combo (BAG) market data is not simulated")
        if f.flag("deltaNeutral"):
            f.skip(3, "deltaNeutralContract")
        generic_list = f.text("genericTickList")
        snapshot = f.flag("snapshot")
        f.flag("regulatorySnapshot")
        f.text("mktDataOptions")
        f.done()
        instrument = self.server.resolve(contract)
        if instrument is None:
            self._no_security_definition(req_id)
            return
        option = self.server.option_of(instrument)
        try:
            generic = parse_generic_ticks(
                generic_list, sec_type="OPT" if option is not None else "STK", snapshot=snapshot
            )
        except GenericTicksRefused as refused:
            self._error(req_id, refused.code, refused.message)
            return
        limits = self.server.pacing
        if (
            not snapshot
            and limits is not None
            and len(self.subscriptions) >= limits.market_data_lines
        ):
            self._error(req_id, 101, MAX_TICKERS_TEXT)
            return
        delayed = self.data_type in (3, 4)
        self.put(m.market_data_type(req_id, 3 if delayed else 1))
        self.put(m.tick_req_params(req_id, instrument.min_tick))
        if option is not None:
            self._option_ticks(req_id, option, generic)
        else:
            last = self.server.engine.last.get(instrument.symbol)
            if last is not None:
                self._ticks(req_id, instrument, last, Decimal(100))
            self._stock_generic_ticks(req_id, instrument, generic)
        if snapshot:
            self.put(m.tick_snapshot_end(req_id))
        else:
            self.subscriptions[req_id] = instrument
            self.generic_ticks[req_id] = generic

    def cancel_mkt_data(self, fields: list[str]) -> None:
        f = Fields("cancelMktData", fields, 1)
        f.integer("version")
        req_id = f.integer("reqId")
        f.done()
        self.subscriptions.pop(req_id, None)
        self.generic_ticks.pop(req_id, None)

    def on_trade(self, symbol: str, price: Decimal, size: Decimal) -> None:
        for req_id, instrument in list(self.subscriptions.items()):
            option = self.server.option_of(instrument)
            if option is not None:
                # An option's quote moves with its underlying's trades.
                if option.underlying == symbol:
                    self._option_ticks(req_id, option, self.generic_ticks.get(req_id, frozenset()))
            elif instrument.symbol == symbol:
                self._ticks(req_id, instrument, price, size)
                self._stock_generic_ticks(
                    req_id, instrument, self.generic_ticks.get(req_id, frozenset())
                )

    def _option_ticks(self, req_id: int, option: OptionContract, generic: frozenset[int]) -> None:
        # The venue's quote (Engine.option_quote) now: none before the underlying has traded
        # or once the option has expired.
        quote = self.server.engine.option_quote(option, self.server.clock())
        if quote is None:
            return
        for fields in option_ticks(
            req_id,
            quote,
            self.server.engine.options,
            delayed=self.data_type in (3, 4),
            generic=generic,
        ):
            self.put(fields)

    def _stock_generic_ticks(
        self, req_id: int, instrument: Instrument, generic: frozenset[int]
    ) -> None:
        if generic:
            totals = self.server.chain_totals(instrument.symbol)
            for fields in stock_generic_ticks(req_id, totals, generic):
                self.put(fields)

    def _ticks(self, req_id: int, instrument: Instrument, price: Decimal, size: Decimal) -> None:
        delayed = 1 if self.data_type in (3, 4) else 0
        tick = instrument.min_tick
        self.put(m.tick_price(req_id, m.BID[delayed], price - tick, Decimal(100)))
        self.put(m.tick_price(req_id, m.ASK[delayed], price + tick, Decimal(100)))
        self.put(m.tick_price(req_id, m.LAST[delayed], price, size))

    def req_historical_data(self, fields: list[str]) -> None:
        f = Fields("reqHistoricalData", fields, 1)
        req_id = f.integer("reqId")
        contract = parse_contract12(f)
        f.flag("includeExpired")
        end_text = f.text("endDateTime")
        bar_size = f.text("barSizeSetting")
        duration = f.text("durationStr")
        use_rth = f.flag("useRTH")
        what_to_show = f.text("whatToShow")
        format_date = f.integer("formatDate", empty=0)
        if contract.sec_type == "BAG":
            legs = f.integer("comboLegs")
            f.skip(4 * legs, "comboLeg")
        keep_up_to_date = f.flag("keepUpToDate")
        f.text("chartOptions")
        f.done()
        instrument = self.server.resolve(contract)
        if instrument is None:
            self._no_security_definition(req_id)
            return
        option = self.server.option_of(instrument)
        try:
            request = check_request(
                symbol=instrument.symbol,
                end_text=end_text,
                duration=duration,
                bar_size=bar_size,
                what_to_show=what_to_show,
                use_rth=use_rth,
                format_date=format_date,
                keep_up_to_date=keep_up_to_date,
                now=self.server.clock(),
                shows=OPTION_SHOWS if option is not None else ("TRADES",),
            )
        except HistoryRefused as refused:
            self._error(req_id, refused.code, refused.message)
            return
        asked = (instrument.symbol, end_text, duration, bar_size, request.what_to_show, use_rth)
        paced = self.server.history_pacing
        if paced is not None and not paced.admit(
            asked, (instrument.symbol, request.what_to_show), request.seconds
        ):
            self._error(req_id, 162, HISTORICAL_PACING_TEXT)
            return
        if option is not None:
            prints = option_prints(
                option,
                self.server.prints.get(option.underlying, ()),
                self.server.engine.options,
                show=request.what_to_show,
                start_ns=epoch_ns(request.start),
                end_ns=epoch_ns(request.end),
            )
        else:
            prints = self.server.prints.get(instrument.symbol, [])
        bars = history_bars(request, prints)
        if not bars:
            self._error(
                req_id,
                162,
                "Historical Market Data Service error message:HMDS query returned no data: "
                f"{instrument.symbol}@SMART {request.what_to_show.title()}",
            )
            return
        self.put(historical_data(req_id, request, bars))

    def req_ids(self, fields: list[str]) -> None:
        f = Fields("reqIds", fields, 1)
        f.integer("version")
        f.integer("numIds")
        f.done()
        self.put(m.next_valid_id(self.server.next_valid_id()))

    def req_current_time(self, fields: list[str]) -> None:
        _expect(fields, "reqCurrentTime", 2)
        self.put(m.current_time(self.server.clock()))

    def req_global_cancel(self, fields: list[str]) -> None:
        _expect(fields, "reqGlobalCancel", 2)
        for held in self.server.held.of():
            session = self.server.sessions.get(held.client_id)
            for dropped in self.server.held.cancel(held.client_id, held.order_id):
                if session is not None:
                    session._held_cancelled(dropped)
        for order in list(self.server.orders.values()):
            sim = self.server.engine.orders.get(order.ref)
            if sim is not None and not sim.done:
                self.server.engine.cancel(order.ref, "global cancel")

    def cancel_order(self, fields: list[str]) -> None:
        order_id, _ = parse_cancel_order(fields, self.version)
        client_id = self._client()
        if self.server.held.get(client_id, order_id) is not None:
            # Untransmitted: it never reached the engine, and neither did its held children.
            for dropped in self.server.held.cancel(client_id, order_id):
                self._held_cancelled(dropped)
            return
        ref = self.server.by_client_order.get((client_id, order_id))
        sim = self.server.engine.orders.get(ref) if ref is not None else None
        if ref is None or sim is None:
            self.put(
                m.error(
                    order_id,
                    10147,
                    f"OrderId {order_id} that needs to be cancelled is not found.",
                    server_version=self.version,
                )
            )
            return
        if sim.done:
            state = "Filled" if _filled(sim) else "Cancelled"
            self.put(
                m.error(
                    order_id,
                    10148,
                    f"OrderId {order_id} that needs to be cancelled cannot be cancelled, "
                    f"state: {state}.",
                    server_version=self.version,
                )
            )
            return
        self.server.engine.cancel(ref, "cancelled by the client")

    def place_order(self, fields: list[str]) -> None:
        wire = parse_place_order(fields, self.version)
        for listener in self.server.placed_listeners:
            listener(wire.order_ref)
        if not wire.account:
            # TWS fills in the account an order without one goes to, and echoes it.
            wire = attrs.evolve(wire, account=self.server.account)
        client_id = self._client()
        server = self.server
        order_id = wire.order_id
        if not wire.what_if:
            known = server.by_client_order.get((client_id, order_id))
            if known is not None:
                self._modify(known, wire, fields)
                return
            held = server.held.get(client_id, order_id)
            if held is not None:
                self._modify_held(held, wire, fields)
                return
        if order_id <= server.used_ids.get(client_id, 0):
            self._error(order_id, 103, "Duplicate order id")
            return
        instrument = server.resolve(wire.contract)
        if instrument is None:
            self._no_security_definition(order_id)
            return
        if not wire.what_if:
            # A what-if is never placed: its id stays free (ib_insync takes it from its
            # order ids, and the next order's is above it anyway).
            server.used_ids[client_id] = order_id
        problem = self._refusal(wire, instrument) or self._parent_refusal(wire)
        if problem is not None:
            self._error(order_id, 201, f"Order rejected - reason:{problem}")
            return
        if self._off_tick(wire, instrument):
            return
        if wire.what_if:
            self._what_if(wire, instrument)
            return
        now = server.clock()
        if not wire.outside_rth and session_at(now) is not MarketSession.REGULAR:
            self._error(
                order_id,
                399,
                "Order Message:\nBUY/SELL order: Warning: your order will not be placed at the "
                "exchange until the regular trading session opens",
            )
        group = server.held.group_of(client_id, wire.parent_id) if wire.parent_id else None
        held = HeldOrder(
            client_id=client_id,
            wire=wire,
            fields=tuple(fields),
            server_version=self.version,
            instrument=instrument,
            group=group if group is not None else order_id,
        )
        if not wire.transmit:
            server.held.hold(held)
            self._held_state(held)
            return
        self._transmit(held)

    def _transmit(self, order: HeldOrder) -> None:
        # A transmitted order takes its group's held orders along, in the order they were
        # placed and before it: a bracket's parent reaches the engine before its children.
        now = self.server.clock()
        for held in self.server.held.release(order.client_id, order.group):
            if held.order_id != order.order_id:
                self._submit(held, now)
        self._submit(order, now)

    def _submit(self, held: HeldOrder, now: datetime) -> None:
        server = self.server
        wire, client_id, order_id = held.wire, held.client_id, held.order_id
        # The engine's books name an order by its orderRef when it has one no other order took
        # (ours are self-describing and unique), else by the placing client and order id.
        ref = wire.order_ref
        if not ref or ref in server.engine.orders or ref.startswith(TAG_PREFIX):
            ref = f"{TAG_PREFIX}{client_id}:{order_id}"
        fields = list(held.fields)
        order = TwsOrder(
            ref=ref,
            client_id=client_id,
            order_id=order_id,
            wire=wire,
            fields=fields,
            server_version=held.server_version,
        )
        server._remember(order)
        tag = (
            TAG_PREFIX
            + msgspec.json.encode(
                _Tag(client=client_id, version=held.server_version, fields=fields)
            ).decode()
        )
        chain: tuple[tuple[str, PriceCondition], ...] = ()
        if len(wire.conditions) > 1:
            chain = tuple(
                (c.conjunction, PriceCondition(trigger=c.price(), is_more=bool(c.is_more)))
                for c in wire.conditions
            )
        parent = server.by_client_order.get((client_id, wire.parent_id)) if wire.parent_id else None
        oca, oca_type = _oca(wire, parent)
        sim = server.engine.place(
            _domain_order(ref, wire, held.instrument, parent=parent, oca=oca),
            now,
            tag=tag,
            chain=chain,
            oca_type=oca_type,
            trigger_method=wire.trigger_method,
        )
        if sim is not None and sim.stopped:
            server._stops.add(ref)

    def _parent_refusal(self, wire: WireOrder) -> str | None:
        # A child's parent is a working (or held) order of the same client, on any contract.
        if not wire.parent_id:
            return None
        client_id = self._client()
        if wire.parent_id == wire.order_id:
            return f"parentId {wire.parent_id} is the order itself"
        if self.server.held.get(client_id, wire.parent_id) is not None:
            return None
        ref = self.server.by_client_order.get((client_id, wire.parent_id))
        sim = self.server.engine.orders.get(ref) if ref is not None else None
        if sim is None:
            return f"parentId {wire.parent_id} is not an order of client {client_id}"
        if sim.done:
            state = "filled" if _filled(sim) else "cancelled"
            return f"parentId {wire.parent_id}: the parent order is {state}"
        return None

    def _off_tick(self, wire: WireOrder, instrument: Instrument) -> bool:
        # The limit and the stop must be on the contract's tick (110 otherwise).
        for price in (wire.lmt_price, wire.aux_price):
            if price is not None and price % instrument.min_tick:
                self._error(
                    wire.order_id,
                    110,
                    "The price does not conform to the minimum price variation for this contract.",
                )
                return True
        return False

    def _refusal(self, wire: WireOrder, instrument: Instrument) -> str | None:
        # Every field the venue does not implement (sim.tws.refusals), and the account.
        if wire.account != self.server.account:
            return not_supported(f"account {wire.account}", f"one account, {self.server.account}")
        return refusal(wire, con_id=instrument.con_id)

    def _no_security_definition(self, req_id: int) -> None:
        self._error(req_id, NO_SECURITY_DEFINITION, NO_SECURITY_DEFINITION_TEXT)

    def _unchangeable(self, was: WireOrder, wire: WireOrder) -> str | None:
        # What a modify may not change (IB's 105): the bracket and OCA links, the trigger.
        for field, attribute in (
            ("parentId", "parent_id"),
            ("ocaGroup", "oca_group"),
            ("ocaType", "oca_type"),
            ("triggerMethod", "trigger_method"),
            ("orderType", "order_type"),
        ):
            before, after = getattr(was, attribute), getattr(wire, attribute)
            if before != after:
                return f"{field} cannot change ({before!r} to {after!r})"
        return None

    def _modify(self, ref: str, wire: WireOrder, fields: list[str]) -> None:
        server = self.server
        sim = server.engine.orders.get(ref)
        order = server.orders[ref]
        if sim is None or sim.done:
            self._error(wire.order_id, 104, "Can't modify a filled order")
            return
        # A modify is checked as a new order would be; refused, the order works on as it was.
        if self._modify_refused(wire, order.wire, sim.symbol):
            return
        quantity = int(wire.total_quantity)
        server.orders[ref] = attrs.evolve(order, wire=wire, fields=list(fields))
        server.engine.modify(
            ref,
            quantity=quantity,
            limit=wire.lmt_price if wire.order_type in LIMITED else None,
            stop=wire.aux_price if wire.order_type in STOPPED else None,
        )

    def _modify_refused(self, wire: WireOrder, original: WireOrder, symbol: str) -> bool:
        # A modify of an order on ``symbol`` placed as ``original``: refused (and answered) for
        # another contract (200), a field the venue refuses (201), a field that cannot change
        # (105) or a price off the tick (110).
        instrument = self.server.resolve(wire.contract)
        if instrument is None or instrument.symbol != symbol:
            self._no_security_definition(wire.order_id)
            return True
        problem = self._refusal(wire, instrument)
        if problem is not None:
            self._error(wire.order_id, 201, f"Order rejected - reason:{problem}")
            return True
        changed = self._unchangeable(original, wire)
        if changed is not None:
            self._error(
                wire.order_id,
                105,
                f"Order being modified does not match original order: {changed}",
            )
            return True
        return self._off_tick(wire, instrument)

    def _modify_held(self, held: HeldOrder, wire: WireOrder, fields: list[str]) -> None:
        # An untransmitted order changed before it goes (or transmitted by the change).
        if self._modify_refused(wire, held.wire, held.instrument.symbol):
            return
        changed_order = attrs.evolve(
            held, wire=wire, fields=tuple(fields), server_version=self.version
        )
        self.server.held.hold(changed_order)
        if wire.transmit:
            self._transmit(changed_order)
        else:
            self._held_state(changed_order)

    def _what_if(self, wire: WireOrder, instrument: Instrument) -> None:
        # Margin and commission of the order as if it filled now, at its limit (or stop, or
        # the market); nothing is placed, journaled or kept.
        engine = self.server.engine
        now = self.server.clock()
        symbol = instrument.symbol
        option = _option_of(symbol)
        buy = wire.action == "BUY"
        price = wire.lmt_price if wire.order_type in LIMITED else None
        if price is None and wire.order_type in STOPPED:
            price = wire.aux_price
        if price is None:
            price = self._market_price(symbol, option, now, buy=buy)
        if price is None:
            self._error(
                wire.order_id,
                201,
                f"Order rejected - reason:whatIf: no price to value the order at ({symbol} "
                "has not traded)",
            )
            return
        others = [
            self._holding(other, position.quantity, now, at=None)
            for other, position in engine.positions.items()
            if other != symbol and position.quantity
        ]
        position = engine.positions.get(symbol)
        before = self._holding(symbol, position.quantity if position else 0, now, at=price)
        quantity = int(wire.total_quantity)
        state = what_if(
            cash=self.server.cash(),
            others=others,
            before=before,
            bought=quantity if buy else -quantity,
        )
        self.put(
            open_order_fields(
                wire, state, client_id=self._client(), perm_id=0, server_version=self.version
            )
        )

    def _market_price(
        self, symbol: str, option: OptionContract | None, now: datetime, *, buy: bool
    ) -> Decimal | None:
        # What a market order would pay: an option's ask (buy) or bid (sell), a stock's last.
        if option is None:
            return self.server.engine.last.get(symbol)
        quote = self.server.engine.option_quote(option, now)
        if quote is None:
            return None
        return quote.ask if buy else quote.bid

    def _holding(self, symbol: str, quantity: int, now: datetime, *, at: Decimal | None) -> Holding:
        # A position valued at ``at``, else at the venue's price (an option's mid quote).
        option = _option_of(symbol)
        engine = self.server.engine
        price = at
        underlying = None
        if option is not None:
            underlying = engine.last.get(option.underlying)
            if price is None:
                quote = engine.option_quote(option, now)
                price = (quote.bid + quote.ask) / 2 if quote is not None else None
        if price is None:
            position = engine.positions.get(symbol)
            price = engine.last.get(symbol, position.average_cost if position else Decimal(0))
        return Holding(quantity=quantity, price=price, option=option, underlying_price=underlying)

    def _held_state(self, held: HeldOrder) -> None:
        # TWS reports an untransmitted order as Inactive: created, not sent to IB.
        self.put(
            open_order_fields(
                held.wire,
                WireOrderState(status="Inactive"),
                client_id=held.client_id,
                perm_id=0,
                server_version=self.version,
            )
        )
        self.put(
            m.order_status(
                order_id=held.order_id,
                status="Inactive",
                filled=Decimal(0),
                remaining=held.wire.total_quantity,
                average_price=Decimal(0),
                perm_id=0,
                last_fill_price=Decimal(0),
                client_id=held.client_id,
                parent_id=held.wire.parent_id,
            )
        )

    def _held_cancelled(self, held: HeldOrder) -> None:
        self.put(
            m.order_status(
                order_id=held.order_id,
                status="Cancelled",
                filled=Decimal(0),
                remaining=Decimal(0),
                average_price=Decimal(0),
                perm_id=0,
                last_fill_price=Decimal(0),
                client_id=held.client_id,
                parent_id=held.wire.parent_id,
            )
        )
        self._error(held.order_id, 202, "Order Canceled - reason:")

    def _client(self) -> int:
        # Requests other than startApi are refused before it (see _dispatch).
        if self.client_id is None:
            raise ProtocolError("a request before startApi")
        return self.client_id

    def _error(self, req_id: int, code: int, text: str) -> None:
        self.put(m.error(req_id, code, text, server_version=self.version))

    # -- engine events -------------------------------------------------------------------------

    def _deliver(self, event: BrokerEvent) -> None:
        order = self.server.orders.get(event.ref)
        if order is None or order.client_id != self.client_id:
            return  # not placed through this face, or another client's
        if isinstance(event, OrderRejected):
            # A rejected order never entered the engine's books.
            self._error(
                order.order_id, event.code or 201, f"Order rejected - reason:{event.reason}"
            )
            return
        sim = self.server.engine.orders[event.ref]
        match event:
            case OrderAccepted():
                self._order_state(order, sim)
            case OrderFilled():
                execution = self.server.execution(event.exec_id)
                if self.commission_first_next:
                    self.commission_first_next = False
                    self.put(m.commission_report(execution.exec_id, execution.commission))
                    self._execution(-1, order, execution)
                    self._status(order, sim)
                    self._open_order(order, sim)
                else:
                    self._execution(-1, order, execution)
                    self._status(order, sim)
                    self._open_order(order, sim)
                    self.put(m.commission_report(execution.exec_id, execution.commission))
                self._position_changed(execution.symbol)
                self._children_status(order)
            case OrderCancelled(reason=reason):
                self._status(order, sim)
                if reason.startswith(CANCELS_TOLD):
                    self._error(order.order_id, 202, "Order Canceled - reason:")

    def stop_triggered(self, order: TwsOrder, sim: SimOrder) -> None:
        """``order``'s stop was reached: its status after what happened before."""
        self._drain()
        self._status(order, sim)

    def _children_status(self, parent: TwsOrder) -> None:
        # A parent's fill activates its children: each one's status, as it now stands.
        for order in self.server.children_of(parent):
            sim = self.server.engine.orders.get(order.ref)
            if sim is not None and not sim.done:
                self._status(order, sim)

    def _status_text(self, sim: SimOrder) -> str:
        if _filled(sim):
            return "Filled"
        if sim.done:
            return "Cancelled"
        # Held by the venue until something happens: a condition, a stop not reached, a
        # child's parent not filled (IB's simulated orders are PreSubmitted).
        return "PreSubmitted" if sim.armed or sim.stopped or sim.held else "Submitted"

    def _order_state(self, order: TwsOrder, sim: SimOrder) -> None:
        self._open_order(order, sim)
        self._status(order, sim)

    def _open_order(self, order: TwsOrder, sim: SimOrder) -> None:
        state = WireOrderState(status=self._status_text(sim))
        wire = order.wire
        if wire.total_quantity != sim.quantity:
            # The venue changed it (an OCA sibling's fill reduced it): TWS shows the order as
            # it now stands.
            wire = attrs.evolve(wire, total_quantity=Decimal(sim.quantity))
        self.put(
            open_order_fields(
                wire,
                state,
                client_id=order.client_id,
                perm_id=sim.perm_id,
                server_version=self.version,
            )
        )

    def _status(self, order: TwsOrder, sim: SimOrder) -> None:
        executions = self.server.engine.executions_of(order.ref)
        filled = sum(e.quantity for e in executions)
        value = sum((e.price * e.quantity for e in executions), Decimal(0))
        self.put(
            m.order_status(
                order_id=order.order_id,
                status=self._status_text(sim),
                filled=Decimal(filled),
                remaining=Decimal(sim.quantity - filled) if not sim.done else Decimal(0),
                average_price=value / filled if filled else Decimal(0),
                perm_id=sim.perm_id,
                last_fill_price=executions[-1].price if executions else Decimal(0),
                client_id=order.client_id,
                parent_id=order.wire.parent_id,
            )
        )

    def _position_changed(self, symbol: str) -> None:
        for session in list(self.server.sessions.values()):
            instrument = self.server.instrument_of(symbol)
            position = self.server.engine.positions.get(symbol)
            if instrument is None or position is None:
                continue
            if session.positions_subscribed:
                session.put(
                    m.position(
                        self.server.account,
                        instrument,
                        Decimal(position.quantity),
                        position.average_cost,
                    )
                )
            if session.account_subscribed:
                session._account_snapshot()


def _version_range(hello: list[str]) -> tuple[int, int]:
    text = hello[0] if hello else ""
    spec = text.split(" ", 1)[0]
    if not spec.startswith("v") or ".." not in spec:
        raise ProtocolError(f"handshake: expected 'vMIN..MAX', got {text!r}")
    low, _, high = spec[1:].partition("..")
    try:
        return int(low), int(high)
    except ValueError:
        raise ProtocolError(f"handshake: expected 'vMIN..MAX', got {text!r}") from None


def _expect(fields: list[str], name: str, count: int) -> None:
    f = Fields(name, fields, 1)
    f.skip(count - 1)
    f.done()


def _domain_order(
    ref: str,
    wire: WireOrder,
    instrument: Instrument,
    *,
    parent: str | None = None,
    oca: str | None = None,
) -> PlaceOrder:
    condition = None
    if len(wire.conditions) == 1:
        (first,) = wire.conditions
        condition = PriceCondition(trigger=first.price(), is_more=bool(first.is_more))
    return PlaceOrder(
        ref=ref,
        symbol=instrument.symbol,
        side=Side.BUY if wire.action == "BUY" else Side.SELL,
        quantity=int(wire.total_quantity),
        limit=wire.lmt_price if wire.order_type in LIMITED else None,
        tif=TimeInForce(wire.tif or "DAY"),  # an unset tif is DAY, as at IB
        outside_rth=wire.outside_rth,
        condition=condition,
        stop=wire.aux_price if wire.order_type in STOPPED else None,
        parent=parent,
        oca=oca,
    )


def _filled(sim: SimOrder) -> bool:
    # Filled whole: an OCA sibling's fill reducing an order to nothing cancels it instead.
    return 0 < sim.quantity <= sim.filled


def _oca(wire: WireOrder, parent: str | None) -> tuple[str | None, int]:
    # The engine's OCA group and type: the order's own group (ocaType 0, unset, is taken as
    # 1), else, for a bracket's child, its parent's children together (IB makes a bracket's
    # exits one OCA group, reduced as one of them fills: type 2).
    if wire.oca_group:
        return wire.oca_group, wire.oca_type or 1
    if parent is not None:
        return f"{BRACKET_OCA_PREFIX}{parent}", 2
    return None, 2


def _option_of(symbol: str) -> OptionContract | None:
    # At the engine an option is named by its OCC symbol.
    try:
        return OptionContract.from_local_symbol(symbol)
    except OptionError:
        return None


_HANDLERS: dict[int, Callable[[Session, list[str]], Any]] = {
    71: Session.start_api,
    61: Session.req_positions,
    64: Session.cancel_positions,
    5: Session.req_open_orders,
    16: Session.req_all_open_orders,
    15: Session.req_auto_open_orders,
    99: Session.req_completed_orders,
    6: Session.req_account_updates,
    76: Session.req_account_updates_multi,
    77: Session.cancel_account_updates_multi,
    62: Session.req_account_summary,
    63: Session.cancel_account_summary,
    7: Session.req_executions,
    9: Session.req_contract_details,
    59: Session.req_market_data_type,
    1: Session.req_mkt_data,
    20: Session.req_historical_data,
    78: Session.req_sec_def_opt_params,
    2: Session.cancel_mkt_data,
    8: Session.req_ids,
    49: Session.req_current_time,
    58: Session.req_global_cancel,
    3: Session.place_order,
    4: Session.cancel_order,
}
