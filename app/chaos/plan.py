"""Scenarios for the deterministic simulation: a seed gives the market (a few sessions of bars
with clock jumps across nights, weekends and holidays, price gaps through several grid levels,
thin stretches that fill orders in parts) and a fault plan (which fault, at which step).

Everything here is a pure function of the seed: ``scenario(seed)`` always returns the same
scenario, and the harness runs it the same way every time (``app.chaos.harness``).
"""

from __future__ import annotations

import enum
import itertools
import random
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import attrs

from actors.domain import Bar
from actors.domain.sessions import is_trading_day, nyse_holidays
from sim.options import nearest_expiry
from sim.replay import generated_session

from .strategy_sets import BAR_MESSAGES as BAR_MESSAGES
from .strategy_sets import BAR_TARGETS as BAR_TARGETS
from .strategy_sets import OPTION_MESSAGES as OPTION_MESSAGES
from .strategy_sets import OPTIONS_WEIGHTS as OPTIONS_WEIGHTS
from .strategy_sets import STRATEGY_WEIGHTS as STRATEGY_WEIGHTS
from .strategy_sets import BarStrategy as BarStrategy
from .strategy_sets import ScalpStrategy as ScalpStrategy
from .strategy_sets import StrategySet as StrategySet

CENT = Decimal("0.01")


class Kind(enum.StrEnum):
    """A fault the harness injects at a step (``docs/chaos.md`` describes each)."""

    KILL = "kill"
    """The supervisor kills ``target`` now (a cancellation: no cleanup, no reply)."""
    KILL_AT_MESSAGE = "kill-at-message"
    """``target`` dies at its ``n``-th next message of type ``message`` (any type if empty):
    ``before`` handling it (the message is lost), ``during`` (killed at the handler's first
    await) or ``after`` (handled, no reply)."""
    STORE_ABORT = "store-abort"
    """The lot-keeper dies in the middle of its ``n``-th next transaction: nothing of it kept."""
    STORE_AFTER_COMMIT = "store-after-commit"
    """The lot-keeper dies right after its ``n``-th next commit, before replying."""
    SUBMIT_CRASH = "submit-crash"
    """The broker actor dies after its ``n``-th next order reached the venue, before reading
    the acknowledgement."""
    DISCONNECT = "disconnect"
    """The venue drops the connection."""
    DISCONNECT_MID_FILL = "disconnect-mid-fill"
    """The ``n``-th next event is lost and the connection drops right after it."""
    VENUE_RESTART = "venue-restart"
    """The venue's nightly restart: DAY orders cancelled, every connection dropped."""
    DUPLICATE_EVENT = "duplicate-event"
    """The next notification is delivered twice."""
    REORDER_EVENTS = "reorder-events"
    """The next two notifications are delivered swapped."""
    DUPLICATE_FILL = "duplicate-fill"
    """The venue reports its next execution twice (same execId)."""
    DELAY = "delay"
    """Notifications are held back for ``n`` steps, then delivered in order."""
    REJECT = "reject"
    """The venue rejects the next order."""
    OPERATOR_CANCEL = "operator-cancel"
    """Someone cancels one of the strategies' working orders at the broker (in TWS, say)."""
    CRASH = "crash"
    """The whole process dies (every actor at once, no cleanup); a new one starts on the same
    data directory and venue."""
    STORM = "storm"
    """The broker is killed again and again until the root's restart intensity is exceeded:
    the service must stop with a clear error; a new one is then started."""
    VENUE_AMNESIA = "venue-amnesia"
    """The whole process dies and the venue comes back without its ``n`` most recent inputs
    (a journal cut short: a power loss before it was on disk, or an operator's hand): it works
    again orders that had filled or were cancelled, has forgotten executions the ledger holds,
    and reissues their order and execution ids. No real broker does this; the ledger and the
    reconciliation must survive it all the same: never short, no execution id taken with two
    different contents, the symbol halted rather than guessing."""
    KILL_AFTER_COMMIT = "kill-after-commit"
    """``target`` (the options strategy's symbol actor) dies once the lot-keeper has committed
    its ``n``-th next bracket, before it reads the answer: the three intents are on record and
    nothing was sent."""
    DISCONNECT_MID_BRACKET = "disconnect-mid-bracket"
    """The connection drops as the ``n``-th next bracket is sent, after its entry reached the
    venue and before its exits did (the entry's acknowledgement is lost with it): the venue
    cancels the half-placed bracket."""
    OUTAGE = "outage"
    """The whole process dies and stays down for ``n`` bars of the market: the venue trades on
    (its orders fill, its options expire at 16:00) with nothing of ours running; then a new
    one starts on the same data directory and venue."""


