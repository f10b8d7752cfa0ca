"""The control socket: one tagged JSON line each way (app.control's protocol Structs), errors
as replies, other protocol versions named, a private socket file that is claimed carefully and
removed at exit, and a server that no client can stop."""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import msgspec
import pytest

from app.control import (
    MAX_REQUEST_BYTES,
    PROTOCOL_VERSION,
    BackedUp,
    Backup,
    Command,
    Commands,
    ControlError,
    ControlSocketInUse,
    ControlUnavailable,
    Handler,
    Lots,
    LotsReply,
    NotOurService,
    Ping,
    Pong,
    Reconcile,
    Reconciled,
    ReconcileView,
    Replies,
    Reply,
    Status,
    StatusReply,
    Stop,
    Stopping,
    TracingView,
    UnsafeControlDirectory,
    claim_control,
    private_directory,
    request,
    serve_control,
)
from tests.users import as_user, impostor_command, other_user

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    """Real clocks on both backends: the client runs in a thread doing real socket I/O, and trio's
    autojumping MockClock would jump past it straight to the read timeouts."""
    return request.param, ({"use_uvloop": True} if request.param == "asyncio" else {})


@pytest.fixture
def sock_path() -> Iterator[Path]:
    """A socket path well under the Unix limit (pytest's tmp_path can be too long for one)."""
    directory = Path(tempfile.mkdtemp(prefix="ctl-", dir="/tmp"))
    yield directory / "actorctl.sock"
    shutil.rmtree(directory)


VIEWS = [{"symbol": "TQQQ", "lots": []}]


async def echo(command: Commands) -> Reply:
    # Each behaviour a handler can have, picked by the command: Backup's path names it.
    match command:
        case Backup(path="refuse"):
            raise ControlError("cannot back up now")
        case Backup(path="crash"):
            raise ZeroDivisionError("division by zero")
        case Backup(path="hang"):
            await anyio.sleep_forever()
        case Backup(path="wrong"):
            return Stopping()
        case Backup(path=path):
            return BackedUp(path=path)
        case Reconcile(dry_run=True):
            return _reconciled([{"opaque": object()}])
        case Reconcile(acknowledge_conflicts=True):
            return _reconciled([{"deep": functools.reduce(lambda i, _: [i], range(5_000), [])}])
        case Lots():
            return LotsReply(symbols=VIEWS)
    return Stopping()


def _reconciled(diffs: list[dict[str, Any]]) -> Reconciled:
    return Reconciled(
        report=ReconcileView(at_ns=1, dry_run=False, clean=False, lines=[], diffs=diffs)
    )


@asynccontextmanager
async def serving(path: Path, handler: Handler = echo, **options: Any) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        await tg.start(functools.partial(serve_control, path, handler, **options))
        yield
        tg.cancel_scope.cancel()


async def ask(path: Path, command: Command[Any]) -> Any:
    return await anyio.to_thread.run_sync(functools.partial(request, path, command))


async def alive(path: Path) -> bool:
    """The server at ``path`` (in this process) still answers a command from its handler."""
    return await ask(path, Lots()) == LotsReply(symbols=VIEWS, pid=os.getpid())


async def exchange(path: Path, data: bytes) -> dict[str, Any]:
    """Send raw bytes, then end of file; return the decoded reply."""
    async with await anyio.connect_unix(path) as stream:
        await stream.send(data)
        await stream.send_eof()
        received = b""
        async for chunk in stream:
            received += chunk
    reply: dict[str, Any] = msgspec.json.decode(received)
    return reply


async def test_a_command_and_its_fields_make_a_round_trip(sock_path: Path) -> None:
    """The handler gets the command Struct; the client gets the reply Struct the command names,
    stamped with the server's pid."""
    with anyio.fail_after(10):
        async with serving(sock_path):
            reply = await ask(sock_path, Backup(path="/srv/copy"))
            assert reply == BackedUp(path="/srv/copy", pid=os.getpid())
            assert await ask(sock_path, Lots()) == LotsReply(symbols=VIEWS, pid=os.getpid())


async def test_ping_is_answered_by_the_server_with_its_pid(sock_path: Path) -> None:
    """ping never reaches the handler."""

    async def refuse_all(command: Commands) -> Reply:
        raise AssertionError(command)

    with anyio.fail_after(10):
        async with serving(sock_path, refuse_all):
            assert await ask(sock_path, Ping()) == Pong(pid=os.getpid())


