"""A backtest's report: one self-contained HTML file that works offline.

``render(view)`` returns the document, ``write(view, path)`` writes it. The charts (equity
against buy-and-hold, the underwater drawdown, the monthly returns, the trades on each symbol's
price) are SVG drawn by matplotlib and inlined into a Jinja2 template (autoescaped) that ships
with this package; the page loads nothing (no script, no stylesheet, no font, no image from
anywhere, and a Content-Security-Policy that forbids it). The same view renders to the same
bytes: the SVG ids are salted with a fixed string and carry no date.

Curves longer than the chart is wide are drawn from their envelope (the first, last, lowest and
highest point of each pixel column), so a two-million-point minute curve renders in seconds
into a small file; the figures are always computed on the whole curve (``metrics``).
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import attrs
import jinja2
import matplotlib as mpl
import matplotlib.dates as mdates
import numpy as np
import numpy.typing as npt
from markupsafe import Markup
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from .metrics import NS_PER_DAY, Curve, Metrics, drawdown, monthly_returns

__all__ = [
    "TABLE_HEAD_ROWS",
    "TABLE_TAIL_ROWS",
    "MAX_MARKERS",
    "TradeMarker",
    "SymbolPrices",
    "ReportView",
    "render",
    "write",
]

TABLE_HEAD_ROWS = 500
TABLE_TAIL_ROWS = 500
"""A table longer than both shows its first and last rows only, and says how many it left out."""

MAX_MARKERS = 2_000
"""Trade markers drawn on one symbol's price chart at most (evenly thinned beyond, said so)."""

_WIDTH_IN = 12.0
_DPI = 100
_COLUMNS = int(_WIDTH_IN * _DPI)
"""Pixel columns of a chart: a curve is drawn from at most four points per column."""

# Keys typed Any: matplotlib types rcParams keys as one long Literal.
_SVG_RC: dict[Any, Any] = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
_SVG_METADATA: dict[str, Any] = {"Date": None, "Format": None, "Type": None, "Creator": None}

_TEMPLATE = "report.html.j2"


@attrs.frozen(kw_only=True)
class TradeMarker:
    """One fill marked on its symbol's price chart (UTC epoch ns)."""

    ts_ns: int
    side: Literal["BUY", "SELL"]
    price: float
    quantity: float


@attrs.frozen(kw_only=True)
class SymbolPrices:
    """A symbol's prices (as traded) and its fills, for the trades chart."""

    symbol: str
    prices: Curve
    fills: Sequence[TradeMarker] = ()


@attrs.frozen(kw_only=True)
class ReportView:
    """Everything the report shows. ``orders`` and ``fills`` are rows of their tables, the
    columns in the order their keys first appear; ``provenance`` is shown as given (git SHA,
    dirty flag, config hash, data hashes, versions)."""

    title: str
    run_id: str
    metrics: Metrics
    benchmark_metrics: Metrics | None
    equity: Curve
    benchmark: Curve | None
    symbols: Sequence[SymbolPrices]
    orders: Sequence[Mapping[str, object]]
    fills: Sequence[Mapping[str, object]]
    config_text: str
    provenance: Mapping[str, object]


def render(view: ReportView) -> str:
    """The report of ``view`` as one HTML document (the same view, the same text)."""
    template = _environment().get_template(_TEMPLATE)
    return template.render(
        view=view,
        figures=_figure_rows(view.metrics, view.benchmark_metrics),
        charts=_charts(view),
        orders=_table(view.orders),
        fills=_table(view.fills),
        provenance=[(str(k), _cell(v)) for k, v in view.provenance.items()],
        start=_date(view.metrics.start.isoformat()),
        end=_date(view.metrics.end.isoformat()),
    )


def write(view: ReportView, path: Path | str) -> Path:
    """Write the report of ``view`` to ``path`` (UTF-8) and return the path."""
    target = Path(path)
    target.write_text(render(view), encoding="utf-8", newline="\n")
    return target


