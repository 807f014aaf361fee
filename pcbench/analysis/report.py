"""`pcbench-report ROOT... --metric f1`: the table, the leaderboard, the plots and an HTML page.

Writes to --out (default `report/`):
- runs.parquet: one row per cell (collect.py), with 95% bootstrap bounds of every metric
  (`<column>.lo/.hi`), paired differences against the matched `none` and `random` cells for the
  chosen metric (`vs_none.*`, `vs_random.*`) and the speed-up;
- leaderboard.md: every cell with its interval and paired tests, then per variant the area under
  its metric-vs-ratio curve and its mean rank at matched budgets;
- table.csv (one row per cell: task, reader, variant, budget, kept ratio, the metric and its 95%
  interval) and table.tex (methods x tasks, booktabs, each cell "mean (kept ratio)") for a paper;
- tradeoff.png/.pdf, speed.png/.pdf (--figure-width, --palette, --x-axis ratio|factor, --bands), heatmap for
  needle cells, report.html (sortable tables, the plots, links to the cells and to inspect pages of
  the examples the cells disagree on most under examples/, and the provenance: when it was made,
  the cells' commits, package versions, hardware).
`analysis/report.ipynb` draws the same from runs.parquet.
"""

from __future__ import annotations

import argparse
import html
import math
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pcbench.analysis.collect import collect_cells, parquet_safe
from pcbench.analysis.metric import DIAGNOSTICS, Metric, available, resolve
from pcbench.analysis.plot import (
    FIGURE_WIDTH,
    X_AXES,
    Style,
    StyleError,
    plot_heatmaps,
    plot_speed,
    plot_tradeoff,
    reader_title,
    roles,
)
from pcbench.analysis.speed import speed_board, speed_table
from pcbench.analysis.stats import add_intervals, add_paired, read_records
from pcbench.analysis.truth import flips, plot_rate_adherence, rate_adherence
from pcbench.core.records import SURVIVAL, CellMetrics, ExampleRecord

GRID = 101  # points of the common ratio range the area is averaged over