async def test_a_control_error_from_the_handler_is_replied_as_an_error(sock_path: Path) -> None:
    """The handler's message reaches the client as a ControlError."""
    with anyio.fail_after(10):
        async with serving(sock_path):
            with pytest.raises(ControlError, match=r"^cannot back up now$") as caught:
                await ask(sock_path, Backup(path="refuse"))
            assert type(caught.value) is ControlError


async def test_a_crashing_handler_gets_an_internal_error_reply_and_serving_goes_on(
    sock_path: Path,
) -> None:
    """Any other exception becomes an internal error reply; the next request is served."""
    with anyio.fail_after(10):
        async with serving(sock_path):
            with pytest.raises(ControlError, match=r"^internal error: ZeroDivisionError: division"):
                await ask(sock_path, Backup(path="crash"))
            with pytest.raises(
                ControlError, match=r"^internal error: the reply to Reconcile is not JSON"
            ):
                await ask(sock_path, Reconcile(dry_run=True))
            with pytest.raises(
                ControlError, match=r"^internal error: Backup was answered with a Stopping$"
            ):
                await ask(sock_path, Backup(path="wrong"))
            assert await alive(sock_path)


async def test_a_result_nested_too_deeply_to_encode_gets_an_internal_error_reply(
    sock_path: Path,
) -> None:
    """A result the encoder cannot recurse through is an error reply, not a silent hang-up."""
    with anyio.fail_after(10):
        async with serving(sock_path):
            with pytest.raises(
                ControlError, match=r"^internal error: the reply to Reconcile is not JSON: maximum"
            ):
                await ask(sock_path, Reconcile(acknowledge_conflicts=True))
            assert await alive(sock_path)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        pytest.param(b"status\n", "malformed request: JSON is malformed", id="not-json"),
        pytest.param(
            b'{"version": 2}\n',
            "malformed request: Object missing required field `type`",
            id="no-type",
        ),
        pytest.param(b'["status"]\n', "malformed request: Expected `object`", id="not-an-object"),
        pytest.param(
            b'{"type": "launch", "version": 2}\n',
            "malformed request: Invalid value 'launch' - at `$.type`",
            id="unknown-command",
        ),
        pytest.param(
            b'{"type": "backup", "version": 2, "path": 7}\n',
            "malformed request: Expected `str`, got `int` - at `$.path`",
            id="path-not-a-string",
        ),
        pytest.param(
            b'{"type": "backup", "version": 2, "path": ""}\n',
            "malformed request: Expected `str` of length >= 1 - at `$.path`",
            id="empty-path",
        ),
        pytest.param(
            b'{"type": "reconcile", "version": 2, "dry_run": "yes"}\n',
            "malformed request: Expected `bool`, got `str` - at `$.dry_run`",
            id="flag-not-a-bool",
        ),
        pytest.param(
            b'{"type": "status", "version": 2, "extra": 1}\n',
            "malformed request: Object contains unknown field `extra`",
            id="unknown-field",
        ),
        pytest.param(b'{"type": "status", "version": 2}', "incomplete request", id="no-newline"),
        pytest.param(
            b'{"type": "st\xffatus", "version": 2}\n',
            "malformed request: not UTF-8 at byte 12 (invalid start byte)",
            id="invalid-utf8",
        ),
        pytest.param(
            b'{"type": "status", "version": 2, "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}\n",
            "malformed request: nested too deeply",
            id="nested-30000-deep",
        ),
        pytest.param(
            b'{"command": "status", "args": {}}\n',
            "control protocol mismatch: this service speaks version 2, the request version 1; "
            "use the actorctl installed with the running service",
            id="version-1",
        ),
        pytest.param(
            b'{"type": "status", "version": 3}\n',
            "control protocol mismatch: this service speaks version 2, the request version 3",
            id="version-3",
        ),
    ],
)
async def test_a_malformed_request_gets_an_error_reply_naming_the_problem(
    sock_path: Path, data: bytes, problem: str
) -> None:
    """Bad JSON, a wrong shape or a missing newline: an error reply, and serving goes on."""
    with anyio.fail_after(10):
        async with serving(sock_path):
            reply = await exchange(sock_path, data)
            assert reply["type"] == "failed"
            assert reply["version"] == PROTOCOL_VERSION
            assert reply["error"].startswith(problem)
            assert await alive(sock_path)


