"""The lot-keeper: the only owner of the LMDB store; everyone else asks it.

Replies are values: ``True``/``False`` for new/already-known, a view for loads, and ``Refused``
when a request contradicts the ledger (the lot-keeper does not crash on a bad request).
The store object outlives incarnations: a crashed lot-keeper's successor reuses the open
environment, a gracefully stopped one closes it and its successor opens it again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import assert_never

import anyio
import attrs

from runtime import (
    Actor,
    ActorCrashed,
    Envelope,
    Request,
    Unrecoverable,
)
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
from .domain import CorporateAction, ModifyOrder, OrderFilled, PlaceBracket, PlaceOrder


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
class ApplyAction(Request["bool | Refused"]):
    """A split or a dividend applied to its symbol's facts, once (``ledger.apply_action``):
    True if it was new, False if applied already."""

    action: CorporateAction


@attrs.frozen(kw_only=True)
class LoadLedger(Request["LedgerState | Refused"]):
    symbol: str | None = None


@attrs.frozen(kw_only=True)
class SaveSnapshot(Request[bool]):
    """Keep ``data`` as ``actor``'s snapshot (replacing the last): True once committed."""

    actor: str
    data: bytes


@attrs.frozen(kw_only=True)
class LoadSnapshot(Request["bytes | None"]):
    """Reply with ``actor``'s last snapshot (None: it has none)."""

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
    actions: tuple[ledger.ActionRecord, ...] = ()
    """The corporate actions applied (``ApplyAction``), by ex-date."""

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
    | ApplyAction
    | LoadLedger
    | SaveSnapshot
    | LoadSnapshot
    | SaveRisk
    | LoadRisk
    | Backup
)


_WRITES = (
    CommitIntent,
    CommitBracket,
    AmendIntent,
    RecordFill,
    BindOrder,
    Heal,
    AcknowledgeConflicts,
    ApplyAction,
    SaveSnapshot,
    SaveRisk,
)
"""The requests that write: queued together, they share one transaction (``LotKeeper``)."""

FAILURE_POLL = 0.25
"""Seconds between looks at a crash-safe store's writer thread for a failed commit."""

COMMIT_DELAY = 0.002
"""Seconds a crash-safe store's journaled writes wait before the writer thread commits them
into LMDB (they are durable against a crash of the process from their journal already): long
enough for the order they were made for to be sent, short enough that a power loss finds
little to rebuild (docs/durability.md)."""

MAX_BATCH = 256
"""At most this many queued requests share one transaction (the store's own group size)."""


@attrs.frozen
class _Failed:
    # A request of a batch whose write raised an error that is not the ledger's answer (the
    # store's: full, damaged, unwritable): its batch stopped there.
    error: Exception


