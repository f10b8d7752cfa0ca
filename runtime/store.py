"""Durable state in LMDB: one environment, one writer thread, whole transactions.

Every ``await store.write(fn)`` runs ``fn(txn)`` as one transaction on the store's writer thread
(never across an ``await``, never on the event loop thread) and returns once it is committed, and
on disk when the durability policy says so:

* ``Durability.POWER_SAFE`` (the default): writes queued together commit in one transaction with one
  fsync; each still runs in its own nested transaction, so one that raises undoes only itself.
  Full durability at a fraction of the per-commit cost (``bench/store_commit.py``).
* ``Durability.POWER_SAFE_EACH``: one commit and one fsync per write.
* ``Durability.UNSAFE``: no fsync: survives a crash of the process (the kernel has the pages),
  not a power loss; reconciliation with the broker covers the rest.

The store also keeps a schema version (with migrations run at open), refuses a second process on
the same directory, and turns a full map into ``StoreFull`` with nothing already stored lost.

A damaged environment is refused at ``open`` with ``StoreDamaged`` naming what is wrong: the data
file is checked against its own header before LMDB maps it (a file cut short would otherwise be
a SIGBUS, see ``runtime._lmdbfile``), LMDB's own refusals are translated, and the store's
``check`` reads every record. A write the disk refuses (full, read-only, I/O error) is
``StoreUnwritable``. Backups are written under a temporary name, verified, then renamed.

``inline=True`` commits on the calling thread instead (no writer thread): for deterministic
simulation on a virtual clock, where a thread's real time would race the clock. It blocks the event
loop for the commit, so it is meant for ``NOSYNC`` simulation stores, not for trading.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import datetime
import enum
import errno
import fcntl
import functools
import os
import queue
import shutil
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import lmdb

from ._journal import JournalDamaged, RedoJournal
from ._lmdbfile import check_data_file as check_data_file

T = TypeVar("T")

_META = "meta"
_SCHEMA_KEY = b"schema_version"
_APPLIED_KEY = b"journal_applied"
"""The sequence number of the last redo-journal record LMDB holds (in ``meta``)."""
JOURNAL_NAME = "redo.journal"
"""The redo journal's file in the store's directory (``Durability.CRASH_SAFE``)."""
JOURNAL_RESET_BYTES = 1 << 20
"""The journal is emptied once everything in it is committed and it holds at least this much."""
INLINE_DEFERRED = 8
"""An inline crash-safe store commits its journaled writes into LMDB this many at a time, so
that a simulation reads through the pending ones as a threaded store does."""


class StoreError(RuntimeError):
    """Raised by the store; the message names the store's directory."""


class StoreLocked(StoreError):
    """Raised by ``open`` when another process holds the store."""


class StoreFull(StoreError):
    """Raised by a write that does not fit in the map; nothing was written by it."""


class StoreDamaged(StoreError):
    """Raised by ``open``, ``verify`` and ``restore`` when an environment cannot be trusted: its
    data file is cut short or its meta pages are not LMDB's, LMDB refuses it, or a record does
    not decode (``RecordDamaged``). ``path`` is the file or directory, ``problem`` what is
    wrong."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"ledger damaged: {path}: {problem}: restore from a backup (actorctl backup) or "
            "start empty and reconcile"
        )
        self.path = path
        self.problem = problem


class RecordDamaged(StoreDamaged):
    """Raised by whoever decodes a stored record (the ledger's functions, a store's ``check``)
    when it does not decode: names the database and the key."""

    def __init__(self, path: Path, database: str, key: bytes, reason: str) -> None:
        shown = key.decode(errors="backslashreplace")
        super().__init__(path, f"record {database}/{shown!r} does not decode ({reason})")
        self.database = database
        self.key = key


class StoreUnwritable(StoreError):
    """Raised by a write the disk refused (no space left, read-only, an I/O error) or after
    which LMDB refuses every write (a panic): nothing of it was stored. Restarting the writer
    does not free space or fix a disk. ``detail`` is the error LMDB or the OS gave."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"{path}: the disk refused the write ({detail}); nothing of it was stored")
        self.path = path
        self.detail = detail


_UNWRITABLE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})
_DAMAGE_ERRORS: tuple[type[lmdb.Error], ...] = (
    lmdb.CorruptedError,
    lmdb.InvalidError,
    lmdb.VersionMismatchError,
    lmdb.PageNotFoundError,
)
_UNWRITABLE_ERRORS: tuple[type[lmdb.Error], ...] = (
    lmdb.DiskError,
    lmdb.PanicError,
    lmdb.ReadonlyError,
)


class Durability(enum.StrEnum):
    """What a write survives once it is answered (``[ledger] durability`` in the config). Each
    name says what it guarantees; docs/durability.md says what each costs."""

    CRASH_SAFE = "crash-safe"
    """Answered once the write is in the store's redo journal (one ``write`` to the page
    cache, on the calling thread: no fsync, no thread hand-off): it survives any death of the
    process. LMDB commits it afterwards, on the writer thread, with an fsync shared with the
    writes queued beside it; a power loss or a kernel crash before that fsync may lose the last
    writes, which reconciliation rebuilds from the broker. The service's default."""
    POWER_SAFE = "power-safe"
    """Answered once the write is committed and fsynced (data and meta pages), the fsync
    shared with the writes queued beside it: it survives a power loss."""
    POWER_SAFE_EACH = "power-safe-each"
    """As ``power-safe``, with one commit and one fsync for each write."""
    UNSAFE = "unsafe"
    """No fsync: a write survives a crash of the process (the kernel has the pages), a power
    loss may lose recent writes. For tests and benchmarks."""

    @classmethod
    def _missing_(cls, value: object) -> Durability | None:
        # The names of earlier versions, still read from a config: "group" was power-safe
        # (without the meta page's fsync: see docs/durability.md), "sync" was
        # power-safe-each, "nosync" unsafe.
        return _OLD_NAMES.get(value) if isinstance(value, str) else None


