"""Which data directory a start may use: locked for it, and made for what it asks (``app.datadir``);
for a directory made before manifests, what its ledger and journal tell."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ._common import fail, say

if TYPE_CHECKING:
    from app.datadir import DataDir, Manifest
    from config.schema import Config


@contextlib.contextmanager
def data_dir_of(data_dir: Path | None, settings: Config) -> Iterator[tuple[DataDir, Manifest]]:
    """The data directory (a temporary one, discarded at exit, when ``data_dir`` is None),
    locked for this service before its ledger or journal is opened, and checked to be made for
    this start of every symbol of ``settings.symbols``, whatever its strategy (exit 2 naming
    what it holds and what was asked, nothing changed in it); with the manifest to record once
    they are open."""
    import tempfile

    if data_dir is None:
        with (
            tempfile.TemporaryDirectory(prefix="actortrade-") as scratch,
            data_dir_of(Path(scratch), settings) as claimed,
        ):
            yield claimed
        return
    home = data_dir
    from app.datadir import Asked, DataDirError, claim
    from config.errors import ConfigError
    from config.schema import BrokerKind
    from config.secrets import load_secrets

    ib = settings.broker.kind is BrokerKind.IB
    try:
        account = load_secrets().ib_account if ib else None
    except ConfigError as exc:
        fail(str(exc))
    try:
        held = claim(home)
    except DataDirError as exc:
        fail(str(exc))
    with held:
        holdings: dict[str, tuple[int, int]] = {}

        def open_lots(symbol: str) -> tuple[int, int]:
            if not holdings:
                holdings.update(_ledger_holdings(home / "ledger"))
            return holdings.get(symbol, (0, 0))

        asked = Asked(
            venue="ib" if ib else "sim",
            mode=settings.mode.value,
            # A symbol several strategies trade is one symbol of the data directory.
            symbols=tuple(dict.fromkeys(s.symbol for s in settings.symbols)),
            account=account,
        )
        try:
            admission = held.admit(asked, open_lots=open_lots, inferred=lambda: _inferred(home))
        except DataDirError as exc:
            fail(str(exc))
        if admission.left_out:
            say(
                f"{home} holds {', '.join(admission.left_out)} too, with no open lots: not traded "
                "by this start; its orders still working at the broker, if any, are watched again "
                "when a start trades it"
            )
        if admission.account_unchecked:
            say(
                f"{home} was made for one IB account and IB_ACCOUNT is not set: the account TWS "
                "reports is not checked against it"
            )
        held.subdir("ledger")
        yield held, admission.manifest


def _ledger_holdings(path: Path) -> dict[str, tuple[int, int]]:
    """Every symbol the ledger at ``path`` has an order of, with its open lots and their shares;
    read without writing anything, not even LMDB's lock file (the data directory's lock keeps
    every writer out)."""
    import lmdb
    import msgspec

    from actors import ledger
    from runtime.store import StoreDamaged, StoreError, Txn, check_data_file

    data = path / "data.mdb"
    if not data.exists():
        return {}
    # Before LMDB maps it: a file cut short would be a SIGBUS (docs/durability.md).
    problem = check_data_file(data)
    if problem is not None:
        fail(str(StoreDamaged(data, problem)))
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, max_dbs=len(ledger.DATABASES) + 1)
    except lmdb.Error as exc:
        fail(str(StoreDamaged(path, f"{type(exc).__name__}: {exc}")))
    try:
        with env.begin() as txn:
            try:
                dbs = {
                    name: env.open_db(name.encode(), txn=txn, create=False)
                    for name in ("intents", "fills")
                }
            except lmdb.NotFoundError:
                return {}  # a ledger that never recorded an order
            view = Txn(txn, dbs, path)
            held = {intent.symbol: (0, 0) for intent in ledger.intents(view)}
            for lot in ledger.lots(view):
                if lot.open_shares > 0:
                    lots, shares = held.get(lot.symbol, (0, 0))
                    held[lot.symbol] = (lots + 1, shares + lot.open_shares)
    except StoreError as exc:
        fail(str(exc))
    except (lmdb.Error, msgspec.MsgspecError, ValueError) as exc:
        fail(str(StoreDamaged(path, f"{type(exc).__name__}: {exc}")))
    finally:
        env.close()
    return held


def _inferred(home: Path) -> Manifest | None:
    """What a data directory made before manifests was for: the symbols its ledger has orders
    of, on the sim venue if it has the venue's journal (else the venue is not known: an IB
    directory, a sim one whose journal is gone, a ledger restored into a new directory); None
    when it holds nothing."""
    from app.datadir import Manifest

    symbols = tuple(_ledger_holdings(home / "ledger"))
    journal = (home / "venue.journal").exists()
    if not symbols and not journal:
        return None
    return Manifest(venue="sim" if journal else None, symbols=symbols)
