"""actorctl over damaged, corrupted and full storage, driven as an operator would: the installed
console script in a subprocess, every run bounded by a timeout so that a hang fails the test.

Each case used to kill the process (SIGBUS, no message), print a traceback, or say "trading"
while the tree crash-looped forever."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from actors.lot_keeper import ledger_store
from tests.ledgers import (
    DAMAGES,
    build_ledger,
    corrupt_record,
    damage,
    fill_disk,
    order,
    small_disk,
)
from tests.test_cli import _reap, _spawn, run

ADVICE = ": restore from a backup (actorctl backup) or start empty and reconcile"
SIGBUS = -signal.SIGBUS


def refused_cleanly(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != SIGBUS, "killed by SIGBUS"
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "trading" not in result.stdout + result.stderr


@pytest.mark.parametrize("how", DAMAGES)
def test_start_and_backup_refuse_a_damaged_ledger_with_exit_2_and_no_sigbus(
    tmp_path: Path, how: str
) -> None:
    """Cut to half (SIGBUS before), to 4 KiB, a flipped meta byte, zeroed (lmdb tracebacks
    before): `start --data-dir` and `backup --data-dir` exit 2 naming the file and what is
    wrong, with the advice, and write nothing."""
    ledger = build_ledger(tmp_path / "data" / "ledger")
    damage(ledger, how)
    started = run("start", "--data-dir", str(tmp_path / "data"), timeout=60)
    refused_cleanly(started)
    assert f"actorctl: ledger damaged: {ledger / 'data.mdb'}: " in started.stderr
    assert started.stderr.rstrip().endswith(ADVICE)
    assert not (tmp_path / "data" / "venue.journal").exists()
    copied = run("backup", "--data-dir", str(tmp_path / "data"), str(tmp_path / "copy"))
    refused_cleanly(copied)
    assert f"actorctl: ledger damaged: {ledger / 'data.mdb'}: " in copied.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_record_that_does_not_decode_is_refused_at_start_naming_it(tmp_path: Path) -> None:
    """An intent with an unknown origin (written with raw LMDB): it said "trading" and
    crash-looped every 30 s, `status` timing out. Now start and backup exit 2 naming the
    database and key."""
    ledger = build_ledger(tmp_path / "data" / "ledger", orders=5)
    key = corrupt_record(ledger).decode()
    expected = (
        f"actorctl: ledger damaged: {ledger}: record intents/{key!r} does not decode (Invalid "
        "enum value 'bogus' - at `$.origin`)" + ADVICE
    )
    started = run("start", "--data-dir", str(tmp_path / "data"), timeout=60)
    refused_cleanly(started)
    assert expected in started.stderr
    copied = run("backup", "--data-dir", str(tmp_path / "data"), str(tmp_path / "copy"))
    refused_cleanly(copied)
    assert expected in copied.stderr
    assert not (tmp_path / "copy").exists()


@pytest.fixture
def ledger_disk(tmp_path: Path) -> Iterator[Path]:
    """``<data-dir>/ledger`` on its own 512 KiB tmpfs (the venue's journal stays on the real
    disk): only the ledger's disk fills up."""
    mount = small_disk(tmp_path / "data" / "ledger", size="512k")
    try:
        where = mount.__enter__()
    except PermissionError as exc:
        pytest.skip(f"needs a small file system to fill: {exc}")
    try:
        yield where
    finally:
        mount.__exit__(None, None, None)


def test_a_full_disk_under_the_ledger_stops_the_service_with_the_reason(
    tmp_path: Path, ledger_disk: Path
) -> None:
    """ENOSPC for real (56 KiB left: enough to open, not for the day's fills): it used to
    crash-loop every 5 s forever. The first refused commit stops the service at once with
    exit 1, naming the ledger, the write and what to do."""
    fill_disk(ledger_disk, leave=56 * 1024)
    process = _spawn("start", "--data-dir", str(tmp_path / "data"), "--speed", "0")
    try:
        stdout, stderr = process.communicate(timeout=90)
    finally:
        _reap(process)
    assert process.returncode == 1, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(
        "actorctl: the service stopped because supervisor 'root' stopped: 'lot-keeper' failed "
        f"in a way a restart cannot fix: LedgerUnwritable: {ledger_disk}: the disk refused a "
        "ledger write ("
    ), stderr[-2000:]
    assert "was not stored, everything stored before it is kept; free space on" in last
    assert stderr.count("root/lot-keeper crashed") == 1  # no restart loop
    assert "at stop: TQQQ" in stdout


def test_a_service_that_never_reconciles_never_says_trading(tmp_path: Path) -> None:
    """A broker nobody answers (IB on a closed port): the banner says "starting", then "not
    trading yet", the root gives up on the broker, and the last line says it never traded.
    It used to print "trading" before the tree was up."""
    result = run("start", "--broker", "ib", "--port", "1", "--data-dir", str(tmp_path), timeout=90)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "actorctl: starting TQQQ in PAPER mode through IB at 127.0.0.1:1" in result.stderr
    assert result.stdout.startswith("started, not trading yet: TQQQ not reconciled")
    assert "reconciled with the venue:" not in result.stdout
    assert "actorctl: the service stopped because supervisor 'root' gave up" in result.stderr
    assert result.stderr.rstrip().endswith(
        "actorctl: it never traded: TQQQ never reconciled with the venue"
    )


