"""The composition of the trading tree: the one place that builds it (nautilus_trader's
``system/kernel.py`` is the model), for ``actorctl start``, the chaos harness, the bench and the
tests.

* ``trading_tree`` is the supervision tree itself (SPEC 7); ``sim_trading`` builds it on the
  embedded sim venue with a replay, ``live_trading`` on a broker's own market data.
* ``embedded`` and ``live`` build those from the configuration (``config.schema.Config``):
  the ledger, the strategies, the telemetry, the feeds, the warm-up history and the broker's
  face.
"""

from ._alerting import alerting as alerting
from ._alerting import describe as describe_alerting
from ._service import CompositionError as CompositionError
from ._service import Embedded as Embedded
from ._service import embedded as embedded
from ._service import grid_params as grid_params
from ._service import live as live
from ._service import live_history as live_history
from ._service import live_sources as live_sources
from ._service import open_ledger as open_ledger
from ._service import strategy_kinds as strategy_kinds
from ._service import telemetry as telemetry
from ._service import warmup_problem as warmup_problem
from ._trading import LiveTrading as LiveTrading
from ._trading import SimTrading as SimTrading
from ._trading import live_trading as live_trading
from ._trading import sim_trading as sim_trading
from ._tree import RECONNECT as RECONNECT
from ._tree import SYMBOL_MAILBOX as SYMBOL_MAILBOX
from ._tree import FeedRefs as FeedRefs
from ._tree import FeedSpec as FeedSpec
from ._tree import LiveSource as LiveSource
from ._tree import symbol_cell_name as symbol_cell_name
from ._tree import trading_tree as trading_tree
from ._venue import Faces as Faces
from ._venue import made_up_alpaca_keys as made_up_alpaca_keys
from ._venue import venue_faces as venue_faces

__all__ = [
    "alerting",
    "describe_alerting",
    "trading_tree",
    "symbol_cell_name",
    "FeedSpec",
    "FeedRefs",
    "RECONNECT",
    "SYMBOL_MAILBOX",
    "sim_trading",
    "SimTrading",
    "live_trading",
    "LiveTrading",
    "LiveSource",
    "embedded",
    "Embedded",
    "live",
    "live_sources",
    "live_history",
    "warmup_problem",
    "open_ledger",
    "grid_params",
    "strategy_kinds",
    "telemetry",
    "venue_faces",
    "Faces",
    "made_up_alpaca_keys",
    "CompositionError",
]
