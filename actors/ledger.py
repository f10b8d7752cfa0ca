"""The ledger's records and the transactions over them (run by the lot-keeper on the store).

Facts only: order intents (written before their order is sent), executions (each execId once),
and broker id bindings. Lots and realized P&L are derived from those facts, so they can never
disagree with them: a fill recorded is a lot updated, in the same transaction.

A corporate action (``apply_action``, once by its id in ``actions``) restates the facts of its
symbol: a split multiplies every intent's and every fill's shares by its ratio and divides their
prices by it (``restated`` keeps the product of the ratios applied, so the as-traded figures
are always recoverable); a dividend is kept with the shares the ledger held.

Beside the facts, the ``risk`` database holds the risk actor's durable state (``RiskRecord``:
the session's start equity, a tripped daily loss guard, the operator's halts), so that a restart
on a tripped day stays tripped.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from decimal import Decimal
from typing import TypeVar, assert_never

import attrs
import msgspec

from runtime.store import RecordDamaged, Txn

from .domain import (
    CorporateAction,
    Dividend,
    DomainError,
    ModifyOrder,
    OrderFilled,
    OrderRef,
    PlaceOrder,
    Side,
    Split,
    check_ratio,
    split_order,
    split_price,
    split_shares,
    underlying_of,
)
from .strategies._gridref import GridRef

SCHEMA_VERSION = 4
DATABASES = (
    "intents",
    "fills",
    "fills_by_ref",
    "bindings",
    "snapshots",
    "retired",
    "conflicts",
    "risk",
    "actions",
)


def _v1_to_v2(txn: Txn) -> None:
    # Schema 2 adds the ``conflicts`` database, which the store creates empty. The version is
    # raised all the same so that an older actortrade, which would not see a recorded conflict
    # and would trade the halted symbol again, refuses the ledger.
    pass


def _v2_to_v3(txn: Txn) -> None:
    # Schema 3 adds the ``risk`` database (the risk actor's state, created empty) and the
    # ``dry`` flag of an intent (absent in older records: False). Raised for the same reason:
    # an older actortrade would not see a tripped daily loss guard and would trade on.
    pass


def _v3_to_v4(txn: Txn) -> None:
    # Schema 4 adds the ``actions`` database (corporate actions applied, created empty) and the
    # ``restated`` factor of intents and fills (absent in older records: 1). Raised because an
    # older actortrade would read restated shares without knowing they were.
    pass


MIGRATIONS = {1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4}
R = TypeVar("R")


class LedgerError(ValueError):
    """Raised for a write that contradicts what the ledger already holds; names the record."""


class Origin(enum.StrEnum):
    """Why an intent is in the ledger."""

    STRATEGY = "strategy"
    """The strategy decided it; committed before the order was sent."""
    ADOPTED = "adopted"
    """Found at the broker under one of our orderRefs with no intent (a ledger restored from an
    older backup): reconstructed by the reconciler from the broker's order."""
    ORPHAN = "orphan"
    """Shares at the broker no lot accounted for: a lot the reconciler created at the broker's
    average cost. Its single fill is synthetic (execId ``orphan:<ref>``)."""


@attrs.frozen(kw_only=True)
class IntentRecord:
    """An order we decided to place, committed before it is sent: the order itself, as sent."""

    order: PlaceOrder
    created_ns: int
    origin: Origin = Origin.STRATEGY
    dry: bool = False
    """Committed in dry-run mode: the order was never sent to a broker (``actors.brokers.dry``).
    Reconciliation never adopts, heals or cancels anything because of one."""
    restated: Decimal = Decimal(1)
    """The product of the split ratios applied to it since it was committed (its order's
    shares are the as-sent ones times this, its prices the as-sent ones divided by it,
    rounded to the tick)."""

    @property
    def ref(self) -> str:
        return self.order.ref

    @property
    def symbol(self) -> str:
        return self.order.symbol


