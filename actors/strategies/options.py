"""The options bot (SPEC 14): a signal on the underlying's bars buys a weekly option as a
bracket (entry, take-profit, stop-loss in one OCA group), one position per underlying at a
time, never left unprotected.

Two strategies share this module, each a symbol actor of the underlying:

* ``scalp``: the RSI + volume rule on completed 1-minute bars (``actors.options.signals.
  ScalpRule``), with a cooldown after each exit;
* ``whale``: the volume-spike rule on completed 60-minute bars (``WhaleRule``), with its
  debounce per symbol kept durable: the strategy asks its host to ``Remember`` the signal's
  time before it looks for an option, and ``Facts.memory`` gives it back after any restart.

**A decision, step by step.** A signal (never from warm-up bars) while flat, not cooling down
and inside the regular session of a trading day becomes a ``FindOption`` (the host reads the
chain, chooses the contract by ``ContractParams``, quotes it and reads the equity). Its answer,
``OptionFound``, passes the liquidity filter (``liquidity_problem``), is priced
(``entry_limit``: the mid rounded up to the tick, or the ask; take-profit and stop at
``tp_pct``/``sl_pct`` from it, ``exit_prices``) and sized (``contracts_for``: risk per trade
over premium x multiplier x stop distance, capped); a skip at any step is an alert naming its
code and reason, and the strategy is flat again. Otherwise it places a ``PlaceBracket``: a
limit buy (DAY), a take-profit limit sell and a stop sell (GTC), children of the entry, in OCA
group ``<route>:<bracket>``, the stop sent last (the host commits the three intents in one
transaction first).

**Refs.** The bracket's id is the signal's rule initial and bar start (UTC, to the minute):
``S202612041431``; a replacement after a time-out appends ``.1``, ``.2``. Each leg's tag is
``<bracket>:<leg>`` with leg ``entry``, ``tp``, ``sl`` or ``close``, so an order found at the
broker names its strategy, underlying, bracket and role: ``scalp:SPY:S202612041431:tp:1``.
A protective leg placed again is the same tag's next attempt (``...:sl:2``).

**Never unprotected.** While contracts are held, the take-profit and the stop work for all of
them (the venue works the children for what the entry filled), or a close (a market sell of
what is held) is in progress:

* an exit cancelled or rejected while contracts are held and its sibling has not filled
  is placed again, alone (no parent: the entry has filled), in the same OCA group, for the
  contracts held; an exit that cannot be placed again (rejected twice) makes it close;
* after a restart the strategy is rebuilt from the facts and ``resync`` re-places a missing
  exit; an exit still working when nothing is held is not live (the host cancels it: an
  orphan child);
* on the expiry day the position is closed at the end of the last bar that ends before
  ``close_before_expiry`` minutes before 16:00 (the bar clock: 15:45 on minute bars and the
  default 15 minutes, 15:00 on hours): exits cancelled, then a market sell.

**Time-outs.** An entry not filled within ``entry_timeout`` seconds is cancelled (its children
go with it at the venue); with ``on_timeout = "replace"`` and replacements left, a cancelled
entry that filled nothing looks for an option again (a fresh quote) for the same signal. A
partly filled entry that is cancelled keeps its exits for what it bought.

Pure: no I/O, no clock. Wall time comes only from the bars (their start and size).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

import attrs

from ..domain import (
    MULTIPLIER,
    CancelOrder,
    OptionSymbol,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRef,
    OrderRejected,
    PlaceBracket,
    PlaceOrder,
    PriceTick,
    Side,
    TimeInForce,
    route,
)
from ..domain.sessions import NEW_YORK, is_trading_day
from ..messages import Alert, FindOption, Remember, Severity
from ..options.choice import (
    ContractParams,
    EntryParams,
    LiquidityParams,
    SizingParams,
    Skip,
    contracts_for,
    entry_limit,
    exit_prices,
    liquidity_problem,
)
from ..options.signals import ScalpParams, ScalpRule, Signal, WhaleParams, WhaleRule
from .protocol import (
    BarClosed,
    Command,
    Facts,
    ModifyRefused,
    Needs,
    OptionFound,
    OptionMissing,
    OrderRefused,
    PositionLine,
    StrategyEvent,
    TimerFired,
)

SCALP, WHALE = "scalp", "whale"
NAMES = (SCALP, WHALE)
MINUTE, HOUR = 60, 3600
LEGS = ("entry", "tp", "sl", "close")
_OPEN, _CLOSE = time(9, 30), time(16, 0)
WHALE_KEY = "whale.last_signal"


def _nested(kind: type[Any], value: object) -> Any:
    if isinstance(value, kind):
        return value
    if isinstance(value, Mapping):
        return kind(**value)
    raise TypeError(f"expected a table of {kind.__name__} settings, got {value!r}")


def _scalp(value: object) -> ScalpParams:
    return _nested(ScalpParams, value)  # type: ignore[no-any-return]


def _whale(value: object) -> WhaleParams:
    return _nested(WhaleParams, value)  # type: ignore[no-any-return]


def _contract(value: object) -> ContractParams:
    return _nested(ContractParams, value)  # type: ignore[no-any-return]


def _liquidity(value: object) -> LiquidityParams:
    return _nested(LiquidityParams, value)  # type: ignore[no-any-return]


def _entry(value: object) -> EntryParams:
    return _nested(EntryParams, value)  # type: ignore[no-any-return]


def _sizing(value: object) -> SizingParams:
    return _nested(SizingParams, value)  # type: ignore[no-any-return]


def _seconds(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not 0 < value <= 86_400:
        raise ValueError(f"{attribute.name} must be between 0 and 86400 seconds, got {value!r}")


def _count(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not 0 <= value <= 390:
        raise ValueError(f"{attribute.name} must be a whole number 0 to 390, got {value!r}")


def _policy(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ("cancel", "replace"):
        raise ValueError(f'{attribute.name} must be "cancel" or "replace", got {value!r}')


@attrs.frozen(kw_only=True)
class OptionsParams:
    """An options strategy of one underlying: its signal rule's settings (``scalp`` or
    ``whale``; the other is ignored), then which option, whether it is liquid enough, the
    bracket's prices, the size, and the time rules (see the module doc)."""

    symbol: str
    scalp: ScalpParams = attrs.field(factory=ScalpParams, converter=_scalp)
    whale: WhaleParams = attrs.field(factory=WhaleParams, converter=_whale)
    contract: ContractParams = attrs.field(factory=ContractParams, converter=_contract)
    liquidity: LiquidityParams = attrs.field(factory=LiquidityParams, converter=_liquidity)
    entry: EntryParams = attrs.field(factory=EntryParams, converter=_entry)
    sizing: SizingParams = attrs.field(factory=SizingParams, converter=_sizing)
    entry_timeout: float = attrs.field(default=60.0, validator=_seconds)
    """Seconds the entry may work unfilled before it is cancelled."""
    on_timeout: Literal["cancel", "replace"] = attrs.field(default="cancel", validator=_policy)
    max_replaces: int = attrs.field(default=1, validator=_count)
    """Entries placed again (fresh quote) after time-outs, with ``on_timeout = "replace"``."""
    cooldown: float = attrs.field(default=300.0, validator=_seconds)
    """Seconds after an exit before the next entry."""
    close_before_expiry: int = attrs.field(default=15, validator=_count)
    """Minutes before 16:00 on the expiry day when a held option is closed."""


