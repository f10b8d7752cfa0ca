"""The composition of the trading tree: the one place that builds it, for ``actorctl start``,
the chaos harness, the bench and the tests."""

from ._trading import RECONNECT as RECONNECT
from ._trading import SYMBOL_MAILBOX as SYMBOL_MAILBOX
from ._trading import FeedRefs as FeedRefs
from ._trading import FeedSpec as FeedSpec
from ._trading import LiveSource as LiveSource
from ._trading import LiveTrading as LiveTrading
from ._trading import SimTrading as SimTrading
from ._trading import live_trading as live_trading
from ._trading import sim_trading as sim_trading
from ._trading import trading_tree as trading_tree