class LotKeeper(Actor[LotKeeperInbox]):
    """Writes queued together share one transaction: handling a write, the lot-keeper takes the
    requests queued behind it from its mailbox, in arrival order, up to the first one that
    only reads (or ``MAX_BATCH``), and runs each in a nested transaction of one commit
    (``Txn.attempt``): one refused or conflicted request undoes only itself. Each is answered
    after that commit, and the read taken behind them is answered after it too, so it sees
    every write queued before it. A store policy of one fsync per write (``sync``) is kept:
    there each request is its own transaction."""

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

    async def background(self) -> None:
        # A crash-safe store answers a write once it is in its journal; LMDB commits it on the
        # writer thread afterwards. Those commits are held for COMMIT_DELAY, then handed over
        # in one batch: the writer thread then takes the GIL after the order the write was for
        # has gone out, not in its way (``Store.hold_commits``). A commit that fails there
        # (the map full, the disk refusing) stops the service as a failing write would, even
        # if no write comes after it.
        store = self.store
        if store.durability is not Durability.CRASH_SAFE or store.inline:
            return
        store.hold_commits()
        try:
            while True:
                with anyio.move_on_after(FAILURE_POLL):
                    await store.wait_held()
                    await anyio.sleep(COMMIT_DELAY)
                store.release_commits()
                if store.failure is not None:
                    try:
                        store.raise_failure()
                    except StoreError as exc:
                        raise self._unrecoverable(exc, "a journaled write") from None
        finally:
            store.release_commits(stop_holding=True)

    async def on_stop(self) -> None:
        if self.store.inline:
            self.store.close()
        else:
            await anyio.to_thread.run_sync(self.store.close)

    async def handle(self, message: LotKeeperInbox) -> object:
        current = self.context.envelope
        if (
            current is not None
            and isinstance(message, _WRITES)
            and self.store.durability is not Durability.POWER_SAFE_EACH
        ):
            queued = self._take_queued()
            if queued:
                return await self._handle_batch(current, queued)
        return await self._handle_one(message)

    async def _handle_one(self, message: LotKeeperInbox) -> object:
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
        except StoreError as exc:
            raise self._unrecoverable(exc, type(message).__name__) from None

    def _unrecoverable(self, exc: StoreError, request: str) -> Exception:
        if isinstance(exc, StoreFull):
            # A restart frees no room: it would fail the same way until the intensity gave up.
            store = self.store
            return LedgerFull(store.path, store.map_size, request)
        if isinstance(exc, StoreDamaged):
            return LedgerDamaged(exc)
        if isinstance(exc, StoreUnwritable):
            return LedgerUnwritable(exc, request)
        return exc

    def _take_queued(self) -> list[Envelope[LotKeeperInbox]]:
        # The writes queued behind the one being handled, and the first other message after
        # them (answered after their commit), in arrival order; a stop asked for ends it.
        take_next = self.context.take_next
        taken: list[Envelope[LotKeeperInbox]] = []
        while len(taken) < MAX_BATCH - 1:
            envelope = take_next()
            if envelope is None:
                break
            taken.append(envelope)
            if not isinstance(envelope.message, _WRITES):
                break
        return taken

    async def _handle_batch(
        self, current: Envelope[LotKeeperInbox], queued: list[Envelope[LotKeeperInbox]]
    ) -> object:
        trailing = None if isinstance(queued[-1].message, _WRITES) else queued.pop()
        unanswered = queued if trailing is None else [*queued, trailing]
        try:
            writes = [self._write_of(e.message) for e in (current, *queued)]
            outcomes = await self.store.write(functools.partial(_run_batch, writes=writes))
            self._answer_batch(current, queued, outcomes, unanswered)
            if trailing is not None:
                # Answered now: a failing read behind it must not fail a committed write.
                _answer(current, outcomes[0])
                answer = await self._handle_taken(trailing)
                _answer(trailing, answer)
                unanswered.remove(trailing)
        except BaseException as exc:
            # The batch's commit failed (nothing of it is kept), or the lot-keeper dies after
            # it: every request taken with it and not answered fails, as the one being handled
            # does.
            for envelope in unanswered:
                if envelope.reply is not None:
                    crashed = ActorCrashed(self.context.name, type(envelope.message).__name__)
                    crashed.__cause__ = exc
                    envelope.reply.fail(crashed)
            raise
        return outcomes[0]

    def _answer_batch(
        self,
        current: Envelope[LotKeeperInbox],
        queued: list[Envelope[LotKeeperInbox]],
        outcomes: list[object],
        unanswered: list[Envelope[LotKeeperInbox]],
    ) -> None:
        # Answers each request of a committed batch, in order, up to one the store failed
        # (``_Failed``): the requests before it are committed and answered; it and those after
        # it (never run) fail with the lot-keeper, as a single request's failure would.
        for envelope, outcome in zip((current, *queued), outcomes, strict=False):
            if isinstance(outcome, _Failed):
                error = outcome.error
                if isinstance(error, StoreError):
                    raise self._unrecoverable(error, type(envelope.message).__name__) from None
                raise error
            _answer(envelope, outcome)
            if envelope is not current:
                unanswered.remove(envelope)

    async def _handle_taken(self, envelope: Envelope[LotKeeperInbox]) -> object:
        context = self.context
        current = context.envelope
        context.envelope = envelope
        try:
            return await self._handle_one(envelope.message)
        finally:
            context.envelope = current

    def _write_of(self, message: LotKeeperInbox) -> Callable[[Txn], object]:
        # The transaction a write request runs, returning its reply.
        now_ns = self.context.clock.time_ns()
        match message:
            case CommitIntent(order=order, dry=dry):
                intent = ledger.IntentRecord(order=order, created_ns=now_ns, dry=dry)
                return functools.partial(ledger.commit_intent, intent=intent)
            case CommitBracket(bracket=bracket, dry=dry):
                legs = tuple(
                    ledger.IntentRecord(order=leg, created_ns=now_ns, dry=dry)
                    for leg in bracket.legs
                )
                return functools.partial(ledger.commit_intents, intents=legs)
            case AmendIntent(change=change):
                return functools.partial(ledger.amend_intent, change=change)
            case RecordFill(fill=fill):
                return functools.partial(ledger.record_fill, fill=fill, now_ns=now_ns)
            case Heal(intents=intents, fills=fills, retired=retired, conflicts=conflicts):
                return functools.partial(
                    ledger.heal,
                    intents=intents,
                    executions=fills,
                    retired=retired,
                    conflicts=conflicts,
                    now_ns=now_ns,
                )
            case AcknowledgeConflicts(symbol=symbol):
                return functools.partial(ledger.acknowledge_conflicts, symbol=symbol, now_ns=now_ns)
            case ApplyAction(action=action):
                return functools.partial(ledger.apply_action, action=action, now_ns=now_ns)
            case BindOrder(binding=binding):
                return _replying_true(functools.partial(ledger.bind, binding=binding))
            case SaveSnapshot(actor=actor, data=data):
                return _replying_true(
                    functools.partial(ledger.save_snapshot, actor=actor, data=data)
                )
            case SaveRisk(record=record):
                return _replying_true(functools.partial(ledger.save_risk, record=record))
            case _:
                raise TypeError(f"{type(message).__name__} does not write")

    async def _handle(self, message: LotKeeperInbox) -> object:
        store = self.store
        match message:
            case (
                CommitIntent()
                | CommitBracket()
                | AmendIntent()
                | RecordFill()
                | Heal()
                | AcknowledgeConflicts()
                | ApplyAction()
                | BindOrder()
                | SaveSnapshot()
                | SaveRisk()
            ):
                return await store.write(self._write_of(message))
            case LoadLedger(symbol=symbol):
                return store.read(functools.partial(ledger_state, symbol=symbol))
            case LoadSnapshot(actor=actor):
                return store.read(functools.partial(ledger.load_snapshot, actor=actor))
            case LoadRisk():
                return store.read(ledger.load_risk)
            case Backup(target=target):
                # A read transaction: it runs beside the writer thread, off the event loop,
                # once everything journaled is committed into LMDB (it copies LMDB).
                try:
                    await store.flush()
                    return str(await anyio.to_thread.run_sync(store.backup, target))
                except (StoreError, OSError) as exc:
                    return Refused(reason=f"backup to {target} failed: {exc}")
            case _:
                assert_never(message)


