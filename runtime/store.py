"""Durable state in LMDB: one environment, one writer thread, whole transactions.

Every ``await store.write(fn)`` runs ``fn(txn)`` as one transaction on the store's writer thread
(never across an ``await``, never on the event loop thread) and returns once it is committed, and
on disk when the durability policy says so:

* ``Durability.GROUP`` (the default): writes queued together commit in one transaction with one
  fsync; each still runs in its own nested transaction, so one that raises undoes only itself.
  Full durability at a fraction of the per-commit cost (``bench/store_commit.py``).
* ``Durability.SYNC``: one commit and one fsync per write.
* ``Durability.NOSYNC``: no fsync: survives a crash of the process (the kernel has the pages),
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

import collections
import contextlib
import datetime
import enum
import errno
import fcntl
import os
import queue
import shutil
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

from ._lmdbfile import check_data_file as check_data_file

T = TypeVar("T")

_META = "meta"
_SCHEMA_KEY = b"schema_version"


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
    """When a commit reaches the disk (``[ledger] durability`` in the config)."""

    GROUP = "group"
    """Commits share fsyncs: a commit returns once an fsync covering it is done."""
    SYNC = "sync"
    """Each commit fsyncs on its own before it returns."""
    NOSYNC = "nosync"
    """No fsync: the operating system writes when it will (tests and benchmarks only)."""


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
    __slots__ = ("fn", "done", "token", "result", "error")

    def __init__(self, fn: Callable[[Txn], T], token: anyio.lowlevel.EventLoopToken) -> None:
        self.fn = fn
        self.done = anyio.Event()
        self.token = token
        self.result: T | None = None
        self.error: BaseException | None = None


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
        durability: Durability = Durability.GROUP,
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
        self.max_batch = max_batch if durability is Durability.GROUP else 1
        self.inline = inline
        self.check = check
        """Run over every record at ``open``, and over a backup's copy before it is kept."""
        self._env: lmdb.Environment | None = None
        self._dbs: dict[str, Any] = {}
        self._lock_file: int | None = None
        self._queue: queue.SimpleQueue[_Request[Any] | None] = queue.SimpleQueue()
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
        self._lock()
        try:
            # Before LMDB maps it: reading a page past the end of the file is a SIGBUS.
            _check_file(self.path / "data.mdb")
            try:
                self._env = lmdb.open(
                    str(self.path),
                    map_size=self.map_size,
                    max_dbs=len(self.databases) + 1,
                    sync=self.durability is not Durability.NOSYNC,
                    metasync=False,
                    lock=True,
                    mode=0o600,
                )
                for name in (_META, *self.databases):
                    self._dbs[name] = self._env.open_db(name.encode())
                self._migrate()
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
        """Finish queued writes, stop the writer thread, close the environment, unlock."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
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
        """
        if self.inline:
            return await self._write_inline(fn)
        if self._thread is None:
            raise StoreError(f"store {self.path} is not open")
        request: _Request[T] = _Request(fn, anyio.lowlevel.current_token())
        self._queue.put(request)
        with anyio.CancelScope(shield=True):
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

    def read(self, fn: Callable[[Txn], T]) -> T:
        """Run ``fn`` in a read transaction (a consistent snapshot; cheap, so synchronous)."""
        env = self._require_env()
        with env.begin(buffers=False) as txn:
            return fn(Txn(txn, self._dbs, self.path))

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
            for token in {id(r.token): r.token for r in batch}.values():
                mine = [r for r in batch if r.token is token]
                # The waiting loop may be gone (its run ended): nobody to tell then.
                with contextlib.suppress(anyio.RunFinishedError):
                    anyio.from_thread.run_sync(_complete, mine, token=token)

    def _commit(self, batch: list[_Request[Any]]) -> None:
        env = self._require_env()
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
                    else:
                        child.commit()
        except lmdb.Error as exc:
            error = self._translate(exc)
            for request in batch:
                if request.error is None:
                    request.error = error
            return
        self.commit_ns.append(time.perf_counter_ns() - started)
        self.commits += 1
        self.writes += len(batch)

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
        request.done.set()