@attrs.frozen(kw_only=True)
class FillRecord:
    exec_id: str
    ref: str
    quantity: int
    price: Decimal
    commission: Decimal | None
    seq: int = 0
    """Order of recording (1, 2, ...): which fill came first, whatever the execIds look like."""
    restated: Decimal = Decimal(1)
    """The product of the split ratios applied to it since it was recorded: the as-traded
    quantity is ``quantity / restated``, the as-traded price ``price * restated``."""


@attrs.frozen(kw_only=True)
class ActionRecord:
    """A corporate action the ledger applied (``apply_action``), once by ``id``."""

    id: str
    symbol: str
    ex_date: str
    """ISO date."""
    kind: str
    """``split`` or ``dividend``."""
    ratio: Decimal | None = None
    amount_per_share: Decimal | None = None
    shares: int = 0
    """A dividend's: the shares of the symbol the ledger held when it was applied."""
    applied_ns: int = 0

    @property
    def cash(self) -> Decimal:
        """What a dividend paid (0 for a split)."""
        return (self.amount_per_share or Decimal(0)) * self.shares


@attrs.frozen(kw_only=True)
class Binding:
    ref: str
    order_id: int | None
    perm_id: int | None


@attrs.frozen(kw_only=True)
class LotView:
    """A lot as the facts describe it: shares bought and sold under its lot id."""

    lot: int
    symbol: str
    level: int
    bought: int
    cost: Decimal
    sold: int
    proceeds: Decimal

    @property
    def open_shares(self) -> int:
        return self.bought - self.sold

    @property
    def realized(self) -> Decimal:
        """P&L of the shares sold, at the lot's average purchase price."""
        if self.bought == 0 or self.sold == 0:
            return Decimal(0)
        return self.proceeds - self.cost / self.bought * self.sold


@attrs.frozen(kw_only=True)
class ConflictRecord:
    """An execution id the broker reported again with other contents than the ledger holds
    for it (another order, side, quantity or price). Exactly-once means the same id *and* the
    same facts: the ledger keeps what it recorded, keeps the report here, and the symbol it was
    reported for stays halted until an operator acknowledges it."""

    exec_id: str
    symbol: str
    """The symbol of the reported execution: the one halted."""
    recorded: FillRecord
    reported: OrderFilled
    seen_ns: int
    acknowledged_ns: int | None = None

    @property
    def key(self) -> bytes:
        return _conflict_key(self.exec_id, self.reported)

    def describe(self) -> str:
        r, f = self.recorded, self.reported
        return (
            f"execution {self.exec_id} reported as {f.ref} {f.quantity} @ {f.price}, but the "
            f"ledger holds it as {r.ref} {r.quantity} @ {r.price}"
        )


class ExecutionConflict(LedgerError):
    """Raised by ``record_fill`` (and ``heal``) for an execution id the ledger already holds
    with other contents; ``conflict`` is what the lot-keeper records (``record_conflict``)."""

    def __init__(self, conflict: ConflictRecord) -> None:
        super().__init__(conflict.describe())
        self.conflict = conflict


def same_execution(recorded: FillRecord, reported: OrderFilled) -> bool:
    """Whether ``reported`` is the execution the ledger holds under its id: same order (and so
    side), quantity and price. The commission is not compared: brokers report it apart."""
    return (recorded.ref, recorded.quantity, recorded.price) == (
        reported.ref,
        reported.quantity,
        reported.price,
    )


def _conflict_key(exec_id: str, reported: OrderFilled) -> bytes:
    price = reported.price.normalize()
    return f"{exec_id}\x00{reported.ref}\x00{reported.quantity}\x00{price}".encode()


def _encode(record: object) -> bytes:
    return msgspec.json.encode(record)


def _decode(txn: Txn, database: str, key: bytes, raw: bytes, kind: type[R]) -> R:
    # A record that does not decode is damage to the ledger, never a bad request: it names
    # itself so that the operator knows what to restore (RecordDamaged is a StoreError).
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.DecodeError as exc:
        raise RecordDamaged(txn.path, database, key, str(exc)) from None


