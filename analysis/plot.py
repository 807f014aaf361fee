"""Accuracy against the achieved kept ratio: one panel per task, one line per compressor."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on clusters
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

DIAGNOSTICS = ("answer_in_context", "evidence_recall")


def metric_column(table: pd.DataFrame, metric: str) -> str:
    """The column for a reader metric (metrics.<name>) or a reader-free diagnostic."""
    for column in (f"metrics.{metric}", metric if metric in DIAGNOSTICS else None):
        if column and column in table and table[column].notna().any():
            return column
    found = [c[8:] for c in table.columns if c.startswith("metrics.")] + [d for d in DIAGNOSTICS if d in table]
    raise ValueError(f"no metric {metric!r} in these runs; found: {', '.join(found) or 'none'}")


def plot_tradeoff(table: pd.DataFrame, metric: str, out: Path) -> Path:
    column = metric_column(table, metric)
    tasks = sorted(table["task"].dropna().unique())
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        rows = table[table["task"] == task].dropna(subset=[column])
        for compressor, group in rows.groupby("compressor"):
            group = group.sort_values("kept_ratio")
            ax.plot(group["kept_ratio"], group[column], marker="o", label=compressor)
        ax.set(title=task, xlabel="achieved kept ratio (reader tokens)", ylabel=metric, xlim=(0, 1.05))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