EXIT = "option-exit"
"""The target of the faults aimed at an options bracket's exits (a lost cancel, an operator's
cancel)."""
TARGETS = ("lot-keeper", "broker", "symbols/symbol.TQQQ", "reconciler", "market-data", "symbols")
"""What KILL and KILL_AT_MESSAGE aim at: actor paths under the root (``symbols`` is the
symbol actors' supervisor)."""
FLAVOURS = ("before", "during", "after")
MESSAGES = {
    "lot-keeper": ("CommitIntent", "RecordFill", "Heal", "BindOrder", "LoadLedger", ""),
    "broker": ("PlaceOrder", "CancelOrder", "Poll", "Snapshot", ""),
    "symbols/symbol.TQQQ": (
        "PriceTick",
        "OrderAccepted",
        "OrderFilled",
        "OrderCancelled",
        "OrderRejected",
        "Resync",
        "",
    ),
    "reconciler": ("Reconcile",),
}
"""The message types a KILL_AT_MESSAGE fault may wait for, per target ("" for any)."""

_WEIGHTS = {
    Kind.KILL: 6,
    Kind.KILL_AT_MESSAGE: 10,
    Kind.STORE_ABORT: 4,
    Kind.STORE_AFTER_COMMIT: 4,
    Kind.SUBMIT_CRASH: 4,
    Kind.DISCONNECT: 3,
    Kind.DISCONNECT_MID_FILL: 4,
    Kind.VENUE_RESTART: 2,
    Kind.DUPLICATE_EVENT: 3,
    Kind.REORDER_EVENTS: 3,
    Kind.DUPLICATE_FILL: 3,
    Kind.DELAY: 3,
    Kind.REJECT: 3,
    Kind.OPERATOR_CANCEL: 3,
    Kind.CRASH: 3,
    Kind.STORM: 1,
}
AMNESIA_SHARE = 0.25
"""The share of scenarios with a ``VENUE_AMNESIA`` fault, drawn from a stream of its own so
that every other scenario is what it was before that fault existed (seeds stay comparable
across campaigns)."""


@attrs.frozen(kw_only=True)
class Fault:
    step: int
    """Injected after this many completed replay steps (1 = after the first trade)."""
    kind: Kind
    target: str = ""
    n: int = 1
    flavour: str = ""
    message: str = ""

    def __str__(self) -> str:
        details = [self.target, self.message, self.flavour, f"n={self.n}" if self.n != 1 else ""]
        return f"step {self.step}: {self.kind}" + "".join(f" {d}" for d in details if d)


