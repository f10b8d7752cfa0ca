"""Who serves a socket, as the kernel tells (``SO_PEERCRED``): another local user must not be
able to stand in for the service."""

from __future__ import annotations

import os
import socket
import struct
from pathlib import Path

from ._errors import NotOurService

_UCRED = struct.Struct("3i")  # Linux struct ucred: pid, uid, gid
_SOL_LOCAL = 0  # the BSDs and macOS: the socket level of LOCAL_PEERCRED
_XUCRED = struct.Struct("2I")  # the head of their struct xucred: cr_version, cr_uid


def peer(sock: socket.socket) -> tuple[int | None, int | None]:
    # (pid, uid) of the process at the other end, as the kernel recorded them when it called
    # listen() (the server) or connect(); None where the platform does not tell.
    if hasattr(socket, "SO_PEERCRED"):  # Linux
        pid, uid, _gid = _UCRED.unpack(
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
        )
        return pid, uid
    local_peercred = getattr(socket, "LOCAL_PEERCRED", None)
    if local_peercred is not None:  # macOS, FreeBSD: the uid, not the pid (untested here)
        _version, uid = _XUCRED.unpack_from(sock.getsockopt(_SOL_LOCAL, local_peercred, 256))
        return None, uid
    # Nowhere to ask: only the socket's mode 0600 and its directory's checks protect it.
    return None, None


def check_peer(sock: socket.socket, path: Path) -> tuple[int | None, int | None]:
    # The peer's (pid, uid), once it is known to run as this user or root: a service of root's is
    # plausible at a path this user was given; anyone else's is not ours.
    pid, uid = peer(sock)
    if uid is not None and uid not in (os.geteuid(), 0):
        raise NotOurService(path, uid=uid, pid=pid)
    return pid, uid


def is_pid_of(pid: int, claimed: int) -> bool:
    # Whether ``claimed`` is the pid of process ``pid``, here or in a pid namespace below ours: a
    # service in a container knows itself by its pid in there. /proc/PID/status lists them all.
    if claimed == pid:
        return True
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("NSpid:"):
                    return claimed in {int(p) for p in line.split()[1:]}
    except (OSError, ValueError):
        pass
    return False