def test_a_backup_killed_while_copying_is_never_taken_for_a_backup(tmp_path: Path) -> None:
    """`actorctl backup --data-dir` SIGKILLed in the middle of copying a 128 MiB ledger: the
    target name does not exist (it used to hold a file that looked whole and SIGBUSed the
    service it was restored to); the temporary copy left beside it is refused by restore."""
    ledger = build_ledger(tmp_path / "data" / "ledger", orders=5)
    env = lmdb.open(str(ledger), max_dbs=8, map_size=1 << 30, sync=False)
    try:
        snapshots = env.open_db(b"snapshots")
        with env.begin(write=True, db=snapshots) as txn:
            for n in range(64):
                txn.put(b"symbol.S%03d" % n, os.urandom(2 << 20))
    finally:
        env.close()
    target = tmp_path / "copy"
    process = _spawn("backup", "--data-dir", str(tmp_path / "data"), str(target))
    try:
        deadline = time.monotonic() + 30
        partial: list[Path] = []
        while time.monotonic() < deadline and not partial:
            partial = [
                p for p in tmp_path.glob("copy.tmp-*/data.mdb") if p.stat().st_size >= 64 * 1024
            ]
            time.sleep(0.001)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    finally:
        _reap(process)
    assert partial, "never saw the copy being written"
    assert process.returncode == -signal.SIGKILL
    assert not target.exists()
    leftover = partial[0].parent
    restored = run("restore", str(leftover), "--data-dir", str(tmp_path / "elsewhere"))
    refused_cleanly(restored)
    assert f"actorctl: backup damaged: {leftover / 'data.mdb'}: " in restored.stderr
    assert "not restored, nothing changed" in restored.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_restore_verifies_keeps_the_old_ledger_aside_and_start_reconciles_it(
    tmp_path: Path,
) -> None:
    """A backup cut short is refused; a good one is refused over an existing ledger without
    --force, and with it the old ledger is moved aside; `start` then runs on the restored one
    and reconciles with the venue."""
    build_ledger(tmp_path / "old" / "ledger", orders=3)
    made = run("backup", "--data-dir", str(tmp_path / "old"), str(tmp_path / "backup"))
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == f"ledger copied to {tmp_path / 'backup'}"
    build_ledger(tmp_path / "data" / "ledger", orders=7)
    (tmp_path / "cut").mkdir()
    whole = (tmp_path / "backup" / "data.mdb").read_bytes()
    (tmp_path / "cut" / "data.mdb").write_bytes(whole[: len(whole) // 2])
    data = str(tmp_path / "data")
    cut = run("restore", str(tmp_path / "cut"), "--data-dir", data, "--force")
    refused_cleanly(cut)
    assert f"actorctl: backup damaged: {tmp_path / 'cut' / 'data.mdb'}: " in cut.stderr
    kept = run("restore", str(tmp_path / "backup"), "--data-dir", data)
    refused_cleanly(kept)
    assert "already holds a ledger: restoring would replace it (use --force" in kept.stderr
    forced = run("restore", str(tmp_path / "backup"), "--data-dir", data, "--force")
    assert forced.returncode == 0, forced.stderr
    (aside,) = (p for p in (tmp_path / "data").iterdir() if p.name.startswith("ledger."))
    assert aside.name.startswith("ledger.replaced-")
    assert f"the ledger it replaced is in {aside}" in forced.stdout
    with ledger_store(aside) as old, ledger_store(tmp_path / "data" / "ledger") as new:
        assert old.read(lambda txn: txn.count("intents")) == 7
        assert new.read(lambda txn: txn.count("intents")) == 3
        assert new.read(lambda txn: txn.get("intents", order(2).ref.encode())) is not None
    process = _spawn("start", "--data-dir", data, "--speed", "0", socket=tmp_path / "s.sock")
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        line = ""
        while time.monotonic() < deadline and "reconciled with the venue" not in line:
            line = process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    finally:
        _reap(process)
    assert line.startswith("reconciled with the venue: TQQQ"), line
    assert line.rstrip().endswith("; trading")
    assert process.returncode == 0


def test_restore_is_refused_while_a_service_uses_the_data_directory(tmp_path: Path) -> None:
    """The whole directory's lock, as a start takes it: a restore into a data directory a
    service is running on is refused naming its pid, and the running ledger is untouched."""
    build_ledger(tmp_path / "old" / "ledger", orders=3)
    made = run("backup", "--data-dir", str(tmp_path / "old"), str(tmp_path / "backup"))
    assert made.returncode == 0, made.stderr
    data = tmp_path / "data"
    process = _spawn("start", "--data-dir", str(data), "--speed", "0", socket=tmp_path / "s.sock")
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 90
        line = ""
        while time.monotonic() < deadline and "replay finished" not in line:
            line = process.stdout.readline()
        before = (data / "ledger" / "data.mdb").read_bytes()
        refused = run("restore", str(tmp_path / "backup"), "--data-dir", str(data), "--force")
        refused_cleanly(refused)
        assert f"in use by another actortrade process (pid {process.pid})" in refused.stderr
        assert (data / "ledger" / "data.mdb").read_bytes() == before
        assert [p.name for p in data.iterdir() if p.name.startswith("ledger")] == ["ledger"]
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    finally:
        _reap(process)
    assert process.returncode == 0
