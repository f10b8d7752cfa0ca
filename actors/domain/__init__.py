"""The trading vocabulary every layer shares: prices and order references, market data
(instruments, bars, trades, ticks, quotes), orders and what a broker says about them, and the
New York trading calendar (``actors.domain.sessions``).

It imports nothing else of ours, so that the simulated venues (``sim/``), the actors and the
application can all speak it without importing one another.
"""

from ._actions import CorporateAction as CorporateAction
from ._actions import Dividend as Dividend
from ._actions import Split as Split
from ._actions import check_ratio as check_ratio
from ._actions import split_condition as split_condition
from ._actions import split_order as split_order
from ._actions import split_order_price as split_order_price
from ._actions import split_price as split_price
from ._actions import split_shares as split_shares
from ._market import Bar as Bar
from ._market import Instrument as Instrument
from ._market import PriceTick as PriceTick
from ._market import Quote as Quote
from ._market import Trade as Trade
from ._options import MULTIPLIER as MULTIPLIER
from ._options import OptionChain as OptionChain
from ._options import OptionQuote as OptionQuote
from ._options import OptionSymbol as OptionSymbol
from ._options import is_option_symbol as is_option_symbol
from ._options import underlying_of as underlying_of
from ._orders import BracketError as BracketError
from ._orders import BrokerEvent as BrokerEvent
from ._orders import BrokerExecution as BrokerExecution
from ._orders import BrokerOrder as BrokerOrder
from ._orders import BrokerPosition as BrokerPosition
from ._orders import BrokerSnapshot as BrokerSnapshot
from ._orders import CancelOrder as CancelOrder
from ._orders import ModifyOrder as ModifyOrder
from ._orders import OrderAccepted as OrderAccepted
from ._orders import OrderCancelled as OrderCancelled
from ._orders import OrderFilled as OrderFilled
from ._orders import OrderRejected as OrderRejected
from ._orders import PlaceBracket as PlaceBracket
from ._orders import PlaceOrder as PlaceOrder
from ._orders import PriceCondition as PriceCondition
from ._values import DomainError as DomainError
from ._values import OrderRef as OrderRef
from ._values import Side as Side
from ._values import TimeInForce as TimeInForce
from ._values import epoch_ns as epoch_ns
from ._values import round_to_tick as round_to_tick
from ._values import route as route
from ._values import valid_tag as valid_tag

__all__ = [
    "Bar",
    "BracketError",
    "BrokerEvent",
    "BrokerExecution",
    "BrokerOrder",
    "BrokerPosition",
    "BrokerSnapshot",
    "CancelOrder",
    "CorporateAction",
    "Dividend",
    "DomainError",
    "Instrument",
    "MULTIPLIER",
    "ModifyOrder",
    "OptionChain",
    "OptionQuote",
    "OptionSymbol",
    "OrderAccepted",
    "OrderCancelled",
    "OrderFilled",
    "OrderRef",
    "OrderRejected",
    "PlaceBracket",
    "PlaceOrder",
    "PriceCondition",
    "PriceTick",
    "Quote",
    "Side",
    "Split",
    "TimeInForce",
    "Trade",
    "check_ratio",
    "split_condition",
    "split_order",
    "split_order_price",
    "split_price",
    "split_shares",
    "epoch_ns",
    "is_option_symbol",
    "round_to_tick",
    "route",
    "underlying_of",
    "valid_tag",
]
