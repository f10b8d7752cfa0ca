"""Option data from Interactive Brokers through ib_insync (``actors.option_data.OptionData``),
on a connection of its own (its own clientId), opened at the first call and kept open; a
connection found dropped is opened again at the next call; ``close`` ends it.

* ``chain``: the underlying qualified as ``Stock(underlying, "SMART", "USD")``, then
  ``reqSecDefOptParams(underlying, "", "STK", conId)``. IB answers one entry per exchange and
  trading class; the chain is the SMART entry whose trading class is the underlying's symbol
  (the standard contracts; others are adjusted ones, after a split or a merger, say), or
  else the first SMART entry. Cached for the New York day (``ChainCache``); an answer without
  a SMART entry raises ``OptionDataError`` (and is not cached).
* ``quote``: the option of the OCC symbol qualified (``reqContractDetails``; if IB finds several,
  the one whose trading class is the underlying's), then streamed (``reqMktData`` with generic
  ticks 100 and 101: IB refuses them in a snapshot) until bid, ask, the option's volume and
  open interest (call or put ticks, as its right) have arrived, or ``quote_timeout`` seconds;
  then cancelled. What arrived is the quote (``parse_quote``: IB's -1 and NaN are no value).
* ``equity``: ``NetLiquidation`` of a fresh account summary (requested and cancelled at once:
  IB allows two summary subscriptions at a time), of ``account`` when given, in USD.

Every IB error for a request becomes ``OptionDataError`` with IB's code and message (notices,
such as 10167 "displaying delayed market data", are not errors), as does a connection that
cannot be made or drops, and a request unanswered within ``timeout``. Requests go through a
``Pacer`` (``requests_per_second``); ib_insync's own message throttle stays on besides.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import anyio
from ib_insync import IB, Contract, Option, RequestError, Stock

from config.schema import masked

from ..domain import MULTIPLIER, DomainError, OptionChain, OptionQuote, OptionSymbol
from ..option_data import ChainCache, OptionDataError, Pacer

log = logging.getLogger("actortrade.options.ib")

REQUESTS_PER_SECOND = 10
"""Our requests a second by default: a fifth of IB's 50 messages, which the connection's
cancels and ib_insync's start-up requests share."""
QUOTE_TIMEOUT = 3.0
NOTICES = frozenset({10090, 10167})
"""Error codes that tell about a market data request without ending it: 10090 (part of the
data is not subscribed, the rest comes), 10167 (delayed data displayed)."""
GENERIC_TICKS = "100,101"
"""Option volume (ticks 29, 30) and open interest (27, 28)."""


def _notice(code: int) -> bool:
    return code in NOTICES or 2100 <= code < 2200 or code in (1100, 1101, 1102)


class _Wake:
    """An event that re-arms once waited for: woken by ib_insync's callbacks."""

    def __init__(self) -> None:
        self._event = anyio.Event()

    def set(self, *_args: object) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()
        self._event = anyio.Event()


