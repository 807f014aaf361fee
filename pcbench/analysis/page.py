"""report.html: the page template, the cells' copies beside it, the example pages it links (inspect
pages of the examples worth looking at), the flips table with its links and pcbench-serving's cards."""

from __future__ import annotations

import html
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pcbench.analysis.boards import (
    ADHERENCE_NOTE,
    FLIPS_NOTE,
    JUDGE_NOTE,
    SPEED_NOTE,
    SURVIVAL_NOTE,
    _fmt,
    adherence_board,
    cells_board,
    p_value,
    paper_table,
    provenance,
    summary,
    variants_board,
)
from pcbench.analysis.metric import Metric
from pcbench.analysis.speed import speed_board
from pcbench.core.records import CellMetrics, ExampleRecord

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
{% if judge_table %}<h2>LLM judge</h2>
<p class="note">{{ judge_note }}</p>
<div class="scroll">{{ judge_table }}</div>{% endif %}
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


@dataclass
class Truth:
    """Per-example truth, computed once for the report's page and its leaderboard.md."""

    flips: pd.DataFrame
    adherence: pd.DataFrame
    survival: pd.DataFrame  # boards.survival_board
    plot: Path | None
    threshold: float = 50.0  # the score (of 100) from which an example counts as right
    judge: pd.DataFrame = field(default_factory=pd.DataFrame)  # boards.judge_board


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
        flips_note=html.escape(FLIPS_NOTE.format(metric=metric.name,
                                                 threshold=f"{truth.threshold:g}" if truth is not None else "50")),
        adherence_table=adherence_board(truth.adherence).to_html(index=False, na_rep="–", classes="sortable")
        if truth is not None and not truth.adherence.empty else "",
        adherence_note=html.escape(ADHERENCE_NOTE),
        survival_table=truth.survival.to_html(index=False, na_rep="–", classes="sortable")
        if truth is not None and not truth.survival.empty else "",
        survival_note=html.escape(SURVIVAL_NOTE),
        judge_table=truth.judge.to_html(index=False, na_rep="–", classes="sortable")
        if truth is not None and not truth.judge.empty else "",
        judge_note=html.escape(JUDGE_NOTE),
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


