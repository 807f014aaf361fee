"""Per-example truth beside the means: which examples a method breaks that the full context got right
(flips), and whether the requested rate is the rate achieved at every input length (rate adherence).

- **Flips**: each cell against the `none` cell of its task and reader on the examples both hold. An
  example is right when its score reaches `threshold` (0-100; a 0/1 metric is right at 100): right to
  wrong ("negative samples", the examples compression broke), wrong to right, both right, both
  wrong, and McNemar's exact test on the two discordant counts.
- **Rate adherence**: each cell that asked for a `rate`, its achieved kept ratio per example in the
  budget's tokens, cl100k tokens and characters; the share of examples over the budget (by more than
  one token) and by how much; and the mean achieved ratio in thirds of the task's context lengths.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pcbench.analysis.metric import Metric, per_example
from pcbench.analysis.stats import matched_baseline, mcnemar
from pcbench.core.records import ExampleRecord

NEGATIVES_LISTED = 10  # right-to-wrong ids kept per cell (the flips.csv and the report list them)


def flips(table: pd.DataFrame, records: dict[str, list[ExampleRecord]], metric: Metric,
          threshold: float = 50.0) -> pd.DataFrame:
    """One row per cell that has a full-context cell at its task and reader (see the module doc)."""
    rows: list[dict[str, Any]] = []
    for _, row in table.iterrows():
        if row["role"] == "baseline":
            continue
        full = matched_baseline(table, row, "none")
        mine = per_example(records[row["path"]], metric)
        base = per_example(records[full["path"]], metric) if full is not None else None
        if mine is None or base is None:
            continue
        shared = np.array(sorted(set(mine.ids) & set(base.ids)), dtype=object)
        if len(shared) == 0:
            continue
        right = mine.aligned(shared).values >= threshold
        was_right = base.aligned(shared).values >= threshold
        broke, fixed = shared[was_right & ~right], shared[~was_right & right]
        rows.append({
            "task": row["task_label"], "reader": row["reader_label"], "variant": row["variant"],
            "budget": row["budget"], "kept_ratio": row["kept_ratio"], "path": row["path"], "n": len(shared),
            "right_to_wrong": len(broke), "wrong_to_right": len(fixed),
            "both_right": int(np.sum(was_right & right)), "both_wrong": int(np.sum(~was_right & ~right)),
            "p": mcnemar(right.astype(float) - was_right.astype(float)),
            "negatives": [str(i) for i in broke[:NEGATIVES_LISTED]],
        })
    return pd.DataFrame(rows)


def _bins(lengths: np.ndarray) -> np.ndarray:
    """Edges of thirds of the task's context lengths (fewer bins where the lengths do not differ)."""
    return np.unique(np.quantile(lengths, [0, 1 / 3, 2 / 3, 1])) if len(lengths) else np.array([0.0])


def rate_adherence(table: pd.DataFrame, records: dict[str, list[ExampleRecord]]) -> pd.DataFrame:
    """One row per cell that asked for a rate (see the module doc); length thirds per task."""
    asked = table[table.get("requested.rate", pd.Series(math.nan, index=table.index)).notna()
                  & (table["role"] != "baseline")]
    lengths = {task: np.array([r["original_tokens"] for p in group["path"] for r in records[p]], dtype=float)
               for task, group in table.groupby("task_label")}
    rows: list[dict[str, Any]] = []
    for _, row in asked.iterrows():
        rate = float(row["requested.rate"])
        cell = records[row["path"]]
        original = np.array([r["original_tokens"] for r in cell], dtype=float)
        kept = np.array([r["compressed_tokens"] for r in cell], dtype=float)
        ratio = np.where(original > 0, kept / np.maximum(original, 1), 1.0)
        over = kept > rate * original + 1  # more than one token past the budget
        overshoot = ratio - rate
        edges = _bins(lengths[row["task_label"]])
        found: dict[str, Any] = {
            "task": row["task_label"], "reader": row["reader_label"], "variant": row["variant"],
            "path": row["path"], "requested": rate, "n": len(cell),
            "achieved": float(ratio.mean()) if len(ratio) else math.nan,
            "over_budget_share": float(over.mean()) if len(over) else math.nan,
            "overshoot_mean": float(overshoot[over].mean()) if over.any() else 0.0,
            "overshoot_max": float(overshoot.max()) if len(overshoot) else math.nan,
            "achieved_cl100k": _mean([r.get("kept_ratio_cl100k") for r in cell]),
            "achieved_chars": _mean([r.get("char_ratio") for r in cell]),
        }
        for k in range(len(edges) - 1):
            low, high = edges[k], edges[k + 1]
            inside = (original >= low) & ((original <= high) if k == len(edges) - 2 else (original < high))
            found[f"tokens {int(low)}-{int(high)}"] = float(ratio[inside].mean()) if inside.any() else math.nan
        rows.append(found)
    return pd.DataFrame(rows)


def _mean(values: list[Any]) -> float:
    numbers = [float(v) for v in values if v is not None]
    return float(np.mean(numbers)) if numbers else math.nan


def plot_rate_adherence(adherence: pd.DataFrame, out: Path, width: float = 7.0) -> Path | None:
    """`rate_adherence`'s table drawn: achieved against requested kept ratio by context length, one
    panel per task, a line per cell (its mean achieved ratio per length third), the requested rate dashed."""
    import matplotlib.pyplot as plt

    from pcbench.analysis.plot import _save

    if adherence.empty or not any(c.startswith("tokens ") for c in adherence.columns):
        return None  # no lengths to tell apart: the table says it all
    tasks = sorted(adherence["task"].unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(width, 2.6), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        group = adherence[adherence["task"] == task]
        bins = [c for c in adherence.columns if c.startswith("tokens ") and group[c].notna().any()]
        x = np.arange(len(bins))
        for _, row in group.iterrows():
            line = ax.plot(x, [row[c] for c in bins], marker="o", markersize=3, linewidth=1,
                           label=f"{row['variant']} @ {row['requested']:g}")
            ax.axhline(row["requested"], color=line[0].get_color(), linestyle="--", linewidth=0.6)
        ax.set_xticks(x, [b.removeprefix("tokens ") for b in bins], fontsize=6)
        ax.set_xlabel("context tokens (thirds)", fontsize=7)
        ax.set_ylabel("achieved kept ratio", fontsize=7)
        ax.set_title(str(task), fontsize=8)
        ax.tick_params(labelsize=6)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=5, loc="upper center", ncol=min(4, max(1, len(labels))),
               bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.8))
    return _save(fig, out)