@attrs.define
class _Bracket:
    """One bracket of the strategy: its legs' refs by role, what they filled."""

    id: str
    option: str
    contracts: int
    group: str
    refs: dict[str, str] = attrs.Factory(dict)
    """Leg -> the ref of its latest order."""
    working: set[str] = attrs.Factory(set)
    bought: int = 0
    sold: int = 0
    cost: Decimal = Decimal(0)
    proceeds: Decimal = Decimal(0)
    placed_at: float = 0.0
    take_profit: Decimal | None = None
    stop: Decimal | None = None
    failures: dict[str, int] = attrs.Factory(dict)
    """Protective legs refused or rejected, by leg."""
    entry_done: bool = False
    """The entry is no longer working (filled, cancelled or rejected)."""
    closing: str | None = None
    """Why the position is being closed (None: it is not)."""
    cancelling: set[str] = attrs.Factory(set)
    """Exits whose cancel was sent (for a close)."""

    @property
    def held(self) -> int:
        return self.bought - self.sold

    def leg_of(self, ref: str) -> str | None:
        for leg, known in self.refs.items():
            if known == ref:
                return leg
        try:
            parsed = OrderRef.parse(ref)
        except ValueError:
            return None
        parts = parsed.tag.split(":")
        return parts[1] if len(parts) == 2 and parts[0] == self.id else None


@attrs.frozen(kw_only=True)
class _LiveOrder:
    ref: str
    side: Side
    quantity: int
    filled: int = 0


