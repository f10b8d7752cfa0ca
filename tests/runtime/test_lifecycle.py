"""The lifecycle state table."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import TRANSITIONS, InvalidTransition, Lifecycle, LifecycleEvent, LifecycleState

S, E = LifecycleState, LifecycleEvent


def test_the_table_is_the_documented_one() -> None:
    """Any change to the allowed transitions is deliberate: this list must change with it."""
    assert dict(TRANSITIONS) == {
        (S.NEW, E.START): S.STARTING,
        (S.STARTING, E.STARTED): S.RUNNING,
        (S.STARTING, E.STOP): S.STOPPING,
        (S.STARTING, E.FAIL): S.FAILED,
        (S.STARTING, E.KILL): S.KILLED,
        (S.RUNNING, E.STOP): S.STOPPING,
        (S.RUNNING, E.FAIL): S.FAILED,
        (S.RUNNING, E.KILL): S.KILLED,
        (S.STOPPING, E.STOPPED): S.STOPPED,
        (S.STOPPING, E.FAIL): S.FAILED,
        (S.STOPPING, E.KILL): S.KILLED,
        (S.FAILED, E.RESTART): S.STARTING,
        (S.KILLED, E.RESTART): S.STARTING,
        (S.STOPPED, E.RESTART): S.STARTING,
    }


@given(st.lists(st.sampled_from(LifecycleEvent), max_size=60))
def test_events_move_the_state_exactly_as_the_table_says(events: list[LifecycleEvent]) -> None:
    """Allowed events follow the table; any other raises and leaves the state unchanged."""
    lifecycle = Lifecycle("a")
    for event in events:
        before = lifecycle.state
        expected = TRANSITIONS.get((before, event))
        if expected is None:
            with pytest.raises(InvalidTransition):
                lifecycle.fire(event)
            assert lifecycle.state is before
        else:
            assert lifecycle.fire(event) is expected
    assert len(lifecycle.history) <= 64


def test_an_invalid_transition_names_the_actor_state_and_event() -> None:
    """The error says where and what."""
    with pytest.raises(InvalidTransition, match="actor 'broker': event 'stopped' is not allowed"):
        Lifecycle("broker").fire(LifecycleEvent.STOPPED)


def test_every_state_is_reachable_from_new() -> None:
    """No dead rows: each state can be reached."""
    reached = {S.NEW}
    frontier = [S.NEW]
    while frontier:
        state = frontier.pop()
        for (source, _), target in TRANSITIONS.items():
            if source is state and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(LifecycleState)
