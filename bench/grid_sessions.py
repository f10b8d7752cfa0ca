"""The grid's 45 real TQQQ sessions, as a canonical outcome to compare across versions.

    tick (replay, lockstep) -> symbol actor (grid) -> lot-keeper (LMDB) -> broker actor
        -> in-process venue (sim.engine): every call into it is recorded here

Runs the real 1-minute TQQQ bars (``../shared/marketdata``, see its PROVENANCE.md) through the
trading tree of the checkout whose packages the running Python imports, the same path as
``tests/actors/test_trading_loop.py`` (``sim_trading``: in-process venue, lockstep replay, the
lot-keeper on a real disk), and writes one JSON per run: for each New York session every order
placed (side, quantity, limit, tif, condition, in order, with the grid's level/side/lot/attempt
read from its orderRef), every cancel, every fill (side, quantity, price, commission, in order),
the realized P&L of the lots that closed that session, and the position and open lots at its
end; then the totals (the strategy's realized P&L, the venue's position, the ledger's open lots).

It runs on both layouts: the one before issue 18 (``actors.trading.sim_trading``; commit 45420e7)
and the one after (``app.compose.sim_trading``), so the before/after comparison is:

    git worktree add --detach ../wt-old45 45420e7 && make -C ../wt-old45 install-dev
    ../wt-old45/.venv/bin/python bench/grid_sessions.py --out /tmp/before.json
    .venv/bin/python bench/grid_sessions.py --out /tmp/after.json
    python bench/grid_sessions.py --compare /tmp/before.json /tmp/after.json

``--compare`` prints a per-session table and exits 1 on any difference, naming the first
differing order, cancel or fill (and 2 when the two runs were not given the same bars and lots).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

FORMAT = 1
NEW_YORK = ZoneInfo("America/New_York")
SYMBOL = "TQQQ"
REAL = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "marketdata"
    / "tqqq_1min"
    / "TQQQ_60day_1min_data.csv"
)
# The grid's orderRef, in both formats: ``grid:TQQQ:L3:BUY:42:1`` is attempt 1 to buy lot 42 at
# level 3 (before issue 18 the grammar itself; after it, the grid's tag ``L3:BUY:42`` in
# ``strategy:symbol:tag:attempt``). Parsed here, so neither version's parser is trusted.
_GRID_REF = re.compile(
    r"^(?P<strategy>[a-z][a-z0-9_]*):(?P<symbol>[A-Z][A-Z0-9.]*):"
    r"L(?P<level>\d+):(?P<side>BUY|SELL):(?P<lot>\d+):(?P<attempt>\d+)$"
)


class SessionsError(ValueError):
    """Raised by this script for input it cannot use (a ref that is not the grid's, a file that
    is not one of its outputs, a run whose books disagree); says which and where."""


def grid_ref(ref: str, where: str) -> dict[str, Any]:
    """The grid identity in an orderRef of either format: level, side, lot, attempt."""
    match = _GRID_REF.match(ref)
    if match is None:
        raise SessionsError(f"{where}: {ref!r} is not a grid orderRef (grid:SYM:L<n>:SIDE:lot:n)")
    return {
        "level": int(match["level"]),
        "side": match["side"],
        "lot": int(match["lot"]),
        "attempt": int(match["attempt"]),
    }


def plain(value: Any) -> Any:
    """A JSON value for ``value``: Decimals as strings (exact), enums by value, attrs classes as
    the fields that differ from their defaults (so a field added later with a default does not
    make two equal orders differ)."""
    import attrs

    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, datetime):
        return value.astimezone(NEW_YORK).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if attrs.has(type(value)):
        out = {}
        for field in attrs.fields(type(value)):
            item = getattr(value, field.name)
            if field.default is not attrs.NOTHING and item == field.default:
                continue
            out[field.name] = plain(item)
        return out
    return value


def day_of(at: datetime) -> str:
    return at.astimezone(NEW_YORK).date().isoformat()


def first_sessions(bars: list[Any], count: int | None) -> list[Any]:
    """The bars of the first ``count`` New York sessions (all of them for None)."""
    if count is None:
        return bars
    if count < 1:
        raise SessionsError(f"--sessions must be at least 1, got {count}")
    days = sorted({day_of(bar.start) for bar in bars})[:count]
    return [bar for bar in bars if day_of(bar.start) <= days[-1]]


# -- one run ---------------------------------------------------------------------------------


def compose() -> tuple[str, Callable[..., Any]]:
    """The checkout's ``sim_trading``: the application package after issue 18, the actors'
    trading module before it."""
    try:
        from app.compose import sim_trading
    except ModuleNotFoundError as exc:
        if exc.name not in ("app", "app.compose"):
            raise
        # The module exists only in the layout before issue 18 (commit 45420e7).
        from actors.trading import sim_trading  # type: ignore[import-not-found,no-redef]

        return "actors.trading", sim_trading
    return "app.compose", sim_trading


def checkout() -> dict[str, Any]:
    """Which code runs: the checkout the ``actors`` package is imported from, and its commit."""
    import actors

    root = Path(actors.__file__).resolve().parents[1]

    def git(*args: str) -> str:
        result = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )
        return result.stdout.strip() if result.returncode == 0 else ""

    return {
        "root": str(root),
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


class VenueLog:
    """Every order, cancel and fill the venue sees, in order: its recorder (given each call
    before it takes effect) and one of its listeners (for rejections)."""

    def __init__(self) -> None:
        self.now: datetime | None = None
        self.orders: list[dict[str, Any]] = []
        self.cancels: list[dict[str, Any]] = []
        self._placed: dict[str, dict[str, Any]] = {}

    def record(self, entry: Any) -> None:
        kind = type(entry).__name__
        if kind == "OnTrade":
            self.now = entry.at
        elif kind == "Place":
            self.place(entry.order, entry.at, entry.chain)
        elif kind == "Cancel":
            self.cancels.append({"at": plain(self.now), **grid_ref(entry.ref, "cancel")})
        elif kind == "Modify":
            raise SessionsError(f"the grid modified {entry.ref}: this report has no place for it")

    def place(self, order: Any, at: datetime, chain: tuple[Any, ...]) -> None:
        if order.symbol != SYMBOL:
            raise SessionsError(f"order {order.ref}: symbol {order.symbol}, expected {SYMBOL}")
        # The fields every order has, always shown; any other field only when it is set.
        condition = order.condition
        entry = {
            "at": plain(at),
            **grid_ref(order.ref, "order"),
            "quantity": order.quantity,
            "limit": plain(order.limit),
            "tif": plain(order.tif),
            "outside_rth": order.outside_rth,
            "condition": None
            if condition is None
            else {"trigger": plain(condition.trigger), "is_more": condition.is_more},
        }
        if plain(order.side) != entry["side"]:
            raise SessionsError(f"order {order.ref}: its side is {plain(order.side)}")
        known = {"ref", "symbol", "side", "quantity", "limit", "tif", "outside_rth", "condition"}
        entry.update((k, v) for k, v in plain(order).items() if k not in known)
        if chain:
            entry["chain"] = plain(chain)
        self.orders.append(entry)
        self._placed[order.ref] = entry

    def hear(self, event: Any) -> None:
        if type(event).__name__ == "OrderRejected":
            self._placed[event.ref]["rejected"] = event.reason


async def run(bars: list[Any], lots_path: Path, data_dir: Path) -> dict[str, Any]:
    """Replay ``bars`` through the tree; the outcome as the canonical, comparable JSON."""
    import anyio

    from actors.lot_keeper import LoadLedger
    from config.lotmap import load_lot_map
    from sim.engine import Engine
    from supervisors import Supervisor

    layout, sim_trading = compose()
    log = VenueLog()
    engine = Engine(recorder=log.record)
    engine.listeners.append(log.hear)
    trading = sim_trading(
        data_dir=data_dir,
        bars=bars,
        lots={SYMBOL: load_lot_map(lots_path)},
        engine=engine,
    )
    root = Supervisor("root", trading.spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        await trading.finished.wait()  # lockstep: all the replay caused has been handled
        keeper = trading.cells["lot-keeper"].ref
        ledger = await keeper.request(LoadLedger(symbol=SYMBOL), timeout=60)
        root.stop()
    if root.restarts:
        raise SessionsError(f"the tree restarted {root.restarts} time(s) during the replay")
    strategy = next(s for key, s in trading.strategies.items() if key in (f"grid:{SYMBOL}", SYMBOL))
    fills = []
    for e in engine.executions:
        fill = {"at": plain(e.time), **grid_ref(e.ref, f"fill {e.exec_id}")}
        if plain(e.side) != fill["side"]:
            raise SessionsError(f"fill {e.exec_id} of {e.ref}: its side is {plain(e.side)}")
        fill.update(quantity=e.quantity, price=plain(e.price), commission=plain(e.commission))
        fills.append(fill)
    sessions = by_session(bars, log.orders, log.cancels, fills)
    realized = sum((Decimal(s["realized"]) for s in sessions), Decimal(0))
    if realized != strategy.realized:
        raise SessionsError(
            f"the lots closed by the fills realized {realized}, the strategy says "
            f"{strategy.realized}"
        )
    position = engine.positions[SYMBOL].quantity if SYMBOL in engine.positions else 0
    open_lots = sorted(
        [lot.level, lot.lot, lot.open_shares, plain(lot.cost)]
        for lot in ledger.lots
        if lot.open_shares
    )
    if (position, open_lots) != (sessions[-1]["position"], sessions[-1]["open_lots"]):
        raise SessionsError(
            f"the fills leave {sessions[-1]['position']} shares in lots "
            f"{sessions[-1]['open_lots']}; the venue holds {position}, the ledger {open_lots}"
        )
    return {
        "layout": layout,
        "orders": len(log.orders),
        "cancels": len(log.cancels),
        "fills": len(fills),
        "realized": plain(strategy.realized),
        "commission": plain(sum((e.commission for e in engine.executions), Decimal(0))),
        "position": position,
        "open_lots": open_lots,
        "sessions": sessions,
    }


def by_session(
    bars: list[Any],
    orders: list[dict[str, Any]],
    cancels: list[dict[str, Any]],
    fills: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Group the outcome by New York session; a lot's P&L is realized in the session whose
    fill closes it (as the grid books it: proceeds minus cost once all its shares are sold)."""
    days = sorted({day_of(bar.start) for bar in bars})
    sessions = {
        day: {"day": day, "orders": [], "cancels": [], "fills": [], "realized": Decimal(0)}
        for day in days
    }

    def session(item: dict[str, Any], what: str) -> dict[str, Any]:
        day = item["at"][:10] if item["at"] else days[0]
        if day not in sessions:
            raise SessionsError(f"{what} at {item['at']} falls on no session of the replay")
        return sessions[day]

    for order in orders:
        session(order, "an order")["orders"].append(order)
    for cancel in cancels:
        session(cancel, "a cancel")["cancels"].append(cancel)
    lots: dict[int, dict[str, Any]] = {}
    position = 0
    fill_iter = iter(fills)
    pending = next(fill_iter, None)
    for day in days:
        here = sessions[day]
        while pending is not None and pending["at"][:10] <= day:
            fill = pending
            session(fill, "a fill")["fills"].append(fill)
            lot = lots.setdefault(
                fill["lot"],
                {
                    "level": fill["level"],
                    "bought": 0,
                    "cost": Decimal(0),
                    "sold": 0,
                    "got": Decimal(0),
                },
            )
            value = Decimal(fill["price"]) * fill["quantity"]
            if fill["side"] == "BUY":
                lot["bought"] += fill["quantity"]
                lot["cost"] += value
                position += fill["quantity"]
            else:
                lot["sold"] += fill["quantity"]
                lot["got"] += value
                position -= fill["quantity"]
                if lot["sold"] >= lot["bought"]:
                    here["realized"] += lot["got"] - lot["cost"]
            pending = next(fill_iter, None)
        here["realized"] = plain(here["realized"])
        here["position"] = position
        here["open_lots"] = sorted(
            [lot["level"], number, lot["bought"] - lot["sold"], plain(lot["cost"])]
            for number, lot in lots.items()
            if lot["sold"] < lot["bought"]
        )
    return list(sessions.values())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def measure(args: argparse.Namespace) -> dict[str, Any]:
    import anyio

    from sim.replay import load_bars

    if not args.bars.exists():
        raise SessionsError(f"no bars at {args.bars} (../shared/marketdata, see PROVENANCE.md)")
    lots_path = (
        args.lots if args.lots is not None else Path(checkout()["root"]) / "config/lots/tqqq.csv"
    )
    bars = first_sessions(load_bars(args.bars), args.sessions)
    options = {}
    if args.backend == "asyncio":
        try:
            import uvloop  # noqa: F401
        except ModuleNotFoundError:
            pass
        else:
            options = {"use_uvloop": True}
    with tempfile.TemporaryDirectory(prefix="grid-sessions-") as tmp:
        outcome = anyio.run(
            run,
            bars,
            lots_path,
            Path(tmp) / "ledger",
            backend=args.backend,
            backend_options=options,
        )
    return {
        "format": FORMAT,
        "code": checkout(),
        "inputs": {
            "bars": args.bars.name,
            "bars_sha256": sha256(args.bars),
            "lots_sha256": sha256(lots_path),
            "sessions": len(outcome["sessions"]),
            "backend": args.backend,
        },
        **outcome,
    }