def _ref(txn: Txn, database: str, key: bytes, ref: str) -> OrderRef:
    try:
        return OrderRef.parse(ref)
    except DomainError as exc:
        raise RecordDamaged(txn.path, database, key, str(exc)) from None


def _text(txn: Txn, database: str, key: bytes) -> str:
    try:
        return key.decode()
    except UnicodeDecodeError as exc:
        raise RecordDamaged(txn.path, database, key, f"key: {exc}") from None


def commit_intent(txn: Txn, intent: IntentRecord) -> bool:
    """Write ``intent``; True if new, False if the same intent is already there.

    A different intent under the same orderRef is refused: refs are never reused.
    """
    key = intent.ref.encode()
    existing = txn.get("intents", key)
    if existing is not None:
        stored = _decode(txn, "intents", key, existing, IntentRecord)
        if stored.order != intent.order:
            raise LedgerError(f"orderRef {intent.ref!r} already names a different intent")
        return False
    txn.put("intents", intent.ref.encode(), _encode(intent))
    return True


def commit_intents(txn: Txn, intents: tuple[IntentRecord, ...]) -> bool:
    """Write every one of ``intents`` in one transaction (a bracket's legs): True if they were
    new, False if the ledger holds them all already. Some held and some not, or any held with
    another order, is refused (``LedgerError``) and nothing is written."""
    new = [commit_intent(txn, intent) for intent in intents]
    if any(new) and not all(new):
        held = [i.ref for i, fresh in zip(intents, new, strict=True) if not fresh]
        raise LedgerError(f"intents {held} are already committed without the rest of their group")
    return all(new)


def amend_intent(txn: Txn, change: ModifyOrder) -> bool:
    """Change the order of a committed intent as ``change`` says (its quantity and prices):
    True if it changed, False if it already says so. Refused (``LedgerError``) for an order
    without an intent, a quantity below what the ledger has filled, or a change of its type
    (a limit taken away, a stop added)."""
    key = change.ref.encode()
    raw = txn.get("intents", key)
    if raw is None:
        raise LedgerError(f"no intent {change.ref!r} to amend")
    intent = _decode(txn, "intents", key, raw, IntentRecord)
    order = intent.order
    amended = attrs.evolve(order, quantity=change.quantity, limit=change.limit, stop=change.stop)
    if amended.order_type != order.order_type:
        raise LedgerError(
            f"{change.ref} is a {order.order_type} order: a change cannot make it "
            f"{amended.order_type}"
        )
    filled = sum(
        record.quantity
        for record in (_decode(txn, "fills", k, v, FillRecord) for k, v in txn.items("fills"))
        if record.ref == change.ref
    )
    if change.quantity <= 0 or change.quantity < filled:
        raise LedgerError(
            f"{change.ref} cannot be changed to {change.quantity} shares: {filled} already filled"
        )
    if amended == order:
        return False
    txn.put("intents", key, _encode(attrs.evolve(intent, order=amended)))
    return True


def record_fill(txn: Txn, fill: OrderFilled, *, now_ns: int = 0) -> bool:
    """Record an execution exactly once (by execId); True if it was new, False if the ledger
    holds it already (the same facts).

    The order must have a committed intent: an execution we cannot attribute is the
    reconciler's business, not the ledger's. An execId the ledger holds with other facts raises
    ``ExecutionConflict`` (nothing written): it is never taken for a duplicate.
    """
    if txn.get("intents", fill.ref.encode()) is None:
        raise LedgerError(f"execution {fill.exec_id!r} is for {fill.ref!r}, which has no intent")
    key = fill.exec_id.encode()
    existing = txn.get("fills", key)
    if existing is not None:
        stored = _decode(txn, "fills", key, existing, FillRecord)
        if same_execution(stored, fill):
            return False
        raise ExecutionConflict(
            ConflictRecord(
                exec_id=fill.exec_id,
                symbol=OrderRef.parse(fill.ref).symbol,
                recorded=stored,
                reported=fill,
                seen_ns=now_ns,
            )
        )
    record = FillRecord(
        exec_id=fill.exec_id,
        ref=fill.ref,
        quantity=fill.quantity,
        price=fill.price,
        commission=fill.commission,
        seq=txn.count("fills") + 1,
    )
    txn.put("fills", fill.exec_id.encode(), _encode(record))
    txn.put("fills_by_ref", f"{fill.ref}\x00{fill.exec_id}".encode(), b"")
    return True