_OLD_NAMES = {
    "group": Durability.POWER_SAFE,
    "sync": Durability.POWER_SAFE_EACH,
    "nosync": Durability.UNSAFE,
}


class Txn:
    """The view of one write (or read) transaction a store function gets: named databases."""

    __slots__ = ("_txn", "_dbs", "path", "_store")

    def __init__(
        self,
        txn: lmdb.Transaction,
        dbs: Mapping[str, Any],
        path: Path,
        store: Store | None = None,
    ) -> None:
        self._txn = txn
        self._dbs = dbs
        self.path = path
        """The store's directory, for errors that name a record (``RecordDamaged``)."""
        self._store = store

    def attempt(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in a transaction nested in this write transaction: what it writes is kept
        (with this transaction's commit) if it returns, and undone if it raises; the exception
        propagates, an LMDB one translated as a write's would be (``StoreFull``, ...). Several
        callers' writes can so share one commit, each undone alone (``Store.write``'s grouping,
        done by a caller that holds the requests: the lot-keeper's batches)."""
        store = self._store
        if store is None:
            raise StoreError(f"store {self.path}: a nested transaction needs a write transaction")
        try:
            child = store._require_env().begin(write=True, parent=self._txn)
        except lmdb.Error as exc:
            raise store._translate(exc) from None
        try:
            result = fn(Txn(child, self._dbs, self.path, store))
        except BaseException as exc:
            child.abort()
            translated = store._translate(exc)
            if translated is exc:
                raise
            raise translated from None
        try:
            child.commit()
        except lmdb.Error as exc:
            raise store._translate(exc) from None
        return result

    def get(self, db: str, key: bytes) -> bytes | None:
        value = self._txn.get(key, db=self._dbs[db])
        return None if value is None else bytes(value)

    def put(self, db: str, key: bytes, value: bytes, *, overwrite: bool = True) -> bool:
        """Store ``value``; with ``overwrite=False`` an existing key is kept and False returned."""
        return bool(self._txn.put(key, value, db=self._dbs[db], overwrite=overwrite))

    def delete(self, db: str, key: bytes) -> bool:
        return bool(self._txn.delete(key, db=self._dbs[db]))

    def items(self, db: str, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        """Key/value pairs of ``db`` in key order, only those starting with ``prefix``."""
        with self._txn.cursor(db=self._dbs[db]) as cursor:
            if not cursor.set_range(prefix):
                return
            for raw_key, value in cursor:
                key = bytes(raw_key)
                if not key.startswith(prefix):
                    return
                yield key, bytes(value)

    def count(self, db: str) -> int:
        return int(self._txn.stat(self._dbs[db])["entries"])


class _PartialTxn(Txn):
    # A read of an older schema's copy: the databases added since read as empty.
    __slots__ = ()

    def get(self, db: str, key: bytes) -> bytes | None:
        return super().get(db, key) if db in self._dbs else None

    def items(self, db: str, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        if db in self._dbs:
            yield from super().items(db, prefix)

    def count(self, db: str) -> int:
        return super().count(db) if db in self._dbs else 0


class _Request(Generic[T]):
    __slots__ = ("fn", "done", "token", "result", "error", "seq")

    def __init__(
        self, fn: Callable[[Txn], T], token: anyio.lowlevel.EventLoopToken | None, seq: int = 0
    ) -> None:
        self.fn = fn
        # Only a request someone awaits needs its event (an anyio.Event costs microseconds).
        self.done: anyio.Event | None = None if token is None else anyio.Event()
        self.token = token
        """The waiting loop's; None for a journaled write's commit, which nobody awaits."""
        self.result: T | None = None
        self.error: BaseException | None = None
        self.seq = seq
        """The redo-journal record this request commits (0: none)."""


Ops = dict[str, dict[bytes, bytes | None]]
"""A write's changes: per database, each key's new value (None: deleted)."""


class _Pending:
    """A crash-safe store's journaled writes not yet known to be committed into LMDB (the
    event-loop thread's, never the writer thread's): each key's newest value (``ops``; None:
    deleted), the keys of each database in order (for ``items``), the record that wrote each
    key last, and each record's keys and change of each database's count, oldest first."""

    __slots__ = ("ops", "keys", "written_by", "records", "delta")

    def __init__(self) -> None:
        self.ops: Ops = {}
        self.keys: dict[str, list[bytes]] = {}
        self.written_by: dict[tuple[str, bytes], int] = {}
        self.records: collections.deque[tuple[int, list[tuple[str, bytes]], dict[str, int]]] = (
            collections.deque()
        )
        self.delta: dict[str, int] = {}

    def add(self, seq: int, ops: Ops, delta: dict[str, int]) -> None:
        keys: list[tuple[str, bytes]] = []
        for db, changes in ops.items():
            values = self.ops.setdefault(db, {})
            for key, value in changes.items():
                if key not in values:
                    bisect.insort(self.keys.setdefault(db, []), key)
                values[key] = value
                self.written_by[db, key] = seq
                keys.append((db, key))
        for db, change in delta.items():
            self.delta[db] = self.delta.get(db, 0) + change
        self.records.append((seq, keys, delta))

    def forget(self, applied: int) -> None:
        """Forget the records up to ``applied`` (LMDB holds them), keeping each key a later
        record wrote."""
        records = self.records
        while records and records[0][0] <= applied:
            seq, keys, delta = records.popleft()
            for db, key in keys:
                if self.written_by.get((db, key)) == seq:
                    del self.written_by[db, key]
                    changes = self.ops[db]
                    del changes[key]
                    ordered = self.keys[db]
                    del ordered[bisect.bisect_left(ordered, key)]
            for db, change in delta.items():
                self.delta[db] -= change

    def count_delta(self, db: str, committed: int) -> int:
        """How the records LMDB did not hold at ``committed`` change ``db``'s count."""
        delta = self.delta.get(db, 0)
        for seq, _keys, changes in self.records:
            if seq > committed:
                break
            delta -= changes.get(db, 0)
        return delta


class _OverlayTxn(Txn):
    # A crash-safe store's view: a read transaction of LMDB under the journaled writes not yet
    # committed there (``pending``), under the changes of the enclosing writes of a nested
    # ``attempt`` (``layers``, outermost first), and, when it writes, its own changes on top
    # (``ops``: captured here, written to LMDB by nobody but the writer thread, later).
    __slots__ = ("_pending", "_layers", "ops", "_read", "delta", "_outer")

    def __init__(
        self,
        txn: lmdb.Transaction,
        dbs: Mapping[str, Any],
        path: Path,
        store: Store,
        pending: _Pending,
        layers: tuple[Ops, ...] = (),
        *,
        writable: bool,
    ) -> None:
        super().__init__(txn, dbs, path, store)
        self._pending = pending
        self._layers = layers
        self.ops: Ops | None = {} if writable else None
        self._read: dict[tuple[str, bytes], bytes | None] = {}
        """LMDB's values read through this view: its snapshot does not change."""
        self.delta: dict[str, int] = {}
        """How this view's own changes change each database's count."""
        self._outer: dict[str, int] = {}
        """The same for the enclosing writes' (a nested ``attempt``'s)."""

    def _below(self, db: str, key: bytes) -> bytes | None:
        # The value under this view's own changes and its enclosing writes'.
        changes = self._pending.ops.get(db)
        if changes is not None and key in changes:
            return changes[key]
        read = self._read
        try:
            return read[db, key]
        except KeyError:
            value = read[db, key] = super().get(db, key)
            return value

    def get(self, db: str, key: bytes) -> bytes | None:
        ops = self.ops
        if ops:
            changes = ops.get(db)
            if changes is not None and key in changes:
                return changes[key]
        for layer in reversed(self._layers):
            changes = layer.get(db)
            if changes is not None and key in changes:
                return changes[key]
        return self._below(db, key)

    def put(self, db: str, key: bytes, value: bytes, *, overwrite: bool = True) -> bool:
        ops = self._writable()
        if db not in self._dbs:
            raise StoreError(f"{self.path}: no database {db!r}")
        held = self.get(db, key) is not None
        if held and not overwrite:
            return False
        ops.setdefault(db, {})[bytes(key)] = bytes(value)
        if not held:
            self.delta[db] = self.delta.get(db, 0) + 1
        return True

    def delete(self, db: str, key: bytes) -> bool:
        ops = self._writable()
        if self.get(db, key) is None:
            return False
        ops.setdefault(db, {})[bytes(key)] = None
        self.delta[db] = self.delta.get(db, 0) - 1
        return True

    def items(self, db: str, prefix: bytes = b"") -> Iterator[tuple[bytes, bytes]]:
        changes: dict[bytes, bytes | None] = {}
        pending = self._pending.ops.get(db)
        if pending:
            ordered = self._pending.keys[db]
            at = bisect.bisect_left(ordered, prefix)
            while at < len(ordered) and ordered[at].startswith(prefix):
                key = ordered[at]
                changes[key] = pending[key]
                at += 1
        for layer in (*self._layers, self.ops or {}):
            for key, value in layer.get(db, {}).items():
                if key.startswith(prefix):
                    changes[key] = value
        if not changes:
            yield from super().items(db, prefix)
            return
        extra = sorted(changes)
        i = 0
        for key, value in super().items(db, prefix):
            while i < len(extra) and extra[i] < key:
                new = changes[extra[i]]
                if new is not None:
                    yield extra[i], new
                i += 1
            if key in changes:
                if i < len(extra) and extra[i] == key:
                    i += 1
                new = changes[key]
                if new is not None:
                    yield key, new
                continue
            yield key, value
        for key in extra[i:]:
            new = changes[key]
            if new is not None:
                yield key, new

    def count(self, db: str) -> int:
        # LMDB's count in this snapshot, the pending records it does not hold yet (it holds
        # every record up to the one its meta names), then this write's own changes.
        meta = self._txn.get(_APPLIED_KEY, db=self._dbs[_META])
        count = super().count(db) + self._pending.count_delta(db, int(meta) if meta else 0)
        return count + self._outer.get(db, 0) + self.delta.get(db, 0)

    def attempt(self, fn: Callable[[Txn], T]) -> T:
        store = self._store
        assert store is not None  # a crash-safe store's view always has it
        ops = self._writable()
        child = _OverlayTxn(
            self._txn,
            self._dbs,
            self.path,
            store,
            self._pending,
            (*self._layers, ops),
            writable=True,
        )
        child._read = self._read
        outer = dict(self._outer)
        for db, change in self.delta.items():
            outer[db] = outer.get(db, 0) + change
        child._outer = outer
        try:
            result = fn(child)
        except BaseException as exc:
            translated = store._translate(exc)
            if translated is exc:
                raise
            raise translated from None
        for db, changes in (child.ops or {}).items():
            ops.setdefault(db, {}).update(changes)
        for db, change in child.delta.items():
            self.delta[db] = self.delta.get(db, 0) + change
        return result

    def _writable(self) -> Ops:
        if self.ops is None:
            raise StoreError(f"{self.path}: a read transaction cannot write")
        return self.ops


Migration = Callable[[Txn], None]
Check = Callable[[Txn], None]
"""Reads every record of a store and raises ``RecordDamaged`` for one that does not decode."""


class Store:
    """One LMDB environment with named databases, written only by its own thread."""

    def __init__(
        self,
        path: str | Path,
        *,
        databases: Sequence[str],
        schema_version: int,
        migrations: Mapping[int, Migration] | None = None,
        durability: Durability = Durability.POWER_SAFE,
        map_size: int = 1 << 30,
        max_batch: int = 256,
        inline: bool = False,
        check: Check | None = None,
    ) -> None:
        if _META in databases:
            raise ValueError(f"{_META!r} is the store's own database name")
        self.path = Path(path)
        self.databases = tuple(databases)
        self.schema_version = schema_version
        self.migrations = dict(migrations or {})
        self.durability = durability
        self.map_size = map_size
        self.max_batch = (
            max_batch if durability in (Durability.POWER_SAFE, Durability.CRASH_SAFE) else 1
        )
        self.inline = inline
        self.check = check
        """Run over every record at ``open``, and over a backup's copy before it is kept."""
        self._env: lmdb.Environment | None = None
        self._dbs: dict[str, Any] = {}
        self._lock_file: int | None = None
        self._queue: queue.SimpleQueue[_Request[Any] | None] = queue.SimpleQueue()
        # Crash-safe (``_journal`` set while open): the writes journaled and not yet known to be
        # committed into LMDB (``_pending``); the last record journaled, and the last one the
        # writer thread committed (it sets ``_applied_seq``, a plain int, and ``_failure``: the
        # event-loop thread reads them, never waits on them).
        self._journal: RedoJournal | None = None
        self._pending = _Pending()
        self._journaled_seq = 0
        self._applied_seq = 0
        self._failure: BaseException | None = None
        self._inline_pending: list[_Request[Any]] = []
        self._held: list[_Request[Any]] | None = None
        self._held_news: anyio.Event | None = None
        self.replayed = 0
        """Journal records committed into LMDB by the last ``open`` (a crash's writes)."""
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.writes = 0
        self.commit_ns: collections.deque[int] = collections.deque(maxlen=65_536)
        """Each commit's duration (fsync included), appended by the writer thread; the metrics
        drain it (``actortrade.store.commit.duration``)."""

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> None:
        """Lock the directory, check the data file, open the environment, migrate, read every
        record (``check``), start the writer thread. Raises ``StoreDamaged`` for an environment
        that cannot be trusted, before anything is written to it."""
        self.path.mkdir(parents=True, exist_ok=True)
        # A store object outlives its opens (a lot-keeper's successor opens it again): what a
        # failed commit left is the journal's to replay now, not an error of this open.
        self._failure = None
        self._forget_pending()
        self._lock()
        try:
            # Before LMDB maps it: reading a page past the end of the file is a SIGBUS.
            _check_file(self.path / "data.mdb")
            try:
                self._env = lmdb.open(
                    str(self.path),
                    map_size=self.map_size,
                    max_dbs=len(self.databases) + 1,
                    sync=self.durability is not Durability.UNSAFE,
                    # The meta page's own fsync: without it a power loss may undo the last
                    # commit; the power-safe policies pay for it, crash-safe need not (its
                    # promise ends at a crash of the process: docs/durability.md).
                    metasync=self.durability in (Durability.POWER_SAFE, Durability.POWER_SAFE_EACH),
                    lock=True,
                    mode=0o600,
                )
                for name in (_META, *self.databases):
                    self._dbs[name] = self._env.open_db(name.encode())
                self._migrate()
                self._replay_journal()
                if self.check is not None:
                    self.read(self.check)
            except lmdb.Error as exc:
                raise self._translate(exc) from None
        except BaseException:
            self.close()
            raise
        if self.inline:
            return
        self._thread = threading.Thread(
            target=self._writer, name=f"store-writer:{self.path.name}", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Finish queued writes, stop the writer thread, close the environment, unlock. A
        crash-safe store commits what its journal holds first, and empties the journal once
        LMDB has it on disk."""
        self.release_commits(stop_holding=True)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        journal = self._journal
        if journal is not None:
            self._journal = None
            with contextlib.suppress(StoreError):
                self._commit_inline_pending()
            if self._env is not None and self._failure is None:
                with contextlib.suppress(lmdb.Error):
                    self._env.sync(True)
                    if self._applied_seq == self._journaled_seq:
                        journal.reset()
            journal.close()
            self._forget_pending()
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    @property
    def is_open(self) -> bool:
        return self._env is not None

    def __enter__(self) -> Store:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- use ---------------------------------------------------------------------------------

    async def write(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in one write transaction on the writer thread; return its result once
        committed (and on disk, unless NOSYNC). If ``fn`` raises, nothing it wrote is kept.

        Waiting is shielded: a write once queued is always seen to its end, so the caller never
        wonders whether it happened; a cancellation takes effect right after.

        A crash-safe store runs ``fn`` on the calling thread instead (``write_now``) and
        returns without waiting, once the write is in the redo journal.
        """
        if self._journal is not None:
            return self.write_now(fn)
        if self.inline:
            return await self._write_inline(fn)
        if self._thread is None:
            raise StoreError(f"store {self.path} is not open")
        request: _Request[T] = _Request(fn, anyio.lowlevel.current_token())
        self._queue.put(request)
        with anyio.CancelScope(shield=True):
            assert request.done is not None  # it has a token
            await request.done.wait()
        await anyio.lowlevel.checkpoint_if_cancelled()
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]  # set whenever error is None

    async def _write_inline(self, fn: Callable[[Txn], T]) -> T:
        # A scheduling point on each side of the commit, as the writer thread would give.
        await anyio.lowlevel.checkpoint()
        self._require_env()
        request: _Request[T] = _Request(fn, anyio.lowlevel.current_token())
        self._commit([request])
        await anyio.lowlevel.checkpoint()
        if request.error is not None:
            raise request.error
        return request.result  # type: ignore[return-value]  # set whenever error is None

    def write_now(self, fn: Callable[[Txn], T]) -> T:
        """A crash-safe store's write: run ``fn`` here, on the calling thread, over what LMDB
        holds and the journaled writes it does not hold yet; append what ``fn`` changed to the
        redo journal (one ``write``, no fsync: it survives any death of the process from
        then on) and return ``fn``'s result. The writer thread commits it into LMDB later, in
        journal order, with the writes queued beside it; every read and write after this one
        sees it meanwhile. If ``fn`` raises, nothing it wrote is kept. A commit the writer
        thread could not make (the map full, the disk refusing) is raised here from then on,
        by every write (and by ``raise_failure``); what the journal holds is committed at the
        next open."""
        journal = self._journal
        if journal is None:
            raise StoreError(f"store {self.path} is not open with a redo journal")
        self._settle()
        env = self._require_env()
        try:
            with env.begin(buffers=False) as txn:
                view = _OverlayTxn(txn, self._dbs, self.path, self, self._pending, writable=True)
                result = fn(view)
                ops = view.ops
                if not ops:
                    return result
                delta = {db: change for db, change in view.delta.items() if change}
        except BaseException as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from None
        payload = _encode_ops(ops, self._db_index)
        try:
            seq = journal.append(payload)
        except (OSError, ValueError) as exc:
            raise StoreUnwritable(journal.path, f"{type(exc).__name__}: {exc}") from None
        self._journaled_seq = seq
        self._pending.add(seq, ops, delta)
        request: _Request[None] = _Request(functools.partial(_apply, ops=ops, seq=seq), None, seq)
        if self.inline:
            self._inline_pending.append(request)
            if len(self._inline_pending) >= INLINE_DEFERRED:
                self._commit_inline_pending()
        elif self._held is not None:
            self._held.append(request)
            news = self._held_news
            if news is not None:
                self._held_news = None
                news.set()
        else:
            self._queue.put(request)
        return result

    def hold_commits(self) -> None:
        """Keep the journaled writes from the writer thread until ``release_commits``: for an
        owner on the event loop that hands them over when its urgent work is done. Waking the
        writer thread at once makes it take the GIL in the middle of that work (the order a
        write was made durable for, on its way to the broker), measured at 0.45 ms of a
        decision's 1.05 ms; held for a moment, they go as one batch after it."""
        if self._held is None:
            self._held = []

    @property
    def held(self) -> int:
        """Journaled writes held from the writer thread (``hold_commits``)."""
        return len(self._held or ())

    async def wait_held(self) -> None:
        """Return once a journaled write is held (at once if one is)."""
        while not self._held:
            news = self._held_news
            if news is None:
                news = self._held_news = anyio.Event()
            await news.wait()

    def release_commits(self, *, stop_holding: bool = False) -> None:
        """Hand the held writes to the writer thread, in journal order (and, with
        ``stop_holding``, hand each later one over at once again)."""
        held = self._held
        if held is None:
            return
        if held:
            self._held = []
            for request in held:
                self._queue.put(request)
        if stop_holding:
            self._held = None

    def read(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in a read transaction (a consistent snapshot; cheap, so synchronous). A
        crash-safe store's reads see its journaled writes too."""
        env = self._require_env()
        if self._journal is not None:
            self._settle(raising=False)
            with env.begin(buffers=False) as txn:
                return fn(
                    _OverlayTxn(txn, self._dbs, self.path, self, self._pending, writable=False)
                )
        with env.begin(buffers=False) as txn:
            return fn(Txn(txn, self._dbs, self.path))

    @property
    def failure(self) -> BaseException | None:
        """A crash-safe store's commit that failed on the writer thread (``StoreFull``,
        ``StoreUnwritable``, ...), or None: once set, every write raises it."""
        return self._failure

    def raise_failure(self) -> None:
        """Raise ``failure`` if there is one."""
        if self._failure is not None:
            raise self._failure

    async def flush(self) -> None:
        """Return once every journaled write is committed into LMDB (a no-op for the other
        policies, whose writes are committed when they return): before a backup copies LMDB.
        Raises the commit's failure if there is one."""
        if self._journal is None:
            return
        if self.inline:
            self._commit_inline_pending()
            return
        if self._thread is None:
            raise StoreError(f"store {self.path} is not open")
        self.release_commits()
        # Behind every journaled write in the writer's queue: done once they are committed.
        marker: _Request[None] = _Request(_nothing, anyio.lowlevel.current_token())
        self._queue.put(marker)
        with anyio.CancelScope(shield=True):
            assert marker.done is not None  # it has a token
            await marker.done.wait()
        self._settle()

    @property
    def pending(self) -> int:
        """Journaled writes not yet known to be committed into LMDB."""
        return self._journaled_seq - self._applied_seq

    def backup(self, target: str | Path) -> Path:
        """Write a consistent, compacted copy of the environment as the directory ``target``
        (new, or empty).

        The copy is written under a temporary name beside ``target`` (``<target>.tmp-*``),
        fsynced, opened read-only and read whole (``verify``), and only then renamed to
        ``target``: a backup killed midway leaves no ``target``, only a temporary directory
        that nothing takes for a backup.
        """
        env = self._require_env()
        destination = Path(target)
        if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
            raise StoreError(f"backup target {destination} is not empty")
        destination.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{destination.name}.tmp-", dir=destination.parent))
        try:
            env.copy(str(scratch), compact=True)
            _fsync(scratch / "data.mdb")
            _fsync(scratch)
            self.verify(scratch)
            # Replaces an empty directory atomically; refuses one that got files meanwhile.
            os.rename(scratch, destination)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        _fsync(destination.parent)
        return destination

    def verify(self, directory: str | Path) -> None:
        """Check that ``directory`` holds a whole copy of an environment of this store's shape:
        the data file against its header, LMDB opens it (read-only, nothing written), the
        schema version is one this store reads, every database is there and ``check`` reads
        every record. Raises ``StoreDamaged`` naming what is wrong."""
        directory = Path(directory)
        data = directory / "data.mdb"
        if not data.is_file():
            problem = "no data.mdb there" if directory.is_dir() else "there is no such directory"
            raise StoreDamaged(directory, f"{problem}: not a copy of a ledger")
        _check_file(data)
        try:
            env = lmdb.open(
                str(directory),
                max_dbs=len(self.databases) + 1,
                readonly=True,
                lock=False,
            )
        except lmdb.Error as exc:
            raise StoreDamaged(data, f"LMDB refuses it: {type(exc).__name__}: {exc}") from None
        try:
            dbs: dict[str, Any] = {}
            missing: list[str] = []
            for name in (_META, *self.databases):
                try:
                    dbs[name] = env.open_db(name.encode(), create=False)
                except lmdb.NotFoundError:
                    if name == _META:
                        raise StoreDamaged(directory, f"its database {name!r} is missing") from None
                    missing.append(name)
            with env.begin(buffers=False) as txn:
                view = Txn(txn, dbs, directory)
                stored = view.get(_META, _SCHEMA_KEY)
                version = _schema_version(directory, stored)
                if version > self.schema_version:
                    raise StoreError(
                        f"{directory} was written by a newer actortrade (schema {version}, "
                        f"this version reads up to {self.schema_version})"
                    )
                if missing and version == self.schema_version:
                    raise StoreDamaged(directory, f"its database {missing[0]!r} is missing")
                # An older schema's copy lacks the databases added since (its migrations
                # create them empty at open): read as empty.
                if self.check is not None:
                    self.check(_PartialTxn(txn, dbs, directory) if missing else view)
        except lmdb.Error as exc:
            raise StoreDamaged(data, f"LMDB refuses it: {type(exc).__name__}: {exc}") from None
        finally:
            env.close()

    def restore(self, backup: str | Path, *, force: bool = False) -> Path | None:
        """Make a verified copy of the backup directory ``backup`` this (closed) store's
        environment. An existing environment is kept unless ``force``, and then moved aside
        (to ``<path>.replaced-<UTC time>``, returned) rather than overwritten; a store in use
        by another process is refused (``StoreLocked``). The copy is verified before it takes
        the store's place, under a temporary name, so a restore killed midway changes nothing.
        """
        if self.is_open:
            raise StoreError(f"store {self.path} is open: close it before restoring into it")
        source = Path(backup)
        self.verify(source)
        moved: Path | None = None
        if (self.path / "data.mdb").exists():
            if not force:
                raise StoreError(
                    f"{self.path} already holds a ledger: restoring would replace it (use "
                    "--force to move it aside first)"
                )
            self._lock()  # refuses while a service runs on it
            try:
                stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
                moved = self.path.with_name(f"{self.path.name}.replaced-{stamp}")
                os.rename(self.path, moved)
            finally:
                self.close()
        elif self.path.exists() and not self.path.is_dir():
            raise StoreError(f"{self.path} exists and is not a directory")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f"{self.path.name}.tmp-", dir=self.path.parent))
        try:
            shutil.copyfile(source / "data.mdb", scratch / "data.mdb")
            _fsync(scratch / "data.mdb")
            _fsync(scratch)
            self.verify(scratch)
            if self.path.exists():  # an empty ledger directory (never written)
                shutil.rmtree(self.path)
            os.rename(scratch, self.path)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        _fsync(self.path.parent)
        return moved

    # -- internals ---------------------------------------------------------------------------

    def _require_env(self) -> lmdb.Environment:
        if self._env is None:
            raise StoreError(f"store {self.path} is not open")
        return self._env

    def _lock(self) -> None:
        lock_path = self.path / "actortrade.lock"
        handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(handle, 32).decode(errors="replace").strip() or "unknown"
            os.close(handle)
            raise StoreLocked(
                f"{self.path} is in use by another actortrade process (pid {holder}); "
                "stop it first, or use another data directory"
            ) from None
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        self._lock_file = handle

    def _migrate(self) -> None:
        env = self._require_env()
        with env.begin(write=True) as txn:
            view = Txn(txn, self._dbs, self.path, self)
            stored = view.get(_META, _SCHEMA_KEY)
            if stored is None:
                view.put(_META, _SCHEMA_KEY, str(self.schema_version).encode())
                return
            version = _schema_version(self.path, stored)
            if version > self.schema_version:
                raise StoreError(
                    f"{self.path} was written by a newer actortrade (schema {version}, this "
                    f"version reads up to {self.schema_version}): refusing to open it"
                )
            while version < self.schema_version:
                migration = self.migrations.get(version)
                if migration is None:
                    raise StoreError(f"{self.path}: no migration from schema {version}")
                migration(view)
                version += 1
            view.put(_META, _SCHEMA_KEY, str(version).encode())

    @functools.cached_property
    def _db_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate((_META, *self.databases))}

    def _replay_journal(self) -> None:
        # Commit what a crash left in the redo journal (records above the one LMDB holds),
        # fsync, empty the journal. A journal left by a crash-safe run is replayed whatever
        # the policy now; only a crash-safe store keeps one open.
        path = self.path / JOURNAL_NAME
        crash_safe = self.durability is Durability.CRASH_SAFE
        self.replayed = 0
        if not crash_safe and not path.exists():
            return
        env = self._require_env()
        with env.begin(buffers=False) as txn:
            stored = Txn(txn, self._dbs, self.path).get(_META, _APPLIED_KEY)
        applied = int(stored) if stored else 0
        journal = RedoJournal(path)
        try:
            records = journal.open(applied + 1)
        except JournalDamaged as exc:
            raise StoreDamaged(exc.path, f"record at byte {exc.offset}: {exc.problem}") from None
        names = (_META, *self.databases)
        try:
            later = [(seq, payload) for seq, payload in records if seq > applied]
            if later:
                with env.begin(write=True) as txn:
                    view = Txn(txn, self._dbs, self.path, self)
                    for seq, payload in later:
                        try:
                            ops = _decode_ops(payload, names)
                        except ValueError as exc:
                            raise StoreDamaged(
                                path, f"record {seq} does not decode: {exc}"
                            ) from None
                        _apply(view, ops, seq)
                env.sync(True)
                self.replayed = len(later)
            journal.reset()
            applied = max(applied, journal.next_seq - 1)
        except BaseException:
            journal.close()
            raise
        self._applied_seq = self._journaled_seq = applied
        if crash_safe:
            self._journal = journal
        else:
            journal.close()
            path.unlink()

    def _settle(self, *, raising: bool = True) -> None:
        # On the event-loop thread: forget the journaled writes the writer thread has
        # committed (read before any LMDB read transaction that relies on it is begun, so
        # nothing is forgotten that the transaction would not see); empty a journal that
        # has grown and is all committed.
        if raising and self._failure is not None:
            raise self._failure
        applied = self._applied_seq
        pending = self._pending
        if pending.records and pending.records[0][0] <= applied:
            pending.forget(applied)
        journal = self._journal
        if (
            journal is not None
            and applied == self._journaled_seq
            and journal.size >= JOURNAL_RESET_BYTES
        ):
            journal.reset()

    def _forget_pending(self) -> None:
        self._pending = _Pending()
        self._inline_pending = []

    def _commit_inline_pending(self) -> None:
        batch, self._inline_pending = self._inline_pending, []
        if batch and self._failure is None:
            self._commit(batch)
        self._settle()

    def _writer(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch: list[_Request[Any]] = [first]
            while len(batch) < self.max_batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.append(more)
            self._commit(batch)
            waiting = [r for r in batch if r.token is not None]
            for token in {id(r.token): r.token for r in waiting}.values():
                mine = [r for r in waiting if r.token is token]
                # The waiting loop may be gone (its run ended): nobody to tell then.
                with contextlib.suppress(anyio.RunFinishedError):
                    anyio.from_thread.run_sync(_complete, mine, token=token)

    def _commit(self, batch: list[_Request[Any]]) -> None:
        env = self._require_env()
        if self._failure is not None:
            # A journaled write failed to commit: none after it may (LMDB would then say a
            # later record was applied, and the next open skip the failed one).
            for request in batch:
                request.error = self._failure
            return
        started = time.perf_counter_ns()
        try:
            with env.begin(write=True) as txn:
                for request in batch:
                    child = env.begin(write=True, parent=txn)
                    try:
                        request.result = request.fn(Txn(child, self._dbs, self.path, self))
                    except BaseException as exc:
                        child.abort()
                        request.error = self._translate(exc)
                        if request.seq:
                            raise request.error from None
                    else:
                        child.commit()
        except BaseException as exc:
            error = self._translate(exc)
            if not isinstance(error, Exception):
                raise
            for request in batch:
                if request.error is None:
                    request.error = error
            if any(request.seq for request in batch):
                self._failure = error
            return
        self.commit_ns.append(time.perf_counter_ns() - started)
        self.commits += 1
        self.writes += len(batch)
        last = max((request.seq for request in batch), default=0)
        if last:
            self._applied_seq = last

    def _translate(self, exc: BaseException) -> BaseException:
        if isinstance(exc, lmdb.MapFullError):
            return StoreFull(
                f"{self.path}: the LMDB map is full ({self.map_size} bytes); nothing of this "
                "write was stored; the map must be made larger (Store(map_size=...))"
            )
        if isinstance(exc, _DAMAGE_ERRORS):
            return StoreDamaged(self.path, f"LMDB refuses it: {type(exc).__name__}: {exc}")
        if isinstance(exc, _UNWRITABLE_ERRORS) or _errno_of(exc) in _UNWRITABLE_ERRNOS:
            return StoreUnwritable(self.path, f"{type(exc).__name__}: {exc}")
        if isinstance(exc, lmdb.Error):
            return StoreError(f"{self.path}: {type(exc).__name__}: {exc}")
        return exc


def _errno_of(exc: BaseException) -> int | None:
    if isinstance(exc, OSError):
        return exc.errno
    if not isinstance(exc, lmdb.Error):
        return None
    # py-lmdb's C extension maps only ENOSPC (DiskError) and a few others to classes and
    # keeps no errno: a commit whose write came up short (a full disk, seen as EIO) is a
    # plain lmdb.Error whose message ends with strerror(). Its cffi variant passes the code.
    if len(exc.args) >= 2 and isinstance(exc.args[1], int):
        return exc.args[1]
    message = str(exc)
    return next((code for code in _UNWRITABLE_ERRNOS if message.endswith(os.strerror(code))), None)


def _check_file(data: Path) -> None:
    problem = check_data_file(data)
    if problem is not None:
        raise StoreDamaged(data, problem)


def _schema_version(path: Path, stored: bytes | None) -> int:
    if stored is None:
        raise StoreDamaged(path, f"it has no schema version ({_META}/{_SCHEMA_KEY.decode()})")
    try:
        return int(stored)
    except ValueError:
        raise RecordDamaged(path, _META, _SCHEMA_KEY, f"not a number: {stored[:40]!r}") from None


def _fsync(path: Path) -> None:
    # A directory is fsynced too: that is what makes a file created or renamed in it durable.
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _complete(batch: list[_Request[Any]]) -> None:
    for request in batch:
        if request.done is not None:
            request.done.set()


def _nothing(_txn: Txn) -> None:
    return None


def _apply(txn: Txn, ops: Ops, seq: int) -> None:
    # Commit a journaled write's changes, and record its journal record as applied.
    for db, changes in ops.items():
        for key, value in changes.items():
            if value is None:
                txn.delete(db, key)
            else:
                txn.put(db, key, value)
    txn.put(_META, _APPLIED_KEY, str(seq).encode())


_OP = struct.Struct("<HBI")
"""A change in a journal record: database index, kind (1 put, 2 delete), key length; then
the key, and for a put the value's length (u32) and the value."""
_LEN = struct.Struct("<I")


def _encode_ops(ops: Ops, index: Mapping[str, int]) -> bytes:
    parts: list[bytes] = []
    for db, changes in ops.items():
        number = index[db]
        for key, value in changes.items():
            if value is None:
                parts += (_OP.pack(number, 2, len(key)), key)
            else:
                parts += (_OP.pack(number, 1, len(key)), key, _LEN.pack(len(value)), value)
    return b"".join(parts)


def _decode_ops(payload: bytes, names: Sequence[str]) -> Ops:
    ops: Ops = {}
    view = memoryview(payload)
    at = 0
    try:
        while at < len(view):
            number, kind, length = _OP.unpack_from(view, at)
            at += _OP.size
            key = bytes(view[at : at + length])
            if len(key) != length or number >= len(names) or kind not in (1, 2):
                raise ValueError(f"a change at byte {at} is malformed")
            at += length
            value: bytes | None = None
            if kind == 1:
                (size,) = _LEN.unpack_from(view, at)
                at += _LEN.size
                value = bytes(view[at : at + size])
                if len(value) != size:
                    raise ValueError(f"a value at byte {at} is cut short")
                at += size
            ops.setdefault(names[number], {})[key] = value
    except struct.error as exc:
        raise ValueError(f"a change at byte {at} is cut short ({exc})") from None
    return ops
