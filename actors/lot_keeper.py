"""The lot-keeper: the only owner of the LMDB store; everyone else asks it.

Replies are values: ``True``/``False`` for new/already-known, a view for loads, and ``Refused``
when a request contradicts the ledger (the lot-keeper does not crash on a bad request).
The store object outlives incarnations: a crashed lot-keeper's successor reuses the open
environment, a gracefully stopped one closes it and its successor opens it again.
"""

from __future__ import annotations

import functools
from pathlib import Path

import anyio
import attrs

from runtime import Actor, Request, Unrecoverable
from runtime.store import (
    Durability,
    Store,
    StoreDamaged,
    StoreError,
    StoreFull,
    StoreUnwritable,
    Txn,
)

from . import ledger
from .domain import ModifyOrder, OrderFilled, PlaceBracket, PlaceOrder


@attrs.frozen(kw_only=True)
class CommitIntent:
    order: PlaceOrder
    dry: bool = False
    """A dry-run intent: its order is never sent (``ledger.IntentRecord.dry``)."""


@attrs.frozen(kw_only=True)
class CommitBracket:
    """Every leg of ``bracket`` as an intent of its own, in one transaction: all or none."""

    bracket: PlaceBracket
    dry: bool = False


@attrs.frozen(kw_only=True)
class AmendIntent:
    """A working order's intent changed as ``change`` says, before the change is sent."""

    change: ModifyOrder


@attrs.frozen(kw_only=True)
class RecordFill:
    fill: OrderFilled


@attrs.frozen(kw_only=True)
class BindOrder:
    binding: ledger.Binding


@attrs.frozen(kw_only=True)
class Heal:
    """The reconciler's repairs, in one transaction (see ``ledger.heal``)."""

    intents: tuple[ledger.IntentRecord, ...] = ()
    fills: tuple[OrderFilled, ...] = ()
    retired: tuple[str, ...] = ()
    conflicts: tuple[ledger.ConflictRecord, ...] = ()


@attrs.frozen(kw_only=True)
class AcknowledgeConflicts:
    """An operator has looked at ``symbol``'s execution conflicts: mark them acknowledged (they
    stay on record); replies with how many were."""

    symbol: str


@attrs.frozen(kw_only=True)
class LoadLedger(Request["LedgerState | Refused"]):
    symbol: str | None = None


@attrs.frozen(kw_only=True)
class SaveSnapshot:
    actor: str
    data: bytes


@attrs.frozen(kw_only=True)
class LoadSnapshot:
    actor: str


@attrs.frozen(kw_only=True)
class SaveRisk(Request[bool]):
    """Replace the risk actor's durable state (``ledger.RiskRecord``); replies True."""

    record: ledger.RiskRecord


@attrs.frozen(kw_only=True)
class LoadRisk(Request["ledger.RiskRecord"]):
    """Reply with the risk actor's durable state (an empty ``ledger.RiskRecord`` at first)."""


@attrs.frozen(kw_only=True)
class Backup(Request["str | Refused"]):
    """Write a consistent, compacted copy of the ledger into the empty directory ``target``;
    replies with its path."""

    target: str


@attrs.frozen(kw_only=True)
class Refused:
    """The ledger refused a request that contradicts what it holds."""

    reason: str


@attrs.frozen(kw_only=True)
class Conflicted:
    """The reply to a ``RecordFill`` (or ``Heal``) whose execId the ledger holds with other
    facts: nothing of the request was written, the conflict is on record."""

    conflict: ledger.ConflictRecord


class LedgerFull(Unrecoverable):
    """Raised by the lot-keeper when a write does not fit in the ledger's LMDB map. Nothing of
    that write was stored and everything before it is kept; a restart cannot make room (it would
    fail the same way, again and again), so the service stops and the operator raises
    ``ledger.map_size_mib``."""

    def __init__(self, path: Path, map_size: int, request: str) -> None:
        mib, rest = divmod(map_size, 1 << 20)
        size = f"{mib} MiB" if mib and not rest else f"{map_size} bytes"
        super().__init__(
            f"{path}: the ledger is full (its LMDB map is {size}): "
            f"{request} was not stored, everything stored before it is kept; raise "
            "ledger.map_size_mib in the config and start again (it reconciles with the broker)"
        )
        self.path = path
        self.map_size = map_size


class LedgerDamaged(Unrecoverable):
    """Raised by the lot-keeper when the ledger turns out damaged while the service runs: a
    record that does not decode (naming its database and key), or LMDB finding a page
    corrupted. Every restart would read the same bytes and fail the same way (a symbol actor
    waiting on the lot-keeper, again and again), so the service stops with the reason; the
    operator restores a backup or starts empty, and the start reconciles with the broker."""

    def __init__(self, damage: StoreDamaged) -> None:
        super().__init__(str(damage))
        self.path = damage.path
        self.problem = damage.problem


class LedgerUnwritable(Unrecoverable):
    """Raised by the lot-keeper when the disk refuses a ledger write (no space left, read-only,
    an I/O error). No order may be sent without its committed intent, so there is no trading
    until the disk is fixed: the service stops with the reason instead of crash-looping, and a
    start once the disk is fixed reconciles with the broker."""

    def __init__(self, error: StoreUnwritable, request: str) -> None:
        super().__init__(
            f"{error.path}: the disk refused a ledger write ({error.detail}): {request} was not "
            "stored, everything stored before it is kept; free space on (or repair) that disk "
            "and start again (it reconciles with the broker)"
        )
        self.path = error.path


