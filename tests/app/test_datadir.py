"""The data directory: one lock for all of it, a manifest of what it was made for, owner-only."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.datadir import (
    LOCK_NAME,
    MANIFEST_NAME,
    Asked,
    DataDirError,
    DataDirLocked,
    DataDirMismatch,
    Manifest,
    claim,
)

TQQQ = Asked(venue="sim", mode="paper", symbols=("TQQQ",))


def no_lots(_symbol: str) -> tuple[int, int]:
    return 0, 0


def made(path: Path, asked: Asked = TQQQ) -> Manifest:
    with claim(path) as held:
        admission = held.admit(asked, open_lots=no_lots)
        held.record(admission.manifest)
    return admission.manifest


def hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def umask_000() -> Iterator[None]:
    """The loosest umask, restored afterwards."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_second_claim_is_refused_naming_the_holders_pid(tmp_path: Path) -> None:
    """The lock covers the directory: a second claim names the first's pid, until released."""
    with claim(tmp_path / "d") as held:
        held.admit(TQQQ, open_lots=no_lots)
        with pytest.raises(
            DataDirLocked, match=rf"in use by another actortrade process \(pid {os.getpid()}\)"
        ):
            claim(tmp_path / "d")
    claim(tmp_path / "d").release()


def test_a_new_directory_is_made_owner_only_whatever_the_umask(
    tmp_path: Path, umask_000: None
) -> None:
    """Under umask 000: the directory, its new parents, the lock and the manifest have no group
    or other permission; the manifest says what the directory is for."""
    path = tmp_path / "new" / "d"
    manifest = made(path)
    for entry in (tmp_path / "new", path, path / LOCK_NAME, path / MANIFEST_NAME):
        assert stat.S_IMODE(entry.stat().st_mode) & 0o077 == 0, entry
    assert json.loads((path / MANIFEST_NAME).read_text()) == {
        "format": 1,
        "venue": "sim",
        "mode": "paper",
        "symbols": ["TQQQ"],
        "account": None,
    }
    assert manifest.symbols == ("TQQQ",)
    assert not list(path.glob(".*.tmp"))


