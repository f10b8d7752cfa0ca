"""The ledger's records and the transactions over them (run by the lot-keeper on the store).

Facts only: order intents (written before their order is sent), executions (each execId once),
and broker id bindings. Lots and realized P&L are derived from those facts, so they can never
disagree with them: a fill recorded is a lot updated, in the same transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from decimal import Decimal
from typing import TypeVar

import attrs
import msgspec

from runtime.store import RecordDamaged, Txn

from .domain import DomainError, OrderRef, Side
from .messages import OrderFilled, PlaceOrder

SCHEMA_VERSION = 1
DATABASES = ("intents", "fills", "fills_by_ref", "bindings", "snapshots", "retired")
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


def record_fill(txn: Txn, fill: OrderFilled) -> bool:
    """Record an execution exactly once (by execId); True if it was new.

    The order must have a committed intent: an execution we cannot attribute is the
    reconciler's business, not the ledger's.
    """
    if txn.get("intents", fill.ref.encode()) is None:
        raise LedgerError(f"execution {fill.exec_id!r} is for {fill.ref!r}, which has no intent")
    record = FillRecord(
        exec_id=fill.exec_id,
        ref=fill.ref,
        quantity=fill.quantity,
        price=fill.price,
        commission=fill.commission,
        seq=txn.count("fills") + 1,
    )
    if txn.get("fills", fill.exec_id.encode()) is not None:
        return False
    if not txn.put("fills", fill.exec_id.encode(), _encode(record), overwrite=False):
        return False
    txn.put("fills_by_ref", f"{fill.ref}\x00{fill.exec_id}".encode(), b"")
    return True


def bind(txn: Txn, binding: Binding) -> None:
    """Remember the broker's ids for one of our orders (orderId, permId)."""
    if txn.get("intents", binding.ref.encode()) is None:
        raise LedgerError(f"cannot bind broker ids to {binding.ref!r}: it has no intent")
    txn.put("bindings", binding.ref.encode(), _encode(binding))


def intents(txn: Txn, symbol: str | None = None) -> list[IntentRecord]:
    records = [_decode(txn, "intents", k, v, IntentRecord) for k, v in txn.items("intents")]
    return [r for r in records if symbol is None or r.symbol == symbol]


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


def heal(
    txn: Txn,
    intents: Sequence[IntentRecord],
    executions: Sequence[OrderFilled],
    retired: Sequence[str] = (),
) -> tuple[int, int]:
    """The reconciler's repairs, all or nothing: intents it reconstructed, executions the
    broker reported that the ledger missed, and intents it retired (their order never reached
    the broker). Returns how many intents and fills were new."""
    new_intents = sum(commit_intent(txn, intent) for intent in intents)
    new_fills = sum(record_fill(txn, execution) for execution in executions)
    for ref in retired:
        if txn.get("intents", ref.encode()) is None:
            raise LedgerError(f"cannot retire {ref!r}: it has no intent")
        txn.put("retired", ref.encode(), b"")
    return new_intents, new_fills


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
    """Every lot the facts describe, by lot id."""
    totals: dict[int, _Totals] = {}
    for record in fills(txn):
        ref = _ref(txn, "fills", record.exec_id.encode(), record.ref)
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


def save_snapshot(txn: Txn, actor: str, data: bytes) -> None:
    txn.put("snapshots", actor.encode(), data)


def load_snapshot(txn: Txn, actor: str) -> bytes | None:
    return txn.get("snapshots", actor.encode())
