"""``actorctl backup`` and ``restore``: a consistent copy of the ledger, and putting one back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import cli
from ._common import ConfigOption, SocketOption, ask, fail, load_config


@cli.command()
def backup(
    target: Annotated[Path, typer.Argument(help="An empty or new directory for the copy.")],
    config: ConfigOption = None,
    socket: SocketOption = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Back up this data directory's ledger (when no service runs on it)."),
    ] = None,
) -> None:
    """Write a consistent, compacted copy of the ledger: through the running service, or
    straight from --data-dir when none is running."""
    from actors.lot_keeper import ledger_store
    from runtime.store import StoreError, StoreLocked

    target = target.resolve()
    if data_dir is None:
        from app.control import Backup

        reply = ask(socket, config, Backup(path=str(target)))
        print(f"ledger copied to {reply.path}")
        return
    store = ledger_store(data_dir / "ledger")
    if not (data_dir / "ledger" / "data.mdb").exists():
        fail(f"{data_dir}: no ledger there (expected {data_dir / 'ledger' / 'data.mdb'})")
    try:
        with store:
            copied = store.backup(target)
    except StoreLocked as exc:
        fail(f"{exc} (if a service runs on it, back up through it: drop --data-dir)")
    except StoreError as exc:
        fail(str(exc))
    print(f"ledger copied to {copied}")


@cli.command()
def restore(
    backup_dir: Annotated[
        Path, typer.Argument(metavar="BACKUP", help="A directory `actorctl backup` wrote.")
    ],
    data_dir: Annotated[
        Path | None,
        typer.Option(help="The data directory whose ledger to restore [config: data_dir]."),
    ] = None,
    config: ConfigOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace an existing ledger (it is moved aside, not deleted)."
        ),
    ] = False,
) -> None:
    """Restore a ledger backup into a data directory (no service may run on it).

    The backup is verified first (its file against its header, every record read back) and
    refused if damaged or partial. An existing ledger is kept unless --force, which moves it to
    ledger.replaced-<UTC time> beside it. The next `actorctl start` on the directory reconciles
    the restored ledger with the broker.
    """
    from actors.lot_keeper import ledger_store
    from app.datadir import DataDirError, claim
    from runtime.store import StoreDamaged, StoreError

    home = data_dir if data_dir is not None else load_config(config).data_dir
    if home is None:
        fail("no data directory to restore into: pass --data-dir (or set data_dir in --config)")
    ledger = Path(home) / "ledger"
    try:
        if Path(home).is_dir():
            # The whole directory's lock, as a start takes it: no service may be using it.
            with claim(Path(home)):
                moved = ledger_store(ledger).restore(backup_dir, force=force)
        else:
            moved = ledger_store(ledger).restore(backup_dir, force=force)
    except DataDirError as exc:
        fail(str(exc))
    except StoreDamaged as exc:
        fail(
            f"backup damaged: {exc.path}: {exc.problem}: not restored, nothing changed; use "
            "another backup"
        )
    except StoreError as exc:
        fail(str(exc))
    kept = f"; the ledger it replaced is in {moved}" if moved is not None else ""
    print(f"ledger restored from {backup_dir} into {ledger}{kept}")
    print(f"the next `actorctl start --data-dir {home}` reconciles it with the broker")