def test_recording_takes_group_and_other_permissions_away_from_older_files(
    tmp_path: Path,
) -> None:
    """What an earlier version left readable by all (the ledger, the journal) becomes the
    owner's alone; symbolic links are left as they are."""
    path = tmp_path / "d"
    (path / "ledger").mkdir(parents=True)
    (path / "ledger").chmod(0o755)
    (path / "ledger" / "data.mdb").write_bytes(b"x")
    (path / "ledger" / "data.mdb").chmod(0o666)
    (path / "venue.journal").write_bytes(b"x")
    (path / "venue.journal").chmod(0o644)
    (path / "link").symlink_to(tmp_path)
    tmp_path.chmod(0o755)
    path.chmod(0o755)
    made(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE((path / "ledger").stat().st_mode) == 0o700
    assert stat.S_IMODE((path / "ledger" / "data.mdb").stat().st_mode) == 0o600
    assert stat.S_IMODE((path / "venue.journal").stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) & 0o077 != 0  # not followed


def test_a_symbol_left_out_with_open_lots_is_refused_naming_both_and_nothing_changes(
    tmp_path: Path,
) -> None:
    """A TQQQ directory asked for SPY alone: its lots would be abandoned; refused, the message
    names what it holds and what was asked, and no byte of the directory changed."""
    path = tmp_path / "d"
    made(path)
    before = hashes(path)
    spy = Asked(venue="sim", mode="paper", symbols=("SPY",))
    with claim(path) as held, pytest.raises(DataDirMismatch) as refused:
        held.admit(spy, open_lots=lambda s: (2, 189) if s == "TQQQ" else (0, 0))
    assert str(refused.value) == (
        f"{path}: this data directory trades TQQQ on the embedded sim venue; asked for SPY: "
        "TQQQ has 2 open lots (189 shares) here, which nothing would sell or watch; trade it "
        "too (list every symbol in the config's [[symbols]]: --symbol trades only one), or use "
        "another --data-dir"
    )
    assert hashes(path) == before


def test_a_symbol_left_out_without_open_lots_is_admitted_and_kept_in_the_manifest(
    tmp_path: Path,
) -> None:
    """Nothing to abandon: the start goes on, told which symbols it leaves out; the directory
    still lists them (its ledger holds their history)."""
    path = tmp_path / "d"
    made(path)
    spy = Asked(venue="sim", mode="paper", symbols=("SPY",))
    with claim(path) as held:
        admission = held.admit(spy, open_lots=no_lots)
    assert admission.left_out == ("TQQQ",)
    assert admission.manifest.symbols == ("TQQQ", "SPY")


@pytest.mark.parametrize(
    ("asked", "says"),
    [
        (
            Asked(venue="ib", mode="paper", symbols=("TQQQ",)),
            "trades TQQQ on the embedded sim venue; asked for TQQQ on IB",
        ),
        (
            Asked(venue="sim", mode="live", symbols=("TQQQ",)),
            "trades TQQQ in PAPER mode; asked for TQQQ in LIVE mode",
        ),
    ],
    ids=["venue", "mode"],
)
def test_another_venue_or_mode_is_refused(tmp_path: Path, asked: Asked, says: str) -> None:
    """The ledger is one venue's and one mode's: anything else is refused, naming both."""
    made(tmp_path / "d")
    with claim(tmp_path / "d") as held, pytest.raises(DataDirMismatch, match=says):
        held.admit(asked, open_lots=no_lots)


def test_the_account_is_kept_as_a_salted_digest_and_another_one_is_refused(
    tmp_path: Path,
) -> None:
    """The IB account id never reaches the disk, nor a message; the same id is recognized,
    another refused; a start without IB_ACCOUNT is admitted, flagged as unchecked."""
    path = tmp_path / "d"
    account = "DU7319468"
    made(path, Asked(venue="ib", mode="paper", symbols=("TQQQ",), account=account))
    stored = (path / MANIFEST_NAME).read_text()
    assert account not in stored
    assert "7319468" not in stored
    other = Asked(venue="ib", mode="paper", symbols=("TQQQ",), account="DU1111111")
    with claim(path) as held:
        with pytest.raises(DataDirMismatch, match="for another account") as refused:
            held.admit(other, open_lots=no_lots)
        assert "DU1111111" not in str(refused.value)
        same = held.admit(
            Asked(venue="ib", mode="paper", symbols=("TQQQ",), account=account),
            open_lots=no_lots,
        )
        unchecked = held.admit(
            Asked(venue="ib", mode="paper", symbols=("TQQQ",)), open_lots=no_lots
        )
    assert not same.account_unchecked
    assert unchecked.account_unchecked
    assert account not in repr(other)


def test_a_directory_without_a_manifest_is_judged_by_what_it_holds(tmp_path: Path) -> None:
    """An earlier version's directory: what ``inferred`` makes of its contents stands in for
    the manifest, and is recorded from then on."""
    path = tmp_path / "d"
    inferred = Manifest(venue="sim", symbols=("TQQQ",))
    spy = Asked(venue="sim", mode="paper", symbols=("SPY",))
    with claim(path) as held:
        with pytest.raises(DataDirMismatch, match="trades TQQQ"):
            held.admit(spy, open_lots=lambda _s: (1, 94), inferred=lambda: inferred)
        admission = held.admit(TQQQ, open_lots=no_lots, inferred=lambda: inferred)
    assert admission.manifest == Manifest(venue="sim", mode="paper", symbols=("TQQQ",))


def test_an_older_directory_that_does_not_tell_its_venue_takes_the_first_ones(
    tmp_path: Path,
) -> None:
    """A ledger without the sim venue's journal (restored into a new directory, or its journal
    deleted): its venue is not known, so any is admitted and recorded; its symbols still are."""
    path = tmp_path / "d"
    inferred = Manifest(venue=None, symbols=("TQQQ",))
    with claim(path) as held:
        with pytest.raises(DataDirMismatch, match=r"TQQQ has 1 open lots \(94 shares\)"):
            held.admit(
                Asked(venue="ib", mode="paper", symbols=("SPY",)),
                open_lots=lambda _s: (1, 94),
                inferred=lambda: inferred,
            )
        admission = held.admit(TQQQ, open_lots=no_lots, inferred=lambda: inferred)
        held.record(admission.manifest)
    assert admission.manifest == Manifest(venue="sim", mode="paper", symbols=("TQQQ",))
    with claim(path) as again, pytest.raises(DataDirMismatch, match="on the embedded sim venue"):
        again.admit(Asked(venue="ib", mode="paper", symbols=("TQQQ",)), open_lots=no_lots)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"{not json", "not a manifest"),
        (b'{"format": 1, "venue": "sim", "symbols": "TQQQ"}', "not a manifest"),
        (b'{"format": 2, "venue": "sim", "symbols": []}', "written by a newer actortrade"),
        (b'{"format": 1, "venue": "moon", "symbols": []}', "unknown venue 'moon'"),
    ],
    ids=["malformed", "wrong-type", "newer", "venue"],
)
def test_a_manifest_it_cannot_read_is_refused_naming_the_file(
    tmp_path: Path, content: bytes, says: str
) -> None:
    """Damaged, or from a newer version: refused, naming the file; the lock is released."""
    path = tmp_path / "d"
    path.mkdir()
    (path / MANIFEST_NAME).write_bytes(content)
    with pytest.raises(DataDirError, match=f"{path / MANIFEST_NAME}: .*{says}"):
        claim(path)
    (path / MANIFEST_NAME).unlink()
    claim(path).release()


symbols = st.lists(st.sampled_from(["TQQQ", "SPY", "QQQ", "SQQQ", "IWM"]), unique=True)


@given(held=symbols, asked=symbols.filter(bool), lots=st.sets(st.sampled_from(["TQQQ", "SPY"])))
def test_the_symbols_only_grow_and_only_lots_left_out_refuse(
    tmp_path_factory: pytest.TempPathFactory,
    held: list[str],
    asked: list[str],
    lots: set[str],
) -> None:
    """Admitted iff no symbol left out has open lots; then the manifest keeps every symbol it
    had, in order, followed by the new ones."""
    path = tmp_path_factory.mktemp("d")
    with claim(path) as directory:
        before = Manifest(venue="sim", mode="paper", symbols=tuple(held))
        directory.record(before)
        request = Asked(venue="sim", mode="paper", symbols=tuple(asked))
        abandons = any(s in lots for s in held if s not in asked)
        try:
            admission = directory.admit(
                request, open_lots=lambda s: (1, 94) if s in lots else (0, 0)
            )
        except DataDirMismatch:
            assert abandons
            return
    assert not abandons
    assert admission.manifest.symbols == (*held, *(s for s in asked if s not in held))