@attrs.frozen(kw_only=True)
class OptionsView:
    """What ``actorctl status`` shows of an options strategy."""

    kind: Literal["options"] = "options"
    signal: str
    state: str
    """``flat``, ``cooling``, ``seeking``, ``entering``, ``protected`` or ``closing``."""
    last_signal: str | None
    debounce_until: str | None
    bracket: str | None
    option: str | None
    contracts: int
    legs: tuple[str, ...]
    """The working legs' refs."""
    skips: int
    last_skip: str | None
    rsi: float | None


class OptionsStrategy:
    """The live strategy (see the module doc)."""

    def __init__(
        self, params: OptionsParams, name: str, *, last_whale: datetime | None = None
    ) -> None:
        self.params = params
        self.name = name
        self.symbol = params.symbol
        self.halted: str | None = None
        self.last_price: Decimal | None = None
        self.realized = Decimal(0)
        self.scalp = ScalpRule(params.scalp) if name == SCALP else None
        self.whale = WhaleRule(params.whale, last_whale) if name == WHALE else None
        self.bracket: _Bracket | None = None
        """The latest bracket."""
        self.older: dict[str, _Bracket] = {}
        """Earlier brackets still working or holding contracts (one that bought after its
        entry ended, say): protected and closed like the latest, by their own refs."""
        self.seeking: tuple[str, Signal, int] | None = None
        """The decision looking for an option: its bracket id, signal, replacements so far."""
        self.replaces = 0
        self.cool_until = -1.0
        self.bar_end: datetime | None = None
        """The end of the last bar seen: the strategy's wall clock."""
        self.bar_size = timedelta(minutes=1)
        self.skips = 0
        self.last_skip: str | None = None
        self.last_signal: Signal | None = None
        self.closed_ids: set[str] = set()
        self.decided: set[str] = set()
        """Every decision (signal bar) a bracket was looked for on: never twice."""

    # -- the protocol ------------------------------------------------------------------------

    def warm(self, bars: Sequence[BarClosed]) -> None:
        for closed in bars:
            self._clock(closed)
            if self.scalp is not None and closed.seconds == MINUTE:
                self.scalp.update(closed.bar, live=False)
            if self.whale is not None and closed.seconds == HOUR:
                self.whale.update(closed.bar, live=False)

    def decide(self, event: StrategyEvent, now: float) -> list[Command]:
        commands = self._decide(event, now)
        if self.older:
            self._prune()
        return commands

    def _decide(self, event: StrategyEvent, now: float) -> list[Command]:
        match event:
            case BarClosed():
                return self._bar(event, now)
            case PriceTick():
                self.last_price = event.price
                return []
            case OptionFound():
                return self._found(event, now)
            case OptionMissing():
                return self._skip(event.decision, Skip(reason=event.reason, code=event.code))
            case OrderAccepted():
                return []
            case OrderFilled():
                return self._filled(event, now)
            case OrderCancelled():
                return self._ended(event.ref, f"cancelled {event.reason}".strip(), now)
            case OrderRejected():
                return self._ended(event.ref, f"rejected: {event.reason}", now, failed=True)
            case OrderRefused():
                return self._ended(event.ref, f"refused ({event.rule}): {event.reason}", now, True)
            case ModifyRefused():
                return []
            case TimerFired():
                return self._timer(now)

    def halt(self, reason: str) -> list[Command]:
        first = self.halted is None
        self.halted = reason
        self.seeking = None
        if not first:
            return []
        return [
            Alert(
                symbol=self.symbol,
                kind="halted",
                message=f"{self.name}: no new entries: {reason}",
                severity=Severity.CRITICAL,
            )
        ]

    def resume(self, now: float) -> list[Command]:
        self.halted = None
        return self.resync(now)

    def resync(self, now: float) -> list[Command]:
        """Protect what is held: an exit missing while contracts are held is placed again."""
        commands: list[Command] = []
        for bracket in self._open():
            if bracket.held <= 0:
                continue
            if bracket.closing is not None:
                # A close in progress (or refused before: it is placed again).
                commands += self._close(bracket, bracket.closing)
            else:
                commands += self._protect(bracket, now)
        return commands

    def _open(self) -> list[_Bracket]:
        """The brackets still working or holding contracts, the latest last."""
        found = [b for b in self.older.values() if b.working or b.held > 0]
        if self.bracket is not None and (self.bracket.working or self.bracket.held > 0):
            found.append(self.bracket)
        return found

    def _bracket_of(self, ref: str) -> _Bracket | None:
        try:
            bracket_id = OrderRef.parse(ref).tag.split(":")[0]
        except ValueError:
            return None
        if self.bracket is not None and self.bracket.id == bracket_id:
            return self.bracket
        return self.older.get(bracket_id)

    def _prune(self) -> None:
        for bracket_id, bracket in list(self.older.items()):
            if not bracket.working and bracket.held <= 0:
                del self.older[bracket_id]

    def live_orders(self) -> Sequence[_LiveOrder]:
        live = []
        for bracket in self._open():
            for leg, ref in bracket.refs.items():
                if ref not in bracket.working:
                    continue
                if leg == "entry":
                    live.append(
                        _LiveOrder(
                            ref=ref,
                            side=Side.BUY,
                            quantity=bracket.contracts,
                            filled=bracket.bought,
                        )
                    )
                else:
                    live.append(_LiveOrder(ref=ref, side=Side.SELL, quantity=bracket.contracts))
        return live

    def positions(self) -> Sequence[PositionLine]:
        lines = []
        for number, bracket in enumerate(self._open()):
            if bracket.held <= 0:
                continue
            price = bracket.cost / bracket.bought if bracket.bought else Decimal(0)
            lines.append(
                PositionLine(
                    id=number,
                    shares=bracket.held,
                    purchase_price=price.quantize(Decimal("0.01")),
                    sell_price=bracket.take_profit,
                    label=f"{bracket.option.replace(' ', '')} x{bracket.held}",
                )
            )
        return lines

    def view(self) -> OptionsView:
        bracket = self.bracket
        whale = self.whale
        debounce = None
        if whale is not None and whale.last_signal is not None:
            until = whale.last_signal + timedelta(days=self.params.whale.debounce_days)
            debounce = until.isoformat()
        return OptionsView(
            signal=self.name,
            state=self._state(),
            last_signal=None if self.last_signal is None else self.last_signal.reason,
            debounce_until=debounce,
            bracket=None if bracket is None else bracket.id,
            option=None if bracket is None else bracket.option,
            contracts=sum(max(b.held, 0) for b in self._open()),
            legs=tuple(sorted(ref for b in self._open() for ref in b.working)),
            skips=self.skips,
            last_skip=self.last_skip,
            rsi=None if self.scalp is None or self.scalp.rsi is None else round(self.scalp.rsi, 2),
        )

    def next_wake(self, now: float) -> float | None:
        bracket = self.bracket
        if bracket is not None and bracket.refs.get("entry") in bracket.working:
            return bracket.placed_at + self.params.entry_timeout
        return None

    # -- decisions ---------------------------------------------------------------------------

    def _state(self) -> str:
        bracket = self.bracket
        if bracket is not None:
            if bracket.refs.get("entry") in bracket.working:
                return "entering"
            if bracket.refs.get("close") in bracket.working:
                return "closing"
            if bracket.held > 0:
                return "protected"
        if self.seeking is not None:
            return "seeking"
        return "flat"

    def _busy(self) -> bool:
        return self.seeking is not None or bool(self._open())

    def _clock(self, closed: BarClosed) -> None:
        end = closed.bar.start + timedelta(seconds=closed.seconds)
        self.bar_size = timedelta(seconds=closed.seconds)
        if self.bar_end is None or end > self.bar_end:
            self.bar_end = end

    def _bar(self, closed: BarClosed, now: float) -> list[Command]:
        self._clock(closed)
        self.last_price = closed.bar.close
        commands = self._expiry_close(now)
        signal = None
        if self.scalp is not None and closed.seconds == MINUTE:
            signal = self.scalp.update(closed.bar)
        elif self.whale is not None and closed.seconds == HOUR:
            before = self.whale.last_signal
            signal = self.whale.update(closed.bar)
            if signal is not None and self.whale.last_signal != before:
                # Durable before anything comes of it: a restart keeps the debounce.
                commands.append(Remember(key=WHALE_KEY, value=signal.at.isoformat()))
        if signal is None:
            return commands
        self.last_signal = signal
        if self.halted is not None or self._busy() or now < self.cool_until:
            why = (
                f"halted ({self.halted})"
                if self.halted is not None
                else "a position or entry is open"
                if self._busy()
                else "cooling down after the last exit"
            )
            ignored = f"{signal.reason}: ignored, {why}"
            return [*commands, self._alert("signal-ignored", ignored, Severity.INFO)]
        at = closed.bar.start + timedelta(seconds=closed.seconds)
        local = at.astimezone(NEW_YORK)
        if not (is_trading_day(local.date()) and _OPEN <= local.time() < _CLOSE):
            return [
                *commands,
                self._alert(
                    "signal-ignored", f"{signal.reason}: outside the regular session", Severity.INFO
                ),
            ]
        decision = f"{self.name[0].upper()}{signal.at.astimezone(UTC):%Y%m%d%H%M}"
        if decision in self.decided:
            # Its bar came again (a feed or venue that replays what it sent): one decision,
            # one bracket.
            return [
                *commands,
                self._alert(
                    "signal-ignored",
                    f"{signal.reason}: decided already ({decision})",
                    Severity.INFO,
                ),
            ]
        self.decided.add(decision)
        self.seeking = (decision, signal, 0)
        commands.append(
            Alert(
                symbol=self.symbol,
                kind="signal",
                message=f"{self.name} {signal.side}: {signal.reason}",
                severity=Severity.INFO,
            )
        )
        commands.append(self._find(decision, signal, local))
        return commands

    def _find(self, decision: str, signal: Signal, local: datetime) -> FindOption:
        return FindOption(
            decision=decision,
            bullish=signal.side == "bullish",
            underlying_price=self.last_price or Decimal(0),
            contract=self.params.contract,
            today=local.date().isoformat(),
        )

    def _found(self, found: OptionFound, now: float) -> list[Command]:
        seeking = self.seeking
        if seeking is None or seeking[0] != found.decision or self.halted is not None:
            return []
        params = self.params
        problem = liquidity_problem(found.quote, params.liquidity)
        if problem is not None:
            return self._skip(found.decision, problem, option=found.option)
        limit = entry_limit(found.quote, params.entry)
        if isinstance(limit, Skip):
            return self._skip(found.decision, limit, option=found.option)
        contracts = contracts_for(
            equity=found.equity,
            premium=limit,
            multiplier=found.multiplier,
            sl_pct=params.entry.sl_pct,
            params=params.sizing,
        )
        if isinstance(contracts, Skip):
            return self._skip(found.decision, contracts, option=found.option)
        take_profit, stop = exit_prices(limit, params.entry)
        bracket_id = found.decision if seeking[2] == 0 else f"{found.decision}.{seeking[2]}"
        group = f"{route(self.name, self.symbol)}:{bracket_id}"
        refs = {
            leg: str(OrderRef(strategy=self.name, symbol=self.symbol, tag=f"{bracket_id}:{leg}"))
            for leg in LEGS
        }
        entry = PlaceOrder(
            ref=refs["entry"],
            symbol=found.option,
            side=Side.BUY,
            quantity=contracts,
            limit=limit,
            tif=TimeInForce.DAY,
            outside_rth=False,
        )
        exit_fields: dict[str, Any] = {
            "symbol": found.option,
            "side": Side.SELL,
            "quantity": contracts,
            "tif": TimeInForce.GTC,
            "outside_rth": False,
            "parent": entry.ref,
            "oca": group,
        }
        bracket = PlaceBracket(
            entry=entry,
            take_profit=PlaceOrder(ref=refs["tp"], limit=take_profit, **exit_fields),
            stop_loss=PlaceOrder(ref=refs["sl"], limit=None, stop=stop, **exit_fields),
        )
        previous = self.bracket
        if previous is not None and (previous.working or previous.held > 0):
            self.older[previous.id] = previous
        self.bracket = _Bracket(
            id=bracket_id,
            option=found.option,
            contracts=contracts,
            group=group,
            refs={leg: refs[leg] for leg in ("entry", "tp", "sl")},
            working={refs["entry"], refs["tp"], refs["sl"]},
            placed_at=now,
            take_profit=take_profit,
            stop=stop,
        )
        self.seeking = None
        self.replaces = seeking[2]
        return [
            bracket,
            Alert(
                symbol=self.symbol,
                kind="entry",
                message=f"{self.name}: buying {contracts} {found.option.replace(' ', '')} at "
                f"{limit} (take-profit {take_profit}, stop {stop}; equity {found.equity})",
                severity=Severity.INFO,
            ),
        ]

    def _skip(self, decision: str, skip: Skip, *, option: str = "") -> list[Command]:
        if self.seeking is None or self.seeking[0] != decision:
            return []
        self.seeking = None
        self.skips += 1
        on = f" {option.replace(' ', '')}" if option else ""
        self.last_skip = f"{skip.code}: {skip.reason}"
        return [
            self._alert("skip", f"{self.name} {decision}{on}: skipped ({skip.code}) {skip.reason}")
        ]

    def _filled(self, fill: OrderFilled, now: float) -> list[Command]:
        bracket = self._bracket_of(fill.ref)
        if bracket is None:
            return []
        leg = bracket.leg_of(fill.ref)
        if leg is None:
            return []
        if leg == "entry":
            late = bracket.entry_done and fill.ref not in bracket.working
            bracket.bought += fill.quantity
            bracket.cost += fill.price * fill.quantity
            if bracket.bought >= bracket.contracts:
                bracket.working.discard(fill.ref)
                bracket.entry_done = True
            if late:
                # A fill that comes after its entry's end (events reordered, a fill reported
                # after the cancel): contracts are held that no exit of ours covers.
                self.closed_ids.discard(bracket.id)
                return [
                    self._alert(
                        "late-fill",
                        f"{self.name}: {fill.quantity} {bracket.option.replace(' ', '')} bought "
                        f"after the entry {fill.ref} ended: protecting them",
                    ),
                    *self._protect(bracket, now),
                ]
            return [
                Alert(
                    symbol=self.symbol,
                    kind="entry-filled",
                    message=f"{self.name}: bought {fill.quantity} {bracket.option.replace(' ', '')}"
                    f" at {fill.price}; take-profit {bracket.take_profit} and stop "
                    f"{bracket.stop} working",
                    severity=Severity.INFO,
                )
            ]
        bracket.sold += fill.quantity
        bracket.proceeds += fill.price * fill.quantity
        if bracket.held > 0:
            return []
        bracket.working.discard(fill.ref)
        commands = self._closed(bracket, leg, fill, now)
        # What still works of ours now protects nothing. The bracket's own children go with
        # their OCA group at the venue; an exit placed again alone may not (placed after its
        # sibling had filled, when the group's cancel came before the fill), nor does a
        # close: they are cancelled.
        for other in ("tp", "sl", "close"):
            ref = bracket.refs.get(other)
            if ref is None or ref not in bracket.working or ref in bracket.cancelling:
                continue
            if other == "close" or OrderRef.parse(ref).attempt > 1:
                bracket.cancelling.add(ref)
                commands.append(
                    CancelOrder(ref=ref, reason="the position is closed: nothing to protect")
                )
        return commands

    def _closed(self, bracket: _Bracket, leg: str, fill: OrderFilled, now: float) -> list[Command]:
        realized = (bracket.proceeds - bracket.cost) * MULTIPLIER
        self.realized += realized
        self.cool_until = now + self.params.cooldown
        kind = {"tp": "take-profit", "sl": "stop-out"}.get(leg, "exit")
        self.closed_ids.add(bracket.id)
        return [
            Alert(
                symbol=self.symbol,
                kind=kind,
                message=f"{self.name}: {kind} on {bracket.option.replace(' ', '')}: sold "
                f"{bracket.sold} at {fill.price}, realized {realized.quantize(Decimal('0.01'))}",
                severity=Severity.INFO if leg == "tp" else Severity.WARNING,
            )
        ]

    def _ended(self, ref: str, why: str, now: float, failed: bool = False) -> list[Command]:
        bracket = self._bracket_of(ref)
        if bracket is None:
            return []
        leg = bracket.leg_of(ref)
        if leg is None or ref not in bracket.working:
            return []
        bracket.working.discard(ref)
        if leg == "entry":
            bracket.entry_done = True
            if bracket.bought > 0:
                return self._protect(bracket, now)
            # Nothing bought: the exits go with their parent.
            for exit_leg in ("tp", "sl"):
                bracket.working.discard(bracket.refs.get(exit_leg, ""))
            return self._entry_gone(bracket, why, now, failed)
        bracket.cancelling.discard(ref)
        if failed:
            bracket.failures[leg] = bracket.failures.get(leg, 0) + 1
        if bracket.held <= 0:
            return []
        if leg == "close":
            # A market sell that did not go: nothing more can be done by rule. Fail closed
            # (no new entries) and tell the operator, who holds an unprotected position.
            return self.halt(
                f"{bracket.held} {bracket.option.replace(' ', '')} held and the close {why}; "
                "it is placed again at the next reconciliation"
            )
        if bracket.closing is not None:
            return self._close(bracket, bracket.closing)
        return self._protect(bracket, now)

    def _entry_gone(self, bracket: _Bracket, why: str, now: float, failed: bool) -> list[Command]:
        alert = self._alert("entry-ended", f"{self.name}: entry {bracket.refs['entry']} {why}")
        params = self.params
        replace = (
            not failed
            and params.on_timeout == "replace"
            and self.replaces < params.max_replaces
            and self.halted is None
            and self.last_signal is not None
            and self.bar_end is not None
        )
        if not replace:
            return [alert]
        assert self.last_signal is not None
        assert self.bar_end is not None
        decision = bracket.id.split(".")[0]
        self.seeking = (decision, self.last_signal, self.replaces + 1)
        local = self.bar_end.astimezone(NEW_YORK)
        return [alert, self._find(decision, self.last_signal, local)]

    def _protect(self, bracket: _Bracket, now: float) -> list[Command]:
        """Contracts are held: both exits working for them, or a close in progress."""
        if bracket.held <= 0 or bracket.closing is not None:
            return []
        missing = [leg for leg in ("tp", "sl") if bracket.refs.get(leg) not in bracket.working]
        if not missing:
            return []
        if len(missing) == 1 and bracket.sold > 0 and bracket.held <= 0:
            return []
        if any(bracket.failures.get(leg, 0) >= 2 for leg in missing) or bracket.held < 0:
            return self._close(bracket, "an exit could not be placed")
        commands: list[Command] = []
        for leg in missing:
            ref = self._next_ref(bracket, leg)
            bracket.refs[leg] = ref
            bracket.working.add(ref)
            commands.append(
                PlaceOrder(
                    ref=ref,
                    symbol=bracket.option,
                    side=Side.SELL,
                    quantity=bracket.held,
                    limit=bracket.take_profit if leg == "tp" else None,
                    stop=bracket.stop if leg == "sl" else None,
                    tif=TimeInForce.GTC,
                    outside_rth=False,
                    oca=bracket.group,
                )
            )
        commands.append(
            self._alert(
                "exit-replaced",
                f"{self.name}: {bracket.held} {bracket.option.replace(' ', '')} held without "
                f"{' and '.join(missing)}: placed again",
            )
        )
        return commands

    def _close(self, bracket: _Bracket, why: str) -> list[Command]:
        """Close what is held: cancel the exits, and once none works (their cancels
        confirmed: until then they still offer the contracts), sell at the market."""
        commands: list[Command] = []
        if bracket.closing is None:
            bracket.closing = why
            commands.append(
                self._alert(
                    "closing",
                    f"{self.name}: closing {bracket.held} {bracket.option.replace(' ', '')}: {why}",
                )
            )
        for leg in ("tp", "sl"):
            ref = bracket.refs.get(leg)
            if ref is not None and ref in bracket.working and ref not in bracket.cancelling:
                bracket.cancelling.add(ref)
                commands.append(CancelOrder(ref=ref, reason=f"closing: {why}"))
        exits_working = any(bracket.refs.get(leg) in bracket.working for leg in ("tp", "sl"))
        if exits_working or bracket.held <= 0 or bracket.refs.get("close") in bracket.working:
            return commands
        ref = self._next_ref(bracket, "close")
        bracket.refs["close"] = ref
        bracket.working.add(ref)
        commands.append(
            PlaceOrder(
                ref=ref,
                symbol=bracket.option,
                side=Side.SELL,
                quantity=bracket.held,
                limit=None,
                tif=TimeInForce.DAY,
                outside_rth=False,
            )
        )
        return commands

    def _next_ref(self, bracket: _Bracket, leg: str) -> str:
        previous = bracket.refs.get(leg)
        attempt = OrderRef.parse(previous).attempt + 1 if previous else 1
        return str(
            OrderRef(
                strategy=self.name, symbol=self.symbol, tag=f"{bracket.id}:{leg}", attempt=attempt
            )
        )

    def _timer(self, now: float) -> list[Command]:
        bracket = self.bracket
        if bracket is None:
            return []
        entry = bracket.refs.get("entry")
        if entry in bracket.working and now - bracket.placed_at >= self.params.entry_timeout:
            bracket.placed_at = float("inf")  # one cancel; its answer ends the entry
            return [CancelOrder(ref=str(entry), reason="timeout: not filled in time")]
        return []

    def _expiry_close(self, now: float) -> list[Command]:
        if self.bar_end is None:
            return []
        local = self.bar_end.astimezone(NEW_YORK)
        commands: list[Command] = []
        for bracket in self._open():
            if bracket.held <= 0 or bracket.closing is not None:
                continue
            expiry = OptionSymbol.parse(bracket.option).expiry
            close_at = datetime.combine(expiry, _CLOSE, NEW_YORK) - timedelta(
                minutes=self.params.close_before_expiry
            )
            # Closed at the last bar's end before the close-out time: the next bar would end
            # after it (a 15:45 close-out on minute bars, 15:00 on hours).
            if local + self.bar_size > close_at:
                commands += self._close(bracket, f"its expiry {expiry} closes at 16:00")
        return commands

    def _alert(self, kind: str, message: str, severity: Severity = Severity.WARNING) -> Alert:
        return Alert(symbol=self.symbol, kind=kind, message=message, severity=severity)