# -- the comparison --------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SessionsError(f"{path}: cannot read it as JSON ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SessionsError(f"{path}: not an output of grid_sessions.py (format {FORMAT})")
    return data


def first_difference(before: dict[str, Any], after: dict[str, Any]) -> str | None:
    """The first order, cancel or fill (in session order) that differs, or the first other
    field of a session or of the totals; None when the two outcomes are equal."""
    for old, new in zip(before["sessions"], after["sessions"], strict=False):
        day = old["day"]
        if new["day"] != day:
            return f"session {day}: the other run has session {new['day']} in its place"
        for kind in ("orders", "cancels", "fills"):
            a_items, b_items = old[kind], new[kind]
            for n in range(max(len(a_items), len(b_items))):
                a = a_items[n] if n < len(a_items) else None
                b = b_items[n] if n < len(b_items) else None
                if a != b:
                    what = f"session {day} {kind[:-1]} #{n + 1}"
                    return f"{what}: before {describe(a)}; after {describe(b)}"
        for key in ("realized", "position", "open_lots"):
            if old[key] != new[key]:
                return f"session {day} {key}: before {old[key]}; after {new[key]}"
    if len(before["sessions"]) != len(after["sessions"]):
        return f"sessions: before {len(before['sessions'])}; after {len(after['sessions'])}"
    for key in ("orders", "cancels", "fills", "realized", "commission", "position", "open_lots"):
        if before[key] != after[key]:
            return f"total {key}: before {before[key]}; after {after[key]}"
    return None