def bind(txn: Txn, binding: Binding) -> None:
    """Remember the broker's ids for one of our orders (orderId, permId)."""
    if txn.get("intents", binding.ref.encode()) is None:
        raise LedgerError(f"cannot bind broker ids to {binding.ref!r}: it has no intent")
    txn.put("bindings", binding.ref.encode(), _encode(binding))


def intents(txn: Txn, symbol: str | None = None) -> list[IntentRecord]:
    """Every intent (of ``symbol``'s orders: its shares' and its options', whose OCC symbols
    name it as their underlying)."""
    records = [_decode(txn, "intents", k, v, IntentRecord) for k, v in txn.items("intents")]
    return [r for r in records if symbol is None or underlying_of(r.symbol) == symbol]


def fills(txn: Txn, symbol: str | None = None) -> list[FillRecord]:
    """Every recorded execution (of ``symbol``'s orders), in the order they were recorded."""
    records = [_decode(txn, "fills", k, v, FillRecord) for k, v in txn.items("fills")]
    if symbol is not None:
        records = [
            r for r in records if _ref(txn, "fills", r.exec_id.encode(), r.ref).symbol == symbol
        ]
    records.sort(key=lambda record: record.seq)
    return records


def check(txn: Txn) -> None:
    """Read every record of the ledger; ``RecordDamaged`` names the first that does not decode
    (the store's ``check``: run at open and on a backup's copy before it is kept)."""
    for key, raw in txn.items("intents"):
        record = _decode(txn, "intents", key, raw, IntentRecord)
        _ref(txn, "intents", key, record.ref)
        if record.ref.encode() != key:
            raise RecordDamaged(txn.path, "intents", key, f"it holds the intent {record.ref!r}")
    for key, raw in txn.items("fills"):
        fill = _decode(txn, "fills", key, raw, FillRecord)
        _ref(txn, "fills", key, fill.ref)
        if fill.exec_id.encode() != key:
            raise RecordDamaged(txn.path, "fills", key, f"it holds execId {fill.exec_id!r}")
    for key, _ in txn.items("fills_by_ref"):
        if b"\x00" not in key:
            raise RecordDamaged(txn.path, "fills_by_ref", key, "not an orderRef and an execId")
        _text(txn, "fills_by_ref", key)
    for key, raw in txn.items("bindings"):
        _decode(txn, "bindings", key, raw, Binding)
    for key, _ in txn.items("retired"):
        _text(txn, "retired", key)
    for key, raw in txn.items("conflicts"):
        conflict = _decode(txn, "conflicts", key, raw, ConflictRecord)
        if conflict.key != key:
            raise RecordDamaged(txn.path, "conflicts", key, f"it holds {conflict.describe()!r}")
    for key, raw in txn.items("risk"):
        _decode(txn, "risk", key, raw, RiskRecord)
    for key, raw in txn.items("actions"):
        action = _decode(txn, "actions", key, raw, ActionRecord)
        if action.id.encode() != key:
            raise RecordDamaged(txn.path, "actions", key, f"it holds the action {action.id!r}")


