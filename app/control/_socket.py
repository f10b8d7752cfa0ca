"""The local control socket that ``actorctl status/stop/lots/reconcile`` talk to.

A Unix domain stream socket, file mode 0600, one request per connection: the client sends one
JSON object line ``{"command": "status", "args": {...}}`` and the server replies with one line,
``{"ok": true, "result": ..., "pid": N}`` or ``{"ok": false, "error": "message", "pid": N}`` (N:
the server's pid), then closes.

* ``claim_control(path)`` binds the socket, ready to serve; ``serve_control(path or claimed,
  handler)`` serves it (anyio: asyncio or trio) until cancelled, then removes the socket file if
  it is still its own. ``ping`` is answered by the server itself with its pid; every other
  command goes to ``handler(command, args)``.
* ``request(path, command, args)`` is the synchronous client the CLI process uses.
* ``private_directory(path)`` makes (or checks) the per-user directory of the default socket.

Another local user must not be able to stand in for the service. The socket's directory must be
this user's or root's, and nobody else may write to it (but for a sticky one like ``/tmp``, where
nobody may rename or remove another's file); the per-user directory must be this user's alone. And
the client asks the kernel who serves the socket (``SO_PEERCRED``): a process of another user than
this one or root is refused, and so is one whose reply claims another pid than its own.

A request line is at most ``MAX_REQUEST_BYTES``; an oversized, malformed or late request gets an
error reply naming the problem, and a failing handler an ``internal error`` reply: nothing a
client sends stops the server.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pwd
import socket
import stat
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import msgspec
from anyio.streams.buffered import BufferedByteReceiveStream

log = logging.getLogger("actortrade.control")

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]
"""``(command, args) -> result``: the result must encode as JSON; raise ``ControlError`` to reply
with an error message."""

MAX_REQUEST_BYTES = 64 * 1024
"""The longest request line the server reads, newline included."""

READ_TIMEOUT = 5.0
"""Seconds a client has, once connected, to send its request line."""

MAX_CONNECTIONS = 64
"""Connections served at once; one more gets an immediate ``too many control connections`` error
reply and is closed, so that clients that hang on cannot use up the process's file descriptors."""

_WRITE_TIMEOUT = 5.0
_TURN_AWAY_TIMEOUT = 0.5
_ACCEPT_BACKOFF = 0.1
_PROBE_TIMEOUT = 2.0
_MAX_REPLY_BYTES = 64 * 1024 * 1024
_SOCKET_MODE = 0o600
# sun_path holds 108 bytes on Linux and 104 on the BSDs and macOS, the terminating NUL included.
_MAX_PATH_BYTES = 107 if sys.platform.startswith("linux") else 103
# Out of descriptors or memory: accept() fails until some connection closes; wait, don't die.
_ACCEPT_BACKOFF_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})

_Identity = tuple[int, int]  # (st_dev, st_ino): which file a path names


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
        who = _who(uid) if pid is None else f"pid {pid} of {_who(uid)}"
        why = (
            f"neither this user (uid {os.geteuid()}) nor root"
            if claimed is None
            else f"but its reply claims pid {claimed}"
        )
        super().__init__(
            f"the process serving {path} is {who}, {why}: it is not our actortrade service"
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
            f"refusing control socket directory {directory} (owner {_who(st.st_uid)}, mode "
            f"{stat.S_IMODE(st.st_mode):04o}): {problem}; {remedy}"
        )
        self.directory = directory
        self.uid = st.st_uid
        self.mode = stat.S_IMODE(st.st_mode)


def _who(uid: int) -> str:
    return f"uid {uid}{_user_name(uid)}"


def _user_name(uid: int) -> str:
    try:
        return f" ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return ""


