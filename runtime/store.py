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

``inline=True`` commits on the calling thread instead (no writer thread): for deterministic
simulation on a virtual clock, where a thread's real time would race the clock. It blocks the event
loop for the commit, so it is meant for ``NOSYNC`` simulation stores, not for trading.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import fcntl
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
import lmdb

T = TypeVar("T")

_META = "meta"
_SCHEMA_KEY = b"schema_version"


class StoreError(RuntimeError):
    """Raised by the store; the message names the store's directory."""


class StoreLocked(StoreError):
    """Raised by ``open`` when another process holds the store."""


class StoreFull(StoreError):
    """Raised by a write that does not fit in the map; nothing was written by it."""


class Durability(enum.StrEnum):
    GROUP = "group"
    SYNC = "sync"
    NOSYNC = "nosync"


class Txn:
    """The view of one write (or read) transaction a store function gets: named databases."""

    __slots__ = ("_txn", "_dbs")

    def __init__(self, txn: lmdb.Transaction, dbs: Mapping[str, Any]) -> None:
        self._txn = txn
        self._dbs = dbs

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


class _Request(Generic[T]):
    __slots__ = ("fn", "done", "token", "result", "error")

    def __init__(self, fn: Callable[[Txn], T], token: anyio.lowlevel.EventLoopToken) -> None:
        self.fn = fn
        self.done = anyio.Event()
        self.token = token
        self.result: T | None = None
        self.error: BaseException | None = None


Migration = Callable[[Txn], None]


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
        """Lock the directory, open the environment, migrate, start the writer thread."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
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
            return fn(Txn(txn, self._dbs))

    def backup(self, target: str | Path) -> Path:
        """Write a consistent, compacted copy of the environment into the empty dir ``target``."""
        env = self._require_env()
        destination = Path(target)
        destination.mkdir(parents=True, exist_ok=True)
        if any(destination.iterdir()):
            raise StoreError(f"backup target {destination} is not empty")
        env.copy(str(destination), compact=True)
        return destination

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
            view = Txn(txn, self._dbs)
            stored = view.get(_META, _SCHEMA_KEY)
            if stored is None:
                view.put(_META, _SCHEMA_KEY, str(self.schema_version).encode())
                return
            version = int(stored)
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
                        request.result = request.fn(Txn(child, self._dbs))
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
        if isinstance(exc, lmdb.Error):
            return StoreError(f"{self.path}: {type(exc).__name__}: {exc}")
        return exc


def _complete(batch: list[_Request[Any]]) -> None:
    for request in batch:
        request.done.set()