def _environment() -> jinja2.Environment:
    # The template ships in the package (package data), read through importlib.resources so an
    # installed wheel finds it as an editable checkout does.
    source = files("app.backtest").joinpath("templates", _TEMPLATE).read_text(encoding="utf-8")
    return jinja2.Environment(
        loader=jinja2.DictLoader({_TEMPLATE: source}),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _date(iso: str) -> str:
    return iso[:10]


# -- the metrics table -------------------------------------------------------------------------

_Format = Literal["pct", "ratio", "money", "days", "int", "date"]

_FIGURES: tuple[tuple[str, str, _Format], ...] = (
    ("Total return", "total_return", "pct"),
    ("CAGR", "cagr", "pct"),
    ("Annual volatility", "annual_volatility", "pct"),
    ("Sharpe", "sharpe", "ratio"),
    ("Sortino", "sortino", "ratio"),
    ("Max drawdown", "max_drawdown", "pct"),
    ("Drawdown peak", "max_drawdown_peak", "date"),
    ("Drawdown trough", "max_drawdown_trough", "date"),
    ("Recovered", "max_drawdown_recovery", "date"),
    ("Drawdown length (days)", "max_drawdown_days", "days"),
    ("Calmar", "calmar", "ratio"),
    ("Round trips", "trades", "int"),
    ("Hit rate", "hit_rate", "pct"),
    ("Profit factor", "profit_factor", "ratio"),
    ("Average win", "average_win", "money"),
    ("Average loss", "average_loss", "money"),
    ("Win / loss", "win_loss_ratio", "ratio"),
    ("Exposure", "exposure", "pct"),
    ("Turnover (a year)", "turnover", "ratio"),
    ("Average holding (days)", "average_holding_days", "days"),
    ("Start value", "start_value", "money"),
    ("End value", "end_value", "money"),
    ("Trading days", "trading_days", "int"),
)


def _format(value: object, how: _Format) -> str:
    if value is None:
        return "\N{EM DASH}"
    if how == "date":
        return _date(_iso_of(value))
    if how == "int":
        return f"{int(value):,}"  # type: ignore[call-overload]  # the field is an int
    number = float(value)  # type: ignore[arg-type]  # the field is a float
    if how == "pct":
        return f"{number * 100:,.2f} %"
    if how == "money":
        return f"{number:,.2f}"
    if how == "days":
        return f"{number:,.1f}"
    return f"{number:,.2f}"


def _iso_of(value: object) -> str:
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(value)


def _figure_rows(ours: Metrics, theirs: Metrics | None) -> list[tuple[str, str, str]]:
    return [
        (
            label,
            _format(getattr(ours, name), how),
            "" if theirs is None else _format(getattr(theirs, name), how),
        )
        for label, name, how in _FIGURES
    ]


# -- tables ------------------------------------------------------------------------------------


@attrs.frozen
class _Table:
    columns: list[str]
    head: list[list[str]]
    tail: list[list[str]]
    total: int

    @property
    def hidden(self) -> int:
        return self.total - len(self.head) - len(self.tail)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def _table(rows: Sequence[Mapping[str, object]]) -> _Table:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    names = list(columns)

    def cells(chosen: Sequence[Mapping[str, object]]) -> list[list[str]]:
        return [[_cell(row.get(name)) for name in names] for row in chosen]

    if len(rows) <= TABLE_HEAD_ROWS + TABLE_TAIL_ROWS:
        return _Table(names, cells(rows), [], len(rows))
    return _Table(names, cells(rows[:TABLE_HEAD_ROWS]), cells(rows[-TABLE_TAIL_ROWS:]), len(rows))


# -- charts ------------------------------------------------------------------------------------


@attrs.frozen
class _Chart:
    name: str
    title: str
    svg: Markup
    note: str = ""


def _charts(view: ReportView) -> list[_Chart]:
    charts = [
        _Chart("equity", "Equity and buy-and-hold", _equity_chart(view)),
        _Chart("drawdown", "Underwater (drawdown from the running high)", _drawdown_chart(view)),
        _Chart("monthly", "Monthly returns", _monthly_chart(view.equity)),
    ]
    for index, symbol in enumerate(view.symbols):
        svg, note = _trades_chart(symbol, index)
        charts.append(_Chart(f"trades-{index}", f"Trades on {symbol.symbol}", svg, note))
    return charts


def _envelope(ts_ns: npt.NDArray[np.int64], values: npt.NDArray[np.float64]) -> Any:
    # The points to draw: all of a short curve; of a long one, the first, last, lowest and
    # highest point of each pixel column (by time), in time order. Drawn as a line, the result
    # covers the same pixels as the whole curve would.
    n = len(ts_ns)
    if n <= 4 * _COLUMNS:
        return np.arange(n)
    span = float(ts_ns[-1] - ts_ns[0])
    column = ((ts_ns - ts_ns[0]).astype(np.float64) * ((_COLUMNS - 1) / span)).astype(np.int64)
    starts = np.flatnonzero(np.concatenate([[True], column[1:] != column[:-1]]))
    ends = np.concatenate([starts[1:], [n]]) - 1
    counts = ends - starts + 1
    lowest = values == np.repeat(np.minimum.reduceat(values, starts), counts)
    highest = values == np.repeat(np.maximum.reduceat(values, starts), counts)
    return np.unique(
        np.concatenate(
            [starts, ends, _first_per_column(lowest, column), _first_per_column(highest, column)]
        )
    )


def _first_per_column(hit: npt.NDArray[np.bool_], column: npt.NDArray[np.int64]) -> Any:
    # The first point of each column where `hit` (every column has one: its extreme).
    at = np.flatnonzero(hit)
    of = column[at]
    return at[np.concatenate([[True], of[1:] != of[:-1]])]


def _days(ts_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    # matplotlib's dates: days since 1970-01-01 UTC, as floats.
    days: npt.NDArray[np.float64] = ts_ns.astype(np.float64) / NS_PER_DAY
    return days


def _line(curve: Curve) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    at = _envelope(curve.ts_ns, curve.value)
    return _days(curve.ts_ns[at]), curve.value[at]


def _dated(figure: Figure, *axes: Any) -> None:
    for ax in axes:
        # matplotlib.dates leaves these constructors unannotated
        locator = mdates.AutoDateLocator()  # type: ignore[no-untyped-call]
        formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(formatter)
        ax.grid(True, color="#dddddd", linewidth=0.6)
    figure.tight_layout()


def _equity_chart(view: ReportView) -> Markup:
    with mpl.rc_context(_SVG_RC):
        figure = Figure(figsize=(_WIDTH_IN, 4.0), dpi=_DPI)
        ax = figure.add_subplot()
        ax.plot(*_line(view.equity), color="#1f5fa8", linewidth=1.2, label="strategy")
        if view.benchmark is not None:
            ax.plot(*_line(view.benchmark), color="#888888", linewidth=1.0, label="buy and hold")
        ax.set_ylabel("equity")
        ax.legend(loc="upper left", frameon=False)
        _dated(figure, ax)
        return _svg(figure, "equity")


def _drawdown_chart(view: ReportView) -> Markup:
    under = drawdown(view.equity)
    with mpl.rc_context(_SVG_RC):
        figure = Figure(figsize=(_WIDTH_IN, 2.6), dpi=_DPI)
        ax = figure.add_subplot()
        days, depth = _line(under)
        ax.fill_between(days, depth * 100.0, 0.0, color="#c0392b", alpha=0.35, linewidth=0)
        ax.plot(days, depth * 100.0, color="#c0392b", linewidth=0.8)
        ax.set_ylabel("drawdown %")
        ax.set_ylim(top=0.0)
        _dated(figure, ax)
        return _svg(figure, "drawdown")


def _monthly_chart(curve: Curve) -> Markup:
    months = monthly_returns(curve)
    years = sorted({year for year, _, _ in months})
    grid = np.full((len(years), 12), np.nan)
    for year, month, value in months:
        if value is not None:
            grid[years.index(year), month - 1] = value * 100.0
    shown = grid[np.isfinite(grid)]
    bound = max(float(np.abs(shown).max()) if len(shown) else 0.0, 0.01)
    with mpl.rc_context(_SVG_RC):
        figure = Figure(figsize=(_WIDTH_IN, 0.9 + 0.3 * len(years)), dpi=_DPI)
        ax = figure.add_subplot()
        ax.pcolormesh(
            np.ma.masked_invalid(grid),
            cmap="RdYlGn",
            norm=TwoSlopeNorm(vcenter=0.0, vmin=-bound, vmax=bound),
            edgecolors="white",
            linewidth=1.0,
        )
        for row, col in zip(*np.nonzero(np.isfinite(grid)), strict=True):
            ax.text(
                col + 0.5, row + 0.5, f"{grid[row, col]:.1f}", ha="center", va="center", fontsize=8
            )
        ax.set_xticks(np.arange(12) + 0.5, [f"{m:02d}" for m in range(1, 13)])
        ax.set_yticks(np.arange(len(years)) + 0.5, [str(y) for y in years])
        ax.invert_yaxis()
        ax.tick_params(length=0)
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_title("% a month (New York calendar months)", loc="left", fontsize=9)
        figure.tight_layout()
        return _svg(figure, "monthly")


def _trades_chart(symbol: SymbolPrices, index: int) -> tuple[Markup, str]:
    fills = list(symbol.fills)
    note = ""
    if len(fills) > MAX_MARKERS:
        keep = np.unique(np.linspace(0, len(fills) - 1, MAX_MARKERS).round().astype(np.int64))
        note = f"{len(keep):,} of {len(fills):,} fills marked (evenly thinned)."
        fills = [fills[i] for i in keep.tolist()]
    with mpl.rc_context(_SVG_RC):
        figure = Figure(figsize=(_WIDTH_IN, 3.4), dpi=_DPI)
        ax = figure.add_subplot()
        ax.plot(*_line(symbol.prices), color="#333333", linewidth=0.9, label=symbol.symbol)
        for side, marker, color in (("BUY", "^", "#1e8449"), ("SELL", "v", "#c0392b")):
            chosen = [f for f in fills if f.side == side]
            if chosen:
                ax.scatter(
                    _days(np.array([f.ts_ns for f in chosen], dtype=np.int64)),
                    [f.price for f in chosen],
                    marker=marker,
                    s=28,
                    color=color,
                    edgecolors="none",
                    zorder=3,
                    label=f"{side.lower()} ({len(chosen):,})",
                )
        ax.set_ylabel("price")
        ax.legend(loc="upper left", frameon=False)
        _dated(figure, ax)
        return _svg(figure, f"trades-{index}"), note


_PROLOG = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_NAMESPACES = re.compile(r'\s+xmlns(?::\w+)?="[^"]*"')
_SIZE = re.compile(r'\s+(?:width|height)="[^"]*"')
_IDS = re.compile(r'(\bid="|url\(#|href="#)')


def _svg(figure: Figure, name: str) -> Markup:
    # Inline SVG for an HTML page: no XML prolog or DOCTYPE (the DTD is a URL), no namespace
    # declarations (the HTML parser supplies them), sized by the page's CSS, and every id
    # prefixed with the chart's name so that the charts of one page share none.
    buffer = io.StringIO()
    salt: dict[Any, Any] = {"svg.hashsalt": f"actortrade-{name}"}
    with mpl.rc_context(salt):
        figure.savefig(buffer, format="svg", metadata=_SVG_METADATA)
    text = _PROLOG.sub("", buffer.getvalue(), count=1)
    root_end = text.index(">")
    root = _SIZE.sub("", _NAMESPACES.sub("", text[:root_end]))
    root = root.replace("<svg", f'<svg class="chart" id="chart-{name}" role="img"', 1)
    body = _IDS.sub(lambda m: f"{m.group(1)}{name}-", text[root_end:])
    return Markup(root + body.rstrip() + "\n")
