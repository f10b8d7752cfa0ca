"""The HTML report: the same view gives the same bytes, the page refers to nothing outside itself,
user text is escaped, long tables and long curves are cut down for showing only."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from importlib.resources import files
from pathlib import Path

import attrs
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.backtest import report
from app.backtest.metrics import Curve, compute
from app.backtest.report import ReportView, SymbolPrices, TradeMarker, render, write
from tests.app.backtest.curves import minute_curve, sample_view

ROOT = Path(__file__).resolve().parents[3]
CURVES = Path(__file__).with_name("curves.py")

# curves.py is loaded by its path: eventkit (a dependency of ib_insync) installs a top-level
# `tests` package that a plain interpreter would find before this repository's.
RENDER_IN_A_FRESH_INTERPRETER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("curves", sys.argv[1])
curves = importlib.util.module_from_spec(spec)
spec.loader.exec_module(curves)
from app.backtest.report import render
sys.stdout.buffer.write(render(curves.sample_view()).encode())
"""


def test_the_same_view_renders_byte_identical_html(tmp_path: Path) -> None:
    """Twice here, once more in another interpreter (another hash seed, fresh matplotlib
    state), and once through write(): the same bytes every time."""
    first = render(sample_view())
    assert render(sample_view()) == first
    elsewhere = subprocess.run(
        [sys.executable, "-c", RENDER_IN_A_FRESH_INTERPRETER, str(CURVES)],
        cwd=ROOT,
        capture_output=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    ).stdout
    assert elsewhere == first.encode()
    written = write(sample_view(), tmp_path / "report.html")
    assert written.read_bytes() == first.encode()


EXTERNAL = [
    re.compile(r"""\b(?:src|href)\s*=\s*["']?\s*(?!#)[^"'\s>]""", re.I),
    re.compile(r"<script", re.I),
    re.compile(r"<link\b", re.I),
    re.compile(r"@import", re.I),
    re.compile(r"url\(\s*(?!#)", re.I),
    re.compile(r"https?://", re.I),
]


def _external_references(html: str) -> list[str]:
    return [m.group(0) for pattern in EXTERNAL for m in pattern.finditer(html)]


def test_the_report_refers_to_nothing_outside_itself() -> None:
    """No src or href but to a fragment of the page, no script, no stylesheet link, no
    @import, no url() but to an id of the page, no http(s) URL at all; a CSP forbids loads."""
    html = render(sample_view())
    assert _external_references(html) == []
    assert "default-src 'none'" in html


def test_the_offline_check_sees_an_external_reference() -> None:
    """The patterns above catch each kind of outside reference they are meant to."""
    for bad in (
        '<img src="http://cdn.example/x.png">',
        '<a href="//cdn.example/x">',
        "<script>1</script>",
        '<link rel="stylesheet" href="a.css">',
        "<style>@import 'a.css';</style>",
        "<style>p { background: url(a.png) }</style>",
        '<use xlink:href="other.svg#m"/>',
    ):
        assert _external_references(bad) != [], bad
    assert _external_references('<use xlink:href="#m1"/><g clip-path="url(#p1)">') == []


def test_user_text_is_escaped() -> None:
    """The title, the config and table cells are text, never markup."""
    view = attrs.evolve(
        sample_view(points=500, fills=4, rows=2),
        title="<b>bold</b>",
        config_text='</pre><script src="http://evil.example/x.js"></script>',
        orders=[{"note": "<img src=x onerror=alert(1)>"}],
    )
    html = render(view)
    assert "<b>bold</b>" not in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_a_long_table_shows_its_first_and_last_rows_and_says_so() -> None:
    """1,500 orders: rows 1-500 and 1,001-1,500 are shown, the 500 between are counted."""
    view = attrs.evolve(
        sample_view(points=500, fills=4, rows=0),
        orders=[{"ref": f"order-{i:04d}"} for i in range(1, 1501)],
    )
    html = render(view)
    assert "1,500 rows: showing the first 500 and the last 500" in html
    assert "500 rows not shown" in html
    shown = set(re.findall(r"order-(\d{4})", html))
    assert shown == {f"{i:04d}" for i in [*range(1, 501), *range(1001, 1501)]}


