"""The supervisor's async shell, on both backends, against real actor cells."""

from __future__ import annotations

import random

import anyio
import pytest

from runtime import Actor, ActorCell, LifecycleState, MailboxClosed
from supervisors import (
    Backoff,
    ChildSpec,
    ChildUnrecoverable,
    Intensity,
    Restart,
    RestartIntensityExceeded,
    Strategy,
    Supervisor,
    SupervisorSpec,
)

from .actors import (
    Crash,
    Journal,
    Probe,
    ProbeInbox,
    ProbeRefused,
    Query,
    Quit,
    Work,
    probe_cell,
)

pytestmark = pytest.mark.anyio

LOTS = Intensity(max_restarts=100, period=1.0)


def tree(
    journal: Journal,
    strategy: Strategy,
    names: tuple[str, ...] = ("a", "b", "c", "d"),
    *,
    restart: dict[str, Restart] | None = None,
    intensity: Intensity = LOTS,
) -> tuple[SupervisorSpec, dict[str, ActorCell[ProbeInbox]]]:
    restart = restart or {}
    cells = {name: probe_cell(name, journal) for name in names}
    spec = SupervisorSpec(
        strategy=strategy,
        intensity=intensity,
        children=[
            ChildSpec(id=name, start=cell, restart=restart.get(name, Restart.PERMANENT))
            for name, cell in cells.items()
        ],
    )
    return spec, cells


def incarnations(cells: dict[str, ActorCell[ProbeInbox]]) -> dict[str, int]:
    return {name: cell.incarnation for name, cell in cells.items()}


async def crash_and_settle(cell: ActorCell[ProbeInbox]) -> None:
    cell.ref.tell(Crash())
    await anyio.wait_all_tasks_blocked()


