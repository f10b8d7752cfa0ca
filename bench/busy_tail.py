"""Decision latency while the event loop is busy with other actors' work: the tail (SPEC 15).

The figure is bench/seed_bot.py's: from the venue publishing a trade to the placeOrder it causes,
decoded by sim/tws, with the venue in a process of its own (bench/venue_process.py) and our
production tree (``app.compose.live_trading``: IB market data -> symbol actor -> lot-keeper with
its durable intent -> broker actor -> ``IBPort``) in this one. Both ends are read in the venue's
process. Variants, interleaved in rounds:

* **idle**: nothing else runs in the bot's process;
* **busy**: a ring of ``ACTORS`` plain runtime actors under their own supervisor, with
  ``TOKENS`` messages going round it for the whole measurement; each actor spends about
  ``WORK_US`` of Python bytecode on a message, then sends it on to the next. The loop never
  waits for I/O (there is always a message ready), but a pass over its ready callbacks takes
  about ``TOKENS * WORK_US``, so the tree's actors are not starved: they only wait their turn.
  Any thread of the process that needs the GIL (the store's writer thread, for instance) has
  to take it from a loop that does not release it on its own; CPython hands it over after the
  switch interval (5 ms). That is the convoy this group measures.

Rows: the idle and the busy decisions (p50 / p99 / p99.9 / max), the busy row with the SPEC 15
target p99 <= 20 ms and its ratio p99 over the idle p50 (round by round, medianed), and the
messages/s the ring handled meanwhile (how busy the loop was).

    python bench/busy_tail.py [--rounds 3] [--quick] [--json bench/results/busy-tail.json]
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from time import perf_counter_ns

import anyio
import attrs
from common import Row, Target, interleave, latency_row, rate_row, spread, standalone
from seed_bot import ours_latency
from venue_process import VenueProcess

from runtime import Actor, ActorCell, ActorRef
from supervisors import ChildSpec, Strategy, Supervisor, SupervisorSpec

GROUP = "decision tail, busy loop"
ACTORS = 16
TOKENS = 8
WORK_US = 60.0
P99_LIMIT_MS = 20.0


@attrs.frozen(kw_only=True)
class Work:
    """One message going round the busy ring."""

    seq: int


def spin(iterations: int) -> int:
    """Python bytecode for the interpreter to run (not a C loop that holds the GIL silently)."""
    total = 0
    for i in range(iterations):
        total += i & 7
    return total


def iterations_for(micros: float) -> int:
    """How many ``spin`` iterations take about ``micros`` on this machine (best of 5)."""
    probe = 20_000
    best = min(_timed(probe) for _ in range(5))
    return max(1, round(probe * micros * 1000 / best))


def _timed(iterations: int) -> int:
    start = perf_counter_ns()
    spin(iterations)
    return perf_counter_ns() - start


class Hop(Actor[Work]):
    """A busy actor: works on each message, then sends it to the next actor of the ring."""

    def __init__(self, iterations: int, handled: list[int], next_: Callable[[], ActorRef[Work]]):
        self.iterations = iterations
        self.handled = handled
        self.next = next_

    async def handle(self, message: Work) -> None:
        start = perf_counter_ns()
        spin(self.iterations)
        self.handled[0] += 1
        self.handled[1] += perf_counter_ns() - start
        await self.context.send(self.next(), message)


@attrs.define
class Load:
    """How much the ring did while it ran: ``handled`` is [messages handled, ns spent working on
    them], shared by the ring's actors; ``elapsed_ns`` how long it ran."""

    handled: list[int] = attrs.field(factory=lambda: [0, 0])
    elapsed_ns: int = 0

    @property
    def rate(self) -> float:
        return self.handled[0] / (self.elapsed_ns / 1e9) if self.elapsed_ns else 0.0

    @property
    def share(self) -> float:
        """The fraction of the time the ring ran that its work took on the loop's thread."""
        return self.handled[1] / self.elapsed_ns if self.elapsed_ns else 0.0


def busy_ring(
    iterations: int, load: Load, *, actors: int = ACTORS, tokens: int = TOKENS
) -> Callable[[], contextlib.AbstractAsyncContextManager[None]]:
    """What ``ours_latency`` enters around its decisions: the ring, started and fed, for as
    long as the decisions run."""

    @contextlib.asynccontextmanager
    async def ring() -> AsyncIterator[None]:
        cells: list[ActorCell[Work]] = []
        for k in range(actors):
            after = (k + 1) % actors
            cells.append(
                ActorCell(
                    f"busy.{k}",
                    lambda after=after: Hop(iterations, load.handled, lambda: cells[after].ref),
                )
            )
        root = Supervisor(
            "busy",
            SupervisorSpec(
                strategy=Strategy.ONE_FOR_ONE,
                children=[ChildSpec(id=c.name, start=c) for c in cells],
            ),
        )
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            for seq in range(tokens):
                await cells[seq % actors].ref.send(Work(seq=seq))
            start = perf_counter_ns()
            try:
                yield
            finally:
                load.elapsed_ns = perf_counter_ns() - start
                root.stop()

    return ring


def suite_rows(*, rounds: int, quick: bool, log: Callable[[str], None] = print) -> list[Row]:
    ticks = 40 if quick else 300
    workdir = Path.cwd()
    iterations = iterations_for(WORK_US)
    loads: list[Load] = []

    def decisions(busy: bool) -> Callable[[], dict[str, float]]:
        def once() -> dict[str, float]:
            background = None
            if busy:
                loads.append(Load())
                background = busy_ring(iterations, loads[-1])
            with tempfile.TemporaryDirectory(dir=workdir) as folder:
                samples: list[int] = anyio.run(
                    ours_latency, ticks, Path(folder), VenueProcess, background, backend="asyncio"
                )
            return spread(samples[ticks // 20 :], 1e6)

        return once

    # ib_insync takes its loop from the policy: plain asyncio, as in the seed group.
    lat = interleave({"idle": decisions(False), "busy": decisions(True)}, rounds, on_run=log)
    idle_name = "ours, idle loop: trade published -> placeOrder decoded (venue process)"
    busy_name = "ours, busy loop: trade published -> placeOrder decoded (venue process)"
    ring = (
        f"{ACTORS} actors in a ring, {TOKENS} messages going round, about {WORK_US:g} us of "
        f"Python per message ({iterations:,} iterations)"
    )
    busy = latency_row(
        GROUP,
        busy_name,
        lat["busy"],
        unit="ms",
        targets=[Target(on="p99", op="<=", limit=P99_LIMIT_MS)],
        note=(
            f"the same, while {ring} keep the loop busy; ratio: this row's p99 over the idle "
            "p50, round by round"
        ),
    )
    ratio = statistics.median(
        b["p99"] / i["p50"] for b, i in zip(lat["busy"], lat["idle"], strict=True)
    )
    rows = [
        latency_row(
            GROUP,
            idle_name,
            lat["idle"],
            unit="ms",
            note=(
                "production tree (app.compose.live_trading), venue in a child process; nothing "
                "else runs in the bot's process"
            ),
        ),
        attrs.evolve(busy, ratios={idle_name: ratio}),
        rate_row(
            GROUP,
            "busy ring: messages handled while the busy decisions ran",
            [load.rate for load in loads],
            note=(
                f"{ring}: how busy the loop was; their work took "
                f"{statistics.median(load.share for load in loads):.0%} of the time (median)"
            ),
        ),
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    return standalone(
        __doc__, suite_rows, rounds=3, quick="40 decisions a round instead of 300", argv=argv
    )


if __name__ == "__main__":
    sys.exit(main())