@attrs.frozen(kw_only=True)
class Scenario:
    seed: int
    bars: tuple[Bar, ...]
    faults: tuple[Fault, ...]
    days: tuple[date, ...]
    """The sessions replayed, in order (the venue's clock jumps between them)."""
    gaps: tuple[Decimal, ...]
    """Price gaps (as fractions, negative down) applied to the bars."""
    thin: int
    """Bars made thin (tiny volume), where orders fill in parts."""
    settle_every: int
    """Steps between settle points (a reconciliation, then the agreement invariants)."""
    reconcile_interval: float
    strategies: StrategySet = StrategySet.GRID
    bar: BarStrategy | None = None
    """The bar strategy's parameters (None for the grid alone)."""
    options: ScalpStrategy | None = None
    """The options strategy's parameters (None for the sets of shares alone)."""
    expiry: date | None = None
    """An options set's expiry variant: the day whose session runs through the 16:00 close
    of the option the bot may have bought the session before (None: no such variant)."""

    @property
    def steps(self) -> int:
        return 4 * len(self.bars)

    def shape(self) -> Counter[str]:
        """The scenario's market events, counted like faults: clock jumps, gaps, thin bars."""
        counts: Counter[str] = Counter()
        for before, after in zip(self.days, self.days[1:], strict=False):
            skipped = (after - before).days - 1
            holiday = any(
                before + timedelta(days=i) in nyse_holidays(before.year)
                for i in range(1, skipped + 1)
            )
            counts["clock-jump:holiday" if holiday else "clock-jump:night"] += 1
        counts["price-gap"] += len(self.gaps)
        if self.thin:
            counts["partial-fills:thin-market"] += 1
        return counts


# First days whose following sessions cross weekends and NYSE holidays (Thanksgiving,
# Christmas, New Year, Martin Luther King day, Good Friday).
_FIRST_DAYS = (
    date(2026, 11, 24),
    date(2026, 11, 25),
    date(2026, 12, 23),
    date(2026, 12, 31),
    date(2027, 1, 14),
    date(2027, 3, 25),
    date(2026, 11, 20),
)


OPTIONS_SHARE = sum(OPTIONS_WEIGHTS.values()) / 100
"""The share of scenarios with an options set (``strategy_sets.OPTIONS_WEIGHTS``)."""
EXPIRY_SHARE = 0.5
"""The share of options scenarios whose sessions allow it that take the expiry variant."""
OUTAGE_SHARE = 0.6
"""The share of expiry variants in which the process is down across the expiry's close."""
_OPEN, _CLOSE = 330, 720
"""The regular session's first and last (excluded) bars of a generated day (04:00-20:00)."""


def drawn_set(seed: int) -> StrategySet:
    """The strategy set of ``seed``: an options set, drawn first from a stream of its own
    (``OPTIONS_WEIGHTS``), or else the draw of ``STRATEGY_WEIGHTS`` from the strategy sets'
    stream, as it was before the options sets."""
    options = random.Random(f"options:{seed}")
    if options.random() < OPTIONS_SHARE:
        return options.choices(list(OPTIONS_WEIGHTS), weights=list(OPTIONS_WEIGHTS.values()))[0]
    rng = random.Random(f"strategies:{seed}")
    return rng.choices(list(STRATEGY_WEIGHTS), weights=list(STRATEGY_WEIGHTS.values()))[0]


