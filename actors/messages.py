"""The messages actors exchange beyond the trading vocabulary (``actors.domain``): what a
strategy tells its operator (alerts, lots opened and closed) and the commands it returns.

Frozen attrs classes, data only.
"""

from __future__ import annotations

import enum
from decimal import Decimal

import attrs

from .domain import CancelOrder, ModifyOrder, PlaceBracket, PlaceOrder


class Severity(enum.StrEnum):
    """How urgent an alert is: ``info`` (trading began, the service stops), ``warning`` (the
    bot coped, the operator should know), ``critical`` (the bot stopped doing something: a
    symbol halted, a child gave up)."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@attrs.frozen(kw_only=True)
class Alert:
    """Something the operator must be told about (the alerts actor delivers it:
    ``actors.alerts``). A strategy, which reads no clock, leaves ``at_ns`` at 0: its host
    stamps it. Repeats of one ``dedup_key`` (by default the symbol, kind and message) within
    the alerts actor's window are sent once, with a count."""

    symbol: str
    """The symbol it concerns; "" for the service as a whole (a supervisor's restart)."""
    kind: str
    message: str
    severity: Severity = Severity.WARNING
    at_ns: int = 0
    """Unix time in nanoseconds when it was raised; 0: not stamped yet."""
    dedup_key: str | None = None

    @property
    def key(self) -> str:
        """What makes two alerts repeats of each other."""
        if self.dedup_key is not None:
            return self.dedup_key
        return f"{self.symbol}\x1f{self.kind}\x1f{self.message}"


@attrs.frozen(kw_only=True)
class LotOpened:
    """A lot is complete (its buy is done) and its sell is being placed."""

    symbol: str
    lot: int
    level: int
    shares: int
    purchase_price: Decimal
    sell_price: Decimal


@attrs.frozen(kw_only=True)
class LotClosed:
    """A lot's sell filled: the lot is closed with its realized P&L."""

    symbol: str
    lot: int
    level: int
    shares: int
    cost: Decimal
    proceeds: Decimal
    realized: Decimal


SEVERITY: dict[str, Severity] = {
    "trading": Severity.INFO,
    "execution-conflict": Severity.CRITICAL,
    "halted": Severity.CRITICAL,
    "fill-refused": Severity.CRITICAL,
    "oversold": Severity.CRITICAL,
    "escalation": Severity.CRITICAL,
    "give-up": Severity.CRITICAL,
    "unrecoverable": Severity.CRITICAL,
}
"""Alert kinds more or less urgent than a warning (the default), as the hosts that raise or
pass them on rate them (a strategy's alerts carry the default)."""


@attrs.frozen(kw_only=True)
class FindOption:
    """Ask the host for an option to trade on a signal (an options strategy's command): the
    host reads the underlying's chain, chooses the contract as ``contract`` says
    (``actors.options.choice.choose_contract``: a call when ``bullish``, a put otherwise),
    quotes it and reads the account's equity, and hands the strategy an ``OptionFound`` or an
    ``OptionMissing`` for ``decision`` (``actors.strategies.protocol``). Nothing is sent."""

    decision: str
    bullish: bool
    underlying_price: Decimal
    contract: object
    """An ``actors.options.choice.ContractParams`` (typed there: this module is below it)."""
    today: str
    """The New York date of the signal (ISO), which days to expiry count from."""


@attrs.frozen(kw_only=True)
class Remember:
    """Keep ``value`` under ``key`` in the strategy's durable memory before anything after
    this command is carried out (the whale's debounce): the host commits it through the
    lot-keeper, and ``Facts.memory`` gives it back after any restart."""

    key: str
    value: str


LotEvent = LotOpened | LotClosed
Command = (
    PlaceOrder
    | PlaceBracket
    | ModifyOrder
    | CancelOrder
    | Alert
    | LotOpened
    | LotClosed
    | FindOption
    | Remember
)
