"""The broker port onto the in-process sim venue (``sim.engine.Engine``) through one
``sim.link.Link``, where delivery faults (lost, late, doubled, reordered events) happen.

The engine matches on the replay's trades; the market data side feeds them with ``trade``.

A bracket (``place_bracket``) is sent leg by leg, as IB's client sends one (the last leg
transmits), and the venue holds it as one: if a leg is rejected, or the connection drops before
the last leg is sent, the legs already placed are cancelled at the venue, as a venue discards a
bracket whose last leg never arrived. Nothing of a bracket keeps working half-placed.

``SimOptionData`` answers the options bot's ``actors.option_data.OptionData`` from the same
engine, as the venue's TWS face would.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

import anyio

from sim.engine import Engine
from sim.link import Link, VenueDisconnected
from sim.options import OptionChain as SimChain
from sim.options import OptionContract, OptionError
from sim.tws.listing import Listing, held_options, listed_chain, reference_price
from sim.tws.server import STARTING_CASH

from ..domain import (
    BrokerEvent,
    BrokerExecution,
    BrokerOrder,
    BrokerPosition,
    BrokerSnapshot,
    ModifyOrder,
    OptionChain,
    OptionQuote,
    OrderRejected,
    PlaceBracket,
    PlaceOrder,
    Side,
    Trade,
)
from ..option_data import ChainCache, OptionDataError

_CENT = Decimal("0.01")


class SimPort:
    def __init__(self, engine: Engine, start: datetime, *, name: str = "sim") -> None:
        self.engine = engine
        self.now = engine.last_trade_at or start
        """The venue's time: that of the last trade."""
        self.link = Link(engine, name)

    def trade(self, trade: Trade) -> None:
        self.now = trade.at
        self.engine.on_trade(trade.symbol, trade.price, trade.size, trade.at)

    def prints(
        self, symbol: str, first: Decimal, first_at: datetime, last: Decimal, last_at: datetime
    ) -> bool:
        """Trades that can reach no order, taken at once (``Engine.prints``; False: none
        taken, each must be a ``trade``)."""
        if not self.engine.prints(symbol, first, first_at, last, last_at):
            return False
        self.now = last_at
        return True

    async def connect(self) -> None:
        if not self.link.connected:
            self.link.connect()

    async def place(self, order: PlaceOrder) -> list[BrokerEvent]:
        self.link.require()
        self.engine.place(order, self.now)
        return self.link.take()

    async def place_bracket(self, bracket: PlaceBracket) -> list[BrokerEvent]:
        """Place the legs in order; on a rejected leg, cancel the legs placed before it and
        answer for the legs not sent (``OrderRejected`` naming the rejected leg), so every
        leg's intent gets an answer. ``VenueDisconnected`` if the link drops before the last
        leg: the placed legs are cancelled at the venue first. (Once the last leg is placed the
        bracket is whole: a link that drops on its acknowledgement loses events, not legs.)"""
        placed: list[str] = []
        legs = bracket.legs
        for number, leg in enumerate(legs):
            try:
                self.link.require()
            except VenueDisconnected:
                self._discard(placed, f"bracket {bracket.entry.ref}: the connection dropped")
                raise
            if self.engine.place(leg, self.now) is None:
                self._discard(placed, f"bracket {bracket.entry.ref}: leg {leg.ref} rejected")
                events = self.link.take()
                events += [
                    OrderRejected(
                        ref=unsent.ref,
                        reason=f"bracket {bracket.entry.ref}: not sent, leg {leg.ref} was rejected",
                    )
                    for unsent in legs[number + 1 :]
                ]
                return events
            placed.append(leg.ref)
        return self.link.take()

    def _discard(self, refs: list[str], reason: str) -> None:
        # The entry first: its cancel takes its (unfilled) children along.
        for ref in refs:
            if not self.engine.orders[ref].done:
                self.engine.cancel(ref, reason)

    async def modify(self, change: ModifyOrder) -> list[BrokerEvent]:
        """Modify at the venue; a ref the venue does not know is refused (``OrderRejected``,
        code 104) without reaching it."""
        self.link.require()
        if change.ref not in self.engine.orders:
            return [
                *self.link.take(),
                OrderRejected(ref=change.ref, reason=f"no order {change.ref} to modify", code=104),
            ]
        self.engine.modify(
            change.ref, quantity=change.quantity, limit=change.limit, stop=change.stop
        )
        return self.link.take()

    async def cancel(self, ref: str) -> list[BrokerEvent]:
        self.link.require()
        order = self.engine.orders.get(ref)
        if order is not None and not order.done:
            self.engine.cancel(ref, "cancelled by request")
        return self.link.take()

    async def poll(self) -> list[BrokerEvent]:
        return self.link.take()

    async def wait(self) -> None:
        # In-process, the replay feed polls after every trade (in lockstep or not): nothing
        # arrives on its own.
        await anyio.sleep_forever()

    async def snapshot(self) -> BrokerSnapshot:
        self.link.require()
        engine = self.engine
        return BrokerSnapshot(
            orders=tuple(
                BrokerOrder(
                    order=o.as_placed(),
                    filled=o.filled,
                    working=not o.done,
                    order_id=o.order_id,
                    perm_id=o.perm_id,
                )
                for o in engine.orders.values()
            ),
            executions=tuple(
                BrokerExecution(
                    ref=e.ref,
                    exec_id=e.exec_id,
                    symbol=e.symbol,
                    side=e.side,
                    quantity=e.quantity,
                    price=e.price,
                    commission=e.commission,
                )
                for e in engine.executions
            ),
            positions=tuple(
                BrokerPosition(symbol=s, quantity=p.quantity, average_cost=p.average_cost)
                for s, p in engine.positions.items()
            ),
        )

    async def close(self) -> None:
        """Nothing to release: the link belongs to the port, which outlives broker actors."""