class OptionsKind:
    """An options strategy of one underlying (``scalp`` or ``whale``)."""

    adopts_shares = False
    """It trades options: shares of the underlying nobody explains are not adopted by it."""
    remembers = True
    """It keeps a durable memory (the whale's debounce): its host loads it at every start."""

    def __init__(self, params: OptionsParams, name: str = SCALP) -> None:
        if name not in NAMES:
            raise ValueError(f"an options strategy is one of {', '.join(NAMES)}, not {name!r}")
        self.params = params
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @property
    def symbol(self) -> str:
        return self.params.symbol

    @property
    def needs(self) -> Needs:
        # Its signal's bars are also its clock (the expiry close), regular hours only;
        # warmed up with what its rule needs (the whale: its whole lookback of hours).
        if self.name == SCALP:
            return Needs(
                ticks=False,
                bars=(MINUTE,),
                sessions="regular",
                warmup=ScalpRule(self.params.scalp).warmup,
            )
        return Needs(
            ticks=False,
            bars=(HOUR,),
            sessions="regular",
            warmup=WhaleRule(self.params.whale).warmup_bars,
        )

    def restore(self, facts: Facts) -> OptionsStrategy:
        last = facts.memory.get(WHALE_KEY)
        strategy = OptionsStrategy(
            self.params,
            self.name,
            last_whale=None if last is None else datetime.fromisoformat(last),
        )
        brackets: dict[str, _Bracket] = {}
        for intent in facts.intents:
            try:
                ref = OrderRef.parse(intent.ref)
            except ValueError:
                continue
            parts = ref.tag.split(":")
            if len(parts) != 2 or parts[1] not in LEGS:
                continue
            bracket_id, leg = parts
            order = intent.order
            bracket = brackets.get(bracket_id)
            if bracket is None:
                bracket = brackets[bracket_id] = _Bracket(
                    id=bracket_id,
                    option=order.symbol,
                    contracts=order.quantity,
                    group=order.oca or f"{route(self.name, self.symbol)}:{bracket_id}",
                )
            previous = bracket.refs.get(leg)
            if previous is None or OrderRef.parse(previous).attempt < ref.attempt:
                bracket.refs[leg] = intent.ref
            if leg == "entry":
                bracket.contracts = order.quantity
                bracket.placed_at = facts.placed_at.get(intent.ref, facts.now)
            elif leg == "tp":
                bracket.take_profit = order.limit
            elif leg == "sl":
                bracket.stop = order.stop
            if intent.ref in facts.working:
                bracket.working.add(intent.ref)
        by_ref = {intent.ref: intent for intent in facts.intents}
        for fill in facts.fills:
            found = by_ref.get(fill.ref)
            if found is None:
                continue
            parts = OrderRef.parse(fill.ref).tag.split(":")
            if len(parts) != 2 or parts[0] not in brackets:
                continue
            bracket = brackets[parts[0]]
            if found.order.side is Side.BUY:
                bracket.bought += fill.quantity
                bracket.cost += fill.price * fill.quantity
            else:
                bracket.sold += fill.quantity
                bracket.proceeds += fill.price * fill.quantity
        strategy.decided = {bracket_id.split(".")[0] for bracket_id in brackets}
        for bracket in brackets.values():
            # Only the working exits that protect contracts held are live: an exit working
            # while nothing is held (its sibling filled, a lost OCA cancel) is an orphan
            # child the host cancels; an entry still working keeps its exits.
            if bracket.held <= 0 and bracket.refs.get("entry") not in bracket.working:
                bracket.working -= {bracket.refs.get(leg) for leg in ("tp", "sl", "close")}
            bracket.entry_done = bracket.refs.get("entry") not in bracket.working
            if not bracket.working and bracket.held <= 0:
                if bracket.bought:
                    strategy.realized += (bracket.proceeds - bracket.cost) * MULTIPLIER
                strategy.closed_ids.add(bracket.id)
            else:
                strategy.older[bracket.id] = bracket
        if strategy.older:
            # The latest open bracket is the strategy's; earlier open ones stay protected.
            strategy.bracket = strategy.older.pop(list(strategy.older)[-1])
        return strategy

    def adopt(self, shares: int, average_cost: Decimal, taken: Collection[str]) -> PlaceOrder:
        """Shares of the underlying are not this strategy's business (it trades options): it
        adopts none, and the symbol's owner should be a share-trading strategy. Raises."""
        raise ValueError(
            f"{self.name}:{self.symbol} trades options and adopts no shares of "
            f"{self.symbol} ({shares} at {average_cost})"
        )