def describe(item: dict[str, Any] | None) -> str:
    if item is None:
        return "(none)"
    ref = f"L{item['level']}:{item['side']}:{item['lot']}:{item['attempt']}"
    rest = {k: v for k, v in item.items() if k not in ("level", "side", "lot", "attempt")}
    return f"{ref} {json.dumps(rest, sort_keys=True)}"


def table(before: dict[str, Any], after: dict[str, Any]) -> Iterator[str]:
    """One row per session, then the totals: each count and P&L as before / after."""

    def row(day: str, counts: list[tuple[int, int]], pnl: tuple[str, str], same: str) -> str:
        cells = " ".join(f"{f'{a} / {b}':>11}" for a, b in counts)
        return f"{day:<10} {cells} {pnl[0]:>12} {pnl[1]:>12}  {same}"

    yield (
        f"{'session':<10} {'orders':>11} {'cancels':>11} {'fills':>11} "
        f"{'P&L before':>12} {'P&L after':>12}  equal"
    )
    for old, new in zip(before["sessions"], after["sessions"], strict=False):
        counts = [(len(old[k]), len(new[k])) for k in ("orders", "cancels", "fills")]
        same = "yes" if old == new else "NO"
        yield row(old["day"], counts, (old["realized"], new["realized"]), same)
    counts = [(before[k], after[k]) for k in ("orders", "cancels", "fills")]
    same = "yes" if first_difference(before, after) is None else "NO"
    yield row("total", counts, (before["realized"], after["realized"]), same)
    yield (
        f"position {before['position']} / {after['position']} shares in "
        f"{len(before['open_lots'])} / {len(after['open_lots'])} open lots; "
        f"commission {before['commission']} / {after['commission']}"
    )