def heal(
    txn: Txn,
    intents: Sequence[IntentRecord],
    executions: Sequence[OrderFilled],
    retired: Sequence[str] = (),
    conflicts: Sequence[ConflictRecord] = (),
    now_ns: int = 0,
) -> tuple[int, int]:
    """The reconciler's repairs, all or nothing: intents it reconstructed, executions the
    broker reported that the ledger missed, intents it retired (their order never reached
    the broker), and execution conflicts it found. Returns how many intents and fills were
    new."""
    for conflict in conflicts:
        record_conflict(txn, conflict)
    new_intents = sum(commit_intent(txn, intent) for intent in intents)
    new_fills = 0
    for execution in executions:
        try:
            new_fills += record_fill(txn, execution, now_ns=now_ns)
        except ExecutionConflict as exc:
            # Its id is another symbol's fill (the reconciler compared only its own): on
            # record like any conflict, and the rest of the repairs still stand.
            record_conflict(txn, exc.conflict)
    for ref in retired:
        if txn.get("intents", ref.encode()) is None:
            raise LedgerError(f"cannot retire {ref!r}: it has no intent")
        txn.put("retired", ref.encode(), b"")
    return new_intents, new_fills


def record_conflict(txn: Txn, conflict: ConflictRecord) -> bool:
    """Keep an execution conflict (once per execId and reported facts); True if new."""
    return txn.put("conflicts", conflict.key, _encode(conflict), overwrite=False)


def conflicts(txn: Txn, symbol: str | None = None) -> list[ConflictRecord]:
    """The execution conflicts on record (acknowledged ones too), oldest execId first."""
    records = [_decode(txn, "conflicts", k, v, ConflictRecord) for k, v in txn.items("conflicts")]
    return [r for r in records if symbol is None or r.symbol == symbol]


def acknowledge_conflicts(txn: Txn, symbol: str, now_ns: int) -> int:
    """Mark ``symbol``'s unacknowledged conflicts as seen by an operator (they stay on record);
    returns how many."""
    count = 0
    for record in conflicts(txn, symbol):
        if record.acknowledged_ns is None:
            txn.put("conflicts", record.key, _encode(attrs.evolve(record, acknowledged_ns=now_ns)))
            count += 1
    return count


def retired(txn: Txn) -> frozenset[str]:
    """Intents the reconciler retired: their order never reached the broker."""
    return frozenset(_text(txn, "retired", key) for key, _ in txn.items("retired"))


def fills_of(txn: Txn, ref: str) -> list[FillRecord]:
    found = []
    for key, _ in txn.items("fills_by_ref", f"{ref}\x00".encode()):
        exec_id = key.split(b"\x00", 1)[1]
        raw = txn.get("fills", exec_id)
        if raw is not None:
            found.append(_decode(txn, "fills", exec_id, raw, FillRecord))
    return found


def binding_of(txn: Txn, ref: str) -> Binding | None:
    key = ref.encode()
    raw = txn.get("bindings", key)
    return None if raw is None else _decode(txn, "bindings", key, raw, Binding)


@attrs.define
class _Totals:
    symbol: str
    level: int
    bought: int = 0
    cost: Decimal = Decimal(0)
    sold: int = 0
    proceeds: Decimal = Decimal(0)


def lots(txn: Txn, symbol: str | None = None) -> list[LotView]:
    """Every grid lot the facts describe, by lot id: the fills of orders whose tag is the
    grid's ``L<level>:<side>:<lot>`` (``actors.strategies.grid``), grouped by lot."""
    totals: dict[int, _Totals] = {}
    for record in fills(txn):
        _ref(txn, "fills", record.exec_id.encode(), record.ref)
        try:
            ref = GridRef.parse(record.ref)
        except DomainError:
            continue  # another strategy's order: it has no lots
        if symbol is not None and ref.symbol != symbol:
            continue
        lot = totals.setdefault(ref.lot, _Totals(symbol=ref.symbol, level=ref.level))
        if ref.side is Side.BUY:
            lot.bought += record.quantity
            lot.cost += record.price * record.quantity
        else:
            lot.sold += record.quantity
            lot.proceeds += record.price * record.quantity
    return [
        LotView(lot=lot_id, **attrs.asdict(fields, recurse=False))
        for lot_id, fields in sorted(totals.items())
    ]