def _replying_true(write: Callable[[Txn], object]) -> Callable[[Txn], bool]:
    def run(txn: Txn) -> bool:
        write(txn)
        return True

    return run


def _run_batch(txn: Txn, writes: list[Callable[[Txn], object]]) -> list[object]:
    # One transaction for a batch: each write nested (undone alone if it raises), in order;
    # the replies as a single request would get them. A conflict is kept right after the
    # request that met it (a single request keeps it in a transaction of its own). A store
    # error stops the batch there: the writes before it commit, none after it runs.
    outcomes: list[object] = []
    for write in writes:
        try:
            outcomes.append(txn.attempt(write))
        except ledger.ExecutionConflict as exc:
            conflict = exc.conflict
            try:
                txn.attempt(functools.partial(ledger.record_conflict, conflict=conflict))
            except StoreError as error:
                outcomes.append(_Failed(error))
                break
            outcomes.append(Conflicted(conflict=conflict))
        except ledger.LedgerError as exc:
            outcomes.append(Refused(reason=str(exc)))
        except StoreError as exc:
            outcomes.append(_Failed(exc))
            break
    return outcomes


def _answer(envelope: Envelope[LotKeeperInbox], outcome: object) -> None:
    if envelope.reply is not None:
        envelope.reply.succeed(outcome)


def ledger_store(
    path: str | Path,
    *,
    durability: Durability = Durability.CRASH_SAFE,
    map_size: int = 1 << 30,
    inline: bool = False,
) -> Store:
    """The lot-keeper's store, with the ledger's databases and schema (not yet opened);
    ``inline`` commits on the event loop's thread (a run on a virtual clock: a backtest)."""
    return Store(
        path,
        databases=ledger.DATABASES,
        schema_version=ledger.SCHEMA_VERSION,
        migrations=ledger.MIGRATIONS,
        durability=durability,
        map_size=map_size,
        inline=inline,
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
        actions=tuple(ledger.actions(txn, symbol)),
    )