class IBOptionData:
    """``OptionData`` from TWS / IB Gateway at ``host:port`` as ``client_id`` (see the module
    doc). ``market_data_type`` 3 asks for delayed data (an account without the live
    subscription); ``clock`` dates the chain cache (the wall clock by default)."""

    name = "ib"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: int,
        account: str = "",
        timeout: float = 10.0,
        quote_timeout: float = QUOTE_TIMEOUT,
        market_data_type: int | None = None,
        requests_per_second: int = REQUESTS_PER_SECOND,
        pacer: Pacer | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.client_id = client_id
        self.account = account
        self.timeout = timeout
        self.quote_timeout = quote_timeout
        self.market_data_type = market_data_type
        self.pacer = pacer if pacer is not None else Pacer(requests_per_second)
        self.chains = ChainCache(clock if clock is not None else _wall_clock)
        self.ib: IB | None = None
        self.connects = 0
        """Connections opened so far (a reconnect after a drop is one more)."""
        self._connecting = anyio.Lock()
        self._stocks: dict[str, int] = {}
        self._options: tuple[date, dict[str, Contract]] = (date.min, {})
        """Today's qualified options by OCC symbol (IB's conIds do not change; the day keeps
        the map from growing)."""
        self._quoting: dict[str, anyio.Lock] = {}
        """One quote at a time per option (ib_insync keeps one ticker per contract object, and
        cancels by it), today's."""

    def __repr__(self) -> str:
        return f"IBOptionData({self.host}:{self.port}, clientId {self.client_id})"

    # -- the port ------------------------------------------------------------------------------

    async def chain(self, underlying: str) -> OptionChain:
        cached = self.chains.get(underlying)
        if cached is not None:
            return cached
        asked = f"the option chain of {underlying}"
        with self._asking(asked):
            ib = await self._connection()
            con_id = await self._stock(ib, underlying, asked)
            await self.pacer.wait()
            with anyio.fail_after(self.timeout):
                entries = await ib.reqSecDefOptParamsAsync(underlying, "", "STK", con_id)
        chain = parse_chain(underlying, entries)
        if chain is None:
            seen = ", ".join(sorted({f"{e.exchange}/{e.tradingClass}" for e in entries}))
            raise OptionDataError(
                self.name,
                asked,
                f"IB lists no options of it on SMART (it answered: {seen or 'none'})",
            )
        self.chains.put(chain)
        return chain

    async def quote(self, symbol: str) -> OptionQuote:
        asked = f"a quote of {symbol!r}"
        try:
            option = OptionSymbol.parse(symbol)
        except DomainError as exc:
            raise OptionDataError(self.name, asked, str(exc)) from None
        lock = self._quoting.setdefault(option.occ, anyio.Lock())
        async with lock:
            with self._asking(asked):
                ib = await self._connection()
                contract = await self._option(ib, option, asked)
                ticker = await self._stream(ib, contract, option, asked)
            return parse_quote(option.occ, option, ticker)

    async def equity(self) -> Decimal:
        asked = "the account's NetLiquidation"
        values: list[Any] = []
        with self._asking(asked):
            ib = await self._connection()
            await self.pacer.wait()
            # ib_insync's reqAccountSummaryAsync leaves the subscription open and hides its
            # reqId; IB refuses a third one (322): this one is cancelled once answered.
            # (startReq, reqAccountSummary and cancelAccountSummary are unannotated in ib_insync)
            req_id = ib.client.getReqId()
            answered = ib.wrapper.startReq(req_id)
            # one bound method: eventkit disconnects a builtin's by identity
            collect = values.append
            ib.accountSummaryEvent += collect
            try:
                ib.client.reqAccountSummary(req_id, "All", "NetLiquidation")
                with anyio.fail_after(self.timeout):
                    await answered
            finally:
                ib.accountSummaryEvent -= collect
                if ib.isConnected():
                    ib.client.cancelAccountSummary(req_id)
        return net_liquidation(values, self.account, source=self.name)

    async def close(self) -> None:
        if self.ib is not None:
            ib, self.ib = self.ib, None
            ib.disconnect()

    # -- requests ------------------------------------------------------------------------------

    @contextmanager
    def _asking(self, asked: str) -> Iterator[None]:
        where = f"{self.host}:{self.port}"
        try:
            yield
        except RequestError as exc:
            raise OptionDataError(
                self.name, asked, f"error {exc.code}: {exc.message}", code=exc.code
            ) from None
        except TimeoutError:
            raise OptionDataError(
                self.name, asked, f"IB at {where} did not answer within {self.timeout:g} s"
            ) from None
        except OSError as exc:  # ConnectionError among them: refused, reset, dropped
            raise OptionDataError(
                self.name, asked, f"cannot reach IB at {where}: {type(exc).__name__}: {exc}"
            ) from exc

    async def _connection(self) -> IB:
        async with self._connecting:
            ib = self.ib
            if ib is not None and ib.isConnected():
                return ib
            if ib is not None:
                log.warning("the option data connection to %s:%d dropped", self.host, self.port)
                self.ib = None
                ib.disconnect()
            ib = IB()
            ib.RaiseRequestErrors = True
            try:
                await ib.connectAsync(
                    self.host,
                    self.port,
                    clientId=self.client_id,
                    timeout=self.timeout,
                    readonly=True,
                    account=self.account,
                )
            except BaseException:
                ib.disconnect()
                raise
            if self.market_data_type is not None:
                ib.reqMarketDataType(self.market_data_type)
            self.ib = ib
            self.connects += 1
            log.info("option data from %s:%d as clientId %d", self.host, self.port, self.client_id)
            return ib

    async def _stock(self, ib: IB, underlying: str, asked: str) -> int:
        con_id = self._stocks.get(underlying)
        if con_id is None:
            await self.pacer.wait()
            with anyio.fail_after(self.timeout):
                qualified = await ib.qualifyContractsAsync(Stock(underlying, "SMART", "USD"))
            if not qualified:
                raise OptionDataError(
                    self.name, asked, f"IB finds no single {underlying} stock on SMART in USD"
                )
            con_id = self._stocks[underlying] = qualified[0].conId
        return con_id

    async def _option(self, ib: IB, option: OptionSymbol, asked: str) -> Contract:
        today = self.chains.today()
        if self._options[0] != today:
            self._options = (today, {})
            # (an unlocked lock has no waiter: anyio hands a released lock to the next one)
            self._quoting = {s: lock for s, lock in self._quoting.items() if lock.locked()}
        known = self._options[1]
        contract = known.get(option.occ)
        if contract is None:
            await self.pacer.wait()
            wanted = Option(
                option.underlying,
                option.last_trade_date,
                float(option.strike),
                option.right,
                "SMART",
                multiplier=str(MULTIPLIER),
                currency="USD",
            )
            with anyio.fail_after(self.timeout):
                details = await ib.reqContractDetailsAsync(wanted)
            contracts = [d.contract for d in details if d.contract is not None]
            standard = [c for c in contracts if c.tradingClass == option.underlying]
            found = standard or contracts
            if len(found) != 1:
                names = f" ({', '.join(c.localSymbol for c in found)})" if found else ""
                raise OptionDataError(self.name, asked, f"IB finds {len(found)} contracts{names}")
            contract = known[option.occ] = found[0]
        return contract

    async def _stream(self, ib: IB, contract: Contract, option: OptionSymbol, asked: str) -> Any:
        refused: list[tuple[int, str]] = []
        wake = _Wake()

        def on_error(_req_id: int, code: int, message: str, about: Any) -> None:
            if about is contract and not _notice(code):
                refused.append((code, message))
                wake.set()

        await self.pacer.wait()
        ib.errorEvent += on_error
        ib.disconnectedEvent += wake.set
        ticker = ib.reqMktData(contract, GENERIC_TICKS, snapshot=False)
        # ib_insync hands back the ticker of the last subscription of this contract object,
        # with its values: forget them (nothing arrives before the next await).
        _forget(ticker)
        ticker.updateEvent += wake.set
        try:
            with anyio.move_on_after(self.quote_timeout):
                while not refused and not arrived(ticker, option) and ib.isConnected():
                    await wake.wait()
        finally:
            ticker.updateEvent -= wake.set
            ib.disconnectedEvent -= wake.set
            ib.errorEvent -= on_error
            if ib.isConnected():
                ib.cancelMktData(contract)
        if refused:
            code, message = refused[0]
            raise OptionDataError(self.name, asked, f"error {code}: {message}", code=code)
        if not ib.isConnected():
            raise ConnectionError("the connection dropped while the quote streamed")
        return ticker


