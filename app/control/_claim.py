"""Claiming the control socket's path: bound mode 0600 in a directory nobody else may write to,
a stale socket replaced, a live one (ours or another user's) never."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import tempfile
import time
from pathlib import Path

from ._client import check_length, connect, exchange
from ._errors import ControlError, ControlSocketInUse, UnsafeControlDirectory, who
from ._peer import check_peer
from ._protocol import Ping, Pong

_PROBE_TIMEOUT = 2.0
_SOCKET_MODE = 0o600

_Identity = tuple[int, int]  # (st_dev, st_ino): which file a path names


# The socket must never be reachable with a mode wider than 0600. bind() creates the file with
# 0777 & ~umask, and os.umask() is process-global: lowering it around bind() would also narrow the
# mode of any file another thread (the store's writer, a worker thread) creates meanwhile. So the
# socket is bound inside a fresh private directory (mkdtemp makes it 0700: nobody else can reach
# anything in it), chmod-ed to 0600 there, and only then hard-linked into place. link(), unlike
# rename(), fails if the path was taken meanwhile, so a concurrently starting server is never
# silently replaced. The cost: the staging path (parent/.XXXXXXXX/s) must fit in a socket address
# too, which only bites when the socket's own name is under 11 bytes and its path near the limit.


class ControlSocket:
    """A control socket bound and listening at ``path``, not served yet: connections wait in its
    backlog. ``claim_control()`` makes one; ``serve_control()`` serves it. Closing it (or leaving
    its ``with`` block) closes the socket and removes the file, if the file is still this one."""

    def __init__(self, path: Path, sock: socket.socket, identity: _Identity) -> None:
        self.path = path
        self.sock = sock
        self._identity = identity

    def close(self) -> None:
        self.sock.close()  # again once a listener closed it: a no-op
        _unlink_if(self.path, self._identity)

    def __enter__(self) -> ControlSocket:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def claim_control(path: Path) -> ControlSocket:
    """Bind the control socket at ``path``, mode 0600, and listen; blocks for at most a few
    seconds.

    A stale socket file there (its server died) is replaced. Raises ``ControlSocketInUse`` if
    our service serves there already, ``NotOurService`` if another user's process does,
    ``UnsafeControlDirectory`` if another user could replace the socket in its directory, and
    ``ControlError`` if ``path`` is something else, too long, or cannot be created.
    """
    path = Path(path)
    sock, identity = _claim(path)
    return ControlSocket(path, sock, identity)


def _claim(path: Path) -> tuple[socket.socket, _Identity]:
    check_length(path)
    _check_directory(path)
    for _ in range(3):
        _clear(path)
        try:
            return _bind(path)
        except FileExistsError:
            continue  # someone took the path between the check and the link: look again
        except OSError as exc:
            raise ControlError(
                f"cannot create control socket {path}: {exc.strerror or exc}"
            ) from exc
    raise ControlSocketInUse(path, None)


def _clear(path: Path) -> None:
    # Leaves ``path`` free, or raises: a live server there, or something that is not a socket.
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ControlError(f"cannot use control socket path {path}: {exc.strerror}") from exc
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlError(
            f"control socket path {path} exists and is not a socket; not touching it"
        )
    deadline = time.monotonic() + _PROBE_TIMEOUT
    try:
        probe = connect(path, _PROBE_TIMEOUT)
    except (ConnectionRefusedError, FileNotFoundError):
        # Stale: its server died without removing it. Remove that file, not a newer one.
        try:
            _unlink_if(path, (st.st_dev, st.st_ino))
        except OSError as exc:
            raise ControlError(
                f"cannot remove the stale control socket {path} (owner {who(st.st_uid)}): "
                f"{exc.strerror}"
            ) from exc
        return
    except (TimeoutError, BlockingIOError):
        raise ControlSocketInUse(path, None) from None  # alive, but too busy to accept
    except OSError as exc:
        raise ControlError(
            f"cannot tell whether actorctl is serving on {path}: {exc.strerror or exc}"
        ) from exc
    with probe:
        # Another user's server here is not ours to report as running, nor to replace.
        pid, _ = check_peer(probe, path)
        if pid is None:  # the platform does not say: ask the server
            try:
                reply = exchange(probe, path, Ping(), deadline)
            except (ControlError, OSError):
                reply = None
            pid = reply.pid if isinstance(reply, Pong) else None
    raise ControlSocketInUse(path, pid)


def _bind(path: Path) -> tuple[socket.socket, _Identity]:
    staging = tempfile.mkdtemp(prefix=".", dir=path.parent)
    staged = os.path.join(staging, "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        check_length(path, staged)
        sock.bind(staged)
        os.chmod(staged, _SOCKET_MODE)
        sock.listen()
        st = os.lstat(staged)
        os.link(staged, path)
    except BaseException:
        sock.close()
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staged)
        os.rmdir(staging)
    ours = (st.st_dev, st.st_ino)
    try:
        _verify(path, ours)
    except BaseException:
        sock.close()
        _unlink_if(path, ours)
        raise
    return sock, ours


def _verify(path: Path, ours: _Identity) -> None:
    st = os.lstat(path)
    if (st.st_dev, st.st_ino) != ours:
        raise ControlError(f"control socket {path} was replaced while it was being created")
    if stat.S_IMODE(st.st_mode) != _SOCKET_MODE:
        raise ControlError(
            f"control socket {path} has mode {stat.S_IMODE(st.st_mode):04o}, not "
            f"{_SOCKET_MODE:04o}; refusing to serve on it"
        )


# -- whose directory -------------------------------------------------------------------------------
#
# Whoever may write to the socket's directory may rename our socket away and bind their own in
# its place, and then answer `actorctl stop` as if they were us. So the directory must be this
# user's or root's and closed to writes by others, unless it is sticky (/tmp): there nobody may
# rename or remove a file of someone else's. The per-user directory of the default socket, which
# lives in such a shared directory when there is no $XDG_RUNTIME_DIR, must be this user's alone:
# another user may have made it first, just to be let in.

_REMOVE = "have it removed, or use another directory"


def private_directory(directory: Path) -> None:
    """Make ``directory`` with mode 0700 unless it exists; then check that it is a directory,
    not a symbolic link, of this user's, that nobody else may write to.

    Raises ``UnsafeControlDirectory`` if it is not, and ``ControlError`` if it cannot be made.
    """
    directory = Path(directory)
    for _ in range(3):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass  # ours from an earlier run, or someone else's: the checks say
        except OSError as exc:
            raise ControlError(
                f"cannot create control socket directory {directory}: {exc.strerror}"
            ) from exc
        try:
            st = os.lstat(directory)
        except FileNotFoundError:
            continue  # removed between the two calls: make it again
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(directory)
            raise UnsafeControlDirectory(
                directory,
                st,
                f"it is a symbolic link to {target}, so whoever made it could point it elsewhere",
                _REMOVE,
            )
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafeControlDirectory(directory, st, "it is not a directory", _REMOVE)
        if st.st_uid != os.geteuid():
            raise UnsafeControlDirectory(
                directory,
                st,
                f"it belongs to {who(st.st_uid)}, not to this user (uid {os.geteuid()}), so its "
                "owner could replace the control socket in it",
                _REMOVE,
            )
        if st.st_mode & 0o022:
            raise UnsafeControlDirectory(
                directory,
                st,
                "its group or others may write to it, so they could replace the control socket "
                "in it",
                f"run `chmod 700 {directory}`, or use another directory",
            )
        return
    raise ControlError(f"control socket directory {directory} keeps disappearing")


def _check_directory(path: Path) -> None:
    # The directory the socket path names (through any symbolic links on the way).
    directory = path.parent
    try:
        st = os.stat(directory)
    except OSError as exc:
        raise ControlError(
            f"cannot create control socket {path}: {directory}: {exc.strerror}"
        ) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise ControlError(f"cannot create control socket {path}: {directory} is not a directory")
    if st.st_uid not in (os.geteuid(), 0):
        raise UnsafeControlDirectory(
            directory,
            st,
            f"it belongs to {who(st.st_uid)}, neither this user (uid {os.geteuid()}) nor root, "
            "so its owner could replace the control socket in it",
            "use another directory",
        )
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        raise UnsafeControlDirectory(
            directory,
            st,
            "its group or others may write to it and it is not sticky, so they could replace "
            "the control socket in it",
            f"run `chmod go-w {directory}`, or use another directory",
        )


def _unlink_if(path: Path, identity: _Identity) -> None:
    # Another server may have claimed the path since: only the file we know is removed.
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == identity:
            os.unlink(path)
