"""Hypothesis strategies shared by the test suite (imported as ``tests.strategies``)."""

from __future__ import annotations

import string

from hypothesis import strategies as st

from supervisors.spec import Backoff, ExitReason, Intensity, Restart, Strategy
from supervisors.strategies import ChildView, SupervisorState

restarts = st.sampled_from(Restart)
supervisor_strategies = st.sampled_from(Strategy)
exit_reasons = st.sampled_from(ExitReason)

rands = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)
"""The ``rand`` argument of ``decide`` and ``backoff_delay``: uniform in [0, 1)."""

# Whole seconds alongside arbitrary floats, so that exact period boundaries come up.
time_deltas = st.one_of(
    st.integers(min_value=0, max_value=5).map(float),
    st.floats(min_value=0.0, max_value=10.0),
)
"""Seconds between two events: never negative."""

streaks = st.one_of(
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=1, max_value=200),
)
"""Consecutive restarts of a child (``streak`` of ``backoff_delay``), short ones often: that is
where the delay has not reached the maximum yet."""

child_ids = st.text(string.ascii_lowercase, min_size=1, max_size=4)


def intensities(
    *, max_restarts: st.SearchStrategy[int] | None = None
) -> st.SearchStrategy[Intensity]:
    """Valid restart intensities; whole-second periods are frequent so boundaries get hit."""
    return st.builds(
        Intensity,
        max_restarts=max_restarts
        if max_restarts is not None
        else st.integers(min_value=0, max_value=6),
        period=st.one_of(
            st.integers(min_value=1, max_value=10).map(float),
            st.floats(min_value=0.01, max_value=30.0),
        ),
    )


def backoffs(*, initial: st.SearchStrategy[float] | None = None) -> st.SearchStrategy[Backoff]:
    """Backoffs as configured in practice: no delay or a first delay of 1 ms to 10 s, a maximum
    up to a minute and a multiplier in [1, 10]."""
    return st.builds(
        Backoff,
        initial=initial
        if initial is not None
        else st.one_of(st.just(0.0), st.floats(min_value=1e-3, max_value=10.0)),
        maximum=st.floats(min_value=0.0, max_value=60.0),
        multiplier=st.floats(min_value=1.0, max_value=10.0),
        jitter=st.floats(min_value=0.0, max_value=1.0),
        reset_after=st.floats(min_value=0.0, max_value=60.0),
    )


def any_backoffs() -> st.SearchStrategy[Backoff]:
    """Every finite backoff that ``Backoff`` accepts, extremes included (tiny or huge delays, a
    multiplier in the millions)."""
    finite = {"allow_nan": False, "allow_infinity": False}
    return st.builds(
        Backoff,
        initial=st.floats(min_value=0.0, **finite),
        maximum=st.floats(min_value=0.0, **finite),
        multiplier=st.floats(min_value=1.0, **finite),
        jitter=st.floats(min_value=0.0, max_value=1.0),
        reset_after=st.floats(min_value=0.0, **finite),
        immediate=st.integers(min_value=0, max_value=5),
    )


def child_views(
    *,
    ids: st.SearchStrategy[str] = child_ids,
    restart: st.SearchStrategy[Restart] = restarts,
    running: st.SearchStrategy[bool] | None = None,
    started_at: st.SearchStrategy[float | None] | None = None,
) -> st.SearchStrategy[ChildView]:
    """One child as ``decide`` sees it."""
    return st.builds(
        ChildView,
        id=ids,
        restart=restart,
        backoff=backoffs(),
        running=running if running is not None else st.booleans(),
        started_at=started_at
        if started_at is not None
        else st.none() | st.floats(min_value=0.0, max_value=50.0),
        streak=st.integers(min_value=0, max_value=5),
    )


def child_view_lists(
    *, min_size: int = 1, max_size: int = 6, views: st.SearchStrategy[ChildView] | None = None
) -> st.SearchStrategy[list[ChildView]]:
    """Children in start order, with unique ids."""
    return st.lists(
        views if views is not None else child_views(),
        min_size=min_size,
        max_size=max_size,
        unique_by=lambda view: view.id,
    )


START_TIMES_BEFORE = 50.0
"""Every child of ``running_states`` started at or before this time."""


@st.composite
def running_states(
    draw: st.DrawFn,
    *,
    strategy: st.SearchStrategy[Strategy] = supervisor_strategies,
    intensity: st.SearchStrategy[Intensity] | None = None,
    restart: st.SearchStrategy[Restart] = restarts,
    min_size: int = 1,
    max_size: int = 6,
) -> SupervisorState:
    """A supervisor whose children are all running, each started at a time in
    [0, ``START_TIMES_BEFORE``], with an empty restart history."""
    views = child_views(
        restart=restart,
        running=st.just(True),
        started_at=st.floats(min_value=0.0, max_value=START_TIMES_BEFORE),
    )
    children = draw(child_view_lists(min_size=min_size, max_size=max_size, views=views))
    return SupervisorState(
        strategy=draw(strategy),
        intensity=draw(intensity if intensity is not None else intensities()),
        children=tuple(children),
    )


def exit_events(
    ids: list[str] | tuple[str, ...], *, min_size: int = 0, max_size: int = 30
) -> st.SearchStrategy[list[tuple[str, ExitReason, float]]]:
    """Exits to feed to ``decide``, as (child id, reason, seconds since the previous event)."""
    return st.lists(
        st.tuples(st.sampled_from(ids), exit_reasons, time_deltas),
        min_size=min_size,
        max_size=max_size,
    )
