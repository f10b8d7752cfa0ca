"""A control-socket server in a process of its own, for the tests that need one: with fewer file
descriptors than it will be asked for, or in a pid namespace of its own.

    python control_server.py serve PATH BACKEND [HEADROOM]
        serve_control() with an echo handler (lots: one TQQQ view); once serving, the soft
        limit on open files is lowered to HEADROOM more than are open (if given), and
        "serving LIMIT" is printed. SIGTERM stops it.
"""

from __future__ import annotations

import os
import resource
import signal
import sys
from pathlib import Path

import anyio

from app.control import Commands, Lots, LotsReply, Reply, Stopping, serve_control


async def echo(command: Commands) -> Reply:
    if isinstance(command, Lots):
        return LotsReply(symbols=[{"symbol": "TQQQ"}])
    return Stopping()


async def serve(path: Path, headroom: int | None) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(serve_control, path, echo)
        limit, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if headroom is not None:
            limit = len(os.listdir("/proc/self/fd")) + headroom
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        print(f"serving {limit}", flush=True)
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async for _ in signals:
                tg.cancel_scope.cancel()


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["serve", path, backend, *headroom]:
            limit = int(headroom[0]) if headroom else None
            anyio.run(serve, Path(path), limit, backend=backend)
        case _:
            sys.exit(__doc__)