class SimOptionData:
    """``actors.option_data.OptionData`` from the in-process sim venue: what its TWS face
    answers (``sim.tws``), without the socket, at ``clock``'s time (the venue's, as the face's
    clock).

    * ``chain``: the options the face lists today (``sim.tws.listing``: its weekly and monthly
      expiries, strikes around the underlying's first trade of the day), cached for the New
      York day; an underlying that has never traded lists none (``OptionDataError``).
    * ``quote``: ``Engine.option_quote`` of a listed option (or one with a working order or a
      position, as the face keeps them listed); an option the venue does not list raises
      ``OptionDataError``, as the face's error 200 does; no quote (expired since) has None
      fields.
    * ``equity``: the face's NetLiquidation (``sim.tws.server``), derived here from the engine
      as the face derives it, since the face keeps it to itself: its starting cash, plus what
      executions sold less what they bought and their commissions, plus the dividends the
      engine paid (which the face leaves out), plus the positions marked at the last trade (an
      option at its quoted last x 100), to the cent.
    """

    name = "sim"

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], datetime],
        *,
        listing: Listing | None = None,
        starting_cash: Decimal = STARTING_CASH,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.listing = listing if listing is not None else Listing()
        self.starting_cash = starting_cash
        self.chains = ChainCache(clock)

    def __repr__(self) -> str:
        return f"SimOptionData({self.listing})"

    async def chain(self, underlying: str) -> OptionChain:
        cached = self.chains.get(underlying)
        if cached is None:
            listed = self._listed(underlying, f"the option chain of {underlying}")
            cached = OptionChain(
                underlying=listed.underlying,
                exchange=listed.exchange,
                trading_class=listed.trading_class,
                multiplier=listed.multiplier,
                expirations=listed.expiries,
                strikes=listed.strikes,
            )
            self.chains.put(cached)
        return cached

    async def quote(self, symbol: str) -> OptionQuote:
        asked = f"a quote of {symbol!r}"
        try:
            contract = OptionContract.from_local_symbol(symbol)
        except OptionError as exc:
            raise OptionDataError(
                self.name, asked, f"not an option the venue lists: {exc}"
            ) from None
        if not await self._lists(contract):
            raise OptionDataError(self.name, asked, "the venue does not list it today")
        quote = self.engine.option_quote(contract, self.clock())
        if quote is None:
            return OptionQuote(symbol=contract.local_symbol, bid=None, ask=None)
        return OptionQuote(
            symbol=contract.local_symbol,
            bid=quote.bid,
            ask=quote.ask,
            last=quote.last,
            bid_size=quote.bid_size,
            ask_size=quote.ask_size,
            volume=quote.volume,
            open_interest=quote.open_interest,
            implied_vol=quote.implied_vol,
            delta=quote.delta,
            underlying_price=quote.underlying_price,
        )

    async def equity(self) -> Decimal:
        engine = self.engine
        cash = self.starting_cash
        for execution in engine.executions:
            value = execution.value  # x 100 for an option
            cash += -value if execution.side is Side.BUY else value
            cash -= execution.commission
        cash += sum((d.cash for d in engine.dividends), Decimal(0))
        now = self.clock()
        gross = sum(
            (
                Decimal(p.quantity) * self._mark(s, p.average_cost, now)
                for s, p in engine.positions.items()
            ),
            Decimal(0),
        )
        return (cash + gross).quantize(_CENT)

    def _mark(self, symbol: str, average_cost: Decimal, now: datetime) -> Decimal:
        # The face's mark: a stock's last trade, an option's quoted last x its multiplier,
        # the average cost (per unit, IB's) when there is neither.
        contract = self.engine.option_of(symbol)
        if contract is None:
            return self.engine.last.get(symbol, average_cost)
        quote = self.engine.option_quote(contract, now)
        return quote.last * contract.multiplier if quote is not None else average_cost

    def _listed(self, underlying: str, asked: str) -> SimChain:
        today = self.chains.today()
        engine = self.engine
        reference = reference_price(today, engine.opens, engine.last, underlying)
        if reference is None:
            raise OptionDataError(self.name, asked, f"{underlying} has never traded at the venue")
        try:
            return listed_chain(underlying, reference, today, self.listing)
        except OptionError as exc:
            raise OptionDataError(self.name, asked, f"no options listed: {exc}") from None

    async def _lists(self, contract: OptionContract) -> bool:
        # Today's chain lists it, or it has a working order or an open position (kept listed
        # until it expires), as at the face.
        engine = self.engine
        if contract.underlying in engine.last:
            chain = await self.chain(contract.underlying)
            if contract.expiry in chain.expirations and contract.strike in chain.strikes:
                return True
        symbols = [o.symbol for o in engine.orders.values() if not o.done]
        symbols += [s for s, p in engine.positions.items() if p.quantity]
        return contract.con_id in held_options(symbols, self.chains.today())