def apply_action(txn: Txn, action: CorporateAction, *, now_ns: int = 0) -> bool:
    """Apply a corporate action to the facts of its symbol, once: True if it was new, False if
    the ledger applied it already. A split restates every intent and fill of the symbol
    (``actors.domain.split_order``, as the venue restates its working orders and executions);
    one that would leave a fraction of a share is refused (``LedgerError``, nothing written).
    A dividend is kept with the shares then held (every strategy's, from the fills)."""
    key = action.id.encode()
    if txn.get("actions", key) is not None:
        return False
    day = action.ex_date.isoformat()
    match action:
        case Split(symbol=symbol, ratio=ratio):
            try:
                check_ratio(action)
                # The shares' orders only: an option on the symbol is not restated (its
                # contract would be adjusted, which no venue of ours models).
                of_symbol = intents(txn, symbol)
                options = {intent.ref for intent in of_symbol if intent.symbol != symbol}
                restated_intents = [
                    attrs.evolve(
                        intent,
                        order=split_order(intent.order, ratio),
                        restated=intent.restated * ratio,
                    )
                    for intent in of_symbol
                    if intent.ref not in options
                ]
                restated_fills = [
                    attrs.evolve(
                        fill,
                        quantity=split_shares(fill.quantity, ratio, fill.exec_id),
                        price=split_price(fill.price, ratio),
                        restated=fill.restated * ratio,
                    )
                    for fill in fills(txn, symbol)
                    if fill.ref not in options
                ]
            except DomainError as exc:
                raise LedgerError(f"{action.id}: {exc}") from None
            for intent in restated_intents:
                txn.put("intents", intent.ref.encode(), _encode(intent))
            for fill in restated_fills:
                txn.put("fills", fill.exec_id.encode(), _encode(fill))
            record = ActionRecord(
                id=action.id,
                symbol=symbol,
                ex_date=day,
                kind="split",
                ratio=ratio,
                applied_ns=now_ns,
            )
        case Dividend(symbol=symbol, amount_per_share=amount):
            sides = {intent.ref: intent.order.side for intent in intents(txn, symbol)}
            held = sum(
                fill.quantity if sides.get(fill.ref, Side.BUY) is Side.BUY else -fill.quantity
                for fill in fills(txn, symbol)
            )
            record = ActionRecord(
                id=action.id,
                symbol=symbol,
                ex_date=day,
                kind="dividend",
                amount_per_share=amount,
                shares=held,
                applied_ns=now_ns,
            )
        case _:
            assert_never(action)
    txn.put("actions", key, _encode(record))
    return True


def actions(txn: Txn, symbol: str | None = None) -> list[ActionRecord]:
    """The corporate actions applied (of ``symbol``), by ex-date."""
    records = [_decode(txn, "actions", k, v, ActionRecord) for k, v in txn.items("actions")]
    records = [r for r in records if symbol is None or r.symbol == symbol]
    records.sort(key=lambda r: (r.ex_date, r.kind != "split", r.id))
    return records


def save_snapshot(txn: Txn, actor: str, data: bytes) -> None:
    txn.put("snapshots", actor.encode(), data)


def load_snapshot(txn: Txn, actor: str) -> bytes | None:
    return txn.get("snapshots", actor.encode())


@attrs.frozen(kw_only=True)
class RiskRecord:
    """The risk actor's durable state (``actors.risk``): what must survive a restart."""

    session: str | None = None
    """The New York trading day (ISO date) the session figures are of."""
    session_ns: int = 0
    """The time of the session's first event (Unix ns): no later event is older."""
    start_equity: Decimal | None = None
    """The equity at the session's first event: what the daily loss is measured from."""
    tripped: str | None = None
    """Why the daily loss guard tripped this session (no new orders until the next one)."""
    tripped_ns: int = 0
    halts: tuple[str, ...] = ()
    """The operator's halts (``actorctl halt``): symbols, or ``*`` for every symbol."""


_RISK_KEY = b"state"


def save_risk(txn: Txn, record: RiskRecord) -> None:
    txn.put("risk", _RISK_KEY, _encode(record))


def load_risk(txn: Txn) -> RiskRecord:
    raw = txn.get("risk", _RISK_KEY)
    return RiskRecord() if raw is None else _decode(txn, "risk", _RISK_KEY, raw, RiskRecord)