def test_tables_show_every_column_in_the_order_it_first_appears() -> None:
    """Rows with different keys: the union of the columns, missing cells empty."""
    view = attrs.evolve(
        sample_view(points=500, fills=4, rows=0),
        fills=[{"b": 1, "a": 2.5}, {"a": 3, "c": None, "d": "x"}],
    )
    html = render(view)
    fills = html[html.index('<section id="fills">') :]
    assert re.findall(r"<th>(\w+)</th>", fills)[:4] == ["b", "a", "c", "d"]
    assert "<td>1</td><td>2.5</td><td></td><td></td>" in fills
    assert "<td></td><td>3</td><td></td><td>x</td>" in fills


def test_a_report_without_benchmark_symbols_or_rows_renders() -> None:
    """The benchmark, the trades charts and the tables are optional."""
    view = attrs.evolve(
        sample_view(points=300, fills=0, rows=0),
        benchmark=None,
        benchmark_metrics=None,
        symbols=[],
    )
    html = render(view)
    assert html.count('<svg class="chart"') == 3
    assert "Buy and hold</th>" not in html
    assert _external_references(html) == []


@pytest.mark.parametrize(
    ("ts", "values"),
    [
        pytest.param([0], [100.0], id="one point"),
        pytest.param([0, 86_400 * 10**9, 2 * 86_400 * 10**9], [100.0] * 3, id="flat"),
        pytest.param([0, 0], [1.0, 2.0], id="no time passes"),
    ],
)
def test_a_degenerate_curve_renders(ts: list[int], values: list[float]) -> None:
    """One point, a flat curve, two points at one time: every chart is drawn, no warning (the
    suite turns warnings into errors)."""
    curve = Curve(ts, values)
    metrics = compute(curve, [], exposure=[False] * len(ts), traded_notional=0.0)
    fill = TradeMarker(ts_ns=0, side="BUY", price=values[0], quantity=1.0)
    view = ReportView(
        title="degenerate",
        run_id="r",
        metrics=metrics,
        benchmark_metrics=metrics,
        equity=curve,
        benchmark=curve,
        symbols=[SymbolPrices(symbol="X", prices=curve, fills=[fill])],
        orders=[],
        fills=[],
        config_text="",
        provenance={},
    )
    html = render(view)
    assert html.count('<svg class="chart"') == 4
    assert _external_references(html) == []


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), points=st.integers(1, 20_000))
def test_the_drawn_envelope_keeps_each_columns_extremes(seed: int, points: int) -> None:
    """A curve is drawn from the first, last, lowest and highest point of each pixel column: the
    drawn points keep the curve's ends and extremes, in time order, at most four a column."""
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.integers(0, 3, points)).astype(np.int64) * 60 * 10**9
    values = np.cumsum(rng.normal(0, 1, points))
    at = report._envelope(ts, values)
    assert at[0] == 0
    assert at[-1] == points - 1
    assert np.all(np.diff(at) > 0)
    assert len(at) <= max(points if points <= 4 * report._COLUMNS else 0, 4 * report._COLUMNS)
    assert values[at].min() == values.min()
    assert values[at].max() == values.max()


def test_a_two_million_point_curve_makes_a_small_report() -> None:
    """Two million minute points (about 20 years of sessions) are drawn from their envelope:
    the page stays under 1.5 MB and a chart's line has at most four points a pixel column."""
    prices = minute_curve(21, 2_000_000)
    view: ReportView = attrs.evolve(
        sample_view(points=1_000, fills=10, rows=10),
        equity=prices,
        benchmark=Curve(prices.ts_ns, prices.value * 1.01),
    )
    html = render(view)
    assert len(html.encode()) < 1_500_000
    equity = html[html.index('id="chart-equity"') : html.index('id="chart-drawdown"')]
    longest = max(d.count("L") for d in re.findall(r'<path d="([^"]*)"', equity))
    assert 0 < longest <= 4 * report._COLUMNS


def test_the_template_is_a_resource_of_the_package() -> None:
    """render() reads the template through importlib.resources, as an installed wheel would."""
    template = files("app.backtest").joinpath("templates", "report.html.j2")
    assert template.is_file()
    assert "{{ chart.svg }}" in template.read_text(encoding="utf-8")


def test_the_wheel_carries_the_report_template() -> None:
    """Every file under app/backtest/templates is matched by [tool.setuptools.package-data]."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"].get("package-data", {}).get("app.backtest", [])
    package = ROOT / "app" / "backtest"
    for path in (package / "templates").rglob("*"):
        if path.is_file():
            relative = str(path.relative_to(package))
            assert any(fnmatch(relative, pattern) for pattern in patterns), relative
