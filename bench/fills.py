"""Durable fills per second through the lot-keeper, per durability policy.

    senders --RecordFill request--> lot-keeper actor --> Store (writer thread, LMDB) --> reply

Each fill is an execution of one share of a buy whose intent is committed first, recorded exactly
once by execId, as the symbol actors record them (``request(RecordFill)``, waiting for the reply
before the lot's sell may be placed). Two shapes: one sender (one symbol's fills, one after
another) and 64 senders at once (a burst of fills across symbols). Baseline in the same round:
the same records written straight through ``Store.write`` by as many writers, with no actor in
between. The lot-keeper commits the requests queued together in one transaction (each nested,
answered after that commit), so with 64 senders it groups a whole burst where the writers
straight to the store group what the writer thread happens to find queued. Target (SPEC 15):
the lot-keeper with 64 senders >= 2x ``Store.write`` with 64 writers, ``group`` durability.

    python bench/fills.py [--rounds 3] [--fills 2000] [--json bench/results/fills.json]
"""

from __future__ import annotations

import functools
import sys
import tempfile
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from time import perf_counter_ns

import anyio
from common import Row, Target, interleave, rate_row, standalone

from actors import ledger
from actors.domain import OrderFilled, PlaceOrder, Side, TimeInForce
from actors.lot_keeper import CommitIntent, LotKeeper, RecordFill, ledger_store
from actors.strategies.grid import GridRef
from runtime import ActorCell
from runtime.store import Durability, Store
from supervisors import ChildSpec, Strategy, Supervisor, SupervisorSpec

GROUP = "durable fills"
SENDERS = (1, 64)
TARGET_VS_STORE = 2.0
"""Lot-keeper fills/s with 64 senders over ``Store.write``'s with 64 writers, ``group``."""


def buy(sender: int, shares: int) -> PlaceOrder:
    ref = str(GridRef(strategy="grid", symbol=f"S{sender:03d}", level=0, side=Side.BUY, lot=1))
    return PlaceOrder(
        ref=ref,
        symbol=f"S{sender:03d}",
        side=Side.BUY,
        quantity=shares,
        limit=Decimal("50.13"),
        tif=TimeInForce.DAY,
    )


def fill(order: PlaceOrder, n: int) -> OrderFilled:
    return OrderFilled(
        ref=order.ref, exec_id=f"{order.ref}.{n}", quantity=1, price=Decimal("50.12")
    )


async def through_actor(store: Store, senders: int, fills: int) -> float:
    keeper = ActorCell("lot-keeper", lambda: LotKeeper(store))
    root = Supervisor(
        "bench",
        SupervisorSpec(strategy=Strategy.ONE_FOR_ONE, children=[ChildSpec(id="k", start=keeper)]),
    )
    each = fills // senders
    orders = [buy(s, each) for s in range(senders)]
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        for order in orders:
            await keeper.ref.request(CommitIntent(order=order), timeout=60)

        async def sender(order: PlaceOrder) -> None:
            for n in range(each):
                new = await keeper.ref.request(RecordFill(fill=fill(order, n)), timeout=60)
                assert new is True, new

        start = perf_counter_ns()
        async with anyio.create_task_group() as senders_tg:
            for order in orders:
                senders_tg.start_soon(sender, order)
        elapsed = perf_counter_ns() - start
        root.stop()
    return each * senders / (elapsed / 1e9)


async def straight(store: Store, senders: int, fills: int) -> float:
    each = fills // senders
    orders = [buy(s, each) for s in range(senders)]
    with store:
        for order in orders:
            intent = ledger.IntentRecord(order=order, created_ns=0)
            await store.write(functools.partial(ledger.commit_intent, intent=intent))

        async def writer(order: PlaceOrder) -> None:
            for n in range(each):
                write = functools.partial(ledger.record_fill, fill=fill(order, n))
                assert await store.write(write) is True

        start = perf_counter_ns()
        async with anyio.create_task_group() as tg:
            for order in orders:
                tg.start_soon(writer, order)
        elapsed = perf_counter_ns() - start
    return each * senders / (elapsed / 1e9)


def run_one(how: str, policy: Durability, senders: int, fills: int) -> float:
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder:
        store = ledger_store(Path(folder) / "ledger", durability=policy)
        fn = through_actor if how == "lot-keeper" else straight
        rate = anyio.run(
            fn, store, senders, fills, backend="asyncio", backend_options={"use_uvloop": True}
        )
        if store.is_open:
            store.close()
        return rate


def baselines(
    name: str, base: str, suffix: str, results: dict[str, list[float]], power_safe: str
) -> dict[str, list[float]]:
    """Each row against its own policy's Store.write; the crash-safe ones against the
    power-safe Store.write too (what the lot-keeper paid before its journal)."""
    out = {} if name == base else {base + suffix: results[base]}
    if Durability.CRASH_SAFE.value in name:
        out[power_safe + suffix] = results[power_safe]
    return out


def suite_rows(*, rounds: int, quick: bool, log: Callable[[str], None] = print) -> list[Row]:
    fills = 256 if quick else 2048
    rows: list[Row] = []
    for senders in SENDERS:
        variants = {
            f"{how} [{policy.value}]": functools.partial(run_one, how, policy, senders, fills)
            for policy in Durability
            for how in ("Store.write", "lot-keeper")
        }
        results = interleave(variants, rounds, on_run=log)
        suffix = f", {senders} sender{'s' if senders > 1 else ''}"
        power_safe = f"Store.write [{Durability.POWER_SAFE.value}]"
        for policy in Durability:
            base = f"Store.write [{policy.value}]"
            for how in ("Store.write", "lot-keeper"):
                name = f"{how} [{policy.value}]"
                targeted = how == "lot-keeper" and policy is Durability.POWER_SAFE and senders > 1
                rows.append(
                    rate_row(
                        GROUP,
                        name + suffix,
                        results[name],
                        baselines=baselines(name, base, suffix, results, power_safe),
                        targets=[
                            Target(
                                on="ratio", op=">=", limit=TARGET_VS_STORE, baseline=base + suffix
                            )
                        ]
                        if targeted
                        else [],
                        note="fills/s",
                    )
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    return standalone(__doc__, suite_rows, rounds=3, quick="256 fills a run", argv=argv)


if __name__ == "__main__":
    sys.exit(main())
