"""Another user attacking the control socket, in a process of that user's: the standard library
only, as that user may not reach our virtual environment.

    python impostor.py serve PATH
        not our service: a bare socket at PATH (mode 0777) answering every request line with
        a reply as ours would; "serving" is printed once it listens.
    python impostor.py hijack DIRECTORY
        make DIRECTORY with mode 0777 before we do, to be let in.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

# What our service would answer (app.control's protocol, version 2), or near enough for actorctl
# to print it as the truth.
PLAUSIBLE: dict[str, Any] = {
    "stop": {"type": "stopping", "version": 2, "pid": os.getpid()},
    "status": {
        "type": "status",
        "version": 2,
        "pid": os.getpid(),
        "mode": "paper",
        "venue": "embedded sim venue",
        "venue_time": None,
        "restarts": 0,
        "tree": [],
        "symbols": [],
        "feeds": [],
        "last_reconcile": None,
        "alerts": [],
        "metrics": {},
        "tracing": {
            "enabled": False,
            "endpoint": None,
            "built": 0,
            "waiting": 0,
            "dropped": 0,
            "exported": None,
            "failed": None,
        },
    },
}


def serve(path: Path) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(os.fspath(path))
        os.chmod(path, 0o777)
        listener.listen()
        print("serving", flush=True)
        while True:
            conn, _ = listener.accept()
            with conn:
                line = conn.recv(65536)
                if not line:
                    continue  # the client hung up without asking: it saw through us
                command = json.loads(line)["type"]
                failed = {"type": "failed", "version": 2, "pid": os.getpid(), "error": "no"}
                reply = PLAUSIBLE.get(command, failed)
                conn.sendall(json.dumps(reply).encode() + b"\n")


def hijack(directory: Path) -> None:
    directory.mkdir()
    directory.chmod(0o777)


if __name__ == "__main__":
    match sys.argv[1:]:
        case ["serve", path]:
            serve(Path(path))
        case ["hijack", directory]:
            hijack(Path(directory))
        case _:
            sys.exit(__doc__)