def scenario(seed: int, strategies: StrategySet | None = None) -> Scenario:
    """The scenario of ``seed`` (with ``strategies`` rather than the set it draws: the market,
    the faults of the grid alone and the bar strategy's parameters stay the seed's; an options
    set moves each session's window into the regular session, where options trade)."""
    rng = random.Random(seed)
    chosen = strategies if strategies is not None else drawn_set(seed)
    odds = random.Random(f"options-plan:{seed}") if chosen.options is not None else None
    days = _days(rng.choice(_FIRST_DAYS), rng.randint(2, 3))
    expiry = _expiring(days) if odds is not None else None
    if odds is not None and expiry is not None and odds.random() >= EXPIRY_SHARE:
        expiry = None
    bars: list[Bar] = []
    price = Decimal("52.00")
    closing: int | None = None
    """An expiry variant's bar (index in ``bars``) 15:40 on the expiry day."""
    for day in days:
        session = generated_session(seed=rng.randrange(1 << 30), day=day, start_price=price)
        length = rng.randint(20, 50)
        start = rng.randrange(0, len(session) - length)
        if odds is not None:
            start, length = _regular(start, length, day, days, expiry)
            if day == expiry:
                closing = len(bars) + (_CLOSE - 20) - start
        window = session[start : start + length]
        window = _amplified(window, Decimal(rng.choice(("1.5", "2", "3", "4"))))
        bars.extend(window)
        price = window[-1].close
    gaps: list[Decimal] = []
    for _ in range(rng.choice((0, 1, 1, 2))):
        at = rng.randrange(1, len(bars))
        gap = Decimal(rng.choice(("-0.025", "-0.035", "-0.05", "-0.07", "0.025", "0.04")))
        bars[at:] = [_scaled(bar, 1 + gap) for bar in bars[at:]]
        gaps.append(gap)
    thin = 0
    if rng.random() < 0.5:
        at = rng.randrange(0, len(bars))
        thin = min(rng.randint(10, 40), len(bars) - at)
        bars[at : at + thin] = [
            attrs.evolve(bar, volume=rng.randint(40, 400)) for bar in bars[at : at + thin]
        ]
    steps = 4 * len(bars)
    drawn = [_fault(rng, steps) for _ in range(rng.randint(3, 10))]
    amnesia = random.Random(f"amnesia:{seed}")
    if amnesia.random() < AMNESIA_SHARE:
        drawn.append(
            Fault(
                step=amnesia.randrange(1, steps),
                kind=Kind.VENUE_AMNESIA,
                n=amnesia.randint(1, 160),
            )
        )
    options = None
    if odds is not None:
        options = _options(odds, steps, drawn, chosen, expiry, closing)
        strategies, bar = chosen, None
    else:
        strategies, bar = _strategy_set(seed, steps, drawn, strategies)
    faults = sorted(drawn, key=lambda f: f.step)
    return Scenario(
        seed=seed,
        bars=tuple(bars),
        faults=tuple(faults),
        days=tuple(days),
        gaps=tuple(gaps),
        thin=thin,
        settle_every=rng.choice((40, 80, 160)),
        reconcile_interval=rng.choice((60.0, 300.0)),
        strategies=strategies,
        bar=bar,
        options=options,
        expiry=expiry,
    )


def _expiring(days: list[date]) -> date | None:
    # A session after the first that is the nearest expiry a day or more after the one before
    # it: an option the scalp buys then (``min_dte`` 1) expires at this session's close.
    for before, day in itertools.pairwise(days):
        if nearest_expiry(before, min_days=1) == day:
            return day
    return None


def _regular(
    start: int, length: int, day: date, days: list[date], expiry: date | None
) -> tuple[int, int]:
    # An options set's window of a session (the same draws: the grid's faults and the rest of
    # the market stay the seed's), in the regular session where options trade, 20 bars longer
    # (the scalp warms up on its first bars). The expiry variant's sessions: the one before
    # the expiry ends at the close (an entry late in it is held overnight), the expiry's runs
    # from before the 15:45 close-out through 16:00 into the evening (the venue settles at the
    # first trade after the close).
    length += 20
    if expiry is not None and day == expiry:
        return _CLOSE - 20 - length % 20, length % 20 + 30
    after = days.index(day) + 1
    if expiry is not None and after < len(days) and days[after] == expiry:
        return _CLOSE - length, length
    return _OPEN + start % (_CLOSE - _OPEN - length), length