def _fmt(value: float, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _with_ci(row: pd.Series, column: str) -> str:
    value = row.get(column)
    lo, hi = row.get(f"{column}.lo"), row.get(f"{column}.hi")
    if lo is None or pd.isna(lo):
        return _fmt(value)
    return f"{_fmt(value)} [{_fmt(lo)}, {_fmt(hi)}]"


def _versus(row: pd.Series, baseline: str) -> str:
    diff = row.get(f"vs_{baseline}.diff")
    if diff is None or pd.isna(diff):
        return ""
    p, adjusted = row[f"vs_{baseline}.p"], row.get(f"vs_{baseline}.p_holm", math.nan)
    star = "*" if _claimed(row, baseline) else ""
    holm = f" (Holm {_adjusted(adjusted)})" if not pd.isna(adjusted) else ""
    unreachable = ", too few differing examples to reach 0.05" if row.get(f"vs_{baseline}.min_p", 0) > 0.05 else ""
    return (f"{diff:+.1f} [{row[f'vs_{baseline}.lo']:+.1f}, {row[f'vs_{baseline}.hi']:+.1f}] "
            f"{p_value(p)}{holm}{star}{unreachable} @{row[f'vs_{baseline}.ratio']:.2f}")


def _adjusted(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _claimed(row: pd.Series, baseline: str) -> bool:
    """A difference the report states: Holm-adjusted p below 0.05 over the family it shows."""
    adjusted = row.get(f"vs_{baseline}.p_holm", math.nan)
    p = row.get(f"vs_{baseline}.p", math.nan)
    return bool((adjusted if not pd.isna(adjusted) else p) < 0.05)


def p_value(p: float) -> str:
    """`p=0.012`, or `p<0.001` (a permutation test never gives 0, only a bound)."""
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def cells_board(table: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """One row per cell: its budget, achieved ratio, the metric with its interval, paired tests."""
    rows = table.dropna(subset=[metric.column]).sort_values(
        ["task_label", "reader_label", metric.column], ascending=[True, True, False])
    board = pd.DataFrame({
        "task": rows["task_label"],
        "reader": rows["reader_label"],
        "variant": rows["variant"],
        "budget": rows["budget"],
        "kept ratio": rows["kept_ratio"].map(lambda v: _fmt(v, 3)),
        "n": rows["n_examples"].astype(int),
        f"{metric.name} [95% CI]": [_with_ci(r, metric.column) for _, r in rows.iterrows()],
    })
    for baseline in ("none", "random"):
        if f"vs_{baseline}.diff" in rows and rows[f"vs_{baseline}.diff"].notna().any():
            board[f"Δ vs {baseline}"] = [_versus(r, baseline) for _, r in rows.iterrows()]
    return board.reset_index(drop=True)


def summary(table: pd.DataFrame, metric: Metric) -> list[tuple[str, list[str]]]:
    """What won, in sentences: per task and reader, the full context's score, then per requested
    budget the best method (controls, the ceiling and the full context aside) with its interval and
    whether it differs from random and from the full context (paired test, p < 0.05)."""
    panels = []
    rows = table.dropna(subset=[metric.column])
    for (task, reader), panel in rows.groupby(["task_label", "reader_label"]):
        kinds = panel["variant"].map(roles(panel))
        full = panel[kinds == "baseline"]
        head = f"{task} · {reader_title(str(reader))}: "
        if not full.empty:
            head += f"the full context scores {_with_ci(full.iloc[0], metric.column)} {metric.name}."
        lines: list[str] = []
        panels.append((head, lines))
        methods = panel[kinds == "method"]
        for budget, group in methods.groupby("budget", sort=True):
            best = group.sort_values([metric.column, "kept_ratio"], ascending=[False, True]).iloc[0]
            said = [f"at {budget}, best is {best['variant']}: {_with_ci(best, metric.column)} "
                    f"(kept {_fmt(best['kept_ratio'], 2)}, {len(group)} method{'s' if len(group) > 1 else ''})"]
            for baseline, name in (("random", "random"), ("none", "the full context")):
                diff, p = best.get(f"vs_{baseline}.diff"), best.get(f"vs_{baseline}.p")
                if diff is None or pd.isna(diff):
                    continue
                adjusted = best.get(f"vs_{baseline}.p_holm", math.nan)
                shown = p_value(p) + (f", Holm {_adjusted(adjusted)}" if not pd.isna(adjusted) else "")
                if _claimed(best, baseline):
                    said.append(f"{'above' if diff > 0 else 'below'} {name} by {abs(diff):.1f} ({shown})")
                else:
                    said.append(f"not distinguishable from {name} ({diff:+.1f}, {shown})")
            sentence = "; ".join(said)
            lines.append(sentence[0].upper() + sentence[1:] + ".")
    return panels


def area_under_curve(table: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """Per (task, reader, variant) swept over at least two ratios: the mean metric over the kept
    ratio range every such variant of that task and reader covers (the area under the curve,
    linearly interpolated, divided by the range: same units as the metric, comparable between
    variants because the range is shared)."""
    out = []
    rows = table.dropna(subset=[metric.column, "kept_ratio"])
    for (task, reader), panel in rows.groupby(["task_label", "reader_label"]):
        curves = {}
        for variant, group in panel.groupby("variant"):
            group = group.sort_values("kept_ratio")
            if roles(group).get(str(variant)) != "baseline" and group["kept_ratio"].nunique() > 1:
                curves[variant] = (group["kept_ratio"].to_numpy(float), group[metric.column].to_numpy(float))
        if not curves:
            continue
        lo = max(x.min() for x, _ in curves.values())
        hi = min(x.max() for x, _ in curves.values())
        for variant, (x, y) in curves.items():
            if hi > lo:
                grid = np.linspace(lo, hi, GRID)
                area = float(np.mean(np.interp(grid, x, y)))
            else:
                area = math.nan  # the swept ranges do not overlap: no common ground to compare on
            out.append({"task_label": task, "reader_label": reader, "variant": variant, "auc": area,
                        "auc_range": f"{lo:.2f}–{hi:.2f}" if hi > lo else "no common range"})
    return pd.DataFrame(out, columns=["task_label", "reader_label", "variant", "auc", "auc_range"])


def mean_ranks(table: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """Rank of each variant among those run at the same requested budget, task and reader (1 =
    best, ties averaged), averaged over the budgets where at least two variants met."""
    rows = table.dropna(subset=[metric.column])
    rows = rows[rows["budget"] != ""]
    ranked = []
    for _, group in rows.groupby(["task_label", "reader_label", "budget"]):
        if group["variant"].nunique() < 2:
            continue
        group = group.assign(rank=group[metric.column].rank(ascending=False, method="average"))
        ranked.append(group[["task_label", "reader_label", "variant", "rank"]])
    if not ranked:
        return pd.DataFrame(columns=["task_label", "reader_label", "variant", "mean_rank", "budgets_ranked"])
    ranks = pd.concat(ranked).groupby(["task_label", "reader_label", "variant"])["rank"]
    return pd.DataFrame({"mean_rank": ranks.mean(), "budgets_ranked": ranks.size()}).reset_index()


def variants_board(table: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """One row per (task, reader, variant): cells, area under the curve, mean rank."""
    keys = ["task_label", "reader_label", "variant"]
    rows = table.dropna(subset=[metric.column])
    base = rows.groupby(keys).agg(cells=("path", "size"), best=(metric.column, "max")).reset_index()
    board = base.merge(area_under_curve(table, metric), on=keys, how="left").merge(
        mean_ranks(table, metric), on=keys, how="left")
    board = board.sort_values(["task_label", "reader_label", "mean_rank", "auc"],
                              ascending=[True, True, True, False], na_position="last")
    return pd.DataFrame({
        "task": board["task_label"], "reader": board["reader_label"], "variant": board["variant"],
        "cells": board["cells"], f"best {metric.name}": board["best"].map(_fmt),
        f"AUC ({metric.name}, mean over ratio range)": [
            f"{_fmt(a)} ({r})" if isinstance(r, str) and not pd.isna(a) else "–"
            for a, r in zip(board["auc"], board["auc_range"])],
        "mean rank": [f"{_fmt(m, 2)} (of {int(b)} budgets)" if not pd.isna(m) else "–"
                      for m, b in zip(board["mean_rank"], board["budgets_ranked"].fillna(0))],
    }).reset_index(drop=True)


def analyse(table: pd.DataFrame, metric: Metric, records: dict[str, list[ExampleRecord]] | None = None) -> (
        pd.DataFrame):
    """The collected table with intervals for every metric and paired tests."""
    records = records if records is not None else {path: read_records(path) for path in table["path"]}
    table = add_intervals(table, records, [resolve(table, name) for name in available(table)])
    return add_paired(table, records, metric)


def table_metrics(table: pd.DataFrame, metric: Metric, names: list[str] | None = None) -> list[Metric]:
    """The metrics of the paper tables: `names` when given, else the report's metric, then the
    reader-free diagnostics the runs hold, then, for LongBench suites, each category and AVG."""
    if names:
        return [resolve(table, name) for name in names]
    found = available(table)
    chosen = [metric.name]
    chosen += [d for d in ("answer_in_context", "evidence_recall") if d in found]
    if any(c.startswith("categories.") for c in table.columns):  # a LongBench suite: its categories, then AVG
        chosen += [c.split(".", 1)[1] for c in table.columns if c.startswith("categories.") and c.split(".", 1)[1]
                   in found] + [a for a in ("avg",) if a in found]
    return [resolve(table, name) for name in dict.fromkeys(chosen)]


def paper_table(table: pd.DataFrame, metrics: Metric | list[Metric]) -> pd.DataFrame:
    """Methods x tasks, as a paper prints it: a row per (variant, budget), a column per task (and
    reader, when there are several) and metric, each cell the mean and, in the first metric's
    column, the achieved kept ratio (the ratio the row's methods are matched at)."""
    metrics = [metrics] if isinstance(metrics, Metric) else metrics
    several_readers = table["reader_label"].nunique() > 1
    parts = []
    for k, metric in enumerate(metrics):
        rows = table.dropna(subset=[metric.column])
        task = rows["task_label"] + (" / " + rows["reader_label"] if several_readers else "")
        column = task + (f" · {metric.name}" if len(metrics) > 1 else "")
        method = rows["variant"] + np.where(rows["budget"] != "", " (" + rows["budget"] + ")", "")
        cells = [f"{_fmt(v)} (kept {r:.2f})" if k == 0 and not pd.isna(r) else _fmt(v)
                 for v, r in zip(rows[metric.column], rows["kept_ratio"])]
        parts.append(pd.DataFrame({"method": method, "task": task, "order": k, "column": column, "cell": cells}))
    long = pd.concat(parts)
    order = long.drop_duplicates("column").sort_values(["task", "order"])["column"].tolist()
    wide = long.pivot_table(index="method", columns="column", values="cell", aggfunc="first")[order]
    wide.columns.name = None
    return wide.fillna("–").reset_index()


def tidy_table(table: pd.DataFrame, metrics: Metric | list[Metric]) -> pd.DataFrame:
    """One row per cell and metric with the numbers a paper's table is made from (CSV)."""
    metrics = [metrics] if isinstance(metrics, Metric) else metrics
    parts = []
    for metric in metrics:
        rows = table.dropna(subset=[metric.column])
        parts.append(pd.DataFrame({
            "task": rows["task_label"], "reader": rows["reader_label"], "variant": rows["variant"],
            "budget": rows["budget"], "kept_ratio": rows["kept_ratio"], "n_examples": rows["n_examples"],
            "metric": metric.name, "value": rows[metric.column],
            "ci_low": rows.get(f"{metric.column}.lo"), "ci_high": rows.get(f"{metric.column}.hi"),
            "cell": rows["path"],
        }))
    return pd.concat(parts).sort_values(["task", "reader", "variant", "kept_ratio", "metric"]).reset_index(drop=True)


TEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
               "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex(table: pd.DataFrame, metrics: Metric | list[Metric]) -> str:
    """The methods x tasks table as a booktabs LaTeX tabular (special characters escaped); with
    several metrics, a header row of tasks over a row of metrics."""
    metrics = [metrics] if isinstance(metrics, Metric) else metrics
    wide = paper_table(table, metrics)

    def tex(text: object) -> str:  # one pass, so an escape is never escaped again
        return re.sub(r"[\\&%$#_{}~^]", lambda m: TEX_ESCAPES[m.group()], str(text))

    columns = list(wide.columns[1:])
    spec = "l" + "r" * len(columns)
    if len(metrics) > 1:
        groups: list[tuple[str, int]] = []
        for column in columns:
            task = column.rsplit(" · ", 1)[0]
            if groups and groups[-1][0] == task:
                groups[-1] = (task, groups[-1][1] + 1)
            else:
                groups.append((task, 1))
        top = " & " + " & ".join(rf"\multicolumn{{{n}}}{{c}}{{{tex(task)}}}" for task, n in groups) + r" \\"
        rules, at = [], 2
        for _, n in groups:
            rules.append(rf"\cmidrule(lr){{{at}-{at + n - 1}}}")
            at += n
        head = [top, "".join(rules), "method & " + " & ".join(tex(c.rsplit(" · ", 1)[1]) for c in columns) + r" \\"]
    else:
        head = [" & ".join(tex(c) for c in wide.columns) + r" \\"]
    body = [" & ".join(tex(v) for v in row) + r" \\" for row in wide.itertuples(index=False)]
    names = ", ".join(m.label for m in metrics)
    return "\n".join([f"% {names}; each cell: mean (achieved kept ratio, in the first metric's column)",
                      rf"\begin{{tabular}}{{{spec}}}", r"\toprule", *head, r"\midrule", *body, r"\bottomrule",
                      r"\end{tabular}", ""])


def provenance(table: pd.DataFrame) -> dict[str, str]:
    """What a reader of the report needs to trust it: when, with which code and packages."""
    from datetime import datetime, timezone
    from importlib import metadata

    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    commits = sorted({str(c)[:12] + (" (dirty)" if d else "") for c, d in
                      zip(table.get("git_commit", []), table.get("git_dirty", [])) if isinstance(c, str)})

    def distinct(column: str) -> str:
        found = sorted({str(v) for v in table.get(column, []) if isinstance(v, str) and v})
        return " | ".join(found) or "not recorded (cells written before it was)"

    return {
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cells' commits": ", ".join(commits) or "unknown (cells written outside git)",
        "cells' packages": distinct("versions"),
        "cells' hardware": distinct("hardware"),
        "report made with": f"pcbench {version('pcbench')}, python {sys.version.split()[0]}",
    }


SPEED_NOTE = ("Per cell, from its records: compression ms per example and original tokens compressed per second, "
              "end-to-end seconds per example (compress + prefill + generate) and the speed-up over the `none` cell "
              "on the same examples, each with a 95% bootstrap interval; `reused cached work`: the cell took its "
              "budget-free work from an earlier cell's cache, so its compression seconds are not the method's full "
              "cost (the first cell of the sweep paid it).")


def markdown(table: pd.DataFrame, metric: Metric, speed: pd.DataFrame | None = None) -> str:
    speed_part = ["## Speed", "", SPEED_NOTE, "", speed_board(speed).to_markdown(index=False), ""] \
        if speed is not None and not speed.empty else []
    return "\n".join([
        f"# Leaderboard: {metric.label}",
        "",
        f"Cells: {metric.name} mean with its 95% bootstrap interval (2000 resamples of the examples); "
        "Δ = paired difference against the `none` / `random` cell of the same task and reader nearest in achieved "
        "kept ratio (@ its ratio), on the examples both hold: two-sided paired sign-flip test (exact up to 16 "
        "examples; McNemar's exact test for 0/1 metrics) with the 95% interval that inverts it, so the interval "
        "excludes 0 exactly when p < 0.05; Holm's adjustment over every comparison in the table (* where it is "
        "below 0.05).",
        "",
        cells_board(table, metric).to_markdown(index=False),
        "",
        "Variants: AUC = mean metric over the kept-ratio range all swept variants of the task and reader share "
        "(area under the linearly interpolated curve / range); mean rank among the variants run at the same "
        "requested budget (1 = best).",
        "",
        variants_board(table, metric).to_markdown(index=False),
        "",
        *speed_part,
    ])


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>pcbench report: {{ metric }}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; margin: 2em; max-width: 1400px; }
@media (max-width: 700px) { body { margin: 0.6em; } h1 { font-size: 1.4em; } }
.scroll { overflow-x: auto; max-width: 100%; margin-bottom: 2em; } .scroll table { margin-bottom: 0.5em; }
ul.summary li { margin-bottom: 0.3em; }
table { border-collapse: collapse; font-size: 13px; margin-bottom: 2em; }
th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; }
th { background: #f4f4f4; } img { max-width: 100%; border: 1px solid #eee; }
.note { color: #666; font-size: 13px; }
table.sortable th { cursor: pointer; user-select: none; } table.sortable th:hover { background: #e8e8e8; }
th[aria-sort=ascending]::after { content: " ▲"; } th[aria-sort=descending]::after { content: " ▼"; }
</style></head><body>
<h1>pcbench report: {{ metric }}</h1>
<p class="note">{{ cells }} cells from {{ roots }}.</p>
<h2>Summary</h2>
<ul class="summary">{% for head, lines in summary %}<li><b>{{ head }}</b>
<ul>{% for line in lines %}<li>{{ line }}</li>{% endfor %}</ul></li>{% endfor %}</ul>
<p class="note">Best method per requested budget (controls, the gold-evidence ceiling and the full context aside),
with its 95% interval; "above" or "below" where a paired sign-flip test on the examples both cells hold gives
p &lt; 0.05 after Holm's adjustment over every comparison shown. Small studies give wide intervals: read the
tables below before any claim.</p>
<h2>Trade-off</h2>
<img src="{{ tradeoff }}" alt="metric against kept ratio"> <p><a href="{{ tradeoff_pdf }}">PDF</a></p>
<h2>Cells</h2>
<p class="note">{{ explain_cells }} Click a column head to sort.</p>
<div class="scroll">{{ cells_table }}</div>
{% if flips_table %}<h2>Flips against the full context</h2>
<p class="note">{{ flips_note }}</p>
<div class="scroll">{{ flips_table }}</div>{% endif %}
{% if adherence_table %}<h2>Rate adherence</h2>
<p class="note">{{ adherence_note }}</p>
<div class="scroll">{{ adherence_table }}</div>
{% if adherence_plot %}<img src="{{ adherence_plot }}" alt="achieved kept ratio by context length">
<p><a href="rate_adherence.pdf">PDF</a></p>{% endif %}{% endif %}
{% if survival_table %}<h2>What survives</h2>
<p class="note">{{ survival_note }}</p>
<div class="scroll">{{ survival_table }}</div>{% endif %}
<h2>Methods x tasks</h2>
<p class="note">As table.csv and table.tex hold it: a row per method and budget, a column per task and metric;
the first metric's column also gives the achieved kept ratio.</p>
<div class="scroll">{{ paper_table }}</div>
<h2>Variants</h2>
<p class="note">{{ explain_variants }}</p>
<div class="scroll">{{ variants_table }}</div>
<h2>Speed</h2>
{% if speed_table %}<p class="note">{{ speed_note }}</p>
<div class="scroll">{{ speed_table }}</div>{% endif %}
<img src="{{ speed }}" alt="speed against kept ratio"> <p><a href="{{ speed_pdf }}">PDF</a></p>
{% if serving %}<h2>Cost under serving</h2>
<p class="note">pcbench-serving's cards found under the roots (docs: serving.md): the cells' prompts replayed
against a served model at each concurrency level.</p>
{% for card in serving %}<div class="scroll">{{ card.html }}</div>
{% for image in card.images %}<img src="{{ image }}" alt="latency and throughput against concurrency">
{% endfor %}<p class="note">Figures:
{% for name, href in card.files %}<a href="{{ href }}">{{ name }}</a> {% endfor %}</p>
{% endfor %}{% endif %}
{% if heatmap %}<h2>Needle grid</h2>
<img src="{{ heatmap }}" alt="metric by context length and needle depth">
<p><a href="heatmap.pdf">PDF</a></p>{% endif %}
<h2>Provenance</h2>
<div class="scroll"><table>{% for k, v in provenance %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}
</table></div>
<p class="note">Paper tables: <a href="table.csv">table.csv</a> (one row per cell), <a href="table.tex">table.tex</a>
(methods x tasks, booktabs).</p>
{% if notes %}<h2>Left out</h2><ul class="note">{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>{% endif %}
<script>
// Click a column head to sort by it (again to reverse): numbers by their leading value
// ("61.2 [40.0, 80.0]" sorts as 61.2, "–" last), text alphabetically.
document.querySelectorAll("table.sortable").forEach(table => {
  const heads = table.querySelectorAll("thead th");
  heads.forEach((th, col) => th.addEventListener("click", () => {
    const down = th.getAttribute("aria-sort") === "ascending";
    heads.forEach(h => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", down ? "descending" : "ascending");
    const key = row => {
      const text = row.cells[col].textContent.trim();
      const number = parseFloat(text.replace(/^[+]/, ""));
      return isNaN(number) ? text : number;
    };
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = key(a), y = key(b);
      if (typeof x !== typeof y) return typeof x === "number" ? -1 : 1;
      const order = typeof x === "number" ? x - y : x.localeCompare(y);
      return down ? -order : order;
    });
    rows.forEach(row => body.appendChild(row));
  }));
});
</script>
</body></html>
"""


EXAMPLES = "examples"  # the report's sub-folder of inspect pages
CELLS = "cells"  # the report's sub-folder of each cell's config.yaml and metrics.json


def cell_copies(paths: Any, out: Path) -> list[str]:
    """Each cell's config.yaml and metrics.json copied under out/cells/, and the links to them,
    relative to the report: a report copied or published elsewhere still opens what it links."""
    order = {path: i for i, path in enumerate(sorted(paths))}  # the folders example_pages names too
    links = []
    for path in paths:
        name = cell_folder_name(order[path], path)
        (out / CELLS / name).mkdir(parents=True, exist_ok=True)
        for file in ("config.yaml", "metrics.json"):
            if (Path(path) / file).is_file():
                shutil.copyfile(Path(path) / file, out / CELLS / name / file)
        links.append(f"{CELLS}/{name}/metrics.json")
    return links


def cell_folder_name(index: int, path: str) -> str:
    from pcbench.analysis.inspect import safe_name

    return f"{index:03d}-{safe_name(Path(path).name)}"


def example_pages(table: pd.DataFrame, metric: Metric, out: Path, per_panel: int,
                  broken: dict[str, int] | None = None) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """Inspect pages (pcbench-inspect --html) of the examples worth looking at: per task and reader,
    the `per_panel` examples compression broke in the most cells (`broken`: right with the full
    context, wrong compressed), then those on which its cells disagree most (the widest spread of
    the metric across cells; the earliest examples on ties), one page per cell and example, so a method's
    page sits next to the others' on the same example. Returns {cell path: [(id, link)]} and notes
    on the cells that could not be shown (no config, task data gone)."""
    from pcbench.analysis.inspect import InspectError, html_page, load_cell, rebuild_examples, safe_name, task_node
    from pcbench.analysis.metric import per_example

    links: dict[str, list[tuple[str, str]]] = {}
    notes: list[str] = []
    if per_panel <= 0:
        return links, notes
    rows = table.dropna(subset=[metric.column])
    folders = {path: cell_folder_name(i, path) for i, path in enumerate(sorted(rows["path"]))}
    labels = dict(zip(rows["path"], rows["variant"].astype(str) + " @ " + rows["kept_ratio"].map(lambda v: f"{v:.2f}")))
    written: list[tuple[Path, str, str, CellMetrics, ExampleRecord, Any, str]] = []
    examples: dict[str, dict[str, Any]] = {}  # each task rebuilt once, keyed by its config
    for _, panel in rows.groupby(["task_label", "reader_label"]):
        cells: dict[str, tuple[CellMetrics, dict[str, ExampleRecord]]] = {}
        spread: dict[str, list[float]] = {}
        order: dict[str, int] = {}
        for path in panel["path"]:
            try:
                metrics, records = load_cell(Path(path))
            except InspectError as exc:
                notes.append(f"no example pages for {path}: {exc}")
                continue
            cells[path] = (metrics, {str(r.get("id")): r for r in records})
            for record in records:
                order.setdefault(str(record.get("id")), len(order))
            values = per_example(records, metric)
            if values is not None:
                for i, v in zip(values.ids, values.values):
                    spread.setdefault(str(i), []).append(float(v))
        chosen = sorted(order, key=lambda i: (-(broken or {}).get(i, 0),
                                              -float(np.ptp(spread[i])) if spread.get(i) else 0.0, order[i]))
        chosen = chosen[:per_panel]
        for path, (metrics, by_id) in cells.items():
            try:
                node = task_node(Path(path), metrics)
                key = str(node)
                if key not in examples:
                    examples[key] = {e.id: e for e in rebuild_examples(Path(path), metrics, node)}
            except InspectError as exc:
                notes.append(f"no example pages for {path}: {exc}")
                continue
            folder = out / EXAMPLES / folders[path]
            folder.mkdir(parents=True, exist_ok=True)
            ids = list(by_id)
            for example_id in chosen:
                if example_id not in by_id or example_id not in examples[key] or "context" not in by_id[example_id]:
                    continue
                page = folder / f"{safe_name(example_id)}.html"
                position = f"{ids.index(example_id) + 1} of {len(ids)}"
                written.append((page, path, example_id, metrics, by_id[example_id], examples[key][example_id],
                                position))
                links.setdefault(path, []).append((example_id, os.path.relpath(page, out)))
    # Each page links back to the report and across to the same example in the panel's other cells.
    pages_of: dict[str, list[tuple[str, Path]]] = {}
    for page, path, example_id, *_ in written:
        pages_of.setdefault(example_id, []).append((path, page))
    for page, path, example_id, metrics, record, example, position in written:
        across = " ".join(
            f'<a href="../{html.escape(other.parent.name)}/{html.escape(other.name)}">'
            f"{html.escape(labels.get(other_path, other.parent.name))}</a>"
            for other_path, other in pages_of[example_id] if other != page)
        nav = (f'<nav><a href="../../report.html">&larr; report</a> · this example in other cells: '
               f"{across or 'none'}</nav>")
        page.write_text(html_page(Path(path), metrics, record, example, position, nav), encoding="utf-8")
    return links, notes


FLIPS_NOTE = ("Each cell against the full-context cell of its task and reader, on the examples both hold: an "
              "example is right when its {metric} reaches 50 (of 100). right→wrong are the examples compression "
              "broke; p is McNemar's exact test on the two discordant counts; the broken examples link to their "
              "pages where the report wrote one (flips.csv lists them).")
ADHERENCE_NOTE = ("Cells that asked for a rate: the achieved kept ratio (mean of examples) in the budget's tokens, "
                  "in cl100k tokens and in characters; the share of examples over the budget by more than one "
                  "token and the mean overshoot of those; the achieved ratio in thirds of the task's context lengths "
                  "(rate_adherence.csv).")


SURVIVAL_NOTE = ("Reader-free, per cell: the share of the original context's named entities, dates, numbers and "
                 "question words (those the original holds) still found in the compressed context, as exact "
                 "strings, mean over the examples that have any (entities and dates by spaCy's en_core_web_sm).")


def survival_board(table: pd.DataFrame) -> pd.DataFrame:
    present = [name for name in SURVIVAL if name in table and table[name].notna().any()]
    if not present:
        return pd.DataFrame()
    rows = table.sort_values(["task_label", "reader_label", "variant", "kept_ratio"])
    board = pd.DataFrame({"task": rows["task_label"], "reader": rows["reader_label"], "variant": rows["variant"],
                          "budget": rows["budget"], "kept ratio": rows["kept_ratio"].map(lambda v: _fmt(v, 3))})
    for name in present:
        board[name.removesuffix("_kept").replace("_", " ") + " kept %"] = rows[name].map(_fmt)
    return board.reset_index(drop=True)


@dataclass
class Truth:
    flips: pd.DataFrame
    adherence: pd.DataFrame
    plot: Path | None


def flips_html(table: pd.DataFrame, pages: dict[str, list[tuple[str, str]]]) -> str:
    """The flips table, every value escaped; broken examples linked to their pages where written."""
    def broken(path: str, ids: list[str]) -> str:
        written = dict(pages.get(path, []))
        return " ".join(f'<a href="{html.escape(written[i])}">{html.escape(i)}</a>' if i in written
                        else html.escape(i) for i in ids)

    board = pd.DataFrame({
        "task": table["task"].map(lambda v: html.escape(str(v))),
        "reader": table["reader"].map(lambda v: html.escape(str(v))),
        "variant": table["variant"].map(lambda v: html.escape(str(v))),
        "budget": table["budget"].map(lambda v: html.escape(str(v))),
        "kept ratio": table["kept_ratio"].map(lambda v: _fmt(v, 3)),
        "n": table["n"], "right→wrong": table["right_to_wrong"], "wrong→right": table["wrong_to_right"],
        "both right": table["both_right"], "both wrong": table["both_wrong"],
        "McNemar p": table["p"].map(p_value),
        "broken examples": [broken(p, ids) for p, ids in zip(table["path"], table["negatives"])],
    })
    return board.to_html(index=False, escape=False, na_rep="–", classes="sortable")


def adherence_board(table: pd.DataFrame) -> pd.DataFrame:
    bins = [c for c in table.columns if c.startswith("tokens ")]
    board = pd.DataFrame({
        "task": table["task"], "variant": table["variant"], "requested": table["requested"].map(lambda v: f"{v:g}"),
        "achieved": table["achieved"].map(lambda v: _fmt(v, 3)),
        "cl100k": table["achieved_cl100k"].map(lambda v: _fmt(v, 3)),
        "chars": table["achieved_chars"].map(lambda v: _fmt(v, 3)),
        "over budget": table["over_budget_share"].map(lambda v: f"{100 * v:.0f}%" if not pd.isna(v) else "–"),
        "overshoot (mean, max)": [f"{_fmt(a, 3)}, {_fmt(b, 3)}" for a, b in
                                  zip(table["overshoot_mean"], table["overshoot_max"])],
    })
    for column in bins:
        board[column] = table[column].map(lambda v: _fmt(v, 3))
    return board


def html_page(table: pd.DataFrame, metric: Metric, out: Path, roots: list[str], notes: list[str],
              heatmap: bool = False, pages: dict[str, list[tuple[str, str]]] | None = None,
              speed: pd.DataFrame | None = None, metrics: list[Metric] | None = None,
              serving: list[dict[str, Any]] | None = None, truth: Truth | None = None) -> Path:
    from jinja2 import Template

    cells = cells_board(table, metric)
    ordered = table.dropna(subset=[metric.column]).sort_values(
        ["task_label", "reader_label", metric.column], ascending=[True, True, False])
    links = cell_copies(ordered["path"], out)
    # Every value is escaped (knob values are user text: a template may hold markup); only the links
    # built here are HTML.
    cells = cells.map(lambda v: html.escape(v) if isinstance(v, str) else v)
    cells.columns = [html.escape(str(c)) for c in cells.columns]
    cells["cell"] = [f'<a href="{html.escape(link)}">{html.escape(Path(path).name)}</a>'
                     for link, path in zip(links, ordered["path"])]
    if pages:  # the examples the cells disagree on most, each cell's view of them
        cells["examples"] = [" ".join(f'<a href="{html.escape(href)}" title="{html.escape(i)}">{k + 1}</a>'
                                      for k, (i, href) in enumerate(pages.get(p, [])))
                             for p in ordered["path"]]
    text = Template(PAGE, autoescape=False).render(
        metric=html.escape(metric.label), cells=len(ordered), roots=html.escape(", ".join(roots)),
        summary=[(html.escape(head), [html.escape(line) for line in lines]) for head, lines in summary(table, metric)],
        explain_cells="Mean with 95% bootstrap interval; Δ: paired difference against the matched-ratio baseline, "
                      "[95% interval inverting the paired sign-flip test], its p (Holm-adjusted over the table; * "
                      "below 0.05), @ the baseline's kept ratio."
                      + (" Examples: the task's examples on which the cells disagree most, as this cell compressed "
                         "them (kept, dropped and gold evidence marked); the same numbers open the same example "
                         "in every cell." if pages else ""),
        explain_variants="AUC: mean metric over the shared kept-ratio range; mean rank at matched requested budgets.",
        cells_table=cells.to_html(index=False, escape=False, na_rep="–", classes="sortable"),
        variants_table=variants_board(table, metric).to_html(index=False, na_rep="–", classes="sortable"),
        tradeoff="tradeoff.png", tradeoff_pdf="tradeoff.pdf", speed="speed.png", speed_pdf="speed.pdf",
        heatmap="heatmap.png" if heatmap else "",
        speed_note=html.escape(SPEED_NOTE),
        paper_table=paper_table(table, metrics or [metric]).to_html(index=False, na_rep="–", classes="sortable"),
        speed_table=speed_board(speed).to_html(index=False, na_rep="–", classes="sortable")
        if speed is not None and not speed.empty else "",
        notes=[html.escape(n) for n in notes], serving=serving or [],
        flips_table=flips_html(truth.flips, pages or {}) if truth is not None and not truth.flips.empty else "",
        flips_note=html.escape(FLIPS_NOTE.format(metric=metric.name)),
        adherence_table=adherence_board(truth.adherence).to_html(index=False, na_rep="–", classes="sortable")
        if truth is not None and not truth.adherence.empty else "",
        adherence_note=html.escape(ADHERENCE_NOTE),
        survival_table=survival_board(table).to_html(index=False, na_rep="–", classes="sortable")
        if not survival_board(table).empty else "",
        survival_note=html.escape(SURVIVAL_NOTE),
        adherence_plot="rate_adherence.png" if truth is not None and truth.plot is not None else "",
        provenance=[(html.escape(k), html.escape(v)) for k, v in provenance(table).items()])
    path = out / "report.html"
    path.write_text(text, encoding="utf-8")
    return path


def serving_cards(roots: list[str], out: Path) -> list[dict[str, Any]]:
    """pcbench-serving's cards under the roots, copied beside the report (serving/N/): their text as
    markdown and HTML (every value escaped), their plots and CSVs."""
    import markdown as md

    found = sorted({p.parent.resolve() for root in roots for p in Path(root).rglob("card.md")
                    if (p.parent / "card.json").exists()})
    cards = []
    for n, folder in enumerate(found):
        target = out / "serving" / str(n)
        target.mkdir(parents=True, exist_ok=True)
        copied = []
        for file in sorted(folder.iterdir()):
            if file.suffix in (".png", ".csv", ".json", ".md") and file.is_file():
                shutil.copyfile(file, target / file.name)
                copied.append(file.name)
        text = (folder / "card.md").read_text(encoding="utf-8", errors="replace")
        body = text.split("\n", 1)[1] if text.startswith("# ") else text  # the report gives the heading
        cards.append({"markdown": body.replace("\n## ", "\n### "),
                      "html": md.markdown(html.escape(body.replace("\n## ", "\n### "), quote=False),
                                          extensions=["tables"]),
                      "images": [f"serving/{n}/{name}" for name in copied if name.endswith(".png")],
                      "files": [(name, f"serving/{n}/{name}") for name in copied if not name.endswith(".png")]})
    return cards


@dataclass
class Report:
    table: pd.DataFrame
    metric: Metric
    out: Path
    notes: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


class ReportError(ValueError):
    """Bad input to a report: no runs, an unknown metric. One line."""


def auto_metric(table: pd.DataFrame) -> str:
    """f1 where the runs have it, else their first reader metric, else answer_in_context (reader-free)."""
    found = available(table)
    for name in ("f1", *found):
        if name in found and name not in DIAGNOSTICS:
            return name
    return "answer_in_context"


def writable_folder(out: Path, flag: str) -> None:
    """Create `out` or say in one line why it cannot hold the report."""
    if out.exists() and not out.is_dir():
        raise ReportError(f"{flag}={out} is a file, not a folder; give a folder for the report")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ReportError(f"{flag}={out} cannot be written ({exc.strerror or type(exc).__name__}); "
                          "give a writable folder") from None


def build_report(roots: list[str], metric_name: str, out: Path, style: Style | None = None,
                 examples: int = 3, table_metric_names: list[str] | None = None) -> Report:
    """The report of the finished cells under `roots`, written to `out`; `examples` inspect pages
    per task and reader (the examples the cells disagree on most), 0 for none."""
    style = style or Style()
    if examples < 0:
        raise ReportError(f"--examples={examples} is not allowed; give 0 (no example pages) or more")
    collected = collect_cells(*roots)
    if collected.table.empty:
        why = f" ({len(collected.notes)} unfinished or failed: {collected.notes[0]})" if collected.notes else ""
        raise ReportError(f"no finished cells under {', '.join(roots)}{why}")
    try:
        metric = resolve(collected.table, auto_metric(collected.table) if metric_name == "auto" else metric_name)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    records = {path: read_records(path) for path in collected.table["path"]}
    table = analyse(collected.table, metric, records)
    try:
        in_tables = table_metrics(table, metric, table_metric_names)
    except ValueError as exc:
        raise ReportError(f"--table-metrics: {exc}") from None
    speed = speed_table(table, records)
    # One speed-up, paired on the shared examples: the speed table's, the plot's and runs.parquet's.
    table = table.merge(speed[["path", "speedup"]], on="path", how="left")
    writable_folder(out, "--out")
    files = {"table": out / "runs.parquet", "leaderboard": out / "leaderboard.md"}
    parquet_safe(table).to_parquet(files["table"])
    files["leaderboard"].write_text(markdown(table, metric, speed), encoding="utf-8")
    files["speed_csv"] = out / "speed.csv"
    speed.to_csv(files["speed_csv"], index=False)
    files["csv"], files["latex"] = out / "table.csv", out / "table.tex"
    tidy_table(table, in_tables).to_csv(files["csv"], index=False)
    files["latex"].write_text(latex(table, in_tables), encoding="utf-8")
    files["tradeoff"] = plot_tradeoff(table, metric, out / "tradeoff", style)
    files["speed"] = plot_speed(table, out / "speed", style)
    heatmap = plot_heatmaps(table, metric, out / "heatmap", style)  # NIAH cells only
    if heatmap is not None:
        files["heatmap"] = heatmap
    truth = Truth(flips(table, records, metric), rate_adherence(table, records),
                  plot_rate_adherence(table, records, out / "rate_adherence", style.width))
    files["flips"], files["rate_adherence"] = out / "flips.csv", out / "rate_adherence.csv"
    truth.flips.assign(negatives=truth.flips.get("negatives", pd.Series(dtype=object)).map(
        lambda ids: ";".join(ids) if isinstance(ids, list) else "")).to_csv(files["flips"], index=False)
    truth.adherence.to_csv(files["rate_adherence"], index=False)
    with files["leaderboard"].open("a", encoding="utf-8") as f:
        if not truth.flips.empty:
            board = truth.flips.drop(columns=["path"]).assign(negatives=truth.flips["negatives"].map(" ".join))
            f.write(f"\n## Flips against the full context\n\n{FLIPS_NOTE.format(metric=metric.name)}\n\n"
                    f"{board.to_markdown(index=False)}\n")
        if not survival_board(table).empty:
            f.write(f"\n## What survives\n\n{SURVIVAL_NOTE}\n\n{survival_board(table).to_markdown(index=False)}\n")
        if not truth.adherence.empty:
            board = adherence_board(truth.adherence)
            f.write(f"\n## Rate adherence\n\n{ADHERENCE_NOTE}\n\n{board.to_markdown(index=False)}\n")
    broken: dict[str, int] = {}  # how many cells each example flipped right to wrong in
    for ids in truth.flips.get("negatives", []):
        for i in ids:
            broken[i] = broken.get(i, 0) + 1
    pages, page_notes = example_pages(table, metric, out, examples, broken)
    serving = serving_cards(roots, out)
    if serving:
        with files["leaderboard"].open("a", encoding="utf-8") as f:
            f.write("\n## Cost under serving\n\n" + "\n".join(card["markdown"] for card in serving))
    files["html"] = html_page(table, metric, out, roots, collected.notes + page_notes, heatmap is not None, pages,
                              speed, in_tables, serving, truth)
    return Report(table, metric, out, collected.notes + page_notes, files)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("roots", nargs="+", help="folders holding cell folders (outputs/, multirun/<study>/)")
    parser.add_argument("--metric", default="auto",
                        help="reader metric (f1, match, longbench, ...), answer_in_context / evidence_recall, "
                             "or a LongBench aggregate (avg, avg_flat, a category, a dataset); auto: f1 where the "
                             "runs have it, else their first reader metric, else answer_in_context")
    parser.add_argument("--out", default="report", help="folder for the table, leaderboard, plots and report.html")
    parser.add_argument("--figure-width", type=float, default=FIGURE_WIDTH,
                        help="plot width in inches, so the figures go into a paper at 100%% and their text is "
                             "7-8 pt: 7 (default) for a two-column paper's page width, 3.3 for one column")
    parser.add_argument("--palette", default="colorblind",
                        help="method colours: colorblind (Okabe-Ito, default) or a matplotlib colormap (tab10, ...)")
    parser.add_argument("--x-axis", default="ratio", metavar="|".join(X_AXES),
                        help="x axis of the trade-off and speed plots: ratio (achieved kept ratio, default) or "
                             "factor (compression factor original/kept, log scale)")
    parser.add_argument("--bands", action="store_true",
                        help="draw 95%% intervals as bands between budgets (interpolated) instead of error bars at "
                             "the measured points")
    parser.add_argument("--pareto-tolerance", type=float, default=0.01,
                        help="kept ratios closer than this do not decide the Pareto front; a cell is also off the "
                             "front only when another's score is above its 95%% interval (default 0.01)")
    parser.add_argument("--examples", type=int, default=3,
                        help="inspect pages per task and reader, linked from report.html: the examples the cells "
                             "disagree on most, as each cell compressed them (default 3; 0: none)")
    parser.add_argument("--table-metrics", default=None, metavar="M1,M2",
                        help="metrics of table.csv and table.tex (default: --metric, then answer_in_context and "
                             "evidence_recall where the runs have them, then LongBench categories and avg)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.table_metrics.split(",") if n.strip()] if args.table_metrics else None
    try:
        if not str(args.out).strip():  # Path("") is the current folder: the report's files would land there
            raise ReportError("--out='' is empty; give a folder for the report")
        style = Style(args.figure_width, args.palette, args.x_axis, args.bands, args.pareto_tolerance)
        report = build_report(args.roots, args.metric, Path(args.out), style, args.examples, names)
    except (ReportError, StyleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    print(cells_board(report.table, report.metric).to_string(index=False))
    print()
    print(variants_board(report.table, report.metric).to_string(index=False))
    for what in ("leaderboard", "tradeoff", "speed", "heatmap", "html", "table", "csv", "speed_csv", "latex"):
        if what in report.files:
            print(f"{what}: {report.files[what]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
