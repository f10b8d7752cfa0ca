"""The files and directories the config and the command line name, checked before anything is
read from them or created in them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ConfigError

__all__ = [
    "MAX_INPUT_BYTES",
    "InputFileError",
    "data_dir_problem",
    "map_size_problem",
    "read_input",
]

MAX_INPUT_BYTES = 1 << 20
"""The largest config or lot map read (1 MiB): the shipped ones are a few KiB, and a bigger
file is a wrong path (a data file, a disk image), which would be read whole."""


class InputFileError(ConfigError):
    """Raised by ``read_input``: the file is missing, unreadable, not a regular file, or too big.
    The config and lot-map loaders re-raise it naming the file their way."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


def read_input(path: Path, *, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, of at most ``limit`` bytes.

    A directory, a FIFO (whose read waits for a writer: forever, for a typo) and a device
    (``/dev/zero`` never ends) are refused before a byte is read.
    """
    try:
        # Non-blocking, so that opening a FIFO does not wait for a writer; the type is then
        # checked on what was opened, not on a path that may have changed since.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise InputFileError(path, exc.strerror or str(exc)) from None
    try:
        kind = _kind(os.fstat(descriptor).st_mode)
        if kind is not None:
            raise InputFileError(path, f"{kind}, not a regular file")
        data = bytearray()
        while len(data) <= limit:
            chunk = os.read(descriptor, min(1 << 16, limit + 1 - len(data)))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise InputFileError(path, exc.strerror or str(exc)) from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise InputFileError(path, f"larger than {_size(limit)}")
    return bytes(data)


def data_dir_problem(path: Path) -> str | None:
    """Why a data directory cannot be at ``path``, or None. It must be a directory this process
    can write to, or not exist yet and have one as the nearest existing folder above it (where
    the service would create it)."""
    existing = path
    while True:
        try:
            mode = existing.stat().st_mode
        except (FileNotFoundError, NotADirectoryError):
            if existing.parent == existing:  # the working directory itself is gone
                return "no such file or directory"
            existing = existing.parent
            continue
        except OSError as exc:
            return f"{exc.strerror or exc}"
        break
    where = "" if existing == path else f"cannot be created in {existing}: "
    if not stat.S_ISDIR(mode):
        return f"{where}not a directory"
    # os.access answers for a read-only mount too (EROFS), even as root, but without the why.
    if os.statvfs(existing).f_flag & os.ST_RDONLY:
        return f"{where}on a read-only file system"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{where}not writable"
    return None


def map_size_problem(map_size_mib: int) -> str | None:
    """Why this process cannot map an LMDB environment of ``map_size_mib`` MiB, or None: more
    than its address-space limit (``ulimit -v``), where opening the ledger fails with
    lmdb.MemoryError once ledger/ exists."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or map_size_mib << 20 < soft:
        return None
    return f"must be at most {(soft - 1) >> 20} MiB, what this process may map (ulimit -v)"


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _size(count: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if count >= 1 << shift and count % (1 << shift) == 0:
            return f"{count >> shift} {unit}"
    return f"{count} bytes"
