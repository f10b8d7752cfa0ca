"""Real ledgers for tests: built through the ledger's own transactions, then damaged the ways
a disk, an operator or a killed copy damage them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import anyio
import lmdb

from actors import ledger
from actors.domain import OrderFilled, PlaceOrder, Side, TimeInForce
from actors.lot_keeper import ledger_store
from runtime.store import Durability, Txn

DAMAGES = ("half", "4k", "meta-flip", "zeroed")
"""``damage()``'s ways, each of which crashed ``Store.open`` (SIGBUS or an lmdb traceback)."""


def order(n: int, side: Side = Side.BUY) -> PlaceOrder:
    return PlaceOrder(
        ref=f"grid:TQQQ:L{n % 80}:{side.value}:{n}:1",
        symbol="TQQQ",
        side=side,
        quantity=95,
        limit=Decimal("52.01"),
        tif=TimeInForce.GTC,
    )


async def fill_ledger(path: Path, orders: int = 300) -> None:
    """Intents and fills for ``orders`` buys, a binding each, and a snapshot on overflow pages:
    a ledger of a few dozen pages, every database used."""
    with ledger_store(path, durability=Durability.UNSAFE) as store:
        for n in range(orders):
            intent = ledger.IntentRecord(order=order(n), created_ns=n)
            execution = OrderFilled(
                ref=intent.ref, exec_id=f"e{n:05}", quantity=95, price=Decimal("52.01")
            )
            binding = ledger.Binding(ref=intent.ref, order_id=n + 1, perm_id=n + 10_000)

            def write(txn: Txn, i: object = intent, f: object = execution) -> None:
                ledger.commit_intent(txn, i)  # type: ignore[arg-type]
                ledger.record_fill(txn, f)  # type: ignore[arg-type]

            await store.write(write)
            await store.write(lambda txn, b=binding: ledger.bind(txn, b))
        await store.write(lambda txn: ledger.save_snapshot(txn, "symbol.TQQQ", b"s" * 20_000))


def build_ledger(path: Path, orders: int = 300) -> Path:
    """``fill_ledger`` from synchronous code (a CLI test); returns ``path``."""
    anyio.run(fill_ledger, path, orders)
    return path


def damage(ledger_dir: Path, how: str) -> None:
    """Damage ``ledger_dir/data.mdb`` the way ``how`` (one of ``DAMAGES``, or ``empty``) says."""
    data = ledger_dir / "data.mdb"
    content = data.read_bytes()
    match how:
        case "half":
            data.write_bytes(content[: len(content) // 2])
        case "4k":
            data.write_bytes(content[:4096])
        case "meta-flip":
            flipped = bytearray(content)
            flipped[16] ^= 0xFF  # meta page 0's magic (MDB_meta.mm_magic, after the page header)
            data.write_bytes(bytes(flipped))
        case "zeroed":
            data.write_bytes(bytes(len(content)))
        case "empty":
            data.write_bytes(b"")
        case _:
            raise ValueError(f"no damage called {how!r}")


def corrupt_record(ledger_dir: Path) -> bytes:
    """Give the first intent an ``origin`` the ledger does not know, with raw LMDB (as a bad
    disk or a hand edit would); returns its key."""
    env = lmdb.open(str(ledger_dir), max_dbs=len(ledger.DATABASES) + 1)
    try:
        db = env.open_db(b"intents")
        with env.begin(write=True, db=db) as txn:
            key, raw = next(iter(txn.cursor()))
            record = json.loads(raw)
            record["origin"] = "bogus"
            txn.put(key, json.dumps(record).encode())
            return bytes(key)
    finally:
        env.close()


@contextmanager
def small_disk(where: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` (root only): a disk that fills up for real.
    Raises ``PermissionError`` when it cannot be mounted here."""
    where.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        raise PermissionError(f"cannot mount a tmpfs at {where}: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def fill_disk(where: Path, leave: int) -> None:
    """Fill the file system under ``where`` until ``leave`` bytes are free."""
    free = shutil.disk_usage(where).free
    with open(where / "filler", "wb") as filler:
        filler.write(b"\0" * max(free - leave, 0))
        filler.flush()
        os.fsync(filler.fileno())
