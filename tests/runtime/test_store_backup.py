"""Backups are written under a temporary name, verified, then renamed: one killed midway is
never taken for a backup. Restoring verifies the backup first and never overwrites a ledger
unless told to, and then moves it aside."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from actors import ledger
from actors.lot_keeper import ledger_store
from runtime.store import RecordDamaged, StoreDamaged, StoreError, StoreLocked, Txn
from tests.ledgers import DAMAGES, build_ledger, damage


def intents(path: Path) -> list[str]:
    with ledger_store(path) as store:
        return store.read(lambda txn: [i.ref for i in ledger.intents(txn)])


def test_a_backup_is_verified_under_a_temporary_name_then_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the copy is read back, it lives in ``<target>.tmp-*`` beside the target, which
    does not exist yet; afterwards only the target is there, and it opens."""
    build_ledger(tmp_path / "live", orders=20)
    target = tmp_path / "backups" / "monday"
    seen: list[tuple[str, bool]] = []
    store = ledger_store(tmp_path / "live")
    verify = store.verify

    def spy(directory: str | Path) -> None:
        seen.append((Path(directory).name, target.exists()))
        verify(directory)

    monkeypatch.setattr(store, "verify", spy)
    with store:
        assert store.backup(target) == target
    ((scratch, target_existed),) = seen
    assert scratch.startswith("monday.tmp-")
    assert not target_existed
    assert sorted(p.name for p in target.parent.iterdir()) == ["monday"]
    assert len(intents(target)) == 20


def test_a_copy_that_does_not_read_back_is_discarded_and_no_backup_is_made(
    tmp_path: Path,
) -> None:
    """If the copy fails verification, backup raises StoreDamaged, leaves no target and no
    temporary directory."""
    build_ledger(tmp_path / "live", orders=5)
    target = tmp_path / "copy"

    def refuse_copies(txn: Txn) -> None:
        if txn.path != tmp_path / "live":
            raise RecordDamaged(txn.path, "intents", b"k", "planted")

    store = ledger_store(tmp_path / "live")
    store.check = refuse_copies
    with store, pytest.raises(StoreDamaged, match="planted"):
        store.backup(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live"]


KILLED_BACKUP = """
import sys, time
from pathlib import Path
from actors.lot_keeper import ledger_store
from runtime.store import Store

def stall(self, directory):
    print("copied", directory, flush=True)
    time.sleep(60)

Store.verify = stall
with ledger_store(Path(sys.argv[1])) as store:
    store.backup(Path(sys.argv[2]))
"""


def test_a_backup_killed_after_copying_leaves_no_target_and_restore_refuses_the_leftover(
    tmp_path: Path,
) -> None:
    """SIGKILL between the copy and the rename (the moment an in-place copy looked complete):
    the target name does not exist; the leftover temporary directory, cut short as a killed
    copy would be, is refused by restore."""
    build_ledger(tmp_path / "live")
    target = tmp_path / "copy"
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_BACKUP, str(tmp_path / "live"), str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("copied "), child.stderr.read() if child.stderr else ""
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert not target.exists()
    (leftover,) = (p for p in tmp_path.iterdir() if p.name.startswith("copy.tmp-"))
    damage(leftover, "half")
    with pytest.raises(StoreDamaged, match="past its end"):
        ledger_store(tmp_path / "restored").restore(leftover)
    assert not (tmp_path / "restored").exists()


@pytest.mark.parametrize("how", [*DAMAGES, "empty"])
def test_restore_refuses_a_damaged_backup_and_changes_nothing(tmp_path: Path, how: str) -> None:
    """A backup cut short, with a flipped meta byte or zeroed: refused before anything is
    touched; the ledger in place is the same."""
    build_ledger(tmp_path / "live", orders=5)
    with ledger_store(tmp_path / "live") as store:
        store.backup(tmp_path / "backup")
    damage(tmp_path / "backup", how)
    before = (tmp_path / "live" / "data.mdb").read_bytes()
    with pytest.raises(StoreDamaged, match=f"ledger damaged: {tmp_path / 'backup'}"):
        ledger_store(tmp_path / "live").restore(tmp_path / "backup", force=True)
    assert (tmp_path / "live" / "data.mdb").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backup", "live"]


def test_restore_refuses_a_directory_that_is_not_a_backup(tmp_path: Path) -> None:
    """No data.mdb: said so."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreDamaged, match=r"no data\.mdb there: not a copy of a ledger"):
        ledger_store(tmp_path / "ledger").restore(tmp_path / "empty")


def test_restore_keeps_an_existing_ledger_unless_forced_and_then_moves_it_aside(
    tmp_path: Path,
) -> None:
    """Without force an existing ledger is refused; with force it is renamed
    ``ledger.replaced-<time>`` (still whole), and the restored one opens with the backup's
    records."""
    build_ledger(tmp_path / "old", orders=3)
    with ledger_store(tmp_path / "old") as store:
        store.backup(tmp_path / "backup")
    build_ledger(tmp_path / "ledger", orders=7)
    with pytest.raises(StoreError, match="already holds a ledger: restoring would replace it"):
        ledger_store(tmp_path / "ledger").restore(tmp_path / "backup")
    assert len(intents(tmp_path / "ledger")) == 7
    moved = ledger_store(tmp_path / "ledger").restore(tmp_path / "backup", force=True)
    assert moved is not None
    assert moved.name.startswith("ledger.replaced-")
    assert len(intents(moved)) == 7
    assert len(intents(tmp_path / "ledger")) == 3


def test_restore_into_a_new_data_directory_and_refusal_while_in_use(
    tmp_path: Path,
) -> None:
    """A restore where no ledger is makes one (nothing moved aside); a forced restore over a
    ledger a running store holds is refused (StoreLocked) and changes nothing."""
    build_ledger(tmp_path / "old", orders=3)
    with ledger_store(tmp_path / "old") as store:
        store.backup(tmp_path / "backup")
    assert ledger_store(tmp_path / "data" / "ledger").restore(tmp_path / "backup") is None
    with ledger_store(tmp_path / "data" / "ledger"):
        with pytest.raises(StoreLocked):
            ledger_store(tmp_path / "data" / "ledger").restore(tmp_path / "backup", force=True)
        assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["ledger"]
    assert len(intents(tmp_path / "data" / "ledger")) == 3