@attrs.frozen(kw_only=True)
class LedgerState:
    intents: tuple[ledger.IntentRecord, ...]
    fills: tuple[ledger.FillRecord, ...]
    lots: tuple[ledger.LotView, ...]
    retired: frozenset[str] = frozenset()
    conflicts: tuple[ledger.ConflictRecord, ...] = ()

    @property
    def open_conflicts(self) -> tuple[ledger.ConflictRecord, ...]:
        """The conflicts no operator has acknowledged yet: their symbol stays halted."""
        return tuple(c for c in self.conflicts if c.acknowledged_ns is None)


LotKeeperInbox = (
    CommitIntent
    | CommitBracket
    | AmendIntent
    | RecordFill
    | BindOrder
    | Heal
    | AcknowledgeConflicts
    | LoadLedger
    | SaveSnapshot
    | LoadSnapshot
    | SaveRisk
    | LoadRisk
    | Backup
)


class LotKeeper(Actor[LotKeeperInbox]):
    def __init__(self, store: Store) -> None:
        self.store = store

    async def on_start(self) -> None:
        if self.store.is_open:
            return
        try:
            if self.store.inline:  # a simulation's store: no thread may race its virtual clock
                self.store.open()
            else:
                await anyio.to_thread.run_sync(self.store.open)
        except StoreDamaged as exc:
            raise LedgerDamaged(exc) from None

    async def on_stop(self) -> None:
        if self.store.inline:
            self.store.close()
        else:
            await anyio.to_thread.run_sync(self.store.close)

    async def handle(self, message: LotKeeperInbox) -> object:
        try:
            return await self._handle(message)
        except ledger.ExecutionConflict as exc:
            # Nothing of the request was written; the conflict itself is kept, in a
            # transaction of its own.
            conflict = exc.conflict
            await self.store.write(functools.partial(ledger.record_conflict, conflict=conflict))
            return Conflicted(conflict=conflict)
        except ledger.LedgerError as exc:
            return Refused(reason=str(exc))
        except StoreFull:
            # A restart frees no room: it would fail the same way until the intensity gave up.
            store = self.store
            raise LedgerFull(store.path, store.map_size, type(message).__name__) from None
        except StoreDamaged as exc:
            raise LedgerDamaged(exc) from None
        except StoreUnwritable as exc:
            raise LedgerUnwritable(exc, type(message).__name__) from None

    async def _handle(self, message: LotKeeperInbox) -> object:
        store = self.store
        match message:
            case CommitIntent(order=order, dry=dry):
                intent = ledger.IntentRecord(
                    order=order, created_ns=self.context.clock.time_ns(), dry=dry
                )
                return await store.write(functools.partial(ledger.commit_intent, intent=intent))
            case CommitBracket(bracket=bracket, dry=dry):
                created_ns = self.context.clock.time_ns()
                legs = tuple(
                    ledger.IntentRecord(order=leg, created_ns=created_ns, dry=dry)
                    for leg in bracket.legs
                )
                return await store.write(functools.partial(ledger.commit_intents, intents=legs))
            case AmendIntent(change=change):
                return await store.write(functools.partial(ledger.amend_intent, change=change))
            case RecordFill(fill=fill):
                now_ns = self.context.clock.time_ns()
                return await store.write(
                    functools.partial(ledger.record_fill, fill=fill, now_ns=now_ns)
                )
            case Heal(intents=intents, fills=fills, retired=retired, conflicts=conflicts):
                return await store.write(
                    functools.partial(
                        ledger.heal,
                        intents=intents,
                        executions=fills,
                        retired=retired,
                        conflicts=conflicts,
                        now_ns=self.context.clock.time_ns(),
                    )
                )
            case AcknowledgeConflicts(symbol=symbol):
                now_ns = self.context.clock.time_ns()
                return await store.write(
                    functools.partial(ledger.acknowledge_conflicts, symbol=symbol, now_ns=now_ns)
                )
            case BindOrder(binding=binding):
                await store.write(functools.partial(ledger.bind, binding=binding))
                return True
            case LoadLedger(symbol=symbol):
                return store.read(functools.partial(ledger_state, symbol=symbol))
            case SaveSnapshot(actor=actor, data=data):
                await store.write(functools.partial(ledger.save_snapshot, actor=actor, data=data))
                return True
            case LoadSnapshot(actor=actor):
                return store.read(functools.partial(ledger.load_snapshot, actor=actor))
            case SaveRisk(record=record):
                await store.write(functools.partial(ledger.save_risk, record=record))
                return True
            case LoadRisk():
                return store.read(ledger.load_risk)
            case Backup(target=target):
                # A read transaction: it runs beside the writer thread, off the event loop.
                try:
                    return str(await anyio.to_thread.run_sync(store.backup, target))
                except (StoreError, OSError) as exc:
                    return Refused(reason=f"backup to {target} failed: {exc}")


def ledger_store(
    path: str | Path, *, durability: Durability = Durability.GROUP, map_size: int = 1 << 30
) -> Store:
    """The lot-keeper's store, with the ledger's databases and schema (not yet opened)."""
    return Store(
        path,
        databases=ledger.DATABASES,
        schema_version=ledger.SCHEMA_VERSION,
        migrations=ledger.MIGRATIONS,
        durability=durability,
        map_size=map_size,
        check=ledger.check,
    )


def ledger_state(txn: Txn, symbol: str | None) -> LedgerState:
    """What the ledger holds of ``symbol`` (None: of every symbol), ``LoadLedger``'s reply."""
    return LedgerState(
        intents=tuple(ledger.intents(txn, symbol)),
        fills=tuple(ledger.fills(txn, symbol)),
        lots=tuple(ledger.lots(txn, symbol)),
        retired=ledger.retired(txn),
        conflicts=tuple(ledger.conflicts(txn, symbol)),
    )