async def test_an_oversized_request_gets_an_error_reply(sock_path: Path) -> None:
    """A line over the limit is refused before it is parsed, whether or not a newline follows."""
    with anyio.fail_after(10):
        async with serving(sock_path):
            with pytest.raises(ControlError, match=r"^request too large: more than 65536 bytes"):
                await ask(sock_path, Backup(path="x" * (2 * MAX_REQUEST_BYTES)))
            reply = await exchange(sock_path, b"x" * MAX_REQUEST_BYTES)  # no newline at all
            assert reply == {
                "type": "failed",
                "version": PROTOCOL_VERSION,
                "error": "request too large: more than 65536 bytes in one line",
                "pid": os.getpid(),
            }
            just_fits = "x" * (MAX_REQUEST_BYTES - 64)
            reply = await ask(sock_path, Backup(path=just_fits))
            assert reply == BackedUp(path=just_fits, pid=os.getpid())
            assert await alive(sock_path)


async def test_a_line_whose_newline_arrives_past_the_limit_is_too_large(sock_path: Path) -> None:
    """The limit holds when the newline comes in the chunk that crosses it: valid JSON or not."""
    line = msgspec.json.encode(Backup(path="x" * MAX_REQUEST_BYTES))
    head, tail = line[: MAX_REQUEST_BYTES - 1000], line[MAX_REQUEST_BYTES - 1000 :] + b"\n"
    with anyio.fail_after(10):
        async with serving(sock_path), await anyio.connect_unix(sock_path) as stream:
            await stream.send(head)
            await anyio.wait_all_tasks_blocked()  # the server has read the head, no newline yet
            await stream.send(tail)
            received = b""
            async for chunk in stream:
                received += chunk
            assert msgspec.json.decode(received) == {
                "type": "failed",
                "version": PROTOCOL_VERSION,
                "error": f"request too large: more than {MAX_REQUEST_BYTES} bytes in one line",
                "pid": os.getpid(),
            }


async def test_the_socket_file_is_private_and_removed_at_exit(sock_path: Path) -> None:
    """Mode 0600 while serving; no file once the server is cancelled."""
    with anyio.fail_after(10):
        async with serving(sock_path):
            mode = (await anyio.Path(sock_path).lstat()).st_mode
            assert stat.S_ISSOCK(mode)
            assert stat.S_IMODE(mode) == 0o600
            names = [p.name async for p in anyio.Path(sock_path.parent).iterdir()]
            assert names == ["actorctl.sock"]  # no staging directory left behind
        assert not await anyio.Path(sock_path).exists()


async def test_a_socket_file_that_is_no_longer_ours_is_left_at_exit(sock_path: Path) -> None:
    """At exit only our own socket is removed, not whatever replaced it meanwhile."""
    with anyio.fail_after(10):
        async with serving(sock_path):
            await anyio.Path(sock_path).unlink()
            await anyio.Path(sock_path).write_text("someone else's")
        assert await anyio.Path(sock_path).read_text() == "someone else's"


async def test_a_second_server_on_the_same_path_is_refused_naming_the_first(
    sock_path: Path,
) -> None:
    """The first server answers the second's ping: ControlSocketInUse with its pid."""
    with anyio.fail_after(10):
        async with serving(sock_path):
            with pytest.raises(ControlSocketInUse) as caught:
                await serve_control(sock_path, echo)
            assert caught.value.pid == os.getpid()
            assert str(caught.value) == (
                f"another actorctl is serving on {sock_path} (pid {os.getpid()})"
            )
            assert await alive(sock_path)