def _wall_clock() -> datetime:
    return datetime.now(UTC)


_TICKER_FIELDS = (
    "bid",
    "bidSize",
    "ask",
    "askSize",
    "last",
    "lastSize",
    "volume",
    "callVolume",
    "putVolume",
    "callOpenInterest",
    "putOpenInterest",
)


def _forget(ticker: Any) -> None:
    for field in _TICKER_FIELDS:
        setattr(ticker, field, math.nan)
    ticker.modelGreeks = None


# -- parsing (pure: vendor objects in, our types out) ------------------------------------------


def _present(value: object) -> bool:
    return isinstance(value, int | float) and not math.isnan(value)


def arrived(ticker: Any, option: OptionSymbol) -> bool:
    """Whether ``ticker`` holds all a quote waits for: bid, ask (IB's -1, "no price", counts:
    it was sent), and the option's volume and open interest as its right has them."""
    volume, interest = (
        (ticker.callVolume, ticker.callOpenInterest)
        if option.call
        else (ticker.putVolume, ticker.putOpenInterest)
    )
    return all(_present(v) for v in (ticker.bid, ticker.ask, volume, interest))


def _price(value: object) -> Decimal | None:
    # IB's prices are floats: their shortest repr is the price TWS printed; -1 is "none".
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return Decimal(repr(float(value)))


