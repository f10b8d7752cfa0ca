"""Run a supervision tree as a service: until SIGINT/SIGTERM, or until the root gives up.

A first signal asks the root for a graceful stop (children stop in reverse start order, each
within its shutdown budget); if that takes longer than ``stop_timeout`` the tree is cancelled.
A second signal cancels at once. Exit status: 0 after a stop, 1 when the root gave up.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TextIO

import anyio
import attrs

from runtime.telemetry import Tracer

from ._errors import ChildUnrecoverable, RestartIntensityExceeded
from .spec import SupervisorSpec
from .supervisor import Supervisor

log = logging.getLogger("actortrade.service")

EXIT_OK = 0
EXIT_GAVE_UP = 1


@attrs.frozen(kw_only=True)
class ServiceResult:
    exit_code: int
    reason: str
    forced: bool = False


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
    signals: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM),
    companions: Sequence[Companion] = (),
    outside: Sequence[Outside] = (),
    tracer: Tracer | None = None,
) -> ServiceResult:
    """Run ``spec`` as the root supervisor until a signal or until it gives up.

    ``outside`` tasks (an embedded venue, say) are started, and report ready, before the tree
    starts, and are cancelled after it has stopped."""
    root = Supervisor("root", spec, tracer=tracer)
    stopped_by: list[str] = []
    forced = False
    tree_scope = anyio.CancelScope()

    def request_stop(by: str) -> None:
        if stopped_by:
            return
        stopped_by.append(by)
        log.info("stop requested by %s: stopping (at most %g s)", by, stop_timeout)
        root.stop()
        tree_scope.deadline = min(tree_scope.deadline, anyio.current_time() + stop_timeout)

    async def watch_signals() -> None:
        nonlocal forced
        with anyio.open_signal_receiver(*signals) as received:
            async for signum in received:
                name = signal.Signals(signum).name
                if not stopped_by:
                    request_stop(name)
                else:
                    log.warning("%s received again: cancelling now", name)
                    forced = True
                    tree_scope.cancel()

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
            if tree_scope.cancelled_caught:
                forced = True
                log.warning("the tree did not stop within %g s: it was cancelled", stop_timeout)
            tg.cancel_scope.cancel()
    except* (RestartIntensityExceeded, ChildUnrecoverable) as group:
        gave_up.extend(_leaves(group))
    if gave_up:
        return ServiceResult(exit_code=EXIT_GAVE_UP, reason=_gave_up_message(gave_up[0]))
    reason = f"stopped by {stopped_by[0]}" if stopped_by else "stopped"
    return ServiceResult(exit_code=EXIT_OK, reason=reason, forced=forced)


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
    tracer: Tracer | None = None,
) -> int:
    """Run ``spec`` on ``backend`` (asyncio uses uvloop when installed, unless ``uvloop`` is
    False); return the exit code."""
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
            tracer=tracer,
        ),
        backend=backend,
        backend_options=options,
    )
    if result.exit_code == EXIT_GAVE_UP:
        print(f"actorctl: the service stopped because {result.reason}", file=stderr)
    else:
        note = " (forced after the stop timeout)" if result.forced else ""
        print(f"actorctl: {result.reason}{note}", file=stderr)
    return result.exit_code


def _uvloop_available() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True
