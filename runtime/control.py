"""The local control socket that ``actorctl status/stop/lots/reconcile`` talk to.

A Unix domain stream socket, file mode 0600, one request per connection: the client sends one
JSON object line ``{"command": "status", "args": {...}}`` and the server replies with one line,
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "message"}``, then closes.

* ``serve_control(path, handler)`` serves it (anyio: asyncio or trio) until cancelled, then
  removes the socket file if it is still its own. ``ping`` is answered by the server itself with
  its pid; every other command goes to ``handler(command, args)``.
* ``request(path, command, args)`` is the synchronous client the CLI process uses.

A request line is at most ``MAX_REQUEST_BYTES``; an oversized, malformed or late request gets an
error reply naming the problem, and a failing handler an ``internal error`` reply: nothing a
client sends stops the server.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
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
    message of an error reply (or a failed exchange); raised by ``serve_control()`` when it cannot
    serve on its path."""


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
    """Raised by ``serve_control()`` when another server answers on its path."""

    def __init__(self, path: Path, pid: int | None) -> None:
        super().__init__(
            f"another actorctl is serving on {path}" + ("" if pid is None else f" (pid {pid})")
        )
        self.path = path
        self.pid = pid


class _Request(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    command: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class _Reply(msgspec.Struct, frozen=True):
    ok: bool
    result: Any = None
    error: str = ""


_encode = msgspec.json.Encoder().encode
_decode_request = msgspec.json.Decoder(_Request).decode
_decode_reply = msgspec.json.Decoder(_Reply).decode


# -- server ---------------------------------------------------------------------------------------


async def serve_control(
    path: Path,
    handler: Handler,
    *,
    read_timeout: float = READ_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control socket at ``path`` until cancelled; each connection in its own task.

    Reports started once the socket accepts connections. A stale socket file at ``path`` (its
    server died) is replaced; raises ``ControlSocketInUse`` if a server answers there, and
    ``ControlError`` if ``path`` is something else, too long, or cannot be created. A client that
    sends no complete request line within ``read_timeout`` seconds gets an error reply, and one
    beyond ``max_connections`` served at once an immediate one. Out of file descriptors, it waits
    for some to be freed.
    """
    path = Path(path)
    # Probing a previous server and binding touch the filesystem and may wait on a socket.
    sock, ours = await anyio.to_thread.run_sync(_claim, path)
    try:
        listener = await anyio.abc.SocketListener.from_socket(sock)
        async with listener, anyio.create_task_group() as tg:
            task_status.started()
            await _accept_forever(listener, tg, handler, read_timeout, _Slots(max_connections))
    finally:
        sock.close()  # no-op once the listener took it; closes it if wrapping failed
        _unlink_if(path, ours)


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
        return _encode({"ok": True, "result": result}) + b"\n"
    except (TypeError, msgspec.EncodeError, RecursionError) as exc:
        log.exception("the result of control command %r does not encode as JSON", command)
        return _error(f"internal error: the result of {command!r} is not JSON: {exc}")


def _error(message: str) -> bytes:
    return _encode({"ok": False, "error": message}) + b"\n"


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


def _claim(path: Path) -> tuple[socket.socket, _Identity]:
    _check_length(path)
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
        _unlink_if(path, (st.st_dev, st.st_ino))
        return
    except (TimeoutError, BlockingIOError):
        raise ControlSocketInUse(path, None) from None  # alive, but too busy to accept
    except OSError as exc:
        raise ControlError(
            f"cannot tell whether actorctl is serving on {path}: {exc.strerror or exc}"
        ) from exc
    with probe:
        try:
            reply = _exchange(probe, path, "ping", {}, deadline)
        except (ControlError, OSError):
            reply = None
    pid = reply.get("pid") if isinstance(reply, dict) else None
    raise ControlSocketInUse(path, pid if isinstance(pid, int) else None)


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


def _unlink_if(path: Path, identity: _Identity) -> None:
    # Another server may have claimed the path since: only the file we know is removed.
    with contextlib.suppress(FileNotFoundError):
        st = os.lstat(path)
        if (st.st_dev, st.st_ino) == identity:
            os.unlink(path)


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
    serves on ``path``, and ``ControlError`` with the server's message when it replied with an
    error, or when the exchange failed (timeout, connection lost, malformed reply).
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
    if not reply.ok:
        raise ControlError(reply.error)
    return reply.result
