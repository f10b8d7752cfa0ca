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
    if streak < 1 or backoff.initial == 0.0:
        return 0.0
    if backoff.maximum <= backoff.initial:
        base = backoff.maximum
    else:
        exponent = streak - 1
        if backoff.multiplier > 1.0:
            # Past this many steps the delay is pinned at the maximum: stop the power there so
            # a long streak cannot overflow a float.
            to_maximum = math.ceil(math.log(backoff.maximum / backoff.initial, backoff.multiplier))
            exponent = min(exponent, to_maximum)
        base = min(backoff.maximum, backoff.initial * backoff.multiplier**exponent)
    return base * (1.0 - backoff.jitter * rand)
