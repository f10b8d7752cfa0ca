"""Options for the sim venue: listed contracts and chains (``sim.options.chain``) and their
quotes and greeks from Black-Scholes-Merton with a smile (``sim.options.pricing``), and their
settlement at expiry (``sim.options.settlement``).

Pure modules (no clock reads, no I/O) over ``actors.domain``; docs/options-venue.md.
"""

from .chain import OptionChain as OptionChain
from .chain import OptionContract as OptionContract
from .chain import OptionError as OptionError
from .chain import Right as Right
from .chain import expiries as expiries
from .chain import is_option_con_id as is_option_con_id
from .chain import monthly_expiries as monthly_expiries
from .chain import nearest_expiry as nearest_expiry
from .chain import option_chain as option_chain
from .chain import strike_grid as strike_grid
from .chain import strike_near as strike_near
from .pricing import OptionQuote as OptionQuote
from .pricing import PricingParams as PricingParams
from .pricing import implied_vol as implied_vol
from .pricing import quote_option as quote_option
from .settlement import Outcome as Outcome
from .settlement import Settlement as Settlement
from .settlement import expiry_close as expiry_close
from .settlement import settle as settle

__all__ = [
    "OptionChain",
    "OptionContract",
    "OptionError",
    "OptionQuote",
    "Outcome",
    "PricingParams",
    "Right",
    "Settlement",
    "expiries",
    "expiry_close",
    "implied_vol",
    "is_option_con_id",
    "monthly_expiries",
    "nearest_expiry",
    "option_chain",
    "quote_option",
    "settle",
    "strike_grid",
    "strike_near",
]
