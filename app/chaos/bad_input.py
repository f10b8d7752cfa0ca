"""The process-level campaign's bad input (``app.chaos.process.run_bad_input``): truncated or
corrupt configs, lot maps and bar files, refused before anything is written; a second start on
a data directory in use; a full LMDB map."""

from __future__ import annotations

import functools
import hashlib
import random
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import attrs

from actors import ledger as ledger_
from actors.lot_keeper import LedgerState, ledger_store
from runtime.store import Durability, StoreFull, Txn

from . import invariants
from .service import ACTORCTL, _Books, _Broken, _Service

if TYPE_CHECKING:
    from .process import _Campaign

SYMBOL = "TQQQ"
CONFIG = Path(__file__).resolve().parents[2] / "config"
MAP_FULL_ROOM = 8 * 1024
"""Bytes left free in the 1 MiB map before the map-full run: room for some commits of the
replay, far from enough for the rest of it."""


def run(campaign: _Campaign) -> None:
    """Bad config and lot maps, a full LMDB map, a second start on a data directory in use
    (``app.chaos.process.run_bad_input``), on one data directory that a first run has filled."""
    campaign.run_to_the_end("1")
    campaign.log("a first day replayed; now the bad input")
    for fault in _bad_files(campaign.workdir / "bad", random.Random(20261122)):
        _refused_file(campaign, fault)
    _second_start(campaign)
    _map_full(campaign)


def _refused_file(campaign: _Campaign, fault: _BadFile) -> None:
    before = _digest(campaign.data)
    with campaign.start(fault.option, str(fault.path), "--days", "2", "--speed", "0") as service:
        code = service.finish(timeout=60)
    message = service.said()
    if code == 0 or code is None:
        raise _Broken(f"{fault.kind} ({fault.what}) was not refused:{service.tail()}")
    if "Traceback" in "".join(service.err) or fault.where not in message:
        raise _Broken(
            f"{fault.kind} ({fault.what}): exit {code}, but the error does not name "
            f"{fault.where!r}:{service.tail()}"
        )
    if len(message) > 400:
        raise _Broken(f"{fault.kind} ({fault.what}): a {len(message)}-character error")
    after = _digest(campaign.data)
    changed = sorted(
        name for name in before.keys() | after.keys() if before.get(name) != after.get(name)
    )
    campaign.tally.check(not changed, f"{fault.kind} ({fault.what}) changed {changed}")
    campaign.outcome.faults[fault.kind] += 1
    campaign.log(f"{fault.kind} ({fault.what}): exit {code}: {message}")


def _second_start(campaign: _Campaign) -> None:
    """While one service runs on the data directory, two more starts: on another control
    socket (the directory's lock refuses it) and on the same one (the user's default)."""
    with campaign.start("--days", "2", "--speed", "0") as first:
        first.wait_for(first.err, "actorctl: starting", timeout=90)
        holder = f"(pid {first.process.pid})"
        for socket, reasons in (
            (1, ("is in use by another actortrade process",)),
            (0, ("is in use by another actortrade process", "is already serving on")),
        ):
            with campaign.start("--days", "2", "--speed", "0", socket=socket) as second:
                code = second.finish(timeout=60)
            said = second.said()
            if code == 0 or holder not in said or not any(r in said for r in reasons):
                raise _Broken(
                    f"a second start on {campaign.data} (control socket "
                    f"{campaign.sockets[socket]}) was not refused naming {holder}: exit "
                    f"{code}:{second.tail()}"
                )
            if first.process.poll() is not None:
                raise _Broken(f"the first service died of a second start:{first.tail()}")
            campaign.outcome.faults["second-start"] += 1
            campaign.log(f"second start (control socket {socket}): exit {code}: {said}")
        _answers(campaign, first)
        first.wait_for(first.out, "replay finished", timeout=120)
        code = first.terminate()
    if code != 0:
        raise _Broken(f"the first service exited with {code} after SIGTERM:{first.tail()}")
    venue = _Books.read(campaign.data)
    ledger = campaign.ledger()
    invariants.safety(venue.engine, ledger, venue.placed, SYMBOL, campaign.tally)
    invariants.agreement(venue.engine, ledger, SYMBOL, campaign.tally)


