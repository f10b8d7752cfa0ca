"""The control socket of a running service: its protocol (tagged msgspec Structs shared by the
server and the client), the server, the client ``actorctl`` uses, and the handler that answers
from the actors.

* ``claim_control(path)`` binds the socket, mode 0600, ready to serve; ``serve_control(path or
  claimed, handler)`` serves it (anyio: asyncio or trio) until cancelled, then removes the socket
  file if it is still its own.
* ``request(path, command)`` is the synchronous client the CLI process uses; it returns the
  reply the command names (``request(path, Status())`` is a ``StatusReply``).
* ``private_directory(path)`` makes (or checks) the per-user directory of the default socket.

Another local user must not be able to stand in for the service. The socket's directory must be
this user's or root's, and nobody else may write to it (but for a sticky one like ``/tmp``, where
nobody may rename or remove another's file); the per-user directory must be this user's alone.
And the client asks the kernel who serves the socket (``SO_PEERCRED``): a process of another
user than this one or root is refused, and so is one whose reply claims another pid than its own.
"""

from ._claim import ControlSocket as ControlSocket
from ._claim import claim_control as claim_control
from ._claim import private_directory as private_directory
from ._client import check_socket_path as check_socket_path
from ._client import request as request
from ._errors import ControlError as ControlError
from ._errors import ControlSocketInUse as ControlSocketInUse
from ._errors import ControlUnavailable as ControlUnavailable
from ._errors import NotOurService as NotOurService
from ._errors import UnsafeControlDirectory as UnsafeControlDirectory
from ._protocol import PROTOCOL_VERSION as PROTOCOL_VERSION
from ._protocol import BackedUp as BackedUp
from ._protocol import Backup as Backup
from ._protocol import Command as Command
from ._protocol import Commands as Commands
from ._protocol import Failed as Failed
from ._protocol import Halt as Halt
from ._protocol import Halts as Halts
from ._protocol import Lots as Lots
from ._protocol import LotsReply as LotsReply
from ._protocol import Ping as Ping
from ._protocol import Pong as Pong
from ._protocol import Reconcile as Reconcile
from ._protocol import Reconciled as Reconciled
from ._protocol import ReconcileView as ReconcileView
from ._protocol import Replies as Replies
from ._protocol import Reply as Reply
from ._protocol import Resume as Resume
from ._protocol import Status as Status
from ._protocol import StatusReply as StatusReply
from ._protocol import Stop as Stop
from ._protocol import Stopping as Stopping
from ._protocol import TracingView as TracingView
from ._server import MAX_CONNECTIONS as MAX_CONNECTIONS
from ._server import MAX_REQUEST_BYTES as MAX_REQUEST_BYTES
from ._server import READ_TIMEOUT as READ_TIMEOUT
from ._server import Handler as Handler
from ._server import serve_control as serve_control

__all__ = [
    "serve_control",
    "claim_control",
    "ControlSocket",
    "Handler",
    "request",
    "private_directory",
    "check_socket_path",
    "MAX_REQUEST_BYTES",
    "READ_TIMEOUT",
    "MAX_CONNECTIONS",
    "PROTOCOL_VERSION",
    "Command",
    "Commands",
    "Ping",
    "Status",
    "Lots",
    "Halt",
    "Resume",
    "Halts",
    "Stop",
    "Reconcile",
    "Backup",
    "Reply",
    "Replies",
    "Failed",
    "Pong",
    "StatusReply",
    "TracingView",
    "LotsReply",
    "Stopping",
    "Reconciled",
    "ReconcileView",
    "BackedUp",
    "ControlError",
    "ControlUnavailable",
    "ControlSocketInUse",
    "NotOurService",
    "UnsafeControlDirectory",
]
