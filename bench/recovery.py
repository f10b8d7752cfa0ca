"""Recovery inside the process: how long a killed actor is out of service.

The production tree (``actors.trading.trading_tree``: lot-keeper on LMDB, broker, symbols
supervisor, reconciler) trades TQQQ on the sim venue's engine and holds ``--lots`` open lots,
each with its +1% sell and the 3 queued conditional buys, built by trading down the ladder.
Then, interleaved in rounds:

    symbol actor     kill symbols/symbol.TQQQ; it restarts at once (one_for_one), reconciles
                     with the broker and the ledger in on_start, and answers ``Describe``
    broker [in-process]  kill the broker: it restarts after its backoff (50 ms, jitter 20 %),
                     and rest_for_one restarts the symbol actors and the reconciler after it;
                     done when the symbol actor, reconciled against the reconnected broker,
                     answers ``Describe``
    broker [wire]    the same with the broker reaching the venue through ib_insync over
                     loopback to ``sim/tws`` (a real reconnect and a real snapshot)

Baseline in the same round: a bare actor under the same supervisor (no state to rebuild),
killed the same way and answering a request: what the runtime's restart alone costs.
Each trial checks that the lots are all back (the symbol actor's view equals the ledger's).

SPEC 13: a killed actor is back in service in <= 50 ms.

    python bench/recovery.py [--rounds 5] [--lots 20] [--json bench/results/recovery.json]
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from time import perf_counter_ns
from typing import Any

import anyio
import attrs
from common import Row, Target, interleave, latency_row, spread, standalone

from actors.broker import Poll
from actors.brokers.ib import IBPort
from actors.brokers.sim import SimPort
from actors.domain import Instrument, PriceTick, Trade
from actors.domain.sessions import NEW_YORK
from actors.lot_keeper import ledger_store
from actors.symbol import Describe, SymbolView
from actors.trading import trading_tree
from config.lotmap import load_lot_map
from runtime import Actor, ActorCell
from runtime._lifecycle import LifecycleState
from sim.engine import Engine
from sim.tws.server import TwsServer
from supervisors import ChildSpec, Intensity, Supervisor, SupervisorSpec

GROUP = "recovery"
ROOT = Path(__file__).resolve().parents[1]
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=NEW_YORK)
TARGET_MS = 50.0


class Echo(Actor[str]):
    def handle(self, message: str) -> str:
        return message


async def _back(cell: ActorCell[Any], before: int) -> None:
    # Resolution 0.2 ms: far below what is measured.
    while cell.incarnation == before or cell.state is not LifecycleState.RUNNING:  # noqa: ASYNC110 - no event marks a restart
        await anyio.sleep(0.0002)


class Bench:
    """One tree with ``lots`` open lots; kills and times its actors."""

    def __init__(self, folder: Path, lots: int, wire: bool) -> None:
        self.folder = folder
        self.lots = lots
        self.wire = wire
        self.engine = Engine()
        self.venue = SimPort(self.engine, MONDAY)
        self.at = MONDAY
        self.trials: dict[str, list[int]] = {}

    def trade(self, price: Decimal) -> None:
        self.at += timedelta(seconds=1)
        self.venue.trade(Trade(symbol="TQQQ", price=price, size=10_000, at=self.at))

    async def run(self, trials: dict[str, int]) -> dict[str, list[int]]:
        async with anyio.create_task_group() as outer:
            port: Any = self.venue
            if self.wire:
                server = TwsServer(
                    self.engine,
                    instruments=[Instrument(symbol="TQQQ", con_id=900001)],
                    clock=lambda: self.at,
                )
                number = await outer.start(server.serve)
                port = IBPort(host="127.0.0.1", port=number, client_id=1, max_requests=0)
            store = ledger_store(self.folder / ("wire" if self.wire else "inproc"))
            spec, cells = trading_tree(
                store=store,
                lots={"TQQQ": load_lot_map(ROOT / "config" / "lots" / "tqqq.csv")},
                params=None,
                port=port,
                alerts=[],
                strategies={},
                reconcile_interval=3600.0,
                feeds=[],
                timer_interval=3600.0,
            )
            echo: ActorCell[str] = ActorCell("echo", Echo)
            at = next(i for i, child in enumerate(spec.children) if child.id == "symbols")
            symbols = spec.children[at].start
            assert isinstance(symbols, SupervisorSpec)
            # Kills in a row, on purpose: room for them in both supervisors' intensity.
            room = Intensity(max_restarts=1000, period=1.0)
            symbols = attrs.evolve(
                symbols,
                intensity=room,
                children=[*symbols.children, ChildSpec(id="echo", start=echo)],
            )
            children = list(spec.children)
            children[at] = ChildSpec(id="symbols", start=symbols)
            root = Supervisor("bench", attrs.evolve(spec, intensity=room, children=children))
            await outer.start(root.run)
            self.root, self.cells, self.echo = root, cells, echo
            await self.build()
            results: dict[str, list[int]] = {}
            for name, count in trials.items():
                results[name] = [await self.trial(name) for _ in range(count)]
            root.stop()
            outer.cancel_scope.cancel()
        return results

    async def view(self) -> SymbolView:
        view = await self.cells["TQQQ"].ref.request(Describe(), timeout=30)
        assert isinstance(view, SymbolView), view
        return view

    async def sync(self) -> None:
        # Whatever the venue did reaches the broker, then the symbol actor.
        for _ in range(3):
            await self.cells["broker"].ref.request(Poll(), timeout=30)
            await self.view()

    async def build(self) -> None:
        """Trade down the ladder until ``lots`` lots are open, each with its sell."""
        price = Decimal("52.00")
        self.trade(price)
        await self.cells["TQQQ"].ref.send(PriceTick(symbol="TQQQ", price=price))
        await self.sync()
        self.trade(price)
        await self.sync()
        for _ in range(200):
            view = await self.view()
            if len(view.lots) >= self.lots:
                break
            price = (price * Decimal("0.99")).quantize(Decimal("0.01"))
            self.trade(price)
            await self.sync()
        view = await self.view()
        if len(view.lots) != self.lots or view.live_sells != self.lots:
            raise RuntimeError(f"built {len(view.lots)} lots, {view.live_sells} sells")
        self.expected = view

    async def trial(self, name: str) -> int:
        symbols = self.root.child("symbols")
        assert isinstance(symbols, Supervisor)
        if name == "bare actor":
            cell: ActorCell[Any] = self.echo
            before = cell.incarnation
            start = perf_counter_ns()
            symbols.kill("echo")
            await _back(cell, before)
            assert await cell.ref.request("ping", timeout=30) == "ping"
            return perf_counter_ns() - start
        cell = self.cells["TQQQ"]
        before = cell.incarnation
        start = perf_counter_ns()
        if name == "symbol actor":
            symbols.kill("symbol.TQQQ")
        else:
            self.root.kill("broker")
        await _back(cell, before)
        view = await self.view()
        elapsed = perf_counter_ns() - start
        if view.lots != self.expected.lots or view.live_sells != self.expected.live_sells:
            raise RuntimeError(f"{name}: lots after the restart differ: {view} vs {self.expected}")
        return elapsed


def _measure(wire: bool, lots: int, trials: dict[str, int]) -> dict[str, list[int]]:
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
        bench = Bench(Path(folder), lots, wire)
        # ib_insync takes its loop from the policy: plain asyncio for the wire.
        options = {} if wire else {"use_uvloop": True}
        return anyio.run(bench.run, trials, backend="asyncio", backend_options=options)


def suite_rows(*, rounds: int, quick: bool, log: Callable[[str], None] = print) -> list[Row]:
    lots = 5 if quick else 20
    per = 2 if quick else 8

    # A broker restart backs off from the second in a streak (30 s): one broker kill per tree,
    # so that each measures a first restart, as a lone kill or disconnect is.
    def trees(wire: bool, trials: dict[str, int]) -> dict[str, list[int]]:
        merged: dict[str, list[int]] = {}
        for _ in range(per):
            for name, samples in _measure(wire, lots, trials).items():
                merged.setdefault(name, []).extend(samples)
        return merged

    def in_process() -> dict[str, list[int]]:
        return trees(False, {"bare actor": 1, "symbol actor": 1, "broker": 1})

    def wire() -> dict[str, list[int]]:
        return trees(True, {"broker": 1})

    results = interleave({"in-process": in_process, "wire": wire}, rounds, on_run=log)
    picks = {
        "bare actor": ("in-process", "bare actor"),
        "symbol actor": ("in-process", "symbol actor"),
        "broker [in-process]": ("in-process", "broker"),
        "broker [wire]": ("wire", "broker"),
    }
    by_round = {
        name: [spread(r[trial], 1e6) for r in results[run]] for name, (run, trial) in picks.items()
    }
    bare = by_round["bare actor"]
    target = [Target(on="p50", op="<=", limit=TARGET_MS)]
    notes = {
        "bare actor": "a stateless actor killed and answering again (baseline)",
        "symbol actor": f"killed, reconciled with {lots} lots, answering again",
        "broker [in-process]": f"killed, reconnected, symbol actor reconciled ({lots} lots)",
        "broker [wire]": f"the same through ib_insync over loopback ({lots} lots)",
    }
    return [
        latency_row(
            GROUP,
            f"{name} back in service",
            per_round,
            unit="ms",
            baselines={} if name == "bare actor" else {"bare actor back in service": bare},
            targets=target,
            note=notes[name],
        )
        for name, per_round in by_round.items()
    ]


def main(argv: list[str] | None = None) -> int:
    return standalone(__doc__, suite_rows, rounds=3, quick="5 lots, 2 trees a round", argv=argv)


if __name__ == "__main__":
    sys.exit(main())