async def test_a_stale_socket_file_is_replaced(sock_path: Path) -> None:
    """A socket file whose server died (connection refused) is removed, and serving starts."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(os.fspath(sock_path))
    with pytest.raises(ControlUnavailable, match="no actorctl is running on"):
        request(sock_path, Status())
    with anyio.fail_after(10):
        async with serving(sock_path):
            assert await alive(sock_path)
            assert stat.S_IMODE((await anyio.Path(sock_path).lstat()).st_mode) == 0o600


async def test_a_file_that_is_not_a_socket_is_refused_and_left_alone(sock_path: Path) -> None:
    """A regular file at the path is never removed: ControlError names it."""
    await anyio.Path(sock_path).write_text("notes")
    with anyio.fail_after(10), pytest.raises(ControlError) as caught:
        await serve_control(sock_path, echo)
    assert type(caught.value) is ControlError
    assert str(caught.value) == (
        f"control socket path {sock_path} exists and is not a socket; not touching it"
    )
    assert await anyio.Path(sock_path).read_text() == "notes"


async def test_a_path_too_long_for_a_socket_is_refused_naming_it(sock_path: Path) -> None:
    """The Unix socket address limit is reported up front, for the server and the client."""
    too_long = sock_path.parent / ("x" * 120)
    with anyio.fail_after(10), pytest.raises(ControlError, match=r"is too long: 1\d\d bytes"):
        await serve_control(too_long, echo)
    with pytest.raises(ControlError, match=f"^control socket path {too_long} is too long"):
        request(too_long, Status())


async def test_a_short_name_in_a_long_directory_is_refused_if_it_cannot_be_bound_privately(
    sock_path: Path,
) -> None:
    """The private staging path beside the socket must fit too; nothing is left behind."""
    directory = sock_path.parent / ("d" * (98 - len(os.fsencode(sock_path.parent)) - 1))
    await anyio.Path(directory).mkdir()
    path = directory / "a.sock"
    assert len(os.fsencode(path)) == 105
    with anyio.fail_after(10), pytest.raises(ControlError, match="too long to bind privately"):
        await serve_control(path, echo)
    assert [p async for p in anyio.Path(directory).iterdir()] == []


async def test_a_missing_directory_is_refused_naming_the_path(sock_path: Path) -> None:
    """The socket's directory is not created on the fly."""
    path = sock_path.parent / "absent" / "actorctl.sock"
    with (
        anyio.fail_after(10),
        pytest.raises(ControlError, match=f"^cannot create control socket {path}"),
    ):
        await serve_control(path, echo)


async def test_the_client_gives_up_on_a_server_that_does_not_answer(sock_path: Path) -> None:
    """The client's timeout bounds the whole exchange."""
    with anyio.fail_after(10):
        async with serving(sock_path):
            hang = functools.partial(request, sock_path, Backup(path="hang"), timeout=0.2)
            with pytest.raises(ControlError, match=r"did not answer 'backup' within 0.2 s$"):
                await anyio.to_thread.run_sync(hang)
            assert await alive(sock_path)


def test_the_client_reports_no_server_on_a_missing_path(sock_path: Path) -> None:
    """No socket file: ControlUnavailable naming the path."""
    with pytest.raises(ControlUnavailable) as caught:
        request(sock_path, Status())
    assert str(caught.value) == f"no actorctl is running on {sock_path}"


async def test_a_silent_client_does_not_block_the_others(sock_path: Path) -> None:
    """A client that connects and says nothing holds only its own connection."""
    with anyio.fail_after(10):
        async with serving(sock_path, read_timeout=60), await anyio.connect_unix(sock_path):
            assert await alive(sock_path)


async def test_a_silent_client_is_dropped_after_the_read_timeout(sock_path: Path) -> None:
    """Saying nothing for read_timeout seconds gets an error reply and a closed connection."""
    with anyio.fail_after(10):
        async with serving(sock_path, read_timeout=0.2):
            async with await anyio.connect_unix(sock_path) as silent:
                received = b""
                async for chunk in silent:
                    received += chunk
            assert msgspec.json.decode(received) == {
                "type": "failed",
                "version": PROTOCOL_VERSION,
                "error": "no request within 0.2 s",
                "pid": os.getpid(),
            }


SERVER = Path(__file__).with_name("control_server.py")


