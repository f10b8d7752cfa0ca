"""The journaled TWS venue in a process of its own, for tests that kill it (SIGKILL) and start it
again on the same journal.

Run as a script, ``python tests/sim/tws/venue_process.py JOURNAL``. It opens the engine on
``JOURNAL`` (``sim.journal.open_engine``: a new journal, or the replay of one), serves
``TwsServer`` (TQQQ listed, server versions 157..178) on a free loopback port and prints
``port N``. Then it reads one command a line on stdin and answers each with one line,
so a test drives the market deterministically and knows when a command took effect:

- ``trade PRICE SIZE MINUTE``: a TQQQ trade at Monday 10:MINUTE New York (the clock of
  ``tests.tws_venue``, whose TQQQ and Monday it repeats: the child cannot import ``tests``,
  as eventkit 1.0.3 installs a top-level package of that name); answers ``ok`` once the
  engine has matched it (its clients hear of it right after).
- ``errors``: answers the server's protocol errors as one JSON list.
- ``quit`` (or the end of stdin): exits.

A malformed command is answered ``error <what>``; the process goes on.

``VenueProcess`` is the test's side: it starts the process, reads its port, sends commands and
kills it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from actors.domain import Instrument
from actors.domain.sessions import NEW_YORK
from sim.engine import Engine
from sim.journal import open_engine
from sim.tws.server import TwsServer

PORT_LINE = "port"
TQQQ = Instrument(symbol="TQQQ", con_id=900001, long_name="PROSHARES ULTRAPRO QQQ")
MONDAY = datetime(2026, 11, 23, 10, 0, tzinfo=NEW_YORK)


async def serve(journal: str, say: Callable[[str], None]) -> None:
    engine = open_engine(journal)
    server = TwsServer(engine, instruments=[TQQQ], clock=lambda: engine.last_trade_at or MONDAY)
    async with anyio.create_task_group() as tg:
        port = await tg.start(server.serve)
        say(f"{PORT_LINE} {port}")
        while True:
            line = await anyio.to_thread.run_sync(sys.stdin.readline)
            if not line or line.strip() == "quit":
                break
            say(command(server, line.split()))
        tg.cancel_scope.cancel()


def trade(engine: Engine, price: Decimal, size: int, minute: int) -> None:
    engine.on_trade(TQQQ.symbol, price, size, MONDAY.replace(minute=minute))


def command(server: TwsServer, words: list[str]) -> str:
    match words:
        case ["trade", price, size, minute]:
            try:
                trade(server.engine, Decimal(price), int(size), int(minute))
            except (InvalidOperation, ValueError) as exc:
                return f"error trade {words[1:]}: {exc}"
            return "ok"
        case ["errors"]:
            return json.dumps(server.protocol_errors)
        case _:
            return f"error unknown command {words}"


class VenueProcess:
    """A running venue process: its port, its commands, its SIGKILL."""

    def __init__(self, process: anyio.abc.Process) -> None:
        self.process = process
        assert process.stdout is not None
        assert process.stdin is not None
        self._lines = BufferedByteReceiveStream(process.stdout)
        self._stdin = process.stdin
        self.port = 0

    async def line(self) -> str:
        with anyio.fail_after(20):
            return (await self._lines.receive_until(b"\n", 1 << 20)).decode()

    async def ask(self, *words: object) -> str:
        """Send one command, return its answer (an ``error ...`` answer raises)."""
        await self._stdin.send((" ".join(map(str, words)) + "\n").encode())
        answer = await self.line()
        if answer.startswith("error"):
            raise ValueError(f"venue process: {answer}")
        return answer

    async def trade(self, price: str, size: int, minute: int) -> None:
        assert await self.ask("trade", price, size, minute) == "ok"

    async def protocol_errors(self) -> list[str]:
        errors: list[str] = json.loads(await self.ask("errors"))
        return errors

    async def kill(self) -> None:
        """SIGKILL: no exit handler, no flush, no close of anything."""
        os.kill(self.process.pid, signal.SIGKILL)
        with anyio.fail_after(20):
            await self.process.wait()
        assert self.process.returncode == -signal.SIGKILL


@asynccontextmanager
async def venue_process(journal: Path) -> AsyncIterator[VenueProcess]:
    """The venue serving ``journal`` in a child process, killed on the way out if alive."""
    process = await anyio.open_process(
        [sys.executable, __file__, str(journal)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    async with process:
        venue = VenueProcess(process)
        try:
            word, port = (await venue.line()).split()
            assert word == PORT_LINE
            venue.port = int(port)
            yield venue
        finally:
            if process.returncode is None:
                process.kill()
                with anyio.move_on_after(20, shield=True):
                    await process.wait()


def say(line: str) -> None:
    print(line, flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/sim/tws/venue_process.py JOURNAL")
    anyio.run(serve, sys.argv[1], say)
