"""Historical bars for backtests: loaders, schema checks, a Parquet cache, corporate actions.

``docs/data.md`` is the user's guide: the formats, the rules of ``load``, the checks, the
cache and the corporate actions, with the real files of ``../shared/marketdata`` as examples.
"""

from .actions import CorporateAction as CorporateAction
from .actions import Dividend as Dividend
from .actions import FactorFile as FactorFile
from .actions import FactorRow as FactorRow
from .actions import Split as Split
from .actions import actions_from_factors as actions_from_factors
from .actions import actions_from_list as actions_from_list
from .actions import as_traded as as_traded
from .actions import load_factor_file as load_factor_file
from .cache import BarCache as BarCache
from .cache import CacheWarning as CacheWarning
from .checks import CheckReport as CheckReport
from .checks import check as check
from .frame import INTERVALS as INTERVALS
from .frame import SCHEMA as SCHEMA
from .frame import BarTable as BarTable
from .frame import DataError as DataError
from .sources import LOADER_VERSION as LOADER_VERSION
from .sources import REAL_FROM as REAL_FROM
from .sources import load as load
from .sources import load_lean as load_lean
from .sources import load_minute_csv as load_minute_csv
from .sources import load_table as load_table
from .sources import load_yahoo_daily as load_yahoo_daily
from .sources import source_digest as source_digest

__all__ = [
    # the table
    "BarTable",
    "SCHEMA",
    "INTERVALS",
    "DataError",
    # loading
    "load",
    "load_table",
    "load_minute_csv",
    "load_yahoo_daily",
    "load_lean",
    "source_digest",
    "REAL_FROM",
    "LOADER_VERSION",
    # checks
    "check",
    "CheckReport",
    # cache
    "BarCache",
    "CacheWarning",
    # corporate actions
    "FactorFile",
    "FactorRow",
    "load_factor_file",
    "CorporateAction",
    "Split",
    "Dividend",
    "actions_from_factors",
    "actions_from_list",
    "as_traded",
]