@contextmanager
def held_connections(path: Path, count: int) -> Iterator[list[socket.socket]]:
    """``count`` connections to ``path`` that say nothing, closed on the way out."""
    with ExitStack() as stack:
        held = []
        for _ in range(count):
            conn = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            conn.settimeout(10)
            conn.connect(os.fspath(path))
            held.append(conn)
        yield held


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_server_out_of_file_descriptors_waits_for_some_and_serves_on(
    sock_path: Path, backend: str
) -> None:
    """With fewer descriptors left than connections pending, accept() fails with EMFILE: the
    server backs off instead of dying, and answers once the connections close."""
    server = subprocess.Popen(
        [sys.executable, str(SERVER), "serve", str(sock_path), backend, "8"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        limit = int(server.stdout.readline().split()[1])
        with held_connections(sock_path, 40):
            deadline = time.monotonic() + 10
            # Until the server has used every descriptor it may (or died trying).
            while len(os.listdir(f"/proc/{server.pid}/fd")) < limit and server.poll() is None:
                assert time.monotonic() < deadline, "the server never ran out of descriptors"
                time.sleep(0.01)
        assert request(sock_path, Lots()).symbols == [{"symbol": "TQQQ"}]
        server.send_signal(signal.SIGTERM)
        assert server.wait(10) == 0
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate(timeout=10)


async def test_a_connection_beyond_the_limit_gets_an_immediate_error_reply(
    sock_path: Path,
) -> None:
    """Past max_connections a client is told so at once and closed; a freed slot serves again."""
    with anyio.fail_after(10):
        async with serving(sock_path, read_timeout=60, max_connections=3):
            with held_connections(sock_path, 3) as held:
                with pytest.raises(ControlError) as caught:
                    await ask(sock_path, Lots())
                assert str(caught.value) == "too many control connections (3); try again shortly"
                # A reply read to its end frees its slot.
                lots = b'{"type": "lots", "version": 2}\n'
                freed = functools.partial(_exchange_on, held[0], lots)
                assert (await anyio.to_thread.run_sync(freed))["type"] == "lots"
                assert await alive(sock_path)
            # The server sees the others hang up before it is cancelled.
            assert await alive(sock_path)


def _exchange_on(conn: socket.socket, data: bytes) -> dict[str, Any]:
    conn.sendall(data)
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    reply: dict[str, Any] = msgspec.json.decode(received)
    return reply


# -- whose directory, whose server ----------------------------------------------------------------


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root, to give a directory to another uid")


def test_a_missing_private_directory_is_created_mode_0700(sock_path: Path) -> None:
    """The per-user directory is made private from the start, whatever the umask."""
    directory = sock_path.parent / "actortrade-1000"
    old = os.umask(0)
    try:
        private_directory(directory)
    finally:
        os.umask(old)
    st = directory.lstat()
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert st.st_uid == os.geteuid()
    private_directory(directory)  # and found fine the next time


def test_a_private_directory_of_another_user_is_refused_naming_owner_and_mode(
    sock_path: Path,
) -> None:
    """Made first by someone else: refused, even with a mode that would be fine."""
    _needs_root()
    directory = sock_path.parent / "actortrade-0"
    directory.mkdir(mode=0o700)
    os.chown(directory, 54321, 54321)
    with pytest.raises(UnsafeControlDirectory) as caught:
        private_directory(directory)
    assert str(caught.value) == (
        f"refusing control socket directory {directory} (owner uid 54321, mode 0700): it "
        f"belongs to uid 54321, not to this user (uid {os.geteuid()}), so its owner could "
        "replace the control socket in it; have it removed, or use another directory"
    )


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o702])
def test_a_private_directory_others_may_write_to_is_refused(sock_path: Path, mode: int) -> None:
    """Ours, but writable by the group or others: refused, saying how to fix it."""
    directory = sock_path.parent / "actortrade-0"
    directory.mkdir()
    directory.chmod(mode)
    with pytest.raises(UnsafeControlDirectory) as caught:
        private_directory(directory)
    assert str(caught.value) == (
        f"refusing control socket directory {directory} (owner uid {os.geteuid()}"
        f"{_name(os.geteuid())}, mode {mode:04o}): its group or others may write to it, so "
        f"they could replace the control socket in it; run `chmod 700 {directory}`, or use "
        "another directory"
    )


def test_a_symbolic_link_in_place_of_the_private_directory_is_refused(sock_path: Path) -> None:
    """Even to a private directory of ours: whoever made the link may point it elsewhere."""
    target = sock_path.parent / "mine"
    target.mkdir(mode=0o700)
    directory = sock_path.parent / "actortrade-0"
    directory.symlink_to(target)
    with pytest.raises(UnsafeControlDirectory, match=f"it is a symbolic link to {target}, so"):
        private_directory(directory)


