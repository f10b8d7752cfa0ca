"""The bench venue (the sim matching engine and sim/tws) in a process of its own, as TWS is.

The bot under test (the seed-style bot or our production tree) connects to it over loopback as
it would to TWS, and shares no interpreter, GIL or event loop with it. The parent drives it with
one command a line on its stdin; it answers each with one line on its stdout:

* ``trade I``: publish a trade of ``SYMBOL`` (``Engine.on_trade``, price 52.00 + (I mod 50)
  cents, 100 shares) and wait for the next placeOrder that sim/tws decodes; answers
  ``decoded NS``, the nanoseconds from just before ``on_trade`` to the ``placed_listeners``
  callback of that placeOrder, both read with ``perf_counter_ns`` in this process, so no clock
  crosses a process boundary. No placeOrder within 30 s: ``timeout``.
* ``flatten``: cancel every open order at the venue; answers ``flat N`` (N orders cancelled).
* ``stop``: closes the server and exits 0 (so does the end of stdin).

An unknown or malformed command answers ``error ...`` and the child carries on. On start, once
sim/tws listens, the child prints ``port N``.

    python bench/venue_process.py        # run by VenueProcess; by hand for a try
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from time import perf_counter_ns
from types import TracebackType

import anyio

FILE = Path(__file__).resolve()
ROOT = FILE.parent.parent
if str(ROOT) not in sys.path:  # run by path: the repository's packages, not tests/ shadowing
    sys.path.insert(0, str(ROOT))

from actors.domain import Instrument  # noqa: E402
from actors.domain.sessions import NEW_YORK  # noqa: E402
from sim.engine import Engine  # noqa: E402
from sim.tws.server import TwsServer  # noqa: E402

SYMBOL = "TQQQ"
INSTRUMENT = Instrument(symbol=SYMBOL, con_id=900001)
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=NEW_YORK)
TIMEOUT = 30.0
"""Seconds the child waits for a placeOrder after a trade, and the parent for an answer."""


def venue(clock: Callable[[], datetime] = lambda: MONDAY) -> tuple[Engine, TwsServer]:
    engine = Engine()
    return engine, TwsServer(engine, instruments=[INSTRUMENT], clock=clock)


def trade_price(i: int) -> Decimal:
    return Decimal("52.00") + Decimal(i % 50) / 100


def flatten(engine: Engine) -> int:
    """Cancel every open order at the venue; how many there were."""
    orders = engine.open_orders()
    for order in orders:
        engine.cancel(order.ref, "bench")
    return len(orders)


class Decoded:
    """Notes when sim/tws decodes a placeOrder (the clock stops there)."""

    def __init__(self, server: TwsServer) -> None:
        self.event = anyio.Event()
        self.at_ns = 0
        server.placed_listeners.append(self._decoded)

    def _decoded(self, _ref: str) -> None:
        self.at_ns = perf_counter_ns()
        self.event.set()

    def arm(self) -> anyio.Event:
        self.event = anyio.Event()
        return self.event


# -- the child -------------------------------------------------------------------------------------


async def child_main() -> None:
    engine, server = venue()
    decoded = Decoded(server)
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)

    def answer(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        answer(f"port {port}")
        while line := (await commands.readline()).decode():
            command, *args = line.split()
            if command == "trade" and len(args) == 1 and args[0].isdigit():
                arrived = decoded.arm()
                sent = perf_counter_ns()
                engine.on_trade(SYMBOL, trade_price(int(args[0])), 100, MONDAY)
                with anyio.move_on_after(TIMEOUT) as waited:
                    await arrived.wait()
                answer("timeout" if waited.cancelled_caught else f"decoded {decoded.at_ns - sent}")
            elif command == "flatten" and not args:
                answer(f"flat {flatten(engine)}")
            elif command == "stop" and not args:
                break
            else:
                answer(f"error unknown command {line.strip()!r}: trade I, flatten or stop")
        tg.cancel_scope.cancel()


# -- the parent ------------------------------------------------------------------------------------


class VenueError(RuntimeError):
    """The venue child answered something other than what the command expects, or exited."""


class VenueProcess:
    """The venue child seen from the bot's event loop (asyncio): ``async with VenueProcess() as
    v``, then ``v.port`` to connect to and ``await v.tick(i)`` for one measured decision."""

    def __init__(self) -> None:
        self.port = 0
        self.process = subprocess.Popen(
            [sys.executable, str(FILE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self._answers = asyncio.StreamReader()
        self._pipe: asyncio.BaseTransport | None = None

    async def __aenter__(self) -> VenueProcess:
        try:
            protocol = asyncio.StreamReaderProtocol(self._answers)
            loop = asyncio.get_running_loop()
            self._pipe, _ = await loop.connect_read_pipe(lambda: protocol, self.process.stdout)
            self.port = int(await self._expect("port", within=60))
        except BaseException:
            self.close(stop=False)
            raise
        return self

    async def __aexit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close(stop=True)

    def close(self, *, stop: bool) -> None:
        """Stop the child (``stop``: ask it to, and kill it if it is not gone in 10 s; else
        kill it) and close both pipes."""
        process = self.process
        try:
            if stop:
                with contextlib.suppress(OSError):  # a child already gone closed its stdin
                    self.send("stop")
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)
            if process.poll() is None:
                process.kill()
                process.wait(10)
        finally:
            if process.stdin is not None:
                process.stdin.close()
            if self._pipe is not None:
                self._pipe.close()
            elif process.stdout is not None:
                process.stdout.close()

    def send(self, *commands: str) -> None:
        """Write commands to the child, one a line, in one write."""
        assert self.process.stdin is not None
        self.process.stdin.write("".join(f"{c}\n" for c in commands).encode())
        self.process.stdin.flush()

    async def _expect(self, word: str, *, within: float = TIMEOUT + 5) -> str:
        """The next answer, which must start with ``word``; the rest of it."""
        with anyio.fail_after(within):
            line = (await self._answers.readline()).decode().strip()
        if not line:
            code = self.process.poll()
            raise VenueError(f"the venue child closed its stdout (exit code {code})")
        head, _, rest = line.partition(" ")
        if head != word:
            raise VenueError(f"the venue child answered {line!r}, expected {word!r} ...")
        return rest

    async def tick(self, i: int) -> int:
        """The venue publishes trade ``i``; ns (measured in the child) until the order it causes
        is decoded, after which the venue cancels every open order."""
        self.send(f"trade {i}", "flatten")
        ns = int(await self._expect("decoded"))
        await self._expect("flat")
        return ns


if __name__ == "__main__":
    asyncio.run(child_main())
