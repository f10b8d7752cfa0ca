"""What every ``actorctl`` command shares: the options, the config, the control socket's path,
and the two streams the commands and the service print on."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ClassVar, NoReturn, TextIO, TypeVar

import typer

if TYPE_CHECKING:
    from app.control import Command, Reply
    from config.schema import BrokerKind, Config

    R = TypeVar("R", bound=Reply)


def default_socket() -> Path:
    """The control socket when the config names none: $ACTORTRADE_SOCKET, else per user."""
    import os

    override = os.environ.get("ACTORTRADE_SOCKET")
    if override:
        return Path(override)
    return per_user_socket()


def per_user_socket() -> Path:
    """In the runtime directory, or in the temporary one (shared with other users) without."""
    import os
    import tempfile

    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"actortrade-{os.getuid()}" / "actorctl.sock"


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="TOML config (default: the shipped config/actortrade.toml)."),
]


SocketOption = Annotated[
    Path | None,
    typer.Option(
        "--socket",
        help="Control socket of the running service (default: from --config, else per user).",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the raw JSON reply.")]


def load_config(path: Path | None) -> Config:
    from config.errors import ConfigError
    from config.load import DEFAULT_CONFIG
    from config.load import load_config as load

    try:
        return load(path if path is not None else DEFAULT_CONFIG)
    except ConfigError as exc:
        fail(str(exc))


def socket_path(socket: Path | None, config: Path | None) -> Path:
    if socket is not None:
        return socket
    if config is not None:
        configured = load_config(config).control.socket
        if configured is not None:
            return Path(configured)
    return default_socket()


def broker_settings(
    settings: Config,
    kind: BrokerKind | None,
    *,
    host: str | None = None,
    port: int | None = None,
    client_id: int | None = None,
    live: bool,
) -> Config:
    """The config with the command line's broker options applied; refused (exit 2) when it
    would move real money without both mode = "live" and --live."""
    import attrs

    from config.errors import ConfigError
    from config.options import override
    from config.schema import live_problem

    options = {
        "kind": ("--broker", kind),
        "host": ("--host", host),
        "port": ("--port", port),
        "client_id": ("--client-id", client_id),
    }
    try:
        settings = attrs.evolve(settings, broker=override(settings.broker, options))
    except ConfigError as exc:
        fail(str(exc))
    problem = live_problem(settings, live_flag=live)
    if problem is not None:
        fail(problem)
    return settings


def ask(socket: Path | None, config: Path | None, command: Command[R]) -> R:
    from app.control import ControlError, ControlUnavailable, request

    path = socket_path(socket, config)
    try:
        return request(path, command, timeout=60)
    except ControlUnavailable as exc:
        say(f"{exc} (start it with `actorctl start`, or point --socket at it)")
        raise typer.Exit(1) from None
    except ControlError as exc:
        tag = command.__struct_config__.tag
        say(f"{tag}: {exc}")
        raise typer.Exit(1) from None


def say(message: str, level: int = logging.INFO) -> None:
    from app.ops.logs import flush_repeats

    flush_repeats()  # the counts of the log's repeated warnings come before what we say
    if Output.as_log:
        logging.getLogger("actortrade.actorctl").log(level, message)
        return
    STDERR.line(f"actorctl: {message}")


class Output:
    """One of the process's standard streams, as the service writes to it: a write that fails
    (a closed pipe, a full disk) is logged once and ends the printing, never the trading, which
    the caller may be in the middle of (the fill printer runs inside the venue)."""

    live: ClassVar[tuple[Output, str] | None] = None
    """The line drawn in place under the others (a progress line, on a terminal): the output
    showing it and its text (``show``). Every line printed, on either output, clears it first
    and draws it again after."""

    as_log: ClassVar[bool] = False
    """With JSON logs (``--log-format json``): every line becomes a log record instead
    (``actortrade.report`` for standard output's, ``actortrade.actorctl`` for standard
    error's), so that the whole of a service's output is JSON lines; nothing is drawn in
    place."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failed = False

    def line(self, text: str) -> None:
        if Output.as_log:
            logger = "actortrade.report" if self.name == "stdout" else "actortrade.actorctl"
            logging.getLogger(logger).info(text.removeprefix("actorctl: "))
            return
        live = Output.live
        if live is not None:
            live[0]._write("\r\x1b[K")
        self._write(f"{text}\n")
        if live is not None and Output.live is live:
            live[0]._write(f"\r\x1b[K{live[1]}")

    def show(self, text: str | None) -> None:
        """Draw ``text`` in place of the line shown so far (``live``), the cursor left at its
        end, cut to the terminal's width; None takes it away. For a terminal only: elsewhere
        each would be a line."""
        if self.failed or Output.as_log:
            return
        if text is not None:
            import shutil

            # A line that wraps could not be cleared: "\x1b[K" clears the cursor's row only.
            text = text[: max(shutil.get_terminal_size().columns - 1, 1)]
        Output.live = None if text is None else (self, text)
        self._write(f"\r\x1b[K{text or ''}")

    def _write(self, text: str) -> None:
        if self.failed:
            return
        stream = getattr(sys, self.name)
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError) as exc:  # ValueError: the stream was closed
            self.failed = True
            if Output.live is not None and Output.live[0] is self:
                Output.live = None
            self._silence(stream)
            # Logging never raises: a handler whose stream fails reports it to stderr, if it can.
            logging.getLogger("actortrade.output").warning(
                "%s failed (%s: %s): nothing more is printed there; trading goes on",
                "standard output" if self.name == "stdout" else "standard error",
                type(exc).__name__,
                exc,
            )

    @staticmethod
    def _silence(stream: TextIO) -> None:
        # The stream's descriptor now goes to /dev/null: what is still buffered, and any later
        # write (ours, a library's, the interpreter's flush at exit), succeeds there instead of
        # raising again ("Exception ignored ... BrokenPipeError" at exit).
        import os

        try:
            fd = stream.fileno()
            null = os.open(os.devnull, os.O_WRONLY)
        except (OSError, ValueError):
            return
        try:
            os.dup2(null, fd)
        except OSError:
            pass
        finally:
            os.close(null)


STDOUT = Output("stdout")
STDERR = Output("stderr")


def fail(message: str) -> NoReturn:
    say(message, logging.ERROR)
    raise typer.Exit(2)


class _LogStream:
    """Standard error as the log handler writes it: a record written while a line is drawn in
    place (the replay's progress, on a terminal) clears that line first and draws it again
    after, as ``Output.line`` does."""

    def write(self, text: str) -> None:
        live = Output.live
        if live is not None:
            live[0]._write("\r\x1b[K")
        sys.stderr.write(text)
        if live is not None and Output.live is live:
            sys.stderr.flush()
            live[0]._write(f"\r\x1b[K{live[1]}")

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(format: str = "text", verbose: int = 0, run_id: str | None = None) -> None:
    """The service's logging (``app.ops.logs``): text or JSON lines on standard error; with
    JSON, the command's own lines become log records too (``Output.as_log``)."""
    from app.ops.logs import configure_logging as configure

    configure(format, verbose, run_id, stream=_LogStream())
    Output.as_log = format == "json"
