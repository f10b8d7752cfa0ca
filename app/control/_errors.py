"""The control socket's errors: who raises each is in its docstring."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path


class ControlError(RuntimeError):
    """Raised by a ``Handler`` to reply with an error message; raised by ``request()`` with the
    message of an error reply (or a failed exchange); raised by ``claim_control()`` (and
    ``serve_control()`` given a path) when it cannot serve on its path."""


class ControlUnavailable(ControlError):
    """Raised by ``request()`` when it cannot connect to a server on the path: no socket file, a
    stale one (its server died), or one it may not use."""

    def __init__(self, path: Path, reason: str | None = None) -> None:
        super().__init__(
            f"no actorctl is running on {path}"
            if reason is None
            else f"cannot reach actorctl on {path}: {reason}"
        )
        self.path = path
        self.reason = reason


class ControlSocketInUse(ControlError):
    """Raised by ``claim_control()`` (and ``serve_control()`` given a path) when another server of
    this user's or root's listens on its path; ``pid`` is its pid, when known."""

    def __init__(self, path: Path, pid: int | None) -> None:
        super().__init__(
            f"another actorctl is serving on {path}" + ("" if pid is None else f" (pid {pid})")
        )
        self.path = path
        self.pid = pid


class NotOurService(ControlError):
    """Raised by ``request()`` and ``claim_control()`` when the process serving the socket is not
    our service: it runs as another user than this one or root, or its reply claims a pid that is
    not its own."""

    def __init__(self, path: Path, *, uid: int, pid: int | None, claimed: int | None = None):
        serving = who(uid) if pid is None else f"pid {pid} of {who(uid)}"
        why = (
            f"neither this user (uid {os.geteuid()}) nor root"
            if claimed is None
            else f"but its reply claims pid {claimed}"
        )
        super().__init__(
            f"the process serving {path} is {serving}, {why}: it is not our actortrade service"
        )
        self.path = path
        self.uid = uid
        self.pid = pid
        self.claimed = claimed


class UnsafeControlDirectory(ControlError):
    """Raised by ``private_directory()`` and ``claim_control()`` when another user could replace
    the control socket in its directory."""

    def __init__(self, directory: Path, st: os.stat_result, problem: str, remedy: str) -> None:
        super().__init__(
            f"refusing control socket directory {directory} (owner {who(st.st_uid)}, mode "
            f"{stat.S_IMODE(st.st_mode):04o}): {problem}; {remedy}"
        )
        self.directory = directory
        self.uid = st.st_uid
        self.mode = stat.S_IMODE(st.st_mode)


def who(uid: int) -> str:
    return f"uid {uid}{_user_name(uid)}"


def _user_name(uid: int) -> str:
    try:
        return f" ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return ""