def _count(value: object) -> int | None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return int(value)


def parse_quote(symbol: str, option: OptionSymbol, ticker: Any) -> OptionQuote:
    """An ib_insync ``Ticker`` of ``option`` as our quote: NaN, infinities and IB's -1 are
    None; the volume is the option's (its right's generic tick, else tick 8), sizes, volume
    and open interest whole numbers; volatility, delta and the underlying's price are the
    model's (tickOptionComputation 13), when it came."""
    volume, interest = (
        (ticker.callVolume, ticker.callOpenInterest)
        if option.call
        else (ticker.putVolume, ticker.putOpenInterest)
    )
    model = ticker.modelGreeks
    return OptionQuote(
        symbol=symbol,
        bid=_price(ticker.bid),
        ask=_price(ticker.ask),
        last=_price(ticker.last),
        bid_size=_count(ticker.bidSize),
        ask_size=_count(ticker.askSize),
        volume=_count(volume) if _present(volume) else _count(ticker.volume),
        open_interest=_count(interest),
        implied_vol=_finite(getattr(model, "impliedVol", None)),
        delta=_finite(getattr(model, "delta", None)),
        underlying_price=_price(getattr(model, "undPrice", None)),
    )


def _finite(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _day(text: object) -> date | None:
    if not isinstance(text, str) or len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _strike(value: object) -> Decimal | None:
    price = _price(value)
    if price is None or price == 0 or price != price.quantize(Decimal("0.001")):
        return None
    return price


def parse_chain(underlying: str, entries: Sequence[Any]) -> OptionChain | None:
    """IB's ``reqSecDefOptParams`` answer (ib_insync ``OptionChain``s) as our chain: the SMART
    entry whose trading class is ``underlying``, else the first SMART entry; None without one.
    Expirations that are not ``YYYYMMDD`` dates and strikes that are not positive prices with
    at most 3 decimals are left out; a multiplier that is not a whole number is 100's."""
    smart = [e for e in entries if e.exchange == "SMART"]
    standard = [e for e in smart if e.tradingClass == underlying]
    if not smart:
        return None
    entry = (standard or smart)[0]
    multiplier = str(entry.multiplier)
    days = (_day(e) for e in entry.expirations)
    strikes = (_strike(s) for s in entry.strikes)
    return OptionChain(
        underlying=underlying,
        exchange="SMART",
        trading_class=entry.tradingClass,
        multiplier=int(multiplier) if multiplier.isdigit() and int(multiplier) else MULTIPLIER,
        expirations=tuple(d for d in days if d is not None),
        strikes=tuple(s for s in strikes if s is not None),
    )


def net_liquidation(values: Sequence[Any], account: str, *, source: str) -> Decimal:
    """The USD ``NetLiquidation`` among ib_insync ``AccountValue``s, of ``account`` (any, when
    empty, as long as one account reports it); ``OptionDataError`` when there is none, or
    several accounts' and none chosen."""
    asked = "the account's NetLiquidation"
    found = {
        v.account: v
        for v in values
        if v.tag == "NetLiquidation" and (not account or v.account == account)
    }
    if len(found) > 1:
        raise OptionDataError(
            source,
            asked,
            f"several accounts report one ({', '.join(sorted(map(masked, found)))}): name one",
        )
    if not found:
        raise OptionDataError(
            source, asked, f"IB reported none{f' for {masked(account)}' if account else ''}"
        )
    [value] = found.values()
    if value.currency != "USD":
        raise OptionDataError(source, asked, f"it is in {value.currency}, not USD")
    try:
        return Decimal(value.value)
    except ArithmeticError:
        raise OptionDataError(source, asked, f"not a number: {value.value!r}") from None