async def test_one_for_one_restarts_only_the_crashed_child() -> None:
    """one_for_one: siblings keep running untouched."""
    journal = Journal()
    spec, cells = tree(journal, Strategy.ONE_FOR_ONE)
    root = Supervisor("root", spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        await crash_and_settle(cells["b"])
        assert incarnations(cells) == {"a": 1, "b": 2, "c": 1, "d": 1}
        assert await cells["b"].ref.request(Query(), timeout=5) == 2
        root.stop()
    assert root.restarts == 1


async def test_one_for_all_stops_the_others_in_reverse_order_and_restarts_all_in_order() -> None:
    """one_for_all: every sibling is stopped (reverse start order) and all start again in order."""
    journal = Journal()
    spec, cells = tree(journal, Strategy.ONE_FOR_ALL)
    root = Supervisor("root", spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        journal.events.clear()
        await crash_and_settle(cells["b"])
        assert journal.of("stop") == ["d", "c", "a"]
        assert journal.of("start") == ["a", "b", "c", "d"]
        assert incarnations(cells) == {"a": 2, "b": 2, "c": 2, "d": 2}
        root.stop()


async def test_rest_for_one_restarts_the_crashed_child_and_those_started_after_it() -> None:
    """rest_for_one: children started before the crashed one are untouched."""
    journal = Journal()
    spec, cells = tree(journal, Strategy.REST_FOR_ONE)
    root = Supervisor("root", spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        journal.events.clear()
        await crash_and_settle(cells["b"])
        assert journal.of("stop") == ["d", "c"]
        assert journal.of("start") == ["b", "c", "d"]
        assert incarnations(cells) == {"a": 1, "b": 2, "c": 2, "d": 2}
        root.stop()


async def test_a_transient_child_is_restarted_after_a_crash_but_not_after_a_normal_exit() -> None:
    """transient: abnormal exits restart it; stop_self() leaves it stopped."""
    journal = Journal()
    spec, cells = tree(journal, Strategy.ONE_FOR_ONE, ("t",), restart={"t": Restart.TRANSIENT})
    root = Supervisor("root", spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        await crash_and_settle(cells["t"])
        assert cells["t"].incarnation == 2
        cells["t"].ref.tell(Quit())
        await anyio.wait_all_tasks_blocked()
        assert cells["t"].incarnation == 2
        assert cells["t"].state is LifecycleState.STOPPED
        assert [s.last_exit for s in root.status()] == ["normal"]
        root.stop()


async def test_a_permanent_child_is_restarted_even_after_a_normal_exit() -> None:
    """permanent: any exit restarts it."""
    journal = Journal()
    spec, cells = tree(journal, Strategy.ONE_FOR_ONE, ("p",))
    root = Supervisor("root", spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        cells["p"].ref.tell(Quit())
        await anyio.wait_all_tasks_blocked()
        assert cells["p"].incarnation == 2
        assert cells["p"].state is LifecycleState.RUNNING
        root.stop()


async def test_a_temporary_child_is_never_restarted_and_leaves_the_tree() -> None:
    """temporary: not restarted, even when a sibling's crash restarts everyone."""
    journal = Journal()
    spec, cells = tree(
        journal, Strategy.ONE_FOR_ALL, ("a", "tmp", "b"), restart={"tmp": Restart.TEMPORARY}
    )
    root = Supervisor("root", spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        await crash_and_settle(cells["a"])
        assert incarnations(cells) == {"a": 2, "tmp": 1, "b": 2}
        assert [s.id for s in root.status()] == ["a", "b"]
        with pytest.raises(MailboxClosed, match="'tmp'"):
            cells["tmp"].ref.tell(Work(1))
        root.stop()


async def test_exceeding_the_restart_intensity_stops_everything_and_raises() -> None:
    """More than max_restarts within period: children stopped, RestartIntensityExceeded raised."""
    journal = Journal()
    spec, cells = tree(
        journal, Strategy.ONE_FOR_ONE, ("a", "b"), intensity=Intensity(max_restarts=2, period=60)
    )
    root = Supervisor("root", spec)
    expected = pytest.RaisesExc(RestartIntensityExceeded, match="more than 2 restarts within 60 s")
    with pytest.RaisesGroup(expected) as info:
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            for _ in range(2):
                await crash_and_settle(cells["a"])
            cells["a"].ref.tell(Crash())
            await anyio.sleep_forever()
    (error,) = info.value.exceptions
    assert isinstance(error, RestartIntensityExceeded)
    assert error.child == "a"
    assert error.__cause__ is not None
    assert cells["b"].state is LifecycleState.STOPPED


async def test_an_unrecoverable_crash_is_not_restarted_but_escalated_to_the_root() -> None:
    """A child raising runtime.Unrecoverable: no restart at any level, every child stopped, and
    the root raises ChildUnrecoverable whose cause leads to the child's error."""
    journal = Journal()
    inner, cells = tree(journal, Strategy.ONE_FOR_ONE, ("x", "y"))
    sibling = probe_cell("sibling", journal)
    root = Supervisor(
        "root",
        SupervisorSpec(
            strategy=Strategy.ONE_FOR_ONE,
            intensity=LOTS,
            children=[ChildSpec(id="sibling", start=sibling), ChildSpec(id="inner", start=inner)],
        ),
    )
    with pytest.RaisesGroup(ChildUnrecoverable) as info:
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            cells["x"].ref.tell(Crash(unrecoverable=True))
            await anyio.sleep_forever()
    (error,) = info.value.exceptions
    assert isinstance(error, ChildUnrecoverable)
    assert (error.supervisor, error.child) == ("root", "inner")
    inner_error = error.__cause__
    assert isinstance(inner_error, ChildUnrecoverable)
    assert (inner_error.supervisor, inner_error.child) == ("root/inner", "x")
    assert isinstance(inner_error.__cause__, ProbeRefused)
    assert journal.of("start").count("x") == 1
    assert root.restarts == 0
    assert cells["y"].state is LifecycleState.STOPPED
    assert sibling.state is LifecycleState.STOPPED


async def test_a_sub_supervisor_that_gives_up_is_restarted_by_its_parent() -> None:
    """Escalation: the child supervisor fails as a whole; the parent restarts it fresh."""
    journal = Journal()
    inner, cells = tree(
        journal, Strategy.ONE_FOR_ONE, ("x", "y"), intensity=Intensity(max_restarts=0, period=60)
    )
    outer_cell = probe_cell("sibling", journal)
    root = Supervisor(
        "root",
        SupervisorSpec(
            strategy=Strategy.ONE_FOR_ONE,
            intensity=LOTS,
            children=[
                ChildSpec(id="sibling", start=outer_cell),
                ChildSpec(id="inner", start=inner),
            ],
        ),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        await crash_and_settle(cells["x"])
        assert incarnations(cells) == {"x": 2, "y": 2}
        assert outer_cell.incarnation == 1
        (_sibling, inner_status) = root.status()
        assert inner_status.restarts == 1
        assert inner_status.last_exit == "error"
        assert [child.id for child in inner_status.children] == ["x", "y"]
        root.stop()


async def test_stop_shuts_children_down_in_reverse_start_order_and_closes_nothing_early() -> None:
    """A graceful stop: on_stop runs for each child, last started first."""
    journal = Journal()
    spec, cells = tree(journal, Strategy.ONE_FOR_ONE)
    root = Supervisor("root", spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        root.stop()
    assert journal.of("stop") == ["d", "c", "b", "a"]
    assert all(cell.state is LifecycleState.STOPPED for cell in cells.values())


async def test_a_child_that_overruns_its_shutdown_budget_is_cancelled() -> None:
    """Graceful first, then bounded wait, then forced cancel."""
    journal = Journal()
    slow = probe_cell("slow", journal, stop_delay=3600)
    quick = probe_cell("quick", journal)
    root = Supervisor(
        "root",
        SupervisorSpec(
            children=[
                ChildSpec(id="quick", start=quick),
                ChildSpec(id="slow", start=slow, shutdown=0.05),
            ]
        ),
    )
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            started = anyio.current_time()
            root.stop()
    assert anyio.current_time() - started < 30
    assert slow.state is LifecycleState.KILLED
    assert quick.state is LifecycleState.STOPPED


async def test_cancellation_from_above_is_never_a_crash() -> None:
    """Cancelling the supervisor's scope stops the tree without a single restart."""
    journal = Journal()
    spec, cells = tree(journal, Strategy.ONE_FOR_ALL)
    root = Supervisor("root", spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        tg.cancel_scope.cancel()
    assert root.restarts == 0
    assert incarnations(cells) == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert journal.of("start") == ["a", "b", "c", "d"]


async def test_a_killed_child_exits_abnormally_and_is_restarted() -> None:
    """kill() cancels the incarnation; the strategy treats it like a crash (OTP's kill)."""
    journal = Journal()
    spec, cells = tree(journal, Strategy.REST_FOR_ONE, ("a", "b", "c"))
    root = Supervisor("root", spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        root.kill("b")
        await anyio.wait_all_tasks_blocked()
        assert incarnations(cells) == {"a": 1, "b": 2, "c": 2}
        assert root.status()[1].last_exit == "killed"
        with pytest.raises(KeyError, match="no child 'zzz'"):
            root.kill("zzz")
        root.stop()


async def test_children_start_in_order_each_after_the_previous_is_running() -> None:
    """A child's on_start runs only once the children before it have started."""
    journal = Journal()
    spec, cells = tree(journal, Strategy.REST_FOR_ONE)
    root = Supervisor("root", spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        assert journal.of("start") == ["a", "b", "c", "d"]
        assert all(cell.state is LifecycleState.RUNNING for cell in cells.values())
        root.stop()


async def test_backoff_delays_a_restart_and_stop_interrupts_the_wait() -> None:
    """A child with a backoff restarts after the delay; stop() during the wait returns at once."""
    journal = Journal()
    cell = probe_cell("broker", journal)
    backoff = Backoff(initial=0.2, maximum=1.0, jitter=0.0)
    root = Supervisor(
        "root",
        SupervisorSpec(
            intensity=LOTS, children=[ChildSpec(id="broker", start=cell, backoff=backoff)]
        ),
        rng=random.Random(1),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        crashed_at = anyio.current_time()
        assert await cell.ref.request(Query(), timeout=5) == 1
        cell.ref.tell(Crash())
        assert await cell.ref.request(Query(), timeout=5) == 2
        assert anyio.current_time() - crashed_at >= 0.19
        cell.ref.tell(Crash())  # second in a row: 0.4 s
        await anyio.wait_all_tasks_blocked()
        stop_at = anyio.current_time()
        root.stop()
    assert anyio.current_time() - stop_at < 0.3
    assert cell.incarnation == 2


async def test_later_messages_are_processed_after_restarts() -> None:
    """Work queued behind a crash is handled by the next incarnation, in order, once each."""
    journal = Journal()
    spec, cells = tree(journal, Strategy.ONE_FOR_ONE, ("w",))
    root = Supervisor("root", spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        for n in range(5):
            cells["w"].ref.tell(Work(n))
            if n % 2:
                cells["w"].ref.tell(Crash())
        await cells["w"].ref.request(Query(), timeout=5)
        root.stop()
    assert journal.work["w"] == [0, 1, 2, 3, 4]
    assert cells["w"].incarnation == 3


async def test_no_task_outlives_a_stopped_tree() -> None:
    """After stop, every task the tree started is gone."""
    journal = Journal()
    spec, _ = tree(journal, Strategy.ONE_FOR_ALL)
    before = len(anyio.get_running_tasks())
    root = Supervisor("root", spec)
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        assert len(anyio.get_running_tasks()) > before
        root.stop()
    assert len(anyio.get_running_tasks()) == before


def test_duplicate_child_ids_are_refused() -> None:
    """A spec naming two children alike is an error that names the id."""
    journal = Journal()
    with pytest.raises(ValueError, match="duplicate child id 'a'"):
        SupervisorSpec(
            children=[
                ChildSpec(id="a", start=probe_cell("a", journal)),
                ChildSpec(id="a", start=probe_cell("a2", journal)),
            ]
        )


async def test_regression_actors_cancelled_from_above_can_be_restarted() -> None:
    """Found by chaos: a killed sub-supervisor left its actors RUNNING, so restarting them was
    an invalid transition and the sub crash-looped. The cell now records any cancellation."""
    journal = Journal()
    inner, cells = tree(journal, Strategy.ONE_FOR_ONE, ("x", "y"))
    root = Supervisor(
        "root", SupervisorSpec(intensity=LOTS, children=[ChildSpec(id="inner", start=inner)])
    )
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        for round_ in range(1, 6):
            root.kill("inner")
            with anyio.fail_after(5):
                while cells["x"].incarnation <= round_ or cells["y"].incarnation <= round_:
                    await anyio.lowlevel.checkpoint()
            assert await cells["x"].ref.request(Query(), timeout=5) == round_ + 1
        root.stop()
    assert root.restarts == 5
    assert all(cell.state is LifecycleState.STOPPED for cell in cells.values())


class _FlakyStart(Probe):
    """Fails in on_start the first ``failures`` times (a broker that cannot connect yet)."""

    attempts = 0

    def __init__(self, name: str, journal: Journal, failures: int) -> None:
        super().__init__(name, journal)
        self.failures = failures

    async def on_start(self) -> None:
        type(self).attempts += 1
        if type(self).attempts <= self.failures:
            raise ConnectionError(f"attempt {type(self).attempts}: gateway not reachable")
        await super().on_start()


async def test_a_child_failing_in_on_start_is_retried_like_any_crash() -> None:
    """Unlike OTP, a start failure is not fatal: it is restarted (with backoff) until it works,
    and the children after it still start."""
    journal = Journal()

    class Flaky(_FlakyStart):
        attempts = 0

    broker = ActorCell("broker", lambda: Flaky("broker", journal, failures=2))
    after = probe_cell("after", journal)
    root = Supervisor(
        "root",
        SupervisorSpec(
            strategy=Strategy.ONE_FOR_ONE,
            intensity=Intensity(max_restarts=5, period=60),
            children=[
                ChildSpec(id="broker", start=broker, backoff=Backoff(initial=0.01, jitter=0.0)),
                ChildSpec(id="after", start=after),
            ],
        ),
    )
    async with anyio.create_task_group() as tg:
        await tg.start(root.run)
        assert await broker.ref.request(Query(), timeout=5) == 3
        assert after.state is LifecycleState.RUNNING
        root.stop()
    assert Flaky.attempts == 3
    assert root.restarts == 2


async def test_a_child_that_never_starts_makes_its_supervisor_give_up() -> None:
    """Start failures count towards the restart intensity like any other crash."""
    journal = Journal()

    class Hopeless(_FlakyStart):
        attempts = 0

    cell = ActorCell("broker", lambda: Hopeless("broker", journal, failures=10**9))
    root = Supervisor(
        "root",
        SupervisorSpec(
            intensity=Intensity(max_restarts=3, period=60),
            children=[ChildSpec(id="broker", start=cell)],
        ),
    )
    with pytest.RaisesGroup(RestartIntensityExceeded):
        async with anyio.create_task_group() as tg:
            await tg.start(root.run)
            await anyio.sleep_forever()
    assert Hopeless.attempts == 4
    assert cell.state is LifecycleState.FAILED


class _FailsAsItIsKilled(Actor[str]):
    """Has a background task; on a message, is killed by its supervisor and raises at once
    (before the kill's cancellation can land): the error and the cancellation leave its task
    group together."""

    def __init__(self, supervisor: list[Supervisor]) -> None:
        self.supervisor = supervisor

    async def background(self) -> None:
        await anyio.sleep_forever()

    async def handle(self, message: str) -> None:
        self.supervisor[0].kill("victim")
        raise RuntimeError(f"failed on {message!r} as it was killed")


async def test_regression_chaos_seed_1204_a_child_failing_while_killed_is_restarted() -> None:
    """Found by the chaos campaign (seeds 1204 and 1548: the broker killed at a PlaceOrder
    while its port failed): the child's error escaped the supervisor, which crashed, and so did
    the whole service. It is the child's exit, and the child is restarted."""
    holder: list[Supervisor] = []
    victim: ActorCell[str] = ActorCell("victim", lambda: _FailsAsItIsKilled(holder))
    bystander = probe_cell("bystander", Journal())
    spec = SupervisorSpec(
        strategy=Strategy.ONE_FOR_ONE,
        intensity=LOTS,
        children=[ChildSpec(id="victim", start=victim), ChildSpec(id="bystander", start=bystander)],
    )
    supervisor = Supervisor("root", spec)
    holder.append(supervisor)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(supervisor.run)
            victim.ref.tell("go")
            while victim.restarts == 0:  # noqa: ASYNC110 - waits for the restart to happen
                await anyio.sleep(0.01)
            await anyio.wait_all_tasks_blocked()
            assert victim.state is LifecycleState.RUNNING
            assert bystander.state is LifecycleState.RUNNING
            assert bystander.restarts == 0
            assert supervisor.restarts == 1
            supervisor.stop()
