"""Run a supervision tree as a service: until SIGINT/SIGTERM, or until the root gives up.

A first SIGINT or SIGTERM asks the root for a graceful stop (children stop in reverse start
order, each within its shutdown budget); if that takes longer than ``stop_timeout`` the tree is
cancelled. A second one means "now": while the tree stops it cancels the tree at once (a forced
stop); after the tree has stopped (``run_service``'s process exiting: the last spans exported,
the summaries printed) it ends the process at once. Either way the stop was asked for, so the
exit status is 0; it is 1 when the root gave up. SIGHUP is ignored (logged): a closing terminal
does not stop trading (run it under systemd, or nohup, to detach it).

``run_service`` keeps a handler for these signals installed until the process is gone, so no
signal ever meets the default action, which would end the process with status 143 (SIGTERM)
or 129 (SIGHUP), or raise ``KeyboardInterrupt`` (SIGINT) wherever the exit happens to be.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Iterable, Sequence
from types import FrameType
from typing import Any, TextIO

import anyio
import attrs

from runtime import Hooks, SupervisorHooks

from ._errors import ChildUnrecoverable, RestartIntensityExceeded
from .spec import SupervisorSpec
from .supervisor import Supervisor

log = logging.getLogger("actortrade.service")

EXIT_OK = 0
EXIT_GAVE_UP = 1

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
IGNORED_SIGNALS = (signal.SIGHUP,)


@attrs.frozen(kw_only=True)
class ServiceResult:
    exit_code: int
    reason: str
    forced: bool = False
    forced_by: str = ""
    """How the tree came to be cancelled when ``forced``: ``after the stop timeout``, or ``by a
    second signal, SIGTERM`` (say)."""


Outside = Callable[..., Coroutine[Any, Any, None]]
"""A task of the world outside the tree (an embedded venue): called with ``task_status=``,
it calls ``task_status.started()`` once it serves."""
Companion = Callable[[Supervisor, Callable[[str], None]], Coroutine[Any, Any, None]]
"""A task that runs beside the tree (the control socket, say): it gets the root and a function
that asks for a graceful stop, naming who asked; it is cancelled when the tree has stopped."""


async def serve(
    spec: SupervisorSpec,
    *,
    stop_timeout: float = 5.0,
    on_started: Callable[[Supervisor], None] | None = None,
    signals: tuple[signal.Signals, ...] = STOP_SIGNALS,
    ignored: tuple[signal.Signals, ...] = IGNORED_SIGNALS,
    companions: Sequence[Companion] = (),
    outside: Sequence[Outside] = (),
    hooks: Hooks | Iterable[SupervisorHooks] = (),
    on_stopping: Callable[[str], None] | None = None,
) -> ServiceResult:
    """Run ``spec`` as the root supervisor until one of ``signals`` or until it gives up;
    each of ``ignored`` is logged and otherwise ignored.

    ``on_stopping`` is called once when a stop is asked for, with who asked (``SIGTERM``,
    ``actorctl stop``), before the tree is told to stop (systemd's ``STOPPING=1``).

    ``outside`` tasks (an embedded venue, say) are started, and report ready, before the tree
    starts, and are cancelled after it has stopped. When it returns, the signal handlers that
    were installed before it are installed again. ``hooks`` hear what the tree's supervisors
    do (``Supervisor``)."""
    root = Supervisor("root", spec, hooks=hooks)
    stopped_by: list[str] = []
    forced_by: list[str] = []
    tree_stopped = False
    tree_scope = anyio.CancelScope()

    def request_stop(by: str) -> None:
        if stopped_by:
            return
        stopped_by.append(by)
        log.info("stop requested by %s: stopping (at most %g s)", by, stop_timeout)
        if on_stopping is not None:
            try:
                on_stopping(by)
            except Exception:
                log.exception("on_stopping failed: the stop goes on")
        root.stop()
        tree_scope.deadline = min(tree_scope.deadline, anyio.current_time() + stop_timeout)

    async def watch_signals() -> None:
        watched = (*signals, *ignored)
        previous = {s: signal.getsignal(s) for s in watched}

        def on(signum: int) -> None:
            name = signal.Signals(signum).name
            if signum in ignored:
                log.warning(
                    "%s received: ignored (a closing terminal does not stop the service; "
                    "SIGTERM, SIGINT or `actorctl stop` do)",
                    name,
                )
            elif not stopped_by:
                request_stop(name)
            elif tree_stopped:
                log.info("%s received after the tree stopped: nothing left to stop", name)
            else:
                log.warning("%s received while the tree stops: cancelling it now", name)
                if not forced_by:
                    forced_by.append(f"by a second signal, {name}")
                tree_scope.cancel()

        try:
            with anyio.open_signal_receiver(*watched) as received:
                # Those that came before the receiver was open (run_service recorded them).
                while _early:
                    signum = _early.pop(0)
                    if signum in watched:
                        on(signum)
                async for signum in received:
                    on(signum)
        finally:
            # asyncio's receiver leaves each signal to its default action when it closes (death
            # for SIGTERM and SIGHUP, KeyboardInterrupt for SIGINT): put back what was there, so
            # a signal during the rest of the exit meets a handler (a few microseconds between
            # the two remain, which nothing short of the loop's own cooperation closes).
            for signum, handler in previous.items():
                if handler is not None:
                    signal.signal(signum, handler)

    gave_up: list[BaseException] = []
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch_signals)
            for task in outside:
                await tg.start(task)
            with tree_scope:
                async with anyio.create_task_group() as tree:
                    await tree.start(root.run)
                    if on_started is not None:
                        on_started(root)
                    for companion in companions:
                        tg.start_soon(companion, root, request_stop)
            tree_stopped = True
            if tree_scope.cancelled_caught and not forced_by:
                forced_by.append("after the stop timeout")
                log.warning("the tree did not stop within %g s: it was cancelled", stop_timeout)
            tg.cancel_scope.cancel()
    except* (RestartIntensityExceeded, ChildUnrecoverable) as group:
        gave_up.extend(_leaves(group))
    if gave_up:
        return ServiceResult(exit_code=EXIT_GAVE_UP, reason=_gave_up_message(gave_up[0]))
    reason = f"stopped by {stopped_by[0]}" if stopped_by else "stopped"
    return ServiceResult(
        exit_code=EXIT_OK,
        reason=reason,
        forced=bool(forced_by),
        forced_by=forced_by[0] if forced_by else "",
    )


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        if isinstance(exc, BaseExceptionGroup):
            leaves.extend(_leaves(exc))
        else:
            leaves.append(exc)
    return leaves


def _gave_up_message(error: BaseException) -> str:
    cause = error.__cause__
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__  # through every supervisor that escalated it, to the child's
    detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
    return f"{error}{detail}"


def run_service(
    spec: SupervisorSpec,
    *,
    backend: str = "asyncio",
    stop_timeout: float = 5.0,
    on_started: Callable[[Supervisor], None] | None = None,
    companions: Sequence[Companion] = (),
    outside: Sequence[Outside] = (),
    uvloop: bool = True,
    stderr: TextIO = sys.stderr,
    hooks: Hooks | Iterable[SupervisorHooks] = (),
    before_exit: Callable[[], None] | None = None,
    on_stopping: Callable[[str], None] | None = None,
    final: Callable[[str, int], None] | None = None,
) -> int:
    """Run ``spec`` on ``backend`` (asyncio uses uvloop when installed, unless ``uvloop`` is
    False); return the exit code.

    Meant to be the last thing a process does: from here until the process is gone, SIGINT,
    SIGTERM and SIGHUP are handled even outside the tree's watch: one before the watch starts is
    acted on when it does, and after the service, SIGINT or SIGTERM ends the process at once
    with the exit code (see the module doc). ``before_exit`` runs once the service has stopped
    and before its final line (a flush that may log), so that the line is the last the
    operator reads. The final line on ``stderr`` failing (a closed pipe, a full disk) is no
    error: the exit code still tells. ``final``, when given, gets that line (without its
    ``actorctl:``) and the exit code instead of ``stderr`` (a JSON log, say)."""
    for signum in (*STOP_SIGNALS, *IGNORED_SIGNALS):
        signal.signal(signum, _record)
    options: dict[str, Any] = {}
    if backend == "asyncio" and uvloop and _uvloop_available():
        options["use_uvloop"] = True
    result: ServiceResult = anyio.run(
        lambda: serve(
            spec,
            stop_timeout=stop_timeout,
            on_started=on_started,
            companions=companions,
            outside=outside,
            hooks=hooks,
            on_stopping=on_stopping,
        ),
        backend=backend,
        backend_options=options,
    )
    _exit_at_once_on_a_signal(result.exit_code)
    if before_exit is not None:
        before_exit()
    if result.exit_code == EXIT_GAVE_UP:
        line = f"the service stopped because {result.reason}"
    else:
        note = f" (forced {result.forced_by})" if result.forced else ""
        line = f"{result.reason}{note}"
    if final is not None:
        final(line, result.exit_code)
        return result.exit_code
    line = f"actorctl: {line}"
    # stderr may be gone (a closed pipe, a full disk): the exit status still tells.
    with contextlib.suppress(OSError, ValueError):
        print(line, file=stderr, flush=True)
    return result.exit_code


_early: list[int] = []
"""Signals that came before ``serve`` watched them (it acts on them then), or while its event
loop was closing (the stop is done: nothing left to act on)."""


def _record(signum: int, _frame: FrameType | None) -> None:
    # No logging from a signal handler: it may interrupt a write to the same stream.
    _early.append(signum)


def _exit_at_once_on_a_signal(code: int) -> None:
    def exit_now(_signum: int, _frame: FrameType | None) -> None:
        os._exit(code)  # the stop is done and was asked for: skip the rest of the exit

    for signum in STOP_SIGNALS:
        signal.signal(signum, exit_now)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # The interpreter's finalization puts every Python handler back to the default action (the
    # process would die of the signal), after the atexit functions: ignore them from there on.
    atexit.register(_ignore_stop_signals)


def _ignore_stop_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
