"""Properties of the pure restart decisions (``supervisors.strategies``, ``supervisors.intensity``).

The expected behaviour is Erlang/OTP's supervisor: each test states one rule of it and checks the
decision against a model written here, not against the implementation.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from supervisors.intensity import backoff_delay, record_restart
from supervisors.spec import Backoff, ExitReason, Intensity, Restart, Strategy
from supervisors.strategies import (
    ChildExited,
    ChildView,
    Decision,
    SupervisorState,
    decide,
    mark_started,
    needs_restart,
)
from tests.strategies import (
    START_TIMES_BEFORE,
    any_backoffs,
    backoffs,
    child_ids,
    exit_events,
    exit_reasons,
    intensities,
    rands,
    running_states,
    streaks,
    time_deltas,
)

ABNORMAL = frozenset({ExitReason.KILLED, ExitReason.ERROR})

# A first backoff delay that is not zero.
delays = st.floats(min_value=1e-3, max_value=10.0)

# At most one restart per decision and no history: these never escalate.
never_escalating = intensities(max_restarts=st.integers(min_value=1, max_value=6))


# The OTP rule, written out independently of ``needs_restart``.
def _restart_needed(restart: Restart, reason: ExitReason) -> bool:
    if restart is Restart.PERMANENT:
        return True
    if restart is Restart.TRANSIENT:
        return reason in ABNORMAL
    return False


def _view(state: SupervisorState, child: str) -> ChildView | None:
    return next((view for view in state.children if view.id == child), None)


def _ids(state: SupervisorState) -> tuple[str, ...]:
    return tuple(view.id for view in state.children)


# What the shell does after a decision: it starts ``decision.start`` (ignoring the delay here).
def _start_all(state: SupervisorState, decision: Decision, now: float) -> SupervisorState:
    for child in decision.start:
        state = mark_started(state, child, now)
    return state


def _is_subsequence(items: tuple[str, ...], of: tuple[str, ...]) -> bool:
    remaining = iter(of)
    return all(item in remaining for item in items)


# A state, the index of a running child whose exit (for ``reason``) needs a restart, and ``now``.
@st.composite
def _restartable_exit(
    draw: st.DrawFn,
    strategy: Strategy,
    intensity: st.SearchStrategy[Intensity] = never_escalating,
) -> tuple[SupervisorState, int, ExitReason, float]:
    state = draw(running_states(strategy=st.just(strategy), intensity=intensity))
    index = draw(st.integers(min_value=0, max_value=len(state.children) - 1))
    # Some siblings may be down already: a transient one that exited normally, or one waiting
    # out its backoff. Temporary ones are never down: they are removed when they exit.
    down = draw(st.sets(st.integers(min_value=0, max_value=len(state.children) - 1)))
    children = tuple(
        attrs.evolve(view, running=False)
        if i in down and i != index and view.restart is not Restart.TEMPORARY
        else view
        for i, view in enumerate(state.children)
    )
    state = attrs.evolve(state, children=children)
    reason = draw(exit_reasons)
    assume(_restart_needed(state.children[index].restart, reason))
    now = START_TIMES_BEFORE + draw(time_deltas)
    return state, index, reason, now


# --- needs_restart -------------------------------------------------------------------------------


@given(reason=exit_reasons)
def test_permanent_child_is_restarted_whatever_the_reason(reason: ExitReason) -> None:
    """A permanent child is restarted after any exit."""
    assert needs_restart(Restart.PERMANENT, reason) is True


@given(reason=exit_reasons)
def test_transient_child_is_restarted_only_after_a_kill_or_an_error(reason: ExitReason) -> None:
    """A transient child is restarted after KILLED or ERROR, never after NORMAL or SHUTDOWN."""
    assert needs_restart(Restart.TRANSIENT, reason) is (reason in ABNORMAL)


@given(reason=exit_reasons)
def test_temporary_child_is_never_restarted(reason: ExitReason) -> None:
    """A temporary child is not restarted, whatever the reason it exited."""
    assert needs_restart(Restart.TEMPORARY, reason) is False


# --- strategies ----------------------------------------------------------------------------------


@given(
    state=running_states(strategy=st.just(Strategy.ONE_FOR_ONE), intensity=never_escalating),
    data=st.data(),
    reason=exit_reasons,
    delta=time_deltas,
    rand=rands,
)
def test_one_for_one_restarts_only_the_failed_child(
    state: SupervisorState, data: st.DataObject, reason: ExitReason, delta: float, rand: float
) -> None:
    """one_for_one starts the failed child alone (if it needs a restart) and touches no sibling."""
    index = data.draw(st.integers(min_value=0, max_value=len(state.children) - 1))
    failed = state.children[index]

    new_state, decision = decide(
        state, ChildExited(child=failed.id, reason=reason), START_TIMES_BEFORE + delta, rand
    )

    expected_start = (failed.id,) if _restart_needed(failed.restart, reason) else ()
    assert decision.start == expected_start
    assert decision.terminate == ()
    assert not decision.escalate
    siblings = [view for view in state.children if view.id != failed.id]
    assert [view for view in new_state.children if view.id != failed.id] == siblings


@given(case=_restartable_exit(Strategy.ONE_FOR_ALL), rand=rands)
def test_one_for_all_stops_the_others_in_reverse_then_starts_all_in_order(
    case: tuple[SupervisorState, int, ExitReason, float], rand: float
) -> None:
    """one_for_all stops every other running child in reverse start order, drops the temporary
    ones and starts every other child, the failed one included, in start order."""
    state, index, reason, now = case
    failed = state.children[index]

    new_state, decision = decide(state, ChildExited(child=failed.id, reason=reason), now, rand)

    others = [view for view in state.children if view.id != failed.id]
    temporary = tuple(view.id for view in others if view.restart is Restart.TEMPORARY)
    assert decision.terminate == tuple(view.id for view in reversed(others) if view.running)
    assert decision.start == tuple(
        view.id for view in state.children if view.restart is not Restart.TEMPORARY
    )
    assert decision.remove == temporary
    assert not decision.escalate
    assert _ids(new_state) == decision.start
    assert not any(view.running for view in new_state.children)


@given(case=_restartable_exit(Strategy.REST_FOR_ONE), rand=rands)
def test_rest_for_one_restarts_the_failed_child_and_those_started_after_it(
    case: tuple[SupervisorState, int, ExitReason, float], rand: float
) -> None:
    """rest_for_one stops the running children started after the failed one (in reverse), then
    starts the failed one and the later non-temporary ones; earlier children are untouched."""
    state, index, reason, now = case
    failed = state.children[index]
    before, later = state.children[:index], state.children[index + 1 :]

    new_state, decision = decide(state, ChildExited(child=failed.id, reason=reason), now, rand)

    assert decision.terminate == tuple(view.id for view in reversed(later) if view.running)
    assert decision.start == (
        failed.id,
        *(view.id for view in later if view.restart is not Restart.TEMPORARY),
    )
    assert decision.remove == tuple(view.id for view in later if view.restart is Restart.TEMPORARY)
    assert not decision.escalate
    assert new_state.children[:index] == before
    assert _ids(new_state) == tuple(view.id for view in before) + decision.start


@given(
    state=running_states(),
    data=st.data(),
    reason=exit_reasons,
    delta=time_deltas,
    rand=rands,
)
def test_temporary_child_that_exits_is_removed_and_nothing_starts(
    state: SupervisorState, data: st.DataObject, reason: ExitReason, delta: float, rand: float
) -> None:
    """A temporary child that exits, for any reason, is removed and nothing is stopped or
    started."""
    temporary = [view for view in state.children if view.restart is Restart.TEMPORARY]
    assume(temporary)
    failed = data.draw(st.sampled_from(temporary))

    new_state, decision = decide(
        state, ChildExited(child=failed.id, reason=reason), START_TIMES_BEFORE + delta, rand
    )

    assert decision == Decision(remove=(failed.id,))
    assert new_state.children == tuple(view for view in state.children if view.id != failed.id)
    assert new_state.history == state.history


@given(
    state=running_states(),
    data=st.data(),
    reason=st.sampled_from([ExitReason.NORMAL, ExitReason.SHUTDOWN]),
    delta=time_deltas,
    rand=rands,
)
def test_transient_child_that_exits_normally_stays_stopped(
    state: SupervisorState, data: st.DataObject, reason: ExitReason, delta: float, rand: float
) -> None:
    """A transient child that exits normally or on shutdown is kept, not running, and nothing
    else happens."""
    transient = [view for view in state.children if view.restart is Restart.TRANSIENT]
    assume(transient)
    failed = data.draw(st.sampled_from(transient))

    new_state, decision = decide(
        state, ChildExited(child=failed.id, reason=reason), START_TIMES_BEFORE + delta, rand
    )

    assert decision == Decision()
    assert _ids(new_state) == _ids(state)
    kept = _view(new_state, failed.id)
    assert kept is not None
    assert not kept.running
    others = [view for view in state.children if view.id != failed.id]
    assert [view for view in new_state.children if view.id != failed.id] == others
    assert new_state.history == state.history


# --- intensity -----------------------------------------------------------------------------------


@given(
    data=st.data(),
    state=running_states(intensity=intensities(max_restarts=st.integers(min_value=0, max_value=3))),
    rand=rands,
)
def test_supervisor_escalates_exactly_when_restarts_in_period_exceed_max(
    data: st.DataObject, state: SupervisorState, rand: float
) -> None:
    """decide escalates on the restart that makes more than max_restarts restarts within the last
    period seconds (a restart at t counts at now while now - t < period), and only then."""
    events = data.draw(exit_events(_ids(state), min_size=4))
    period, max_restarts = state.intensity.period, state.intensity.max_restarts
    restart_times: list[float] = []
    now = START_TIMES_BEFORE
    for child, reason, delta in events:
        now += delta
        view = _view(state, child)
        if view is None or not view.running:
            continue

        state, decision = decide(state, ChildExited(child=child, reason=reason), now, rand)

        expected = False
        if _restart_needed(view.restart, reason):
            restart_times.append(now)
            expected = sum(1 for t in restart_times if now - t < period) > max_restarts
        assert decision.escalate is expected, (restart_times, now)
        if decision.escalate:
            return
        state = _start_all(state, decision, now)


@given(
    case=st.sampled_from(Strategy).flatmap(
        lambda strategy: _restartable_exit(strategy, intensity=intensities())
    ),
    data=st.data(),
    rand=rands,
)
def test_escalation_stops_every_running_child_in_reverse_start_order(
    case: tuple[SupervisorState, int, ExitReason, float], data: st.DataObject, rand: float
) -> None:
    """When intensity is exceeded nothing starts, every running child is stopped in reverse start
    order and no child is left running."""
    state, index, reason, now = case
    failed = state.children[index]
    period, max_restarts = state.intensity.period, state.intensity.max_restarts
    # max_restarts earlier restarts, well inside the window: the next one exceeds it.
    ages = data.draw(
        st.lists(
            st.floats(min_value=0.0, max_value=period / 2),
            min_size=max_restarts,
            max_size=max_restarts,
        )
    )
    history = tuple(
        (now - age, data.draw(st.sampled_from(_ids(state)))) for age in sorted(ages, reverse=True)
    )
    state = attrs.evolve(state, history=history)

    new_state, decision = decide(state, ChildExited(child=failed.id, reason=reason), now, rand)

    assert decision.escalate
    assert decision.start == ()
    assert decision.terminate == tuple(
        view.id for view in reversed(state.children) if view.running and view.id != failed.id
    )
    assert not any(view.running for view in new_state.children)


@given(
    intensity=intensities(),
    times=st.lists(time_deltas, min_size=1, max_size=20),
    child=child_ids,
)
def test_record_restart_keeps_only_restarts_within_the_period(
    intensity: Intensity, times: list[float], child: str
) -> None:
    """record_restart keeps the restarts less than period seconds old and reports exceeding once
    more than max_restarts of them remain."""
    history: tuple[tuple[float, str], ...] = ()
    recorded: list[float] = []
    now = 0.0
    for delta in times:
        now += delta
        recorded.append(now)
        history, exceeded = record_restart(history, intensity, now, child)
        window = [t for t in recorded if now - t < intensity.period]
        assert [t for t, _ in history] == window
        assert history[-1] == (now, child)
        assert exceeded is (len(window) > intensity.max_restarts)


# --- decisions in general ------------------------------------------------------------------------


@given(data=st.data(), state=running_states(), rand=rands)
def test_decisions_name_only_known_children_and_start_each_at_most_once(
    data: st.DataObject, state: SupervisorState, rand: float
) -> None:
    """Over any run of exits, a decision stops only running children, removes only temporary
    ones, and starts known, non-temporary children once each, in start order."""
    events = data.draw(exit_events(_ids(state)))
    now = START_TIMES_BEFORE
    for child, reason, delta in events:
        now += delta
        view = _view(state, child)
        if view is None or not view.running:
            continue
        known = {view.id: view for view in state.children}

        new_state, decision = decide(state, ChildExited(child=child, reason=reason), now, rand)

        named = decision.terminate + decision.remove + decision.start
        assert set(named) <= set(known)
        assert len(set(decision.start)) == len(decision.start)
        assert len(set(decision.terminate)) == len(decision.terminate)
        assert all(known[c].restart is not Restart.TEMPORARY for c in decision.start)
        assert all(known[c].restart is Restart.TEMPORARY for c in decision.remove)
        assert all(known[c].running and c != child for c in decision.terminate)
        assert _is_subsequence(decision.start, _ids(state))
        assert _is_subsequence(decision.start, _ids(new_state))
        assert not set(decision.remove) & set(_ids(new_state))
        if decision.escalate:
            return
        state = _start_all(new_state, decision, now)


@given(state=running_states(), child=child_ids, reason=exit_reasons, rand=rands)
def test_decide_raises_key_error_for_an_unknown_child(
    state: SupervisorState, child: str, reason: ExitReason, rand: float
) -> None:
    """decide refuses the exit of a child the supervisor does not have."""
    assume(child not in _ids(state))
    with pytest.raises(KeyError, match=child):
        decide(state, ChildExited(child=child, reason=reason), START_TIMES_BEFORE, rand)


# --- backoff -------------------------------------------------------------------------------------


@given(
    backoff=backoffs(initial=st.just(0.0)),
    streak=st.integers(min_value=-3, max_value=200),
    rand=rands,
)
def test_backoff_delay_is_zero_without_an_initial_delay(
    backoff: Backoff, streak: int, rand: float
) -> None:
    """With initial 0 a child restarts at once, however long its streak."""
    assert backoff_delay(backoff, streak, rand) == 0.0


@given(
    backoff=backoffs(),
    streak=st.integers(min_value=-3, max_value=0),
    rand=rands,
)
def test_backoff_delay_is_zero_before_the_first_restart_of_a_streak(
    backoff: Backoff, streak: int, rand: float
) -> None:
    """A streak below 1 (no restart yet) has no delay."""
    assert backoff_delay(backoff, streak, rand) == 0.0


@given(backoff=backoffs(initial=delays), streak=streaks, rand=rands)
def test_backoff_delay_never_exceeds_maximum(backoff: Backoff, streak: int, rand: float) -> None:
    """The delay is never longer than backoff.maximum."""
    assert 0.0 <= backoff_delay(backoff, streak, rand) <= backoff.maximum


@given(backoff=backoffs(initial=delays), streak=streaks, rand=rands)
def test_backoff_delay_is_at_most_the_exponential_delay(
    backoff: Backoff, streak: int, rand: float
) -> None:
    """Jitter only shortens: the n-th delay is at most min(maximum, initial * multiplier**(n-1))."""
    base = min(backoff.maximum, backoff.initial * backoff.multiplier ** (streak - 1))
    assert backoff_delay(backoff, streak, rand) <= base


@given(backoff=backoffs(initial=delays), streak=streaks, rand=rands)
# A slow-growing backoff whose streak goes past 65 before it reaches the maximum.
@example(
    backoff=Backoff(initial=1.0, maximum=30.0, multiplier=1.05, jitter=0.0),
    streak=80,
    rand=0.0,
)
def test_backoff_delay_is_at_least_the_exponential_delay_less_jitter(
    backoff: Backoff, streak: int, rand: float
) -> None:
    """The n-th delay is at least (1 - jitter) * min(maximum, initial * multiplier**(n-1))."""
    base = min(backoff.maximum, backoff.initial * backoff.multiplier ** (streak - 1))
    # A relative ulp-scale slack: how the power is computed is the implementation's business.
    assert backoff_delay(backoff, streak, rand) >= (1.0 - backoff.jitter) * base * (1 - 1e-12)


@given(backoff=any_backoffs(), streak=st.integers(min_value=-3, max_value=500), rand=rands)
# A steep multiplier: multiplier**64 overflows a float.
@example(
    backoff=Backoff(initial=1.0, maximum=30.0, multiplier=1e6, jitter=0.0),
    streak=66,
    rand=0.0,
)
# A tiny first delay: maximum / initial overflows a float.
@example(
    backoff=Backoff(initial=1e-309, maximum=1.0, multiplier=2.0, jitter=0.0),
    streak=2,
    rand=0.0,
)
def test_backoff_delay_is_between_zero_and_maximum_for_any_valid_backoff(
    backoff: Backoff, streak: int, rand: float
) -> None:
    """Every backoff the spec accepts gives a delay in [0, maximum], whatever the streak."""
    assert 0.0 <= backoff_delay(backoff, streak, rand) <= backoff.maximum


@given(
    backoff=backoffs(initial=delays),
    immediate=st.integers(min_value=1, max_value=5),
    streak=streaks,
    rand=rands,
)
def test_immediate_restarts_come_first_and_the_backoff_counts_after_them(
    backoff: Backoff, immediate: int, streak: int, rand: float
) -> None:
    """With ``immediate=k`` the first k restarts of a streak have no delay, and the (k+n)-th
    waits what the n-th would without it."""
    delayed = attrs.evolve(backoff, immediate=immediate)
    if streak <= immediate:
        assert backoff_delay(delayed, streak, rand) == 0.0
    else:
        assert backoff_delay(delayed, streak, rand) == backoff_delay(
            backoff, streak - immediate, rand
        )


@given(backoff=backoffs(initial=delays), streak=streaks, rand=rands)
def test_backoff_delay_does_not_decrease_as_the_streak_grows(
    backoff: Backoff, streak: int, rand: float
) -> None:
    """For the same jitter draw, a longer streak never waits less."""
    assert backoff_delay(backoff, streak, rand) <= backoff_delay(backoff, streak + 1, rand)


# --- streaks -------------------------------------------------------------------------------------


@given(
    state=running_states(
        restart=st.just(Restart.PERMANENT),
        intensity=intensities(max_restarts=st.just(1_000)),
    ),
    data=st.data(),
    fractions=st.lists(st.floats(min_value=0.0, max_value=0.9), min_size=1, max_size=8),
    reason=exit_reasons,
    rand=rands,
)
def test_fast_restarts_increase_the_streak_by_one_each(
    state: SupervisorState,
    data: st.DataObject,
    fractions: list[float],
    reason: ExitReason,
    rand: float,
) -> None:
    """Each restart of a child that ran less than reset_after extends its streak by one, and its
    delay follows the streak."""
    first = data.draw(st.sampled_from(state.children))
    # Tinier windows round fraction * reset_after up to reset_after itself.
    assume(first.backoff.reset_after >= 1e-3)
    child, reset_after = first.id, first.backoff.reset_after
    assert first.started_at is not None
    now = first.started_at
    for fraction in fractions:
        view = _view(state, child)
        assert view is not None
        # Each incarnation runs for less than reset_after from its own start, the previous now.
        now += fraction * reset_after

        state, decision = decide(state, ChildExited(child=child, reason=reason), now, rand)

        after = _view(state, child)
        assert after is not None
        assert after.streak == view.streak + 1
        assert decision.delay == backoff_delay(view.backoff, view.streak + 1, rand)
        assert child in decision.start
        state = _start_all(state, decision, now)


@given(
    state=running_states(
        restart=st.just(Restart.PERMANENT),
        intensity=intensities(max_restarts=st.just(1_000)),
    ),
    data=st.data(),
    extra=st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=100.0)),
    reason=exit_reasons,
    rand=rands,
)
def test_child_that_ran_long_enough_restarts_with_a_fresh_streak(
    state: SupervisorState, data: st.DataObject, extra: float, reason: ExitReason, rand: float
) -> None:
    """A child that ran at least reset_after seconds restarts with streak 1 and the first delay."""
    view = data.draw(st.sampled_from(state.children))
    assert view.started_at is not None
    now = view.started_at + view.backoff.reset_after + extra
    # Float rounding can land a hair short of reset_after; that case is not this test's.
    assume(now - view.started_at >= view.backoff.reset_after)

    new_state, decision = decide(state, ChildExited(child=view.id, reason=reason), now, rand)

    after = _view(new_state, view.id)
    assert after is not None
    assert after.streak == 1
    assert decision.delay == backoff_delay(view.backoff, 1, rand)


@given(state=running_states(), data=st.data(), now=time_deltas)
def test_mark_started_records_the_start_of_that_child_only(
    state: SupervisorState, data: st.DataObject, now: float
) -> None:
    """mark_started makes the child running since now and leaves its siblings as they were."""
    stopped = attrs.evolve(data.draw(st.sampled_from(state.children)), running=False)
    state = attrs.evolve(
        state,
        children=tuple(stopped if view.id == stopped.id else view for view in state.children),
    )

    new_state = mark_started(state, stopped.id, START_TIMES_BEFORE + now)

    assert new_state.children == tuple(
        attrs.evolve(view, running=True, started_at=START_TIMES_BEFORE + now)
        if view.id == stopped.id
        else view
        for view in state.children
    )


# --- a supervisor over time ----------------------------------------------------------------------


class RandomExits(RuleBasedStateMachine):
    """Exits of running children, fed to decide and applied the way the shell applies them."""

    def __init__(self) -> None:
        super().__init__()
        self.state: SupervisorState
        self.now = START_TIMES_BEFORE
        self.running: set[str] = set()
        self.temporary: set[str] = set()
        self.removed: set[str] = set()
        self.restarts: list[tuple[float, str]] = []
        self.escalated = False

    @initialize(state=running_states())
    def supervisor_starts(self, state: SupervisorState) -> None:
        self.state = state
        self.running = set(_ids(state))
        self.temporary = {v.id for v in state.children if v.restart is Restart.TEMPORARY}

    @rule(delta=time_deltas)
    def time_passes(self, delta: float) -> None:
        self.now += delta

    @precondition(lambda self: not self.escalated and self.running)
    @rule(data=st.data(), reason=exit_reasons, delta=time_deltas, rand=rands)
    def child_exits(
        self, data: st.DataObject, reason: ExitReason, delta: float, rand: float
    ) -> None:
        child = data.draw(st.sampled_from(sorted(self.running)))
        self.now += delta
        view = _view(self.state, child)
        assert view is not None

        self.state, decision = decide(
            self.state, ChildExited(child=child, reason=reason), self.now, rand
        )

        self.running.discard(child)
        assert set(decision.terminate) <= self.running
        self.running -= set(decision.terminate)
        self.removed |= set(decision.remove)
        if _restart_needed(view.restart, reason):
            self.restarts.append((self.now, child))
        if decision.escalate:
            assert not self.running
            self.escalated = True
            return
        assert not set(decision.start) & self.temporary
        assert not set(decision.start) & self.running
        self.running |= set(decision.start)
        self.state = _start_all(self.state, decision, self.now)

    @precondition(lambda self: self.escalated)
    @rule()
    def parent_restarts_the_supervisor(self) -> None:
        self.state = attrs.evolve(self.state, history=())
        self.restarts = []
        self.escalated = False
        self.state = _start_all(self.state, Decision(start=_ids(self.state)), self.now)
        self.running = set(_ids(self.state))

    @invariant()
    def child_ids_are_unique(self) -> None:
        ids = _ids(self.state)
        assert len(set(ids)) == len(ids)

    @invariant()
    def running_children_are_children(self) -> None:
        assert self.running <= set(_ids(self.state))
        assert {view.id for view in self.state.children if view.running} == self.running

    @invariant()
    def removed_temporary_children_never_come_back(self) -> None:
        assert self.removed <= self.temporary
        assert not self.removed & set(_ids(self.state))

    @invariant()
    def history_holds_the_restarts_within_the_period_of_the_last_one(self) -> None:
        if not self.restarts:
            assert self.state.history == ()
            return
        last, _ = self.restarts[-1]
        period = self.state.intensity.period
        expected = tuple(entry for entry in self.restarts if last - entry[0] < period)
        assert self.state.history == expected


TestRandomExits = RandomExits.TestCase


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("multiplier", 0.5),
        ("multiplier", float("inf")),
        ("initial", float("nan")),
        ("maximum", -1.0),
        ("jitter", 1.5),
        ("reset_after", float("inf")),
    ],
)
def test_a_backoff_that_would_shrink_or_is_not_finite_is_refused(field: str, value: float) -> None:
    """Bad backoff settings are an error naming the field, not a surprise at restart time."""
    with pytest.raises(ValueError, match=field):
        Backoff(**{field: value})