class _Request(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    command: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class _Reply(msgspec.Struct, frozen=True):
    ok: bool
    result: Any = None
    error: str = ""
    pid: int | None = None  # absent from the replies of a server older than the field


_encode = msgspec.json.Encoder().encode
_decode_request = msgspec.json.Decoder(_Request).decode
_decode_reply = msgspec.json.Decoder(_Reply).decode


# -- server ---------------------------------------------------------------------------------------


async def serve_control(
    where: Path | ControlSocket,
    handler: Handler,
    *,
    read_timeout: float = READ_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control socket until cancelled, then close it; each connection in its own task.

    ``where`` is a socket ``claim_control()`` returned, or a path to claim as it does (raising
    as it does). Reports started once the socket accepts connections. A client that
    sends no complete request line within ``read_timeout`` seconds gets an error reply, and one
    beyond ``max_connections`` served at once an immediate one. Out of file descriptors, it waits
    for some to be freed.
    """
    if isinstance(where, ControlSocket):
        claimed = where
    else:
        # Probing a previous server and binding touch the filesystem and may wait on a socket.
        claimed = await anyio.to_thread.run_sync(claim_control, where)
    with claimed:
        listener = await anyio.abc.SocketListener.from_socket(claimed._sock)
        async with listener, anyio.create_task_group() as tg:
            task_status.started()
            await _accept_forever(listener, tg, handler, read_timeout, _Slots(max_connections))


class _Slots:
    # Connections being served: taken at accept, freed once the reply is sent and before the
    # connection is closed, so a client that has read its reply to the end finds its slot free.
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.taken = 0

    def take(self) -> bool:
        if self.taken >= self.limit:
            return False
        self.taken += 1
        return True

    def free(self) -> None:
        self.taken -= 1


async def _accept_forever(
    listener: anyio.abc.SocketListener,
    tg: anyio.abc.TaskGroup,
    handler: Handler,
    read_timeout: float,
    slots: _Slots,
) -> None:
    starved = False
    while True:
        try:
            stream = await listener.accept()
        except (OSError, anyio.BrokenResourceError) as exc:
            # anyio reports the OSError of accept() as BrokenResourceError, the OSError its cause.
            cause = exc.__cause__ if isinstance(exc, anyio.BrokenResourceError) else exc
            if not isinstance(cause, OSError) or cause.errno not in _ACCEPT_BACKOFF_ERRNOS:
                raise
            if not starved:
                log.warning(
                    "control socket cannot accept: %s; retrying every %g s",
                    cause,
                    _ACCEPT_BACKOFF,
                )
                starved = True
            await anyio.sleep(_ACCEPT_BACKOFF)
            continue
        if starved:
            log.warning("control socket accepts connections again")
            starved = False
        if not slots.take():
            await _turn_away(stream, slots.limit)
            continue
        tg.start_soon(
            _serve_connection, stream, handler, read_timeout, slots, name="control connection"
        )


async def _turn_away(stream: anyio.abc.SocketStream, limit: int) -> None:
    # Done in the accept loop, not in a task of its own (that would be unbounded again): a
    # fresh connection's send buffer is empty, so the short reply goes out at once.
    try:
        async with stream:
            with anyio.move_on_after(_TURN_AWAY_TIMEOUT):
                await stream.send(
                    _error(f"too many control connections ({limit}); try again shortly")
                )
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        log.debug("control client went away: %r", exc)


async def _serve_connection(
    stream: anyio.abc.SocketStream, handler: Handler, read_timeout: float, slots: _Slots
) -> None:
    # Whatever happens to one connection ends here: an exception would cancel the whole server.
    try:
        async with stream:
            try:
                reply = await _reply_to(stream, handler, read_timeout)
                with anyio.move_on_after(_WRITE_TIMEOUT):
                    await stream.send(reply)
            finally:
                slots.free()
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
        log.debug("control client went away: %r", exc)
    except Exception:
        log.exception("control connection failed")


async def _reply_to(stream: anyio.abc.SocketStream, handler: Handler, read_timeout: float) -> bytes:
    line = await _read_request(stream, read_timeout)
    if isinstance(line, str):
        return _error(line)
    try:
        # msgspec checks UTF-8 only inside strings, and raises UnicodeDecodeError there: check the
        # whole line first, to name the byte.
        line.decode()
    except UnicodeDecodeError as exc:
        return _error(f"malformed request: not UTF-8 at byte {exc.start} ({exc.reason})")
    try:
        request = _decode_request(line)
    except msgspec.DecodeError as exc:  # ValidationError included
        return _error(f"malformed request: {exc}")
    except RecursionError:
        # msgspec decodes arrays and objects recursively, under the interpreter's recursion limit.
        return _error("malformed request: nested too deeply")
    if request.command == "ping":
        return _ok({"pid": os.getpid()}, request.command)
    try:
        result = await handler(request.command, request.args)
    except ControlError as exc:
        return _error(str(exc))
    except Exception as exc:
        log.exception("control command %r failed", request.command)
        return _error(f"internal error: {type(exc).__name__}: {exc}")
    return _ok(result, request.command)


async def _read_request(stream: anyio.abc.SocketStream, read_timeout: float) -> bytes | str:
    # The request line, or what is wrong with it.
    too_large = f"request too large: more than {MAX_REQUEST_BYTES} bytes in one line"
    buffered = BufferedByteReceiveStream(stream)
    with anyio.move_on_after(read_timeout):
        try:
            line = await buffered.receive_until(b"\n", MAX_REQUEST_BYTES)
        except anyio.DelimiterNotFound:
            return too_large
        except anyio.IncompleteRead:
            return "incomplete request: the connection was closed before the end of line"
        # The chunk that crosses the limit may still hold the newline: the limit is ours to apply.
        return too_large if len(line) >= MAX_REQUEST_BYTES else line
    return f"no request within {read_timeout:g} s"


def _ok(result: Any, command: str) -> bytes:
    try:
        return _encode({"ok": True, "result": result, "pid": os.getpid()}) + b"\n"
    except (TypeError, msgspec.EncodeError, RecursionError) as exc:
        log.exception("the result of control command %r does not encode as JSON", command)
        return _error(f"internal error: the result of {command!r} is not JSON: {exc}")


def _error(message: str) -> bytes:
    return _encode({"ok": False, "error": message, "pid": os.getpid()}) + b"\n"


# -- claiming the path ----------------------------------------------------------------------------
#
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
        self._sock = sock
        self._identity = identity

    def close(self) -> None:
        self._sock.close()  # again once a listener closed it: a no-op
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
    _check_length(path)
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
        probe = _connect(path, _PROBE_TIMEOUT)
    except (ConnectionRefusedError, FileNotFoundError):
        # Stale: its server died without removing it. Remove that file, not a newer one.
        try:
            _unlink_if(path, (st.st_dev, st.st_ino))
        except OSError as exc:
            raise ControlError(
                f"cannot remove the stale control socket {path} (owner {_who(st.st_uid)}): "
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
        pid, _ = _check_peer(probe, path)
        if pid is None:  # the platform does not say: ask the server
            try:
                reply = _exchange(probe, path, "ping", {}, deadline)
            except (ControlError, OSError):
                reply = None
            claimed = reply.get("pid") if isinstance(reply, dict) else None
            pid = claimed if isinstance(claimed, int) else None
    raise ControlSocketInUse(path, pid)


def _bind(path: Path) -> tuple[socket.socket, _Identity]:
    staging = tempfile.mkdtemp(prefix=".", dir=path.parent)
    staged = os.path.join(staging, "s")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _check_length(path, staged)
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
                f"it belongs to {_who(st.st_uid)}, not to this user (uid {os.geteuid()}), so its "
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
            f"it belongs to {_who(st.st_uid)}, neither this user (uid {os.geteuid()}) nor root, "
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


def check_socket_path(path: Path) -> None:
    """Raise ``ControlError`` if ``path`` is too long for a Unix socket address."""
    _check_length(Path(path))


def _check_length(path: Path, staged: str | None = None) -> None:
    size = len(os.fsencode(path if staged is None else staged))
    if size > _MAX_PATH_BYTES:
        how = "" if staged is None else f" to bind privately first as {staged}"
        raise ControlError(
            f"control socket path {path} is too long{how}: {size} bytes, a Unix socket address "
            f"holds at most {_MAX_PATH_BYTES}"
        )


# -- client ---------------------------------------------------------------------------------------


def request(
    path: Path,
    command: str,
    args: Mapping[str, Any] | None = None,
    *,
    timeout: float = 10.0,
) -> Any:
    """Send ``command`` with ``args`` to the server at ``path`` and return its result.

    Blocks for at most about ``timeout`` seconds. Raises ``ControlUnavailable`` when nothing
    serves on ``path``, ``NotOurService`` when the process serving it runs as another user than
    this one or root (nothing is sent to it) or replies with another pid than its own, and
    ``ControlError`` with the server's message when it replied with an error, or when the
    exchange failed (timeout, connection lost, malformed reply).
    """
    path = Path(path)
    _check_length(path)
    deadline = time.monotonic() + timeout
    try:
        sock = _connect(path, timeout)
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        raise ControlUnavailable(path) from None
    except (TimeoutError, BlockingIOError):
        raise ControlError(f"actorctl on {path} is not accepting connections") from None
    except OSError as exc:
        raise ControlUnavailable(path, exc.strerror or str(exc)) from exc
    with sock:
        try:
            return _exchange(sock, path, command, args or {}, deadline)
        except TimeoutError:
            raise ControlError(
                f"actorctl on {path} did not answer {command!r} within {timeout:g} s"
            ) from None


def _connect(path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
    except BaseException:
        sock.close()
        raise
    return sock


def _exchange(
    sock: socket.socket, path: Path, command: str, args: Mapping[str, Any], deadline: float
) -> Any:
    # Nothing is sent to another user's process, and no reply is believed that lies about who
    # sent it.
    pid, uid = _check_peer(sock, path)
    line = _encode({"command": command, "args": args}) + b"\n"
    received = bytearray()
    try:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            # The server may have replied already (a request too large) and closed: read it.
            sock.sendall(line)
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = sock.recv(65536)
            received += chunk
            if not chunk or b"\n" in chunk:
                break
            if len(received) > _MAX_REPLY_BYTES:
                raise ControlError(
                    f"actorctl on {path} replied with more than {_MAX_REPLY_BYTES} bytes"
                )
    except TimeoutError:
        raise  # the caller knows how long it waited
    except OSError as exc:
        raise ControlError(
            f"lost the connection to actorctl on {path}: {exc.strerror or exc}"
        ) from exc
    reply_line, newline, _ = bytes(received).partition(b"\n")
    if not newline:
        raise ControlError(f"actorctl on {path} closed the connection without a complete reply")
    try:
        reply = _decode_reply(reply_line)
    except msgspec.DecodeError as exc:
        raise ControlError(f"malformed reply from actorctl on {path}: {exc}") from exc
    except RecursionError:
        raise ControlError(f"malformed reply from actorctl on {path}: nested too deeply") from None
    # Linux tells both pid and uid; elsewhere the reply's pid cannot be checked.
    claimed = reply.pid
    if claimed is not None and pid is not None and uid is not None and not _is_pid_of(pid, claimed):
        raise NotOurService(path, uid=uid, pid=pid, claimed=claimed)
    if not reply.ok:
        raise ControlError(reply.error)
    return reply.result


# -- who serves -----------------------------------------------------------------------------------

_UCRED = struct.Struct("3i")  # Linux struct ucred: pid, uid, gid
_SOL_LOCAL = 0  # the BSDs and macOS: the socket level of LOCAL_PEERCRED
_XUCRED = struct.Struct("2I")  # the head of their struct xucred: cr_version, cr_uid


def _peer(sock: socket.socket) -> tuple[int | None, int | None]:
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


def _check_peer(sock: socket.socket, path: Path) -> tuple[int | None, int | None]:
    # The peer's (pid, uid), once it is known to run as this user or root: a service of root's is
    # plausible at a path this user was given; anyone else's is not ours.
    pid, uid = _peer(sock)
    if uid is not None and uid not in (os.geteuid(), 0):
        raise NotOurService(path, uid=uid, pid=pid)
    return pid, uid


def _is_pid_of(pid: int, claimed: int) -> bool:
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
