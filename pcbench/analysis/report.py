"""`pcbench-report ROOT... --metric f1`: the table, the leaderboard, the plots and an HTML page.

Writes to --out (default `report/`):
- runs.parquet: one row per cell (collect.py), with 95% bootstrap bounds of every metric
  (`<column>.lo/.hi`), paired differences against the matched `none` and `random` cells for the
  chosen metric (`vs_none.*`, `vs_random.*`) and the speed-up;
- leaderboard.md: every cell with its interval and paired tests, then per variant the area under
  its metric-vs-ratio curve and its mean rank at matched budgets;
- table.csv (one row per cell: task, reader, variant, budget, kept ratio, the metric and its 95%
  interval) and table.tex (methods x tasks, booktabs, each cell "mean (kept ratio)") for a paper;
- kvpress.csv, for KV-press cells: kvpress's leaderboard columns (dataset, data_dir, model, method,
  compression_ratio, score), to set beside its public results;
- tradeoff.png/.pdf, speed.png/.pdf (--figure-width, --palette, --x-axis ratio|factor, --bands), heatmap for
  needle cells, report.html (sortable tables, the plots, links to the cells and to inspect pages of
  the examples the cells disagree on most under examples/, and the provenance: when it was made,
  the cells' commits, package versions, hardware).
`analysis/report.ipynb` draws the same from runs.parquet. The tables are boards.py's, the page
page.py's; this module collects, analyses and writes them.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pcbench.analysis.boards import (
    ADHERENCE_NOTE,
    FLIPS_NOTE,
    JUDGE_NOTE,
    SURVIVAL_NOTE,
    adherence_board,
    cells_board,
    judge_board,
    kvpress_board,
    latex,
    markdown,
    survival_board,
    table_metrics,
    tidy_table,
    variants_board,
)
from pcbench.analysis.collect import collect_cells, parquet_safe
from pcbench.analysis.metric import DIAGNOSTICS, Metric, available, resolve
from pcbench.analysis.page import Truth, example_pages, html_page, serving_cards
from pcbench.analysis.plot import (
    FIGURE_WIDTH,
    X_AXES,
    Style,
    StyleError,
    plot_heatmaps,
    plot_speed,
    plot_tradeoff,
)
from pcbench.analysis.speed import speed_table
from pcbench.analysis.stats import add_intervals, add_paired, read_records
from pcbench.analysis.truth import flips, plot_rate_adherence, rate_adherence
from pcbench.core.records import ExampleRecord


def analyse(table: pd.DataFrame, metric: Metric, records: dict[str, list[ExampleRecord]] | None = None) -> (
        pd.DataFrame):
    """The collected table with intervals for every metric and paired tests."""
    records = records if records is not None else {path: read_records(path) for path in table["path"]}
    table = add_intervals(table, records, [resolve(table, name) for name in available(table)])
    return add_paired(table, records, metric)


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
                 examples: int = 3, table_metric_names: list[str] | None = None,
                 flip_threshold: float = 50.0) -> Report:
    """The report of the finished cells under `roots`, written to `out`; `examples` inspect pages
    per task and reader (the examples the cells disagree on most), 0 for none."""
    style = style or Style()
    if not 0 < flip_threshold <= 100:
        raise ReportError(f"--flip-threshold={flip_threshold:g} is not allowed; give the score (0-100] from which "
                          "an example counts as right, e.g. 50")
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
    kv = kvpress_board(table, metric)
    if not kv.empty:  # KV-press cells: also in kvpress's own leaderboard columns
        files["kvpress"] = out / "kvpress.csv"
        kv.to_csv(files["kvpress"], index=False)
    files["latex"].write_text(latex(table, in_tables), encoding="utf-8")
    files["tradeoff"] = plot_tradeoff(table, metric, out / "tradeoff", style)
    files["speed"] = plot_speed(table, out / "speed", style)
    heatmap = plot_heatmaps(table, metric, out / "heatmap", style)  # NIAH cells only
    if heatmap is not None:
        files["heatmap"] = heatmap
    adherence = rate_adherence(table, records)
    truth = Truth(flips(table, records, metric, flip_threshold), adherence, survival_board(table),
                  plot_rate_adherence(adherence, out / "rate_adherence", style.width), flip_threshold,
                  judge_board(table))
    files["flips"], files["rate_adherence"] = out / "flips.csv", out / "rate_adherence.csv"
    truth.flips.assign(negatives=truth.flips.get("negatives", pd.Series(dtype=object)).map(
        lambda ids: ";".join(ids) if isinstance(ids, list) else "")).to_csv(files["flips"], index=False)
    truth.adherence.to_csv(files["rate_adherence"], index=False)
    with files["leaderboard"].open("a", encoding="utf-8") as f:
        if not truth.flips.empty:
            board = truth.flips.drop(columns=["path"]).assign(negatives=truth.flips["negatives"].map(" ".join))
            f.write(f"\n## Flips against the full context\n\n"
                    f"{FLIPS_NOTE.format(metric=metric.name, threshold=f'{flip_threshold:g}')}\n\n"
                    f"{board.to_markdown(index=False)}\n")
        if not truth.survival.empty:
            f.write(f"\n## What survives\n\n{SURVIVAL_NOTE}\n\n{truth.survival.to_markdown(index=False)}\n")
        if not truth.judge.empty:
            f.write(f"\n## LLM judge\n\n{JUDGE_NOTE}\n\n{truth.judge.to_markdown(index=False)}\n")
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
    parser.add_argument("--flip-threshold", type=float, default=50.0,
                        help="the score (of 100) from which an example counts as right in the flips table "
                             "(default 50; a 0/1 metric is right at 100 whatever it is)")
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
        report = build_report(args.roots, args.metric, Path(args.out), style, args.examples, names,
                              args.flip_threshold)
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
