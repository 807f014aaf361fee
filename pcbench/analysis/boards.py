"""The report's tables, as data and as text: the cells with their intervals and paired tests, the
summary sentences, variants (area under the curve, mean ranks), the paper tables (CSV, LaTeX), what
survives, rate adherence, provenance, and leaderboard.md."""

from __future__ import annotations

import json
import math
import re
import sys

import numpy as np
import pandas as pd

from pcbench.analysis.metric import Metric, available, resolve
from pcbench.analysis.plot import (
    reader_title,
    roles,
)
from pcbench.analysis.speed import speed_board
from pcbench.core.records import SURVIVAL

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


FLIPS_NOTE = ("Each cell against the full-context cell of its task and reader, on the examples both hold: an "
              "example is right when its {metric} reaches {threshold} (of 100, --flip-threshold). right→wrong are "
              "the examples compression broke; p is McNemar's exact test on the two discordant counts; the broken "
              "examples link to their pages where the report wrote one (flips.csv lists them).")
ADHERENCE_NOTE = ("Cells that asked for a rate: the achieved kept ratio (mean of examples) in the budget's tokens, "
                  "in cl100k tokens and in characters; the share of examples over the budget by more than one "
                  "token and the mean overshoot of those; the achieved ratio in thirds of the task's context lengths "
                  "(rate_adherence.csv).")


SURVIVAL_NOTE = ("Reader-free, per cell: the share of the original context's named entities, dates, numbers and "
                 "question words (those the original holds) still found in the compressed context, as exact "
                 "strings, mean over the examples that have any (entities and dates by spaCy's en_core_web_sm). "
                 "Where the context holds the task's instruction or few-shot demonstrations (LongBench's trec, "
                 "triviaqa, samsum, lsht; own data's fields.instruction): the share of their words kept in place, "
                 "and the share of them kept whole.")
SURVIVAL_COLUMNS = {"entities_kept": "entities kept %", "dates_kept": "dates kept %", "numbers_kept": "numbers kept %",
                    "question_terms_kept": "question terms kept %", "instruction_kept": "instruction words kept %",
                    "instruction_whole": "instruction spans whole %"}


JUDGE_NOTE = ("An LLM judge read each answer with BERGEN's prompt (tasks/judge.py): llm_judge is its mean verdict "
              "(p(Yes) from the first token's logits, or 1/0 from its reply). Undecided: replies that name both "
              "options or neither, left out of the mean. Agreement: the share of decided examples where the "
              "judge (verdict >= 0.5) and match say the same; kappa: that agreement beyond chance (Cohen).")


def kvpress_board(table: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """The KV-press cells in the columns of kvpress's leaderboard results (evaluation/evaluate.py's
    config and score: dataset, data_dir, model, method, compression_ratio, score), so a row compares
    with the public Space. method is the press, `__query_aware` appended when the question was pressed
    (kvpress's output folders say so); compression_ratio is the press's budget, its threshold or head
    ratio for the presses budgeted so, as kvpress names the run. After kvpress's columns, ours: the KV
    entries kept and the cache's memory (after the pressed prefill, unpressed, and the prefill's peak rise)."""
    rows = []
    for _, row in table.dropna(subset=[metric.column]).iterrows():
        identity = json.loads(row["identity"]) if isinstance(row.get("identity"), str) else {}
        reader, task = identity.get("reader") or {}, identity.get("task") or {}
        if reader.get("reader") != "kvpress":
            continue
        budget = next((reader[k] for k in ("threshold", "head_compression_ratio") if reader.get(k) is not None),
                      reader.get("compression_ratio"))
        rows.append({"dataset": task.get("name"),
                     "data_dir": task.get("context_tokens", task.get("hub_config")),
                     "model": reader.get("model"),
                     "method": str(reader.get("press")) + ("__query_aware" if reader.get("question_aware") else ""),
                     "compression_ratio": budget, "score": round(float(row[metric.column]), 2),
                     "kv_kept_ratio": row.get("kv_kept_ratio"), "metric": metric.name,
                     # Memory beside the score, so "compressed but not smaller" shows (per example, MiB).
                     "cache_mib": row.get("kv_memory.cache_mib_mean"),
                     "full_cache_mib": row.get("kv_memory.full_cache_mib_mean"),
                     "prefill_peak_mib": row.get("kv_memory.prefill_peak_mib_mean")})
    return pd.DataFrame(rows)


def judge_board(table: pd.DataFrame) -> pd.DataFrame:
    """One row per judged cell: its judge's model, llm_judge beside match, agreement and kappa."""
    if "judge.judged" not in table or table["judge.judged"].isna().all():
        return pd.DataFrame()
    rows = table.dropna(subset=["judge.judged"]).sort_values(["task_label", "reader_label", "variant", "kept_ratio"])

    def column(name: str) -> pd.Series:
        return rows[name] if name in rows else pd.Series([None] * len(rows), index=rows.index)

    return pd.DataFrame({
        "task": rows["task_label"], "reader": rows["reader_label"], "variant": rows["variant"],
        "budget": rows["budget"], "judge": column("judge.reader.model"),
        "llm_judge": column("metrics.llm_judge").map(_fmt), "match": column("metrics.match").map(_fmt),
        "judged": rows["judge.judged"].astype(int), "undecided": column("judge.unknown").fillna(0).astype(int),
        "agreement %": column("judge.agreement_with_match").map(lambda v: _fmt(100 * v) if not pd.isna(v) else "–"),
        "kappa": column("judge.kappa").map(lambda v: _fmt(v, 2)),
    }).reset_index(drop=True)


def survival_board(table: pd.DataFrame) -> pd.DataFrame:
    present = [name for name in SURVIVAL if name in table and table[name].notna().any()]
    if not present:
        return pd.DataFrame()
    rows = table.sort_values(["task_label", "reader_label", "variant", "kept_ratio"])
    board = pd.DataFrame({"task": rows["task_label"], "reader": rows["reader_label"], "variant": rows["variant"],
                          "budget": rows["budget"], "kept ratio": rows["kept_ratio"].map(lambda v: _fmt(v, 3))})
    for name in present:
        board[SURVIVAL_COLUMNS[name]] = rows[name].map(_fmt)
    return board.reset_index(drop=True)


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


