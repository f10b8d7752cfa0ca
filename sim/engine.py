"""The simulated exchange: one matching engine for every face of the sim venue.

Orders are matched against the trades of a replay (``on_trade``): a marketable order fills at
the trade price, limited by the trade's size, shared first come first served. Rules:

* LMT buys fill at trades <= limit, sells at trades >= limit; MKT at any trade.
* A PriceCondition (last <= trigger, or >= with ``is_more``) holds the order inactive until a
  trade meets it; the order then works as an ordinary order from that trade on.
* STP and STP LMT (``PlaceOrder.stop``): inactive until a trade reaches the stop (a sell's at or
  below it, a buy's at or above: IB's default trigger on the last price for stocks), in a
  session the order may trade in; from that trade on it works as a market order (STP) or a
  limit order at its ``limit`` (STP LMT), so the triggering trade itself may fill it.
* Children (``PlaceOrder.parent``, IB's parentId): the parent must be working. A child is
  accepted but inactive until its parent's first execution (it works from the next trade on),
  and then for at most what its parent has filled, less what it and its OCA siblings of the
  same parent have filled already: a partly filled entry is protected for its filled part and
  the exits never sell more than it bought. A parent cancelled or expired with nothing filled
  cancels its children; after a partial fill they stay.
* OCA groups (``PlaceOrder.oca``) by IB's ocaType (``place(oca_type=)``, the filled order's
  type ruling): 2 (reduce with block, the default) reduces every other working order of the
  group by an execution's quantity in the same step (re-acknowledged with ``OrderAccepted``,
  or ``OrderCancelled`` when nothing remains), so the group never fills more than its largest
  order, even when one trade reaches two of them; 1 (cancel with block) cancels the others at
  an execution, in the same step; 3 (reduce without block) reduces them once the step (the
  input) is over, so a sibling the same trade or quote reaches fills too (an overfill, as at
  IB). The execution's ``OrderFilled`` always comes before its siblings' events. A cancel is
  an input like a trade: it takes effect where it comes among them.
* Stop trigger methods (``place(trigger_method=)``, IB's): on a stock every method uses the
  last trade, the double ones (1, 3) two consecutive trades reaching the stop (the engine has
  no stock bid/ask); on an option 0 and 1 are double bid/ask (a sell stop on two consecutive
  bids at or below it, a buy stop on asks at or above it), 2 the quote's last, 3 double last,
  4 one bid/ask, 7 last or bid/ask, 8 the midpoint.
* Options (an OCC symbol, ``is_option_symbol``; docs/options-venue.md): matched against their
  own quote (``option_quote``), re-quoted at every trade of the underlying after its own
  orders, in the regular session only (whatever ``outside_rth`` says): a buy at the ask up to
  the ask size, a sell at the bid up to the bid size (never at a zero bid), the sizes shared
  first come first served; 100 shares a contract (``Execution.multiplier``), $0.65 a contract
  and at least $1.00 an order in commissions. At the close of the expiration day (16:00 New
  York, at the first input at or after it: a trade, a placing, ``advance``) working orders on
  the option are cancelled ("expired") and positions settle against the underlying's last
  trade: exercised or assigned into shares at the strike when in the money by $0.01 or more,
  worthless otherwise (``sim.options.settlement``; ``settlement_listeners``).
* Sessions (``actors.domain.sessions``): nothing fills while closed; outside the regular
  session only ``outside_rth`` orders fill (never options). DAY orders expire at the end of
  their trading day.
* IBKR fixed commissions: $0.005 a share, at least $1.00 and at most 1% of the value per order
  (charged as the order fills).
* Backtest costs (``Engine(slippage_bps=, participation=)``, off by default): a market order
  fills ``slippage_bps`` worse than the trade's price (limits at it), and a volume cap lets our
  orders take only ``participation`` of each stock trade's size, so a big order fills over
  several trades.
* Every execution has a unique execId; positions keep an average cost (IB's: per share, per
  contract for an option, the entry price of a short).
* Corporate actions of a stock (``corporate_action``, at the start of the ex-date): a split
  rescales the position, the working orders (re-acknowledged) and the executions so far, as
  the ledger does (``actors.domain.split_order``); a dividend is paid on the shares held
  (``dividends``).

Events go to listeners as the domain's broker events (``OrderAccepted``, ``OrderFilled``,
``OrderCancelled``, ``OrderRejected``). Fault hooks: ``reject_next`` and ``duplicate_next_fill``;
``restart`` is the venue's nightly restart (DAY orders cancelled, connections dropped through
``on_restart``). Delivery faults (lost, delayed, reordered notifications) belong to the
connection, ``sim.link.Link``.

**Inputs.** The engine is deterministic given its inputs: the calls ``place``, ``modify``,
``cancel``, ``on_trade``, ``advance``, ``corporate_action``, ``restart``, ``reject_next`` and
``duplicate_next_fill``.
Each is also a record (``Input``), handed to ``recorder`` before it takes effect and replayed with
``apply``; ``sim.journal`` uses that to keep the books on disk. A call the engine refuses with
``EngineError`` (an unknown order, a naive time) is refused before it is recorded.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, assert_never

import attrs
import msgspec

from actors.domain import (
    BrokerEvent,
    CorporateAction,
    Dividend,
    DomainError,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PriceCondition,
    Side,
    Split,
    TimeInForce,
    check_ratio,
    split_condition,
    split_order_price,
    split_price,
    split_shares,
)
from actors.domain.sessions import NEW_YORK, Session, session_at

from .options import (
    OptionContract,
    OptionError,
    OptionQuote,
    Outcome,
    PricingParams,
    expiry_close,
    quote_option,
    settle,
)

PER_SHARE = Decimal("0.005")
MINIMUM = Decimal("1.00")
MAXIMUM_RATE = Decimal("0.01")
PER_CONTRACT = Decimal("0.65")
"""IBKR fixed for US options: $0.65 a contract, at least ``MINIMUM`` an order."""
CENT = Decimal("0.01")
_SLIPPED = Decimal("0.0001")
OCC_LENGTH = 21
OCA_TYPES = (1, 2, 3)
TRIGGER_METHODS = (0, 1, 2, 3, 4, 7, 8)
_OUTCOMES = frozenset(outcome.value for outcome in Outcome)
_DOUBLE = frozenset({0, 1, 3})
"""Trigger methods that need two consecutive prices beyond the stop (0 only for options)."""


class EngineError(ValueError):
    """Raised for a call the engine cannot serve (an unknown order, a naive time); says which."""


@attrs.define(kw_only=True)
class SimOrder:
    ref: str
    order_id: int
    perm_id: int
    symbol: str
    side: Side
    quantity: int
    limit: Decimal | None
    tif: TimeInForce
    outside_rth: bool
    condition: PriceCondition | None
    trading_day: date
    chain: tuple[tuple[str, PriceCondition], ...] = ()
    """Several price conditions, each with the conjunction ('a' and, 'o' or) that links it to
    the next; used instead of ``condition`` when given (the TWS face's orders)."""
    stop: Decimal | None = None
    parent: str | None = None
    oca: str | None = None
    oca_type: int = 2
    """IB's ocaType: 1 cancel the others (with block), 2 reduce them (with block), 3 reduce
    them without block."""
    trigger_method: int = 0
    """IB's triggerMethod for a stop: 0 default (last for stocks, double bid/ask for
    options), 1 double bid/ask, 2 last, 3 double last, 4 bid/ask, 7 last or bid/ask, 8
    mid-point."""
    hits: int = 0
    """Consecutive prices (trades, or an option's quotes) that reached the stop: a double
    trigger method fires on the second."""
    filled: int = 0
    value: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    active: bool = True
    """False while the order waits (for its condition, its stop, its parent) and once finished."""
    armed: bool = False
    """Waiting for its price condition (``condition`` or ``chain``)."""
    triggered: bool = False
    """A stop order whose stop a trade has reached: it works as a market or limit order."""
    held: bool = False
    """A child waiting for its parent's first execution."""
    done: bool = False
    tag: str = ""

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled

    @property
    def stopped(self) -> bool:
        """A stop order still waiting for a trade to reach its stop."""
        return self.stop is not None and not self.triggered

    def as_placed(self) -> PlaceOrder:
        """The order as it stands (quantity, limit and stop as last modified or reduced), in
        the vocabulary's terms: what a face reports as an open order."""
        return PlaceOrder(
            ref=self.ref,
            symbol=self.symbol,
            side=self.side,
            quantity=self.quantity,
            limit=self.limit,
            tif=self.tif,
            outside_rth=self.outside_rth,
            condition=self.condition,
            stop=self.stop,
            parent=self.parent,
            oca=self.oca,
        )


@attrs.frozen(kw_only=True)
class Execution:
    exec_id: str
    order_id: int
    ref: str
    symbol: str
    side: Side
    quantity: int
    price: Decimal
    commission: Decimal
    time: datetime
    multiplier: int = 1
    """Shares per unit: 1 for a stock, 100 for an option (its price is per share)."""

    @property
    def settles(self) -> bool:
        """Whether it is a leg of an option's settlement at expiry (no order made it: order
        id 0, ref ``exercise:``, ``assignment:`` or ``expiry:`` and the OCC symbol)."""
        return self.order_id == 0 and self.ref.partition(":")[0] in _OUTCOMES

    @property
    def value(self) -> Decimal:
        """What changed hands: price x quantity x multiplier."""
        return self.price * self.quantity * self.multiplier


@attrs.frozen(kw_only=True)
class DividendPaid:
    """A dividend the venue paid (``Engine.corporate_action``): ``shares`` held at the close
    before ``ex_date`` (negative: a short, who pays it)."""

    symbol: str
    ex_date: date
    shares: int
    amount_per_share: Decimal

    @property
    def cash(self) -> Decimal:
        return self.amount_per_share * self.shares


@attrs.define
class Position:
    """``quantity`` units (shares, or option contracts), negative when short; ``cost`` is the
    signed cost of them (price x multiplier each), so ``average_cost`` is IB's: per share for
    a stock, per contract (price x 100) for an option, positive for a long or a short."""

    quantity: int = 0
    cost: Decimal = Decimal(0)

    @property
    def average_cost(self) -> Decimal:
        return self.cost / self.quantity if self.quantity else Decimal(0)


# The engine's inputs as records, one per public input method. Compact on the wire (sim.journal):
# a JSON array led by the tag, Decimals as strings, times as ISO 8601 with their UTC offset.
Aware = Annotated[datetime, msgspec.Meta(tz=True)]


class _Input(
    msgspec.Struct, frozen=True, array_like=True, forbid_unknown_fields=True, omit_defaults=True
):
    pass


class Place(_Input, frozen=True, tag="place"):
    order: PlaceOrder
    at: Aware
    tag: str = ""
    chain: tuple[tuple[str, PriceCondition], ...] = ()
    oca_type: int = 2
    trigger_method: int = 0
    """Trailing, with defaults: a journal written before them decodes (a shorter array)."""


class Modify(_Input, frozen=True, tag="modify"):
    ref: str
    quantity: int
    limit: Decimal | None
    stop: Decimal | None = None
    """Trailing, with a default: a journal written before stops decodes (a shorter array)."""


class Cancel(_Input, frozen=True, tag="cancel"):
    ref: str
    reason: str


class OnTrade(_Input, frozen=True, tag="trade"):
    symbol: str
    price: Decimal
    size: int
    at: Aware


class Restart(_Input, frozen=True, tag="restart"):
    reason: str


class RejectNext(_Input, frozen=True, tag="reject_next"):
    reason: str


class DuplicateNextFill(_Input, frozen=True, tag="duplicate_next_fill"):
    pass


class Advance(_Input, frozen=True, tag="advance"):
    at: Aware


class SplitShares(_Input, frozen=True, tag="split"):
    symbol: str
    ex_date: date
    ratio: Decimal


class PayDividend(_Input, frozen=True, tag="dividend"):
    symbol: str
    ex_date: date
    amount_per_share: Decimal


Input = (
    Place
    | Modify
    | Cancel
    | OnTrade
    | Restart
    | RejectNext
    | DuplicateNextFill
    | Advance
    | SplitShares
    | PayDividend
)
"""One call into the engine, as data."""

Listener = Callable[[BrokerEvent], None]
Recorder = Callable[[Input], None]


class Engine:
    def __init__(
        self,
        *,
        first_order_id: int = 1,
        recorder: Recorder | None = None,
        options: PricingParams | None = None,
        slippage_bps: Decimal = Decimal(0),
        participation: Decimal | None = None,
    ) -> None:
        if not Decimal(0) <= slippage_bps <= Decimal(1000):
            raise EngineError(f"slippage_bps must be between 0 and 1000, got {slippage_bps}")
        if participation is not None and not Decimal(0) < participation <= Decimal(1):
            raise EngineError(f"participation must be above 0 and at most 1, got {participation}")
        self.slippage = slippage_bps / Decimal(10_000)
        """A backtest's cost of a market order: a buy fills this fraction above the trade's
        price, a sell below it (to 0.0001). Limit orders fill at the trade's price."""
        self.participation = participation
        """A backtest's volume cap: the share of each stock trade's size our orders may take
        together (whole shares, rounded down); None: all of it."""
        self.options = options if options is not None else PricingParams()
        """How the venue prices the options it lists (``sim.options.pricing``)."""
        self.opens: dict[str, tuple[date, Decimal]] = {}
        """Each symbol's first trade of its latest (New York) trading day: the reference
        option quotes draw their volume and open interest around."""
        self.first_order_id = first_order_id
        self.next_order_id = first_order_id
        self.next_perm_id = 1_000_001
        self.next_exec_seq = 1
        self.orders: dict[str, SimOrder] = {}
        self.executions: list[Execution] = []
        self._executions_of: dict[str, list[Execution]] = {}
        self.positions: dict[str, Position] = {}
        self.dividends: list[DividendPaid] = []
        """The dividends paid, in order (``corporate_action``)."""
        self.applied: set[str] = set()
        """The corporate actions applied, by id."""
        self.last: dict[str, Decimal] = {}
        self.last_trade_at: datetime | None = None
        """The (New York) time of the last trade seen: a replay resumes after it."""
        self.last_trade_given: datetime | None = None
        """The same moment as its caller gave it (a replay's UTC): a cheap dictionary key,
        where a New York time's hash asks its time zone for the offset."""
        self.listeners: list[Listener] = []
        self.trade_listeners: list[Callable[[str, Decimal, int, datetime], None]] = []
        """Told of every trade (symbol, price, size, New York time) after it was matched:
        the market data the venue's faces stream."""
        self.on_restart: list[Callable[[], None]] = []
        """Called after a ``restart``: the connections to the venue drop."""
        self.recorder = recorder
        """Given every input before it takes effect; if it raises, the input is not applied."""
        self.durable: Callable[[], None] | None = None
        """Called before any event leaves the venue: what the recorder holds must be durable
        by then (``sim.journal`` fsyncs), as a real broker's books are before it tells."""
        self._reject_next: str | None = None
        self._duplicate_next = False
        self._books: dict[str, _Book] = {}
        self._day: dict[str, SimOrder] = {}
        """Working DAY orders: what ``_expire_day_orders`` looks at."""
        self._seq: dict[str, int] = {}
        """Each ref's place in ``orders`` (a re-placed ref keeps its first place, as a dict
        key does): the order in which a trade serves the orders it reaches."""
        self._groups: dict[str, list[SimOrder]] = {}
        """Each OCA group's working orders, in placing order."""
        self._parents: dict[int, SimOrder] = {}
        self._children: dict[int, list[SimOrder]] = {}
        """A child's parent and a parent's children (every one, finished or not), by order id:
        unique to one placing, where a ref may be placed again once finished."""
        self.settlement_listeners: list[Callable[[Execution], None]] = []
        """Told of every execution of an option's expiry (after ``listeners`` heard of the
        cancels of its working orders): the option leg and, exercised or assigned, the stock
        leg, refs ``expiry:``, ``exercise:`` or ``assignment:`` and the OCC symbol. No
        ``OrderFilled`` is emitted for them: no order of anyone's made them."""
        self._contracts: dict[str, OptionContract] = {}
        """The options ordered or held and not yet settled, by OCC symbol."""
        self._quoted: dict[str, set[str]] = {}
        """Each underlying's options with working orders: what its trades re-quote."""
        self._pending: list[tuple[str, SimOrder, int]] = []
        """Executions of ocaType 3 orders whose siblings are reduced at the end of the step."""

    def apply(self, entry: Input) -> None:
        """Make the call ``entry`` records (recording it again, if there is a recorder)."""
        match entry:
            case Place(
                order=order,
                at=at,
                tag=tag,
                chain=chain,
                oca_type=oca_type,
                trigger_method=trigger_method,
            ):
                self.place(
                    order,
                    at,
                    tag=tag,
                    chain=chain,
                    oca_type=oca_type,
                    trigger_method=trigger_method,
                )
            case Modify(ref=ref, quantity=quantity, limit=limit, stop=stop):
                self.modify(ref, quantity=quantity, limit=limit, stop=stop)
            case Cancel(ref=ref, reason=reason):
                self.cancel(ref, reason)
            case OnTrade(symbol=symbol, price=price, size=size, at=at):
                self.on_trade(symbol, price, size, at)
            case Restart(reason=reason):
                self.restart(reason)
            case RejectNext(reason=reason):
                self.reject_next(reason)
            case DuplicateNextFill():
                self.duplicate_next_fill()
            case Advance(at=at):
                self.advance(at)
            case SplitShares(symbol=symbol, ex_date=ex_date, ratio=ratio):
                self.corporate_action(Split(symbol=symbol, ex_date=ex_date, ratio=ratio))
            case PayDividend(symbol=symbol, ex_date=ex_date, amount_per_share=amount):
                self.corporate_action(
                    Dividend(symbol=symbol, ex_date=ex_date, amount_per_share=amount)
                )
            case _:
                assert_never(entry)

    # -- orders -------------------------------------------------------------------------------

    def place(
        self,
        order: PlaceOrder,
        at: datetime,
        *,
        tag: str = "",
        chain: tuple[tuple[str, PriceCondition], ...] = (),
        oca_type: int = 2,
        trigger_method: int = 0,
    ) -> SimOrder | None:
        """Accept (or reject) an order; it works from the next trade on. ``tag`` is the
        face's own note about the order (the TWS face keeps its client and order ids there),
        kept with it and in the journal. A child (``order.parent``) is rejected unless its
        parent is working."""
        local = _local(at)
        self._record(
            Place(
                order=order,
                at=local,
                tag=tag,
                chain=chain,
                oca_type=oca_type,
                trigger_method=trigger_method,
            )
        )
        if self._contracts:
            self._settle(local)
        problem = self._reject_next or _invalid(order, oca_type, trigger_method)
        contract = None
        if problem is None and is_option_symbol(order.symbol):
            contract, problem = _option_problem(order, local, chain)
        if problem is None and order.ref in self.orders and not self.orders[order.ref].done:
            problem = f"duplicate orderRef {order.ref} is still working"
        parent = self.orders.get(order.parent) if order.parent is not None else None
        if problem is None and order.parent is not None and (parent is None or parent.done):
            state = "unknown" if parent is None else "no longer working"
            problem = f"parent order {order.parent} of {order.ref} is {state}"
        if problem is not None:
            self._reject_next = None
            self._emit(OrderRejected(ref=order.ref, reason=problem, code=201))
            return None
        sim = SimOrder(
            ref=order.ref,
            order_id=self.next_order_id,
            perm_id=self.next_perm_id,
            symbol=order.symbol,
            side=order.side,
            quantity=order.quantity,
            limit=order.limit,
            tif=order.tif,
            outside_rth=order.outside_rth,
            condition=order.condition,
            trading_day=local.date(),
            chain=chain,
            stop=order.stop,
            parent=order.parent,
            oca=order.oca,
            oca_type=oca_type,
            trigger_method=trigger_method,
            armed=order.condition is not None or bool(chain),
            held=parent is not None and parent.filled == 0,
            tag=tag,
        )
        sim.active = not (sim.armed or sim.stopped or sim.held)
        if contract is not None:
            self._contracts.setdefault(sim.symbol, contract)
        if parent is not None:
            self._parents[sim.order_id] = parent
            self._children.setdefault(parent.order_id, []).append(sim)
        if sim.oca is not None:
            self._groups.setdefault(sim.oca, []).append(sim)
        self.next_order_id += 1
        self.next_perm_id += 1
        self.orders[order.ref] = sim
        self._seq.setdefault(order.ref, len(self._seq))
        self._index(sim)
        self._emit(OrderAccepted(ref=sim.ref, order_id=sim.order_id, perm_id=sim.perm_id))
        return sim

    def modify(
        self, ref: str, *, quantity: int, limit: Decimal | None, stop: Decimal | None = None
    ) -> None:
        """Change a working order's quantity, limit and stop (IB's modify: a placeOrder with
        the same id). Refused (``OrderRejected``, the order unchanged) for a finished order, a
        quantity below what already filled, a market order given a limit, a stop given to an
        order without one or taken from one that has it, or a child's quantity above its
        parent's; re-acknowledged otherwise. A triggered stop keeps working whatever its new
        stop."""
        order = self.orders.get(ref)
        if order is None:
            raise EngineError(f"no order {ref!r} to modify")
        self._record(Modify(ref=ref, quantity=quantity, limit=limit, stop=stop))
        parent = self._parents.get(order.order_id)
        problem = None
        if order.done:
            problem = f"{ref} is no longer working"
        elif quantity < order.filled or quantity <= 0:
            problem = f"quantity {quantity} is below the {order.filled} already filled"
        elif (limit is None) != (order.limit is None) or (limit is not None and limit <= 0):
            problem = f"cannot change the limit of {ref} to {limit}"
        elif (stop is None) != (order.stop is None) or (stop is not None and stop <= 0):
            problem = f"cannot change the stop of {ref} to {stop}"
        elif parent is not None and quantity > parent.quantity:
            problem = (
                f"quantity {quantity} of {ref} is above the {parent.quantity} of its parent "
                f"{parent.ref}"
            )
        if problem is not None:
            self._emit(OrderRejected(ref=ref, reason=problem, code=104))
            return
        if stop != order.stop:
            order.hits = 0  # a double trigger counts the prices reaching the new stop
        order.quantity = quantity
        order.limit = limit
        order.stop = stop
        if order.filled >= order.quantity:
            order.done = True
            order.active = False
        self._index(order)
        self._emit(OrderAccepted(ref=ref, order_id=order.order_id, perm_id=order.perm_id))

    def cancel(self, ref: str, reason: str = "cancelled") -> None:
        order = self.orders.get(ref)
        if order is None:
            raise EngineError(f"no order {ref!r} to cancel")
        self._record(Cancel(ref=ref, reason=reason))
        if not order.done:
            self._finish(order, reason)

    def open_orders(self) -> list[SimOrder]:
        return [order for order in self.orders.values() if not order.done]

    def executions_of(self, ref: str) -> list[Execution]:
        """The executions of the orders placed with ``ref``, oldest first (those of ``executions``
        whose ref it is, without a scan of them all)."""
        return self._executions_of.get(ref, [])

    def reached(self, symbol: str, price: Decimal) -> list[SimOrder]:
        """The working orders a trade of ``symbol`` at ``price`` may fill or trigger, in
        ``orders`` order: every armed one and every stop not yet triggered (their conditions
        and stops are checked at each trade) and those marketable at that price; never a child
        still held for its parent. A lookup in the symbol's book, not a scan of every order."""
        book = self._books.get(symbol)
        return book.reached(self._seq, buy_at=price, sell_at=price) if book is not None else []

    def option_of(self, symbol: str) -> OptionContract | None:
        """The option an OCC symbol names, if it is one the venue lists (None for a stock)."""
        if not is_option_symbol(symbol):
            return None
        known = self._contracts.get(symbol)
        if known is not None:
            return known
        try:
            return OptionContract.from_local_symbol(symbol)
        except OptionError:
            return None

    def option_quote(self, contract: OptionContract, at: datetime) -> OptionQuote | None:
        """The venue's quote of ``contract`` at ``at``: priced from its underlying's last
        trade (``sim.options.quote_option`` with ``options``), its volume and open interest
        drawn around the underlying's first trade of the day. None before the underlying has
        traded or once the option has expired."""
        last = self.last.get(contract.underlying)
        if last is None:
            return None
        opened = self.opens.get(contract.underlying)
        try:
            return quote_option(
                contract,
                last,
                _local(at),
                self.options,
                reference=opened[1] if opened is not None else None,
            )
        except OptionError:
            return None

    # -- market -------------------------------------------------------------------------------

    def on_trade(self, symbol: str, price: Decimal, size: int, at: datetime) -> None:
        """A trade printed: settle the options expired before it, expire, trigger and fill
        what it reaches; then re-quote the options of ``symbol`` that have working orders and
        match them against their quotes (``option_quote``)."""
        local = _local(at)
        if len(symbol) == OCC_LENGTH and is_option_symbol(symbol):
            raise EngineError(
                f"a trade of the option {symbol!r}: options trade against their quotes, made "
                "from their underlying's trades, not against prints of their own"
            )
        self._record(OnTrade(symbol=symbol, price=price, size=size, at=local))
        if self._contracts:
            self._settle(local)
        self.last[symbol] = price
        self.last_trade_at = local
        self.last_trade_given = at
        if self.opens.get(symbol, (None,))[0] != local.date():
            self.opens[symbol] = (local.date(), price)
        self._expire_day_orders(local)
        session = session_at(local)
        if not session.trading:
            return
        available = size if self.participation is None else int(size * self.participation)
        for order in self.reached(symbol, price):
            if order.done:
                # Finished during this trade: an OCA sibling's fill reduced it away.
                continue
            if order.armed:
                met = (
                    _chain_met(order.chain, price)
                    if order.chain
                    else _condition_met(order.condition, price)
                )
                if not met:
                    continue
                order.armed = False
                order.active = not order.stopped
                self._index(order)
            may_trade = session is Session.REGULAR or order.outside_rth
            if order.stopped:
                if not may_trade or not _hit(order, _stop_reached(order, price), stock=True):
                    continue
                order.triggered = True
                order.active = True
                self._index(order)
            if available <= 0 or not may_trade or not _marketable(order, price):
                continue
            quantity = min(order.remaining, available, self._cover(order))
            if quantity <= 0:
                continue
            available -= quantity
            filled_at = price
            if self.slippage and order.limit is None:
                slip = self.slippage if order.side is Side.BUY else -self.slippage
                filled_at = (price * (1 + slip)).quantize(_SLIPPED, rounding=ROUND_HALF_UP)
            self._fill(order, quantity, filled_at, local)
        quoted = self._quoted.get(symbol)
        if quoted and session is Session.REGULAR:
            for option in sorted(quoted):
                quote = self.option_quote(self._contracts[option], local)
                if quote is not None:
                    self._match_quote(quote, local)
        if self._pending:
            self._reduce_pending()
        for listener in list(self.trade_listeners):
            listener(symbol, price, size, local)

    def prints(
        self, symbol: str, first: Decimal, first_at: datetime, last: Decimal, last_at: datetime
    ) -> bool:
        """Trades of the stock ``symbol`` from one at ``first`` (at ``first_at``) to one at
        ``last`` (at ``last_at``), all on one New York day, that can reach nothing: no order
        of the symbol's working, no DAY order of any, no option ordered or held, no listener
        of trades, no recorder. Then only the last price, the time and the day's open move, as
        ``on_trade`` of each would move them (True); otherwise nothing is done (False: each
        must go through ``on_trade``)."""
        if self.recorder is not None or self._contracts or self._day or self.trade_listeners:
            return False
        book = self._books.get(symbol)
        if book is not None and book.filed:
            return False
        if len(symbol) == OCC_LENGTH and is_option_symbol(symbol):
            return False
        local = _local(last_at)
        day = local.date()
        if (local - (last_at - first_at)).date() != day:  # New York's midnight between them
            return False
        if self.opens.get(symbol, (None,))[0] != day:
            self.opens[symbol] = (day, first)
        self.last[symbol] = last
        self.last_trade_at = local
        self.last_trade_given = last_at
        return True

    def advance(self, at: datetime) -> None:
        """Time passed to ``at`` without a trade (overnight, say): settle the options that
        expired by then and expire the DAY orders of earlier trading days, as the first trade
        at or after ``at`` would."""
        local = _local(at)
        self._record(Advance(at=local))
        if self._contracts:
            self._settle(local)
        self._expire_day_orders(local)

    # -- corporate actions --------------------------------------------------------------------

    def corporate_action(self, action: CorporateAction) -> None:
        """Apply a split or a dividend of a stock at the start of its ex-date (before its
        first trade). A split multiplies the position (its cost unchanged), every working
        order's quantity and filled shares by the ratio and divides its limit, stop and
        trigger by it (rounded half-up to the tick), and restates the executions so far in
        the new shares (``actors.domain.split_order``, as the ledger does: reconciliation
        compares the two); each changed order is re-acknowledged. Refused (``EngineError``,
        nothing changed) when any of those would become a fraction of a share. A dividend
        pays ``amount_per_share`` for each share held (a short pays it): ``dividends``. An
        action applied already (``applied``, by id) is not applied again."""
        if action.id in self.applied:
            return
        if is_option_symbol(action.symbol):
            raise EngineError(f"{action.id}: corporate actions apply to stocks, not options")
        match action:
            case Split(symbol=symbol, ex_date=ex_date, ratio=ratio):
                self._split(symbol, ex_date, ratio)
            case Dividend(symbol=symbol, ex_date=ex_date, amount_per_share=amount):
                self._record(PayDividend(symbol=symbol, ex_date=ex_date, amount_per_share=amount))
                held = self.positions.get(symbol)
                if held is not None and held.quantity:
                    self.dividends.append(
                        DividendPaid(
                            symbol=symbol,
                            ex_date=ex_date,
                            shares=held.quantity,
                            amount_per_share=amount,
                        )
                    )
            case _:
                assert_never(action)
        self.applied.add(action.id)

    def _split(self, symbol: str, ex_date: date, ratio: Decimal) -> None:
        try:
            check_ratio(Split(symbol=symbol, ex_date=ex_date, ratio=ratio))
            held = self.positions.get(symbol)
            quantity = split_shares(
                held.quantity if held is not None else 0, ratio, f"the {symbol} position"
            )
            working = [o for o in self.open_orders() if o.symbol == symbol and not o.done]
            changed = [
                (o, split_shares(o.quantity, ratio, o.ref), split_shares(o.filled, ratio, o.ref))
                for o in working
            ]
            restated = [
                attrs.evolve(
                    e,
                    quantity=split_shares(e.quantity, ratio, e.exec_id),
                    price=split_price(e.price, ratio),
                )
                if e.symbol == symbol
                else e
                for e in self.executions
            ]
        except DomainError as exc:
            raise EngineError(str(exc)) from None
        self._record(SplitShares(symbol=symbol, ex_date=ex_date, ratio=ratio))
        if held is not None:
            held.quantity = quantity
        if symbol in self.last:
            self.last[symbol] = split_price(self.last[symbol], ratio)
        self.executions = restated
        self._executions_of = {}
        for execution in restated:
            self._executions_of.setdefault(execution.ref, []).append(execution)
        for order, new_quantity, new_filled in changed:
            order.quantity = new_quantity
            order.filled = new_filled
            order.limit = split_order_price(order.limit, ratio)
            order.stop = split_order_price(order.stop, ratio)
            order.condition = split_condition(order.condition, ratio)
            order.chain = tuple(
                (link, condition)
                for link, condition in (
                    (link, split_condition(c, ratio)) for link, c in order.chain
                )
                if condition is not None
            )
            self._index(order)
            self._emit(OrderAccepted(ref=order.ref, order_id=order.order_id, perm_id=order.perm_id))

    # -- faults -------------------------------------------------------------------------------

    def restart(self, reason: str = "venue restarted") -> None:
        """The venue's nightly restart: working orders other than GTC are cancelled with
        ``reason``; GTC orders, executions and positions are kept. Then every ``on_restart``
        callback is called, so the connections drop. Armed faults stay armed."""
        self._record(Restart(reason=reason))
        for order in self.open_orders():
            # done: a child its DAY parent's cancel took along already.
            if order.tif is not TimeInForce.GTC and not order.done:
                self._finish(order, reason)
        for callback in list(self.on_restart):
            callback()

    def reject_next(self, reason: str = "rejected by fault injection") -> None:
        self._record(RejectNext(reason=reason))
        self._reject_next = reason

    def duplicate_next_fill(self) -> None:
        self._record(DuplicateNextFill())
        self._duplicate_next = True

    # -- internals ----------------------------------------------------------------------------

    def _match_quote(self, quote: OptionQuote, at: datetime) -> None:
        # An option's working orders against its quote, in ``orders`` order: buys at the ask
        # up to the ask size, sells at the bid up to the bid size (never at a zero bid), the
        # sizes shared first come first served.
        symbol = quote.contract.local_symbol
        book = self._books.get(symbol)
        if book is None:
            return
        sizes = {Side.BUY: quote.ask_size, Side.SELL: quote.bid_size if quote.bid > 0 else 0}
        prices = {Side.BUY: quote.ask, Side.SELL: quote.bid}
        for order in book.reached(self._seq, buy_at=quote.ask, sell_at=quote.bid):
            if order.done:
                continue
            if order.stopped:
                if not _hit(order, _option_stop_reached(order, quote), stock=False):
                    continue
                order.triggered = True
                order.active = True
                self._index(order)
            price = prices[order.side]
            if sizes[order.side] <= 0 or not _marketable(order, price) or price <= 0:
                continue
            quantity = min(order.remaining, sizes[order.side], self._cover(order))
            if quantity <= 0:
                continue
            sizes[order.side] -= quantity
            self._fill(order, quantity, price, at)

    def _fill(self, order: SimOrder, quantity: int, price: Decimal, at: datetime) -> None:
        contract = self._contracts.get(order.symbol)
        multiplier = contract.multiplier if contract is not None else 1
        order.filled += quantity
        order.value += price * quantity
        owed = commission_owed(
            option=contract is not None, quantity=order.filled, value=order.value
        )
        commission = (owed - order.commission).quantize(CENT)
        order.commission += commission
        execution = Execution(
            exec_id=f"sim.{self.next_exec_seq:08d}",
            order_id=order.order_id,
            ref=order.ref,
            symbol=order.symbol,
            side=order.side,
            quantity=quantity,
            price=price,
            commission=commission,
            time=at,
            multiplier=multiplier,
        )
        self._book_execution(execution)
        if order.filled >= order.quantity:
            order.done = True
            order.active = False
            self._index(order)
        event = OrderFilled(
            ref=order.ref,
            exec_id=execution.exec_id,
            quantity=quantity,
            price=price,
            commission=commission,
        )
        self._emit(event)
        if self._duplicate_next:
            self._duplicate_next = False
            self._emit(event)
        if order.oca is not None:
            if order.oca_type == 3:
                self._pending.append((order.oca, order, quantity))
            else:
                self._reduce_group(order.oca, order, quantity)
        for child in self._children.get(order.order_id, ()):
            if child.held and not child.done:
                child.held = False
                child.active = not (child.armed or child.stopped)
                self._index(child)

    def _book_execution(self, execution: Execution) -> None:
        self.next_exec_seq += 1
        self.executions.append(execution)
        self._executions_of.setdefault(execution.ref, []).append(execution)
        position = self.positions.setdefault(execution.symbol, Position())
        signed = execution.quantity if execution.side is Side.BUY else -execution.quantity
        unit = execution.price * execution.multiplier
        if position.quantity and (position.quantity > 0) != (signed > 0):
            # Closing (part of) the position at its average cost; any rest opens the other way.
            closing = min(abs(signed), abs(position.quantity))
            direction = 1 if signed > 0 else -1
            average = position.average_cost
            position.quantity += direction * closing
            position.cost = position.cost + direction * average * closing
            signed -= direction * closing
            if position.quantity == 0:
                position.cost = Decimal(0)
        position.quantity += signed
        position.cost += unit * signed

    def _cover(self, order: SimOrder) -> int:
        # What a child may still fill: its parent's fills less what it and its OCA siblings
        # under the same parent have filled (so a bracket's exits together never sell more
        # than the entry bought, whatever the OCA reductions left them).
        parent = self._parents.get(order.order_id)
        if parent is None:
            return order.remaining
        used = sum(
            child.filled
            for child in self._children[parent.order_id]
            if child is order or (order.oca is not None and child.oca == order.oca)
        )
        return parent.filled - used

    def _reduce_group(self, group: str, filled: SimOrder, quantity: int) -> None:
        # The OCA group's other working orders after an execution of ``filled``: ocaType 1
        # cancels them, 2 and 3 reduce them by the executed quantity (cancelling what has
        # nothing left). The filled order's type rules, as at IB the group's orders share it.
        for other in list(self._groups.get(group, ())):
            if other is filled or other.done:
                continue
            if filled.oca_type == 1:
                self._finish(other, f"OCA group {group}: {filled.ref} filled")
                continue
            other.quantity = max(other.quantity - quantity, other.filled)
            if other.remaining == 0:
                self._finish(other, f"OCA group {group}: {filled.ref} filled")
            else:
                self._emit(
                    OrderAccepted(ref=other.ref, order_id=other.order_id, perm_id=other.perm_id)
                )

    def _reduce_pending(self) -> None:
        # ocaType 3 (reduce without block): the step is over, its fills reduce their siblings.
        pending, self._pending = self._pending, []
        for group, order, quantity in pending:
            self._reduce_group(group, order, quantity)

    def _settle(self, local: datetime) -> None:
        # Every option ordered or held whose expiration close is at or before ``local``: its
        # working orders cancelled, its position exercised, assigned or expired.
        due = sorted(
            (contract.expiry, symbol)
            for symbol, contract in self._contracts.items()
            if expiry_close(contract) <= local
        )
        for _, symbol in due:
            contract = self._contracts.pop(symbol)
            self._quoted.get(contract.underlying, set()).discard(symbol)
            for order in self.open_orders():
                if order.symbol == symbol and not order.done:
                    self._finish(order, "expired")
            position = self.positions.get(symbol)
            if position is None or position.quantity == 0:
                continue
            settlement = settle(contract, position.quantity, self.last.get(contract.underlying))
            executions = []
            for leg in settlement.legs:
                execution = Execution(
                    exec_id=f"sim.{self.next_exec_seq:08d}",
                    order_id=0,
                    ref=settlement.ref,
                    symbol=leg.symbol,
                    side=leg.side,
                    quantity=leg.quantity,
                    price=leg.price,
                    commission=Decimal(0),
                    time=expiry_close(contract),
                    multiplier=leg.multiplier,
                )
                self._book_execution(execution)
                executions.append(execution)
            if self.durable is not None:
                self.durable()
            for execution in executions:
                for listener in list(self.settlement_listeners):
                    listener(execution)

    def _finish(self, order: SimOrder, reason: str) -> None:
        order.done = True
        order.active = False
        order.armed = False
        self._index(order)
        self._emit(OrderCancelled(ref=order.ref, reason=reason))
        if order.filled == 0:
            for child in self._children.get(order.order_id, ()):
                if not child.done:
                    self._finish(child, f"its parent {order.ref} ended unfilled: {reason}")

    def _expire_day_orders(self, local: datetime) -> None:
        if not self._day:
            return
        today = local.date()
        expired = [order for order in self._day.values() if today > order.trading_day]
        for order in sorted(expired, key=lambda o: self._seq[o.ref]):
            if not order.done:  # a child its expired parent took along already
                self._finish(order, "expired (DAY)")

    def _index(self, order: SimOrder) -> None:
        # Keep the symbol's book and the DAY orders in step with the order's state: called
        # after every change of its done, armed or limit.
        book = self._books.get(order.symbol)
        if book is None:
            book = self._books[order.symbol] = _Book()
        book.file(order, self._seq[order.ref])
        if order.tif is TimeInForce.DAY and not order.done:
            self._day[order.ref] = order
        else:
            self._day.pop(order.ref, None)
        contract = self._contracts.get(order.symbol)
        if contract is not None:
            quoted = self._quoted.setdefault(contract.underlying, set())
            if book.filed:
                quoted.add(order.symbol)
            else:
                quoted.discard(order.symbol)
        if order.done and order.oca is not None and order.oca in self._groups:
            members = [other for other in self._groups[order.oca] if other is not order]
            if members:
                self._groups[order.oca] = members
            else:
                del self._groups[order.oca]

    def _record(self, entry: Input) -> None:
        if self.recorder is not None:
            self.recorder(entry)

    def _emit(self, event: BrokerEvent) -> None:
        if self.durable is not None:
            self.durable()
        for listener in list(self.listeners):
            listener(event)


class _Book:
    """One symbol's working orders, filed so that a trade finds what it may fill without
    looking at the rest: the armed ones (their conditions or stops are checked at every trade;
    children held for their parent are not filed at all), market orders, and limit buys and
    sells sorted by price (a buy is reached by trades at or below its limit, a sell at or
    above). ``reached`` returns them in ``Engine.orders`` order, so the
    engine serves them exactly as a scan of every order would."""

    def __init__(self) -> None:
        self.armed: dict[str, SimOrder] = {}
        self.market: dict[str, SimOrder] = {}
        self.buys: list[tuple[Decimal, int]] = []
        """(-limit, seq): the highest limit first."""
        self.sells: list[tuple[Decimal, int]] = []
        """(limit, seq): the lowest limit first."""
        self.limits: dict[int, SimOrder] = {}
        self.filed: dict[str, tuple[str, tuple[Decimal, int] | None]] = {}
        self._armed_by_seq: list[tuple[int, SimOrder]] | None = None
        """``armed`` in ``Engine.orders`` order, kept until it changes (a ref's place never
        does): most trades reach only these."""

    def file(self, order: SimOrder, seq: int) -> None:
        self._unfile(order.ref)
        if order.done or order.held:
            return
        if order.armed or order.stopped:
            self.armed[order.ref] = order
            self.filed[order.ref] = ("armed", None)
            self._armed_by_seq = None
        elif order.limit is None:
            self.market[order.ref] = order
            self.filed[order.ref] = ("market", None)
        else:
            side = "buys" if order.side is Side.BUY else "sells"
            key = (-order.limit if order.side is Side.BUY else order.limit, seq)
            bisect.insort(getattr(self, side), key)
            self.limits[seq] = order
            self.filed[order.ref] = (side, key)

    def _unfile(self, ref: str) -> None:
        where = self.filed.pop(ref, None)
        if where is None:
            return
        kind, key = where
        if key is None:
            if kind == "armed":
                del self.armed[ref]
                self._armed_by_seq = None
            else:
                del self.market[ref]
            return
        keys: list[tuple[Decimal, int]] = getattr(self, kind)
        del keys[bisect.bisect_left(keys, key)]
        del self.limits[key[1]]

    def reached(self, seqs: dict[str, int], *, buy_at: Decimal, sell_at: Decimal) -> list[SimOrder]:
        """The armed and market orders, the buys limited at or above ``buy_at`` and the sells
        at or below ``sell_at`` (a trade's price for both, or an option's ask and bid)."""
        armed = self._armed_by_seq
        if armed is None:
            armed = self._armed_by_seq = sorted(
                ((seqs[ref], order) for ref, order in self.armed.items()), key=_first
            )
        buys, sells = self.buys, self.sells
        if (
            not self.market
            and (not buys or -buys[0][0] < buy_at)
            and (not sells or sells[0][0] > sell_at)
        ):
            return [order for _, order in armed]  # no market order, no limit reached
        found = list(armed)
        found += [(seqs[ref], order) for ref, order in self.market.items()]
        for negated, seq in self.buys:
            if -negated < buy_at:
                break
            found.append((seq, self.limits[seq]))
        for limit, seq in self.sells:
            if limit > sell_at:
                break
            found.append((seq, self.limits[seq]))
        found.sort(key=_first)
        return [order for _, order in found]


def _first(pair: tuple[int, SimOrder]) -> int:
    return pair[0]


def commission_owed(*, option: bool, quantity: int, value: Decimal) -> Decimal:
    """IBKR fixed commission of an order that filled ``quantity`` (shares, or contracts of an
    ``option``) for ``value`` (price x quantity, the price per share): a stock's $0.005 a
    share, at least $1.00 and at most 1% of the value; an option's $0.65 a contract, at least
    $1.00. Unrounded; an order is charged it as it fills (what a what-if reports)."""
    if option:
        return max(PER_CONTRACT * quantity, MINIMUM)
    return min(max(PER_SHARE * quantity, MINIMUM), MAXIMUM_RATE * value)


def is_option_symbol(symbol: str) -> bool:
    """Whether ``symbol`` has the shape of an OCC symbol (21 characters: a root padded to 6,
    YYMMDD, a right, the strike x 1000 in 8 digits): an option order. Stock symbols have 1 to
    6 characters, so none is taken for an option."""
    return len(symbol) == OCC_LENGTH and symbol[6:12].isdigit() and symbol[13:].isdigit()


def _option_problem(
    order: PlaceOrder, local: datetime, chain: tuple[tuple[str, PriceCondition], ...]
) -> tuple[OptionContract | None, str | None]:
    try:
        contract = OptionContract.from_local_symbol(order.symbol)
    except OptionError as exc:
        return None, f"{order.symbol!r} is not an option the venue lists: {exc}"
    if local >= expiry_close(contract):
        return None, (
            f"option {order.symbol} expired at {expiry_close(contract).isoformat()}, "
            f"the order came at {local.isoformat()}"
        )
    if order.condition is not None or chain:
        return None, f"price conditions are not supported on option orders ({order.symbol})"
    return contract, None


def _invalid(order: PlaceOrder, oca_type: int, trigger_method: int) -> str | None:
    if order.oca is not None and oca_type not in OCA_TYPES:
        return f"ocaType {oca_type} of {order.ref} is not one of IB's 1, 2, 3"
    if trigger_method not in TRIGGER_METHODS:
        return (
            f"triggerMethod {trigger_method} of {order.ref} is not one of IB's "
            f"{', '.join(map(str, TRIGGER_METHODS))}"
        )
    if order.quantity <= 0:
        return f"quantity must be positive, got {order.quantity}"
    if order.limit is not None and order.limit <= 0:
        return f"limit price must be positive, got {order.limit}"
    if order.stop is not None and order.stop <= 0:
        return f"stop price must be positive, got {order.stop}"
    # A stop limit whose limit is on the wrong side of its stop (a sell limited above its
    # stop, a buy below) is accepted, as IB accepts it: once triggered it rests as that limit.
    return None


def _hit(order: SimOrder, reached: bool, *, stock: bool) -> bool:
    # Count the consecutive prices that reached the stop; whether they are enough for its
    # trigger method (two for the double ones; 0 is single on a stock's last).
    order.hits = order.hits + 1 if reached else 0
    double = order.trigger_method in _DOUBLE and not (stock and order.trigger_method == 0)
    return order.hits >= (2 if double else 1)


def _option_stop_reached(order: SimOrder, quote: OptionQuote) -> bool:
    # A sell stop looks at the bid, a buy stop at the ask (0, 1, 4), the last (2, 3), either
    # (7) or the midpoint (8).
    stop = order.stop
    if stop is None:
        return True
    sell = order.side is Side.SELL
    quoted = quote.bid if sell else quote.ask
    method = order.trigger_method
    if method in (2, 3):
        prices = [quote.last]
    elif method == 7:
        prices = [quote.last, quoted]
    elif method == 8:
        prices = [(quote.bid + quote.ask) / 2]
    else:
        prices = [quoted]
    return any(price <= stop if sell else price >= stop for price in prices)


def _stop_reached(order: SimOrder, price: Decimal) -> bool:
    if order.stop is None:
        return True
    return price <= order.stop if order.side is Side.SELL else price >= order.stop


def _marketable(order: SimOrder, price: Decimal) -> bool:
    if order.limit is None:
        return True
    return price <= order.limit if order.side is Side.BUY else price >= order.limit


def _chain_met(chain: tuple[tuple[str, PriceCondition], ...], price: Decimal) -> bool:
    # Left to right, each condition's conjunction linking it to the next, as IB chains them.
    result = _condition_met(chain[0][1], price)
    for (conjunction, _), (_, condition) in itertools.pairwise(chain):
        met = _condition_met(condition, price)
        result = (result and met) if conjunction == "a" else (result or met)
    return result


def _condition_met(condition: PriceCondition | None, price: Decimal) -> bool:
    if condition is None:
        return True
    return price >= condition.trigger if condition.is_more else price <= condition.trigger


def _local(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise EngineError(f"engine times must be timezone-aware, got {at.isoformat()}")
    return at.astimezone(NEW_YORK)