def _options(
    rng: random.Random,
    steps: int,
    faults: list[Fault],
    chosen: StrategySet,
    expiry: date | None,
    closing: int | None,
) -> ScalpStrategy:
    """The scalp's parameters, from the options stream, and its faults added to ``faults``:
    kills of its symbol actor (at its bars, timer, bracket events, re-sync), of the lot-keeper
    as it commits a bracket, of the symbol actor between a bracket's commit and its sending;
    the broker dying or the connection dropping as a bracket is sent; an exit's cancel lost
    with the connection (its OCA sibling filled); an operator cancelling an exit; the process
    down for a while (in the expiry variant, across the expiry's close)."""
    wide = expiry is not None
    scalp = ScalpStrategy(
        rsi_period=rng.randint(4, 8),
        volume_window=rng.randint(4, 10),
        oversold=rng.choice((35, 40, 45)),
        overbought=rng.choice((55, 60, 65)),
        volume_factor=Decimal(rng.choice(("0.5", "0.8", "1.0"))),
        # The expiry variant's exits are far, so that a position bought late the session
        # before lasts overnight (a day's time value lost) into the expiry's close-out.
        tp_pct=rng.choice((100, 150)) if wide else rng.choice((10, 15, 20)),
        sl_pct=rng.choice((85, 90)) if wide else rng.choice((20, 25, 30)),
        max_contracts=rng.choice((1, 2, 2, 3)),
        cooldown=float(rng.choice((60, 120, 300))),
        entry_timeout=float(rng.choice((30, 60, 120))),
        on_timeout=rng.choice(("cancel", "replace")),
    )
    cell = "symbols/symbol.TQQQ" if not chosen.grid else "symbols/symbol.TQQQ.scalp"
    for _ in range(rng.randint(2, 5)):
        step = rng.randrange(1, steps)
        roll = rng.random()
        if roll < 0.12:
            faults.append(Fault(step=step, kind=Kind.KILL, target=rng.choice((cell, *BAR_TARGETS))))
        elif roll < 0.42:
            faults.append(
                Fault(
                    step=step,
                    kind=Kind.KILL_AT_MESSAGE,
                    target=cell,
                    n=rng.randint(1, 3),
                    flavour=rng.choice(FLAVOURS),
                    message=rng.choice(OPTION_MESSAGES),
                )
            )
        elif roll < 0.50:
            faults.append(
                Fault(
                    step=step,
                    kind=Kind.KILL_AT_MESSAGE,
                    target="lot-keeper",
                    flavour=rng.choice(FLAVOURS),
                    message="CommitBracket",
                )
            )
        elif roll < 0.58:
            faults.append(
                Fault(step=step, kind=Kind.KILL_AFTER_COMMIT, target=cell, n=rng.randint(1, 2))
            )
        elif roll < 0.64:
            faults.append(Fault(step=step, kind=Kind.SUBMIT_CRASH, n=rng.randint(1, 2)))
        elif roll < 0.70:
            faults.append(Fault(step=step, kind=Kind.DISCONNECT_MID_BRACKET, n=rng.randint(1, 2)))
        elif roll < 0.82:
            faults.append(
                Fault(
                    step=step,
                    kind=Kind.DISCONNECT_MID_FILL,
                    target=EXIT,
                    message="OrderCancelled",
                )
            )
        elif roll < 0.92:
            faults.append(
                Fault(step=step, kind=Kind.OPERATOR_CANCEL, target=EXIT, n=rng.randrange(1 << 16))
            )
        else:
            faults.append(Fault(step=step, kind=Kind.OUTAGE, n=rng.randint(3, 30)))
    if closing is not None and rng.random() < OUTAGE_SHARE:
        # Down from 15:40 to five minutes after the close: the bot's own close-out at 15:45
        # never comes; the venue settles what it holds.
        faults.append(Fault(step=4 * closing, kind=Kind.OUTAGE, n=25))
    return scalp


