"""A control-socket server in a process of its own, for the tests that need one: with fewer file
descriptors than it will be asked for, or as another user.

    python control_server.py serve PATH BACKEND HEADROOM
        serve_control() with an echo handler; once serving, the soft limit on open files is
        lowered to HEADROOM more than are open, and "serving LIMIT" is printed. SIGTERM stops it.
    python control_server.py impostor PATH
        not our service: a bare socket at PATH (mode 0777) answering every request line with
        {"ok": true, ...} as ours would; "serving" is printed once it listens.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import anyio
import msgspec

from runtime.control import serve_control


async def echo(command: str, args: dict[str, Any]) -> Any:
    return {"command": command, "args": args}


async def serve(path: Path, headroom: int) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(serve_control, path, echo)
        limit = len(os.listdir("/proc/self/fd")) + headroom
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        print(f"serving {limit}", flush=True)
        with anyio.open_signal_receiver(signal.SIGTERM) as signals:
            async for _ in signals:
                tg.cancel_scope.cancel()


# What our service would answer, or near enough for actorctl to print it as the truth.
PLAUSIBLE: dict[str, Any] = {
    "stop": {"stopping": True, "pid": os.getpid()},
    "status": {
        "pid": os.getpid(),
        "mode": "paper",
        "venue": "embedded sim venue",
        "venue_time": None,
        "restarts": 0,
        "tree": [],
        "symbols": [],
        "last_reconcile": None,
    },
}


def impostor(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(os.fspath(path))
        os.chmod(path, 0o777)
        listener.listen()
        print("serving", flush=True)
        while True:
            conn, _ = listener.accept()
            with conn:
                command = msgspec.json.decode(conn.recv(65536))["command"]
                conn.sendall(
                    msgspec.json.encode({"ok": True, "result": PLAUSIBLE.get(command, {})}) + b"\n"
                )


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        anyio.run(serve, Path(sys.argv[2]), int(sys.argv[4]), backend=sys.argv[3])
    else:
        impostor(Path(sys.argv[2]))