def test_a_socket_directory_of_another_user_is_refused(sock_path: Path) -> None:
    """Anywhere, the socket's directory must be ours or root's: its owner could replace it."""
    _needs_root()
    os.chown(sock_path.parent, 54321, 54321)
    with pytest.raises(UnsafeControlDirectory, match="it belongs to uid 54321, neither this user"):
        claim_control(sock_path)
    assert list(sock_path.parent.iterdir()) == []


async def test_a_socket_directory_others_may_write_to_is_refused_unless_sticky(
    sock_path: Path,
) -> None:
    """Mode 0777 lets anyone rename the socket away; with the sticky bit (/tmp) they may not."""
    sock_path.parent.chmod(0o777)
    with pytest.raises(UnsafeControlDirectory, match=r"mode 0777\): its group or others may"):
        await serve_control(sock_path, echo)
    sock_path.parent.chmod(0o1777)
    with anyio.fail_after(10):
        async with serving(sock_path):
            assert await alive(sock_path)


async def test_every_reply_carries_the_pid_of_the_server(sock_path: Path) -> None:
    """Results and errors alike, so that the client can tell who answered."""
    with anyio.fail_after(10):
        async with serving(sock_path):
            ok = await exchange(sock_path, b'{"type": "lots", "version": 2}\n')
            error = await exchange(sock_path, b"status\n")
    assert ok["pid"] == error["pid"] == os.getpid()


@asynccontextmanager
async def answering(path: Path, reply: bytes) -> AsyncIterator[None]:
    """A server that is not serve_control(): each connection gets ``reply`` whatever it asks."""

    async def answer(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(reply)

    async with await anyio.create_unix_listener(path) as listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, answer)
        yield
        tg.cancel_scope.cancel()


async def test_a_reply_claiming_another_pid_than_its_server_s_is_refused(sock_path: Path) -> None:
    """The kernel says which process serves the socket; a reply that says otherwise lies."""
    claimed = os.getpid() + 1
    line = msgspec.json.encode(Stopping(pid=claimed))
    with anyio.fail_after(10):
        async with answering(sock_path, line + b"\n"):
            with pytest.raises(NotOurService) as caught:
                await ask(sock_path, Stop())
    assert (caught.value.pid, caught.value.claimed) == (os.getpid(), claimed)
    assert str(caught.value) == (
        f"the process serving {sock_path} is pid {os.getpid()} of uid {os.geteuid()}"
        f"{_name(os.geteuid())}, but its reply claims pid {claimed}: it is not our actortrade "
        "service"
    )


async def test_a_reply_nested_too_deeply_is_a_malformed_reply(sock_path: Path) -> None:
    """The client's decoder meets the recursion limit: an error naming the socket, no crash."""
    line = b'{"type": "lots", "version": 2, "symbols": ' + b"[" * 30_000 + b"]" * 30_000 + b"}\n"
    with anyio.fail_after(10):
        async with answering(sock_path, line):
            with pytest.raises(
                ControlError, match=f"^malformed reply from actorctl on {sock_path}: nested too"
            ):
                await ask(sock_path, Lots())


async def test_a_server_of_another_protocol_version_is_named_not_misread(
    sock_path: Path,
) -> None:
    """A version 1 service (``{"ok": ..., "result": ...}``) or a later one: the client says which
    version each side speaks, whatever the reply holds."""
    for reply, spoken in (
        ({"ok": True, "result": {"stopping": True}, "pid": os.getpid()}, "version 1"),
        ({"type": "stopping", "version": 3, "pid": os.getpid()}, "version 3"),
    ):
        with anyio.fail_after(10):
            async with answering(sock_path, msgspec.json.encode(reply) + b"\n"):
                with pytest.raises(ControlError) as caught:
                    await ask(sock_path, Stop())
        assert type(caught.value) is ControlError
        assert str(caught.value) == (
            f"actorctl on {sock_path} speaks control protocol {spoken}, this actorctl version "
            f"{PROTOCOL_VERSION}: use the actorctl installed with the running service"
        )


