"""``sweep.html``: one self-contained, offline page of a sweep: the combinations in a table that
sorts by any column (a few lines of inline script), a heatmap of the chosen metric over two
chosen parameters (an HTML table, each cell coloured by its value, the mean where other
parameters vary), and the best runs linking to their reports. ``sweep.html#sort=sharpe`` (or
``#sort=-sharpe``) opens it sorted by a column."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>sweep {{ name }}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { padding: 3px 8px; border: 1px solid #ccc; text-align: right; }
th { background: #f3f3f3; cursor: pointer; }
td.text, th.text { text-align: left; }
.heat td { width: 5em; text-align: center; }
.failed { color: #a00; }
</style></head><body>
<h1>Sweep {{ name }}</h1>
<p>{{ config }}: {{ count }} combinations of {{ keys | join(", ") }}; {{ failed }} failed.
Metric: <b>{{ metric }}</b>.</p>
{% if heat %}
<h2>{{ metric }} over {{ heat.y }} (rows) and {{ heat.x }} (columns)</h2>
<table class="heat"><tr><th>{{ heat.y }} \\ {{ heat.x }}</th>
{% for x in heat.xs %}<th>{{ x }}</th>{% endfor %}</tr>
{% for y, cells in heat.rows %}<tr><th>{{ y }}</th>
{% for cell in cells %}<td style="background: {{ cell.colour }}">{{ cell.text }}</td>{% endfor %}
</tr>{% endfor %}</table>
{% endif %}
<h2>Best by {{ metric }}</h2>
<ol>{% for row in best %}<li><a href="{{ row.report }}">{{ row.label }}</a>: {{ row.value }}</li>
{% endfor %}</ol>
<h2>All combinations</h2>
<table id="all"><thead><tr>
{% for column in columns %}<th class="{{ 'text' if column in text else '' }}"
 onclick="sortBy({{ loop.index0 }})">{{ column }}</th>{% endfor %}</tr></thead><tbody>
{% for row in rows %}<tr class="{{ 'failed' if row.error else '' }}">
{% for column in columns %}<td class="{{ 'text' if column in text else '' }}"
 data-v="{{ row.sort[column] }}">{{ row.shown[column] }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>
<script>
let order = {};
function sortBy(i) {
  const body = document.querySelector("#all tbody");
  const rows = Array.from(body.rows);
  const up = order[i] = !order[i];
  rows.sort((a, b) => {
    const x = a.cells[i].dataset.v, y = b.cells[i].dataset.v;
    const nx = parseFloat(x), ny = parseFloat(y);
    const c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
    return up ? c : -c;
  });
  rows.forEach(r => body.appendChild(r));
}
// sweep.html#sort=COLUMN (or #sort=-COLUMN, descending) opens sorted.
const wanted = decodeURIComponent(location.hash).match(/^#sort=(-?)(.+)$/);
if (wanted) {
  const heads = document.querySelectorAll("#all thead th");
  const names = Array.from(heads).map(h => h.textContent.trim());
  const i = names.indexOf(wanted[2]);
  if (i >= 0) { order[i] = wanted[1] === "-"; sortBy(i); }
}
</script>
</body></html>
"""

PERCENT = {"total_return", "cagr", "annual_volatility", "max_drawdown", "hit_rate", "exposure"}


def _shown(name: str, value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:+.2%}" if name in PERCENT else f"{value:,.2f}"
    return str(value)


def _colour(value: float, low: float, high: float) -> str:
    # Red (low) through white to green (high).
    if high <= low:
        return "#ffffff"
    t = (value - low) / (high - low)
    if t < 0.5:
        shade = int(255 * t * 2)
        return f"#ff{shade:02x}{shade:02x}"
    shade = int(255 * (1 - t) * 2)
    return f"#{shade:02x}ff{shade:02x}"


def heatmap(
    rows: Sequence[Mapping[str, Any]], metric: str, x: str, y: str
) -> dict[str, Any] | None:
    """The metric's mean per (y, x) cell over the rows that ran; None with nothing to show."""
    xs = list(dict.fromkeys(str(r[x]) for r in rows))
    ys = list(dict.fromkeys(str(r[y]) for r in rows))
    cells: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        value = row.get(metric)
        if isinstance(value, int | float) and not math.isnan(value):
            cells.setdefault((str(row[y]), str(row[x])), []).append(float(value))
    if not cells:
        return None
    means = {k: sum(v) / len(v) for k, v in cells.items()}
    low, high = min(means.values()), max(means.values())
    return {
        "x": x,
        "y": y,
        "xs": xs,
        "rows": [
            (
                yv,
                [
                    {
                        "text": _shown(metric, means.get((yv, xv))),
                        "colour": _colour(means[(yv, xv)], low, high)
                        if (yv, xv) in means
                        else "#eeeeee",
                    }
                    for xv in xs
                ],
            )
            for yv in ys
        ],
    }


def write(
    folder: Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    keys: Sequence[str],
    metric: str,
    config: str,
    axes: Sequence[str] = (),
    best: int = 10,
) -> Path:
    """``sweep.html`` in ``folder``; the heatmap over ``axes`` (columns, rows; by default the
    first two keys, or the one key as a row)."""
    columns = [
        "id",
        *keys,
        metric,
        *[
            m
            for m in ("total_return", "sharpe", "max_drawdown", "trades", "final_equity")
            if m != metric
        ],
        "error",
    ]
    ran = [r for r in rows if r.get("error") is None and r.get(metric) is not None]
    ranked = sorted(ran, key=lambda r: float(r[metric]), reverse=metric != "max_drawdown_days")
    heat = None
    axes = list(axes) or list(keys[:2])
    if axes:
        heat = heatmap(rows, metric, axes[0], axes[1] if len(axes) > 1 else axes[0])
    view = {
        "name": folder.name,
        "config": config,
        "count": len(rows),
        "failed": sum(1 for r in rows if r.get("error")),
        "keys": list(keys),
        "metric": metric,
        "heat": heat,
        "best": [
            {
                "label": ", ".join(f"{k}={r[k]}" for k in keys),
                "value": _shown(metric, r[metric]),
                "report": f"{r['run']}/report.html",
            }
            for r in ranked[:best]
        ],
        "columns": columns,
        "text": {"id", "error", *keys},
        "rows": [
            {
                "error": r.get("error"),
                "shown": {c: _shown(c, r.get(c)) for c in columns},
                "sort": {c: "" if r.get(c) is None else r.get(c) for c in columns},
            }
            for r in rows
        ],
    }
    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    path = folder / "sweep.html"
    path.write_text(environment.from_string(TEMPLATE).render(**view))
    return path