def compare(before_path: Path, after_path: Path, out: Callable[[str], None] = print) -> int:
    before, after = load(before_path), load(after_path)
    for name, data in (("before", before), ("after", after)):
        code = data["code"]
        out(
            f"{name}: {data['layout']} at {code['commit'][:12] or '?'}"
            f"{' (dirty)' if code['dirty'] else ''} in {code['root']}, {data['inputs']['backend']}"
        )
    inputs = ("bars_sha256", "lots_sha256", "sessions")
    if any(before["inputs"][k] != after["inputs"][k] for k in inputs):
        out(f"the two runs had different inputs: {before['inputs']} vs {after['inputs']}")
        return 2
    for line in table(before, after):
        out(line)
    difference = first_difference(before, after)
    if difference is not None:
        out(f"DIFFERENT: first difference: {difference}")
        return 1
    out(f"equal: all {len(before['sessions'])} sessions have the same orders, fills and P&L")
    return 0


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, help="write this checkout's outcome here")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--bars", type=Path, default=REAL, help="the 1-minute TQQQ bars")
    parser.add_argument("--lots", type=Path, help="lot map (default: the checkout's tqqq.csv)")
    parser.add_argument("--sessions", type=int, help="only the first N sessions")
    parser.add_argument("--backend", choices=("asyncio", "trio"), default="asyncio")
    args = parser.parse_args(None if argv is None else list(argv))
    if (args.out is None) == (args.compare is None):
        parser.error("give exactly one of --out FILE and --compare BEFORE AFTER")
    try:
        if args.compare is not None:
            return compare(*args.compare)
        result = measure(args)
        args.out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(
            f"{result['layout']} at {result['code']['commit'][:12]}: "
            f"{result['inputs']['sessions']} sessions, {result['orders']} orders, "
            f"{result['cancels']} cancels, {result['fills']} fills, realized P&L "
            f"{result['realized']}, position {result['position']} in "
            f"{len(result['open_lots'])} open lots -> {args.out}"
        )
    except SessionsError as exc:
        print(f"grid_sessions: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
