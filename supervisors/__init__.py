"""Erlang/OTP-style supervision: child specs, restart strategies, intensity, backoff.

The decisions are pure (``strategies.decide``); ``Supervisor`` is the async shell around them.
"""

from ._errors import ChildKeepsFailing as ChildKeepsFailing
from ._errors import ChildUnrecoverable as ChildUnrecoverable
from ._errors import RestartIntensityExceeded as RestartIntensityExceeded
from ._errors import SupervisorError as SupervisorError
from .spec import Backoff as Backoff
from .spec import ChildSpec as ChildSpec
from .spec import ExitReason as ExitReason
from .spec import Intensity as Intensity
from .spec import Restart as Restart
from .spec import Strategy as Strategy
from .spec import SupervisorSpec as SupervisorSpec
from .supervisor import ChildStatus as ChildStatus
from .supervisor import Supervisor as Supervisor

__all__ = [
    "Supervisor",
    "SupervisorSpec",
    "ChildSpec",
    "ChildStatus",
    "Restart",
    "Strategy",
    "ExitReason",
    "Intensity",
    "Backoff",
    "SupervisorError",
    "RestartIntensityExceeded",
    "ChildUnrecoverable",
    "ChildKeepsFailing",
]
