"""The control socket of a running service: the server, the client ``actorctl`` uses, and the
handler that answers from the actors."""

from ._operations import Operations as Operations
from ._socket import MAX_CONNECTIONS as MAX_CONNECTIONS
from ._socket import MAX_REQUEST_BYTES as MAX_REQUEST_BYTES
from ._socket import READ_TIMEOUT as READ_TIMEOUT
from ._socket import ControlError as ControlError
from ._socket import ControlSocket as ControlSocket
from ._socket import ControlSocketInUse as ControlSocketInUse
from ._socket import ControlUnavailable as ControlUnavailable
from ._socket import Handler as Handler
from ._socket import NotOurService as NotOurService
from ._socket import UnsafeControlDirectory as UnsafeControlDirectory
from ._socket import check_socket_path as check_socket_path
from ._socket import claim_control as claim_control
from ._socket import private_directory as private_directory
from ._socket import request as request
from ._socket import serve_control as serve_control
