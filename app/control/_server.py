"""The control socket's server: one connection, one command, one reply, then close.

Commands and replies are ``_protocol``'s Structs; ``Ping`` is answered here with the pid, every
other command goes to the handler. A request line is at most ``MAX_REQUEST_BYTES``; an oversized,
malformed, late or other-version request gets a ``Failed`` reply naming the problem, and a failing
handler an ``internal error`` one: nothing a client sends stops the server.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.abc
import anyio.to_thread
import msgspec
from anyio.streams.buffered import BufferedByteReceiveStream

from ._claim import ControlSocket, claim_control
from ._errors import ControlError
from ._protocol import PROTOCOL_VERSION, Commands, Failed, Head, Ping, Pong, Reply

log = logging.getLogger("actortrade.control")

Handler = Callable[[Commands], Awaitable[Reply]]
"""``command -> reply``: the reply is of the class the command names (``command.reply``) or a
``Failed``; raise ``ControlError`` to reply with an error message."""

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
# Out of descriptors or memory: accept() fails until some connection closes; wait, don't die.
_ACCEPT_BACKOFF_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})

_encode = msgspec.json.Encoder().encode
_decode_head = msgspec.json.Decoder(Head).decode
_decode_command = msgspec.json.Decoder(Commands).decode


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
        listener = await anyio.abc.SocketListener.from_socket(claimed.sock)
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
        head = _decode_head(line)
        if head.version != PROTOCOL_VERSION:
            spoken = "version 1" if head.version is None else f"version {head.version}"
            return _error(
                f"control protocol mismatch: this service speaks version {PROTOCOL_VERSION}, "
                f"the request {spoken}; use the actorctl installed with the running service"
            )
        command = _decode_command(line)
    except msgspec.DecodeError as exc:  # ValidationError included
        return _error(f"malformed request: {exc}")
    except RecursionError:
        # msgspec decodes arrays and objects recursively, under the interpreter's recursion limit.
        return _error("malformed request: nested too deeply")
    name = type(command).__name__
    if isinstance(command, Ping):
        return _encoded(Pong(), name)
    try:
        reply = await handler(command)
    except ControlError as exc:
        return _error(str(exc))
    except Exception as exc:
        log.exception("control command %s failed", name)
        return _error(f"internal error: {type(exc).__name__}: {exc}")
    if not isinstance(reply, command.reply | Failed):
        log.error("control command %s was answered with %r", name, reply)
        return _error(f"internal error: {name} was answered with a {type(reply).__name__}")
    return _encoded(reply, name)


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


def _encoded(reply: Reply, name: str) -> bytes:
    try:
        return _encode(msgspec.structs.replace(reply, pid=os.getpid())) + b"\n"
    except (TypeError, msgspec.EncodeError, RecursionError) as exc:
        log.exception("the reply to control command %s does not encode as JSON", name)
        return _error(f"internal error: the reply to {name} is not JSON: {exc}")


def _error(message: str) -> bytes:
    return _encode(Failed(error=message, pid=os.getpid())) + b"\n"
