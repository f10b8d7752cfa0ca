"""The synchronous client ``actorctl`` uses: one command, one reply, per connection."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from ._errors import ControlError, ControlUnavailable, NotOurService
from ._peer import check_peer, is_pid_of
from ._protocol import PROTOCOL_VERSION, Command, Failed, Head, Replies, Reply

R = TypeVar("R", bound=Reply)

_MAX_REPLY_BYTES = 64 * 1024 * 1024
# sun_path holds 108 bytes on Linux and 104 on the BSDs and macOS, the terminating NUL included.
_MAX_PATH_BYTES = 107 if sys.platform.startswith("linux") else 103

_encode = msgspec.json.Encoder().encode
_decode_head = msgspec.json.Decoder(Head).decode
_decode_reply = msgspec.json.Decoder(Replies).decode


def request(path: Path, command: Command[R], *, timeout: float = 10.0) -> R:
    """Send ``command`` to the server at ``path`` and return its reply (the type the command
    names: ``request(path, Status())`` is a ``StatusReply``).

    Blocks for at most about ``timeout`` seconds. Raises ``ControlUnavailable`` when nothing
    serves on ``path``, ``NotOurService`` when the process serving it runs as another user than
    this one or root (nothing is sent to it) or replies with another pid than its own, and
    ``ControlError`` with the server's message when it replied ``Failed``, or when the exchange
    failed (timeout, connection lost, malformed reply, another protocol version).
    """
    path = Path(path)
    check_length(path)
    deadline = time.monotonic() + timeout
    try:
        sock = connect(path, timeout)
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        raise ControlUnavailable(path) from None
    except (TimeoutError, BlockingIOError):
        raise ControlError(f"actorctl on {path} is not accepting connections") from None
    except OSError as exc:
        raise ControlUnavailable(path, exc.strerror or str(exc)) from exc
    with sock:
        try:
            reply = exchange(sock, path, command, deadline)
        except TimeoutError:
            raise ControlError(
                f"actorctl on {path} did not answer {_name(command)!r} within {timeout:g} s"
            ) from None
    if isinstance(reply, Failed):
        raise ControlError(reply.error)
    if not isinstance(reply, command.reply):
        raise ControlError(
            f"actorctl on {path} answered {_name(command)!r} with a {_name(reply)!r} reply"
        )
    return reply  # type: ignore[return-value]  # command.reply is R's class: checked above


def connect(path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(os.fspath(path))
    except BaseException:
        sock.close()
        raise
    return sock


def exchange(sock: socket.socket, path: Path, command: Command[Any], deadline: float) -> Reply:
    # Nothing is sent to another user's process, and no reply is believed that lies about who
    # sent it.
    pid, uid = check_peer(sock, path)
    line = _encode(command) + b"\n"
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
    head = _decoded(_decode_head, reply_line, path)
    # Linux tells both pid and uid; elsewhere the reply's pid cannot be checked. Checked before
    # the version: an impostor is named as such, whatever it speaks.
    claimed = head.pid
    if claimed is not None and pid is not None and uid is not None and not is_pid_of(pid, claimed):
        raise NotOurService(path, uid=uid, pid=pid, claimed=claimed)
    if head.version != PROTOCOL_VERSION:
        spoken = "version 1" if head.version is None else f"version {head.version}"
        raise ControlError(
            f"actorctl on {path} speaks control protocol {spoken}, this actorctl version "
            f"{PROTOCOL_VERSION}: use the actorctl installed with the running service"
        )
    reply: Reply = _decoded(_decode_reply, reply_line, path)
    return reply


def _decoded(decode: Any, line: bytes, path: Path) -> Any:
    try:
        return decode(line)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise ControlError(f"malformed reply from actorctl on {path}: {exc}") from exc
    except RecursionError:
        raise ControlError(f"malformed reply from actorctl on {path}: nested too deeply") from None


def _name(message: msgspec.Struct) -> str:
    tag = message.__struct_config__.tag
    return tag if isinstance(tag, str) else type(message).__name__


def check_socket_path(path: Path) -> None:
    """Raise ``ControlError`` if ``path`` is too long for a Unix socket address."""
    check_length(Path(path))


def check_length(path: Path, staged: str | None = None) -> None:
    size = len(os.fsencode(path if staged is None else staged))
    if size > _MAX_PATH_BYTES:
        how = "" if staged is None else f" to bind privately first as {staged}"
        raise ControlError(
            f"control socket path {path} is too long{how}: {size} bytes, a Unix socket address "
            f"holds at most {_MAX_PATH_BYTES}"
        )