async def test_a_reply_of_another_kind_than_the_command_names_is_refused(sock_path: Path) -> None:
    """A stop's reply to a lots command is not taken for the lots."""
    line = msgspec.json.encode(Stopping(pid=os.getpid())) + b"\n"
    with anyio.fail_after(10):
        async with answering(sock_path, line):
            with pytest.raises(
                ControlError,
                match=f"^actorctl on {sock_path} answered 'lots' with a 'stopping' reply$",
            ):
                await ask(sock_path, Lots())


def _name(uid: int) -> str:
    try:
        return f" ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return ""


@pytest.fixture
def other() -> pwd.struct_passwd:
    """A second local user (created when missing; the test is skipped unless we are root)."""
    return other_user()


@contextmanager
def impostor(path: Path, user: pwd.struct_passwd) -> Iterator[subprocess.Popen[str]]:
    """Another user's server at ``path``, answering the protocol as our service would."""
    process = subprocess.Popen(
        impostor_command(user, "serve", str(path)),
        stdout=subprocess.PIPE,
        text=True,
        cwd="/",
        **as_user(user),
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "serving\n"
        yield process
    finally:
        process.kill()
        process.communicate(timeout=10)


def test_a_server_of_another_user_is_refused_by_the_client(
    sock_path: Path, other: pwd.struct_passwd
) -> None:
    """Another uid's process on the socket gets nothing asked of it and is named."""
    os.chown(sock_path.parent, other.pw_uid, other.pw_gid)
    sock_path.parent.chmod(0o755)
    with impostor(sock_path, other) as server, pytest.raises(NotOurService) as caught:
        request(sock_path, Stop())
    assert (caught.value.uid, caught.value.pid) == (other.pw_uid, server.pid)
    assert str(caught.value) == (
        f"the process serving {sock_path} is pid {server.pid} of uid {other.pw_uid} "
        f"({other.pw_name}), neither this user (uid {os.geteuid()}) nor root: it is not our "
        "actortrade service"
    )


def test_a_socket_served_by_another_user_is_refused_not_taken_for_ours(
    sock_path: Path, other: pwd.struct_passwd
) -> None:
    """In a shared sticky directory (/tmp) another user took our path first: not replaced, not
    reported as our own service already running."""
    sock_path.parent.chmod(0o1777)
    with impostor(sock_path, other), pytest.raises(NotOurService, match=f"uid {other.pw_uid}"):
        claim_control(sock_path)
    assert sock_path.lstat().st_uid == other.pw_uid


def test_a_server_in_another_pid_namespace_is_known_by_its_pid_there(sock_path: Path) -> None:
    """A service in a container replies with its pid in there; the kernel gives ours for it."""
    unshare = ["unshare", "--pid", "--fork", "--kill-child"]
    try:
        usable = subprocess.run([*unshare, "true"], capture_output=True, check=False)
    except FileNotFoundError:
        pytest.skip("needs unshare (util-linux)")
    if usable.returncode != 0:
        pytest.skip(f"cannot make a pid namespace: {usable.stderr.decode().strip()}")
    server = subprocess.Popen(
        [*unshare, sys.executable, str(SERVER), "serve", str(sock_path), "asyncio"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("serving")
        assert request(sock_path, Ping()) == Pong(pid=1)
        assert request(sock_path, Lots()).symbols == [{"symbol": "TQQQ"}]
    finally:
        server.kill()
        server.communicate(timeout=10)


def test_the_last_reconciliation_in_a_status_is_its_fields_alone() -> None:
    """``status --json`` shows the report as ``reconcile --json`` does: no tag, version or pid
    of a reply inside a reply."""
    view = ReconcileView(at_ns=5, dry_run=False, clean=True, lines=[], diffs=[])
    status = StatusReply(
        mode="paper",
        venue="embedded sim venue",
        venue_time=None,
        tree=[],
        restarts=0,
        symbols=[],
        feeds=[],
        last_reconcile=view,
        alerts=[],
        metrics={},
        tracing=TracingView(
            enabled=False,
            endpoint=None,
            built=0,
            waiting=0,
            dropped=0,
            exported=None,
            failed=None,
        ),
        pid=7,
    )
    decoded = msgspec.json.decode(msgspec.json.encode(status))
    assert decoded["last_reconcile"] == {
        "at_ns": 5,
        "dry_run": False,
        "clean": True,
        "lines": [],
        "diffs": [],
    }
    assert msgspec.json.decode(msgspec.json.encode(status), type=Replies) == status
