"""The report in a real headless browser (Debian's Chromium), with no network: the page loads,
requests nothing, and its charts are drawn. The screenshot is kept as a test artifact (under
``$ACTORTRADE_ARTIFACTS`` when set)."""

from __future__ import annotations

import json
import os
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image

from app.backtest.metrics import monthly_returns
from app.backtest.report import write
from tests.app.backtest.curves import sample_view

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Chromium at /usr/bin/chromium (Debian: apt-get install chromium)",
)

# Belt and braces: a network namespace of our own when the kernel lets us make one, and in any
# case no name resolves and every connection goes to a closed port.
OFFLINE_FLAGS = [
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=127.0.0.1:9",
]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,3000",
]


def _own_network_namespace() -> list[str]:
    try:
        subprocess.run(["unshare", "--net", "true"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return ["unshare", "--net"]


def _chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            *_own_network_namespace(),
            str(CHROMIUM),
            *FLAGS,
            *OFFLINE_FLAGS,
            f"--user-data-dir={profile}",
            *extra,
            page.as_uri(),
        ],
        capture_output=True,
        check=True,
        timeout=180,
    )


def _page_requests(net_log: Path) -> list[str]:
    # The URLs a page asked for beyond its own file. Chromium's own background requests (update
    # checks, which fail offline) have no origin; a page's carry its origin ("null" for file:).
    log = json.loads(net_log.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        event["params"]["url"]
        for event in log["events"]
        if event["type"] == start_job
        and "url" in event.get("params", {})
        and event["params"].get("initiator") != "not an origin"
        and not event["params"]["url"].startswith("file:")
    ]


class _Charts(HTMLParser):
    # For each <svg class="chart">: its id and the lengths of its paths' `d` data.
    def __init__(self) -> None:
        super().__init__()
        self.paths: dict[str, list[int]] = {}
        self._inside: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "svg" and found.get("class") == "chart":
            self._inside = found.get("id") or "?"
            self.paths[self._inside] = []
            self._depth = 0
        if self._inside is None:
            return
        if tag == "svg":
            self._depth += 1
        if tag == "path":
            self.paths[self._inside].append(len(found.get("d") or ""))

    def handle_endtag(self, tag: str) -> None:
        if self._inside is not None and tag == "svg":
            self._depth -= 1
            if self._depth == 0:
                self._inside = None


def _artifacts(tmp_path: Path) -> Path:
    where = os.environ.get("ACTORTRADE_ARTIFACTS")
    directory = Path(where) if where else tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def test_the_report_loads_offline_with_its_charts_drawn(tmp_path: Path) -> None:
    """Chromium with no network renders the report: the DOM holds the four charts, each with
    drawn paths (the equity line long), the page asked for nothing, and the screenshot is not
    blank and shows the strategy's line and the drawdown's red."""
    view = sample_view(points=20_000, fills=80, rows=30)
    page = write(view, tmp_path / "report.html")
    net_log = tmp_path / "net-log.json"
    dom = _chromium(
        page, tmp_path / "profile-dom", f"--log-net-log={net_log}", "--dump-dom"
    ).stdout.decode()

    assert "<h1>MA-crossover on SPY</h1>" in dom
    charts = _Charts()
    charts.feed(dom)
    assert set(charts.paths) == {
        "chart-equity",
        "chart-drawdown",
        "chart-monthly",
        "chart-trades-0",
    }
    # The lines are long paths; the heatmap is one path a month (and the axes' own).
    for name in ("chart-equity", "chart-drawdown", "chart-trades-0"):
        assert max(charts.paths[name]) > 5_000, f"{name} draws no line: {charts.paths[name]}"
    months = len(monthly_returns(view.equity))
    assert months == 3
    assert sum(length > 40 for length in charts.paths["chart-monthly"]) >= months
    assert _page_requests(net_log) == []

    shot = _artifacts(tmp_path) / "backtest-report.png"
    shot.unlink(missing_ok=True)
    _chromium(page, tmp_path / "profile-shot", f"--screenshot={shot}")
    pixels = image.imread(shot)[:, :, :3]
    assert pixels.shape[:2] == (3000, 1400)
    assert float(pixels.std()) > 0.05
    assert float((pixels.min(axis=2) < 0.9).mean()) > 0.02  # a good share of it is not white

    def near(hex_color: str) -> float:
        rgb = np.array([int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)])
        return float((np.abs(pixels - rgb).max(axis=2) < 0.08).mean())

    assert near("#1f5fa8") > 0.0005  # the strategy's equity line
    assert near("#e8b0aa") > 0.002 or near("#c0392b") > 0.0005  # the drawdown's fill or line


def test_the_request_check_sees_a_page_that_reaches_out(tmp_path: Path) -> None:
    """The net-log check above is not vacuous: a page with an outside image and stylesheet is
    caught asking for them (offline, so they fail)."""
    page = tmp_path / "reaches-out.html"
    page.write_text(
        '<html><body><img src="http://example.invalid/x.png">'
        '<link rel="stylesheet" href="https://cdn.example.invalid/a.css"></body></html>'
    )
    net_log = tmp_path / "net-log.json"
    _chromium(page, tmp_path / "profile", f"--log-net-log={net_log}", "--dump-dom")
    assert sorted(_page_requests(net_log)) == [
        "http://example.invalid/x.png",
        "https://cdn.example.invalid/a.css",
    ]
