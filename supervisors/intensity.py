"""Restart intensity and backoff: pure functions of the restart history and the time."""

from __future__ import annotations

import math

from .spec import Backoff, Intensity

RestartHistory = tuple[tuple[float, str], ...]
"""(time, child id) of each restart the supervisor made, oldest first."""


def record_restart(
    history: RestartHistory, intensity: Intensity, now: float, child: str
) -> tuple[RestartHistory, bool]:
    """Add a restart of ``child`` at ``now``; return the trimmed history and whether it exceeds
    ``intensity`` (more than ``max_restarts`` restarts within ``period`` seconds)."""
    kept = tuple(entry for entry in history if now - entry[0] < intensity.period)
    updated = (*kept, (now, child))
    return updated, len(updated) > intensity.max_restarts


def backoff_delay(backoff: Backoff, streak: int, rand: float) -> float:
    """Seconds to wait before the ``streak``-th consecutive restart; ``rand`` is in [0, 1)."""
    if streak <= backoff.immediate or backoff.initial == 0.0 or backoff.maximum == 0.0:
        return 0.0
    exponent = streak - 1 - backoff.immediate
    # Compare in log space first: initial * multiplier**exponent may not fit in a float even
    # when the delay it leads to is pinned at the maximum.
    growth = exponent * math.log(backoff.multiplier)
    if math.log(backoff.initial) + growth >= math.log(backoff.maximum):
        base = backoff.maximum
    else:
        try:
            base = min(backoff.maximum, backoff.initial * backoff.multiplier**exponent)
        except OverflowError:
            # The power alone overflows while the product stays below the maximum (a tiny
            # initial delay): the same value, computed in log space.
            base = min(backoff.maximum, math.exp(math.log(backoff.initial) + growth))
    return base * (1.0 - backoff.jitter * rand)