def _strategy_set(
    seed: int, steps: int, faults: list[Fault], force: StrategySet | None = None
) -> tuple[StrategySet, BarStrategy | None]:
    """The scenario's strategy set and bar strategy, from a stream of their own (see
    ``STRATEGY_WEIGHTS``); a bar strategy adds faults aimed at it to ``faults``: kills of its
    symbol actor and of the market-data actor, and deaths at its bars, timer and order events."""
    rng = random.Random(f"strategies:{seed}")
    drawn = rng.choices(list(STRATEGY_WEIGHTS), weights=list(STRATEGY_WEIGHTS.values()))[0]
    chosen = force if force is not None else drawn
    name = chosen.bar_strategy
    if name is None:
        return chosen, None
    notional = Decimal(rng.choice((3_000, 6_000, 10_000, 16_000)))
    order_type = rng.choice(("limit", "limit", "market"))
    if name == "ma_cross":
        fast = rng.randint(3, 5)
        bar = BarStrategy(
            name=name,
            target_notional=notional,
            order_type=order_type,
            fast=fast,
            slow=rng.randint(max(8, fast + 1), 15),
        )
    else:
        bar = BarStrategy(
            name=name,
            target_notional=notional,
            order_type=order_type,
            lookback=rng.randint(5, 15),
            threshold=Decimal(rng.choice(("0", "0.001", "0.002", "0.004"))),
        )
    cell = "symbols/symbol.TQQQ" if not chosen.grid else f"symbols/symbol.TQQQ.{name}"
    for _ in range(rng.randint(1, 4)):
        step = rng.randrange(1, steps)
        if rng.random() < 0.35:
            faults.append(Fault(step=step, kind=Kind.KILL, target=rng.choice((cell, *BAR_TARGETS))))
            continue
        faults.append(
            Fault(
                step=step,
                kind=Kind.KILL_AT_MESSAGE,
                target=cell,
                n=rng.randint(1, 3),
                flavour=rng.choice(FLAVOURS),
                message=rng.choice(BAR_MESSAGES),
            )
        )
    return chosen, bar


def _days(first: date, count: int) -> list[date]:
    days: list[date] = []
    day = first
    while len(days) < count:
        if is_trading_day(day):
            days.append(day)
        day += timedelta(days=1)
    return days


def _fault(rng: random.Random, steps: int) -> Fault:
    kind = rng.choices(list(_WEIGHTS), weights=list(_WEIGHTS.values()))[0]
    step = rng.randrange(1, steps)
    match kind:
        case Kind.KILL:
            return Fault(step=step, kind=kind, target=rng.choice(TARGETS))
        case Kind.KILL_AT_MESSAGE:
            target = rng.choice(sorted(MESSAGES))
            return Fault(
                step=step,
                kind=kind,
                target=target,
                n=rng.randint(1, 3),
                flavour=rng.choice(FLAVOURS),
                message=rng.choice(MESSAGES[target]),
            )
        case Kind.STORE_ABORT | Kind.STORE_AFTER_COMMIT | Kind.SUBMIT_CRASH:
            return Fault(step=step, kind=kind, n=rng.randint(1, 3))
        case Kind.DISCONNECT_MID_FILL:
            return Fault(step=step, kind=kind, n=rng.randint(1, 3))
        case Kind.DELAY:
            return Fault(step=step, kind=kind, n=rng.randint(1, 12))
        case Kind.OPERATOR_CANCEL:
            return Fault(step=step, kind=kind, n=rng.randrange(1 << 16))
        case _:
            return Fault(step=step, kind=kind)


def _amplified(bars: list[Bar], factor: Decimal) -> list[Bar]:
    """The window with its moves around its first open multiplied by ``factor``: enough
    movement in an hour to fill and close several lots."""
    anchor = bars[0].open

    def move(price: Decimal) -> Decimal:
        return max(CENT, (anchor + (price - anchor) * factor).quantize(CENT))

    return [
        attrs.evolve(
            bar,
            open=move(bar.open),
            high=move(bar.high),
            low=move(bar.low),
            close=move(bar.close),
        )
        for bar in bars
    ]


def _scaled(bar: Bar, factor: Decimal) -> Bar:
    def scale(price: Decimal) -> Decimal:
        return max(CENT, (price * factor).quantize(CENT))

    return attrs.evolve(
        bar,
        open=scale(bar.open),
        high=scale(bar.high),
        low=scale(bar.low),
        close=scale(bar.close),
    )
