"""The symbol actor: hosts one symbol's grid and carries out its decisions, one event at a time.

* Every ``PlaceOrder`` is committed as an intent with the lot-keeper before it is sent: no order
  without a durable intent, so the same decision can never place two orders.
* Every execution is recorded (exactly once, by execId) before the strategy sees it, so a lot's
  sell is never placed for a fill the ledger does not hold; a duplicate is dropped there.
* A timer tick every ``timer_interval`` seconds drives the level-0 fill timeout and retries.
"""

from __future__ import annotations

import logging

import attrs

from runtime import Actor, ActorRef

from .lot_keeper import CommitIntent, LotKeeperInbox, RecordFill, Refused
from .messages import (
    Alert,
    CancelOrder,
    Command,
    OrderAccepted,
    OrderCancelled,
    OrderFilled,
    OrderRejected,
    PlaceOrder,
    PriceTick,
)
from .strategies.grid import GridStrategy

log = logging.getLogger("actortrade.symbol")


@attrs.frozen(kw_only=True)
class TimerTick:
    pass


SymbolInbox = PriceTick | OrderAccepted | OrderFilled | OrderCancelled | OrderRejected | TimerTick


class SymbolActor(Actor[SymbolInbox]):
    def __init__(
        self,
        strategy: GridStrategy,
        *,
        lot_keeper: ActorRef[LotKeeperInbox],
        broker: ActorRef[PlaceOrder | CancelOrder],
        alerts: list[Alert] | None = None,
        timer_interval: float = 1.0,
        request_timeout: float = 30.0,
    ) -> None:
        self.strategy = strategy
        self.lot_keeper = lot_keeper
        self.broker = broker
        self.alerts = alerts if alerts is not None else []
        self.timer_interval = timer_interval
        self.request_timeout = request_timeout

    async def background(self) -> None:
        while True:
            await self.context.clock.sleep(self.timer_interval)
            self.context.self_ref.tell(TimerTick())

    async def handle(self, message: SymbolInbox) -> None:
        now = self.context.clock.monotonic()
        strategy = self.strategy
        match message:
            case PriceTick(price=price):
                commands = strategy.on_price(price, now)
            case OrderAccepted():
                commands = strategy.on_accepted(message)
            case OrderFilled():
                recorded = await self.lot_keeper.request(
                    RecordFill(fill=message), timeout=self.request_timeout
                )
                if isinstance(recorded, Refused):
                    commands = [self._alert("fill-refused", recorded.reason)]
                elif recorded is False:
                    commands = []  # a duplicate execution: the ledger already has it
                else:
                    commands = strategy.on_filled(message, now)
            case OrderCancelled():
                commands = strategy.on_cancelled(message, now)
            case OrderRejected():
                commands = strategy.on_rejected(message, now)
            case TimerTick():
                commands = strategy.on_timer(now)
        await self._carry_out(commands)

    async def _carry_out(self, commands: list[Command]) -> None:
        for command in commands:
            match command:
                case PlaceOrder():
                    committed = await self.lot_keeper.request(
                        CommitIntent(order=command), timeout=self.request_timeout
                    )
                    if isinstance(committed, Refused):
                        self._record(self._alert("intent-refused", committed.reason))
                        continue
                    await self.context.send(self.broker, command)
                case CancelOrder():
                    await self.context.send(self.broker, command)
                case Alert():
                    self._record(command)

    def _alert(self, kind: str, message: str) -> Alert:
        return Alert(symbol=self.strategy.params.symbol, kind=kind, message=message)

    def _record(self, alert: Alert) -> None:
        log.warning("%s %s: %s", alert.symbol, alert.kind, alert.message)
        self.alerts.append(alert)