def _answers(campaign: _Campaign, service: _Service) -> None:
    """``actorctl status`` gets an answer from ``service`` (its control socket may take a
    moment to come up after it starts trading)."""
    deadline = time.monotonic() + 30
    while True:
        status = subprocess.run(
            [ACTORCTL, "status", "--socket", str(campaign.sockets[0])],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if status.returncode == 0 and f"actortrade pid {service.process.pid}" in status.stdout:
            return
        if time.monotonic() > deadline or service.process.poll() is not None:
            raise _Broken(
                f"{service.name} does not answer on its control socket: "
                f"{status.stderr.strip()}{service.tail()}"
            )
        time.sleep(0.2)


def _map_full(campaign: _Campaign) -> None:
    """The ledger filled to 1 MiB but for ``MAP_FULL_ROOM`` bytes, then a start with
    ``map_size_mib = 1`` and days of replay left: it must stop with a clear error and lose
    nothing; a start with a larger map then ends in full agreement."""
    ledger_dir = campaign.data / "ledger"
    pieces = anyio.run(functools.partial(_fill, ledger_dir, 1 << 20, MAP_FULL_ROOM))
    before = campaign.ledger()
    small = campaign.workdir / "map-full.toml"
    small.write_text("[ledger]\nmap_size_mib = 1\n")
    days = "5"
    with campaign.start("--config", str(small), "--days", days, "--speed", "0") as service:
        code = service.finish(timeout=90, unless=(service.out, "replay finished"))
    said = service.said()
    if code is None:
        raise _Broken(
            f"with {MAP_FULL_ROOM} bytes free in its 1 MiB map the service replayed "
            f"{days} days without filling it (or hung):{service.tail()}"
        )
    expected = (str(ledger_dir), "the ledger is full", "raise ledger.map_size_mib")
    if code == 0 or not all(text in said for text in expected):
        raise _Broken(
            f"a full map: exit {code}, not an error naming the ledger and "
            f"ledger.map_size_mib:{service.tail()}"
        )
    campaign.outcome.faults["map-full"] += 1
    campaign.log(f"map full ({pieces} ballast records): exit {code}: {said}")
    during = campaign.ledger()
    _kept(campaign, before, during, "the map-full run")
    big = campaign.workdir / "map-larger.toml"
    big.write_text("[ledger]\nmap_size_mib = 64\n")
    venue = _Books.read(campaign.data)
    campaign.run_to_the_end(days, resume=venue.last_trade, config=("--config", str(big)))
    _kept(campaign, during, campaign.ledger(), "the start with a larger map")
    campaign.final_checks(_Books.read(campaign.data), days)


def _kept(campaign: _Campaign, before: LedgerState, after: LedgerState, what: str) -> None:
    intents = {i.ref: i for i in after.intents}
    fills = {f.exec_id: f for f in after.fills}
    lost = [i.ref for i in before.intents if intents.get(i.ref) != i]
    lost += [f.exec_id for f in before.fills if fills.get(f.exec_id) != f]
    campaign.tally.check(not lost, f"{what} lost or changed committed records: {lost}")
    campaign.log(
        f"{what}: all {len(before.intents)} intents and {len(before.fills)} fills kept; "
        f"{len(after.intents) - len(before.intents)} intents and "
        f"{len(after.fills) - len(before.fills)} fills committed since"
    )


async def _fill(path: Path, map_size: int, room: int) -> int:
    """Fill the ledger's map with ballast (snapshots of no actor) until a write no longer fits,
    then delete some of it to leave about ``room`` bytes; return how many records remain."""
    # No fsync: the ballast only has to be there for the next process, not after a power loss.
    store = ledger_store(path, durability=Durability.UNSAFE, map_size=map_size)
    names: list[tuple[str, int]] = []
    with store:
        size = map_size // 2
        while size >= 64:
            name = f"chaos.ballast.{len(names)}"
            try:
                await store.write(
                    functools.partial(ledger_.save_snapshot, actor=name, data=bytes(size))
                )
            except StoreFull:
                size //= 2
            else:
                names.append((name, size))
        freed = 0
        # The largest pieces first: a small record shares its page, deleting it frees none.
        for name, size in sorted(names, key=lambda item: -item[1]):
            if freed + size > room:
                continue
            await store.write(functools.partial(_drop, key=name.encode()))
            freed += size
            names.remove((name, size))
    return len(names)


def _drop(txn: Txn, key: bytes) -> None:
    txn.delete("snapshots", key)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# -- bad files ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class _BadFile:
    kind: str
    what: str
    path: Path
    option: str
    where: str
    """What the error must name: the file and, where there is one, the line."""


def _bad_files(folder: Path, rng: random.Random) -> list[_BadFile]:
    folder.mkdir(parents=True, exist_ok=True)
    faults: list[_BadFile] = []

    def bad(kind: str, what: str, name: str, data: bytes, option: str, where: str) -> None:
        path = folder / name
        path.write_bytes(data)
        faults.append(
            _BadFile(kind=kind, what=what, path=path, option=option, where=where.format(path))
        )

    config = (CONFIG / "actortrade.toml").read_bytes()
    # Cut inside the lot map's path string: an unterminated string, whatever comes after.
    cut = config.index(b'lots = "lots/') + len(b'lots = "lots/') + rng.randrange(1, 8)
    line = config[:cut].count(b"\n") + 1
    bad(
        "truncated-config",
        f"cut at byte {cut}",
        "cut.toml",
        config[:cut],
        "--config",
        f"{{}}: invalid TOML at line {line}",
    )
    bad(
        "corrupt-config",
        "NUL bytes",
        "nul.toml",
        bytes(4096),
        "--config",
        "{}: invalid TOML at line 1",
    )
    garbage = b"\xff" + rng.randbytes(2047)
    bad(
        "corrupt-config",
        "binary garbage",
        "garbage.toml",
        garbage,
        "--config",
        "{}: not UTF-8 text",
    )
    # tomllib parses nested arrays recursively: this was a RecursionError traceback.
    bad(
        "corrupt-config",
        "100k nested arrays",
        "deep.toml",
        b"a = " + b"[" * 100_000,
        "--config",
        "{}: invalid TOML: too deeply nested",
    )

    lots = (CONFIG / "lots" / "tqqq.csv").read_bytes()
    rows = lots.splitlines(keepends=True)
    level = rng.randrange(1, len(rows) - 1)
    cut_lots = b"".join(rows[: level + 1]) + f"{level},".encode()
    bad(
        "truncated-lot-map",
        f"cut in level {level}'s row",
        "cut.csv",
        cut_lots,
        "--lots",
        f"{{}}:{level + 2}:",
    )
    bad("corrupt-lot-map", "NUL bytes", "nul.csv", bytes(4096), "--lots", "{}:1:")
    bad(
        "corrupt-lot-map",
        "binary garbage",
        "garbage.csv",
        b"\xff" + rng.randbytes(2047),
        "--lots",
        "{}:1:",
    )
    # Text garbage in a row: a stray character where a count belongs ("²" is a digit to
    # str.isdigit(), not to int()).
    stray = rng.choice(["²", "\x00", "\ufffd", "٣"])
    row = rows[level].decode().rstrip("\r\n")
    spoiled = b"".join(rows[:level]) + f"{row}{stray}\n".encode() + b"".join(rows[level + 1 :])
    bad(
        "corrupt-lot-map",
        f"{stray!r} in level {level - 1}'s row",
        "stray.csv",
        spoiled,
        "--lots",
        f"{{}}:{level + 1}:",
    )
    # int() refuses 4,300 digits and more: this was a ValueError traceback.
    huge = b"".join(rows[: level + 1]) + f"{level},".encode() + b"9" * 5000 + b"\n"
    bad(
        "corrupt-lot-map",
        f"a 5,000-digit count in level {level}'s row",
        "huge.csv",
        huge,
        "--lots",
        f"{{}}:{level + 2}:",
    )

    header = b"Datetime,Symbol,Open,High,Low,Close,Volume\n"
    bad(
        "corrupt-bar-file",
        "binary garbage",
        "garbage-bars.csv",
        b"\xff" + rng.randbytes(2047),
        "--replay",
        "{}:1:",
    )
    # Interleaved symbols: the venue's clock would have run back from 14:05 to 14:00.
    bar = "2025-05-01 14:0{},{},50.00,50.10,49.90,50.05,1000\n"
    interleaved = (
        bar.format("5:00", SYMBOL) + bar.format("0:00", "SPY") + bar.format("0:00", SYMBOL)
    )
    bad(
        "corrupt-bar-file",
        "symbols interleaved out of time order",
        "interleaved.csv",
        header + interleaved.encode(),
        "--replay",
        "{}:3: bars out of order",
    )
    return faults
