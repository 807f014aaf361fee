"""What `--metric NAME` means: the table column of the cell mean, and how to get it per example.

Three kinds of metric:

- reader metrics (`f1`, `match`, `rouge_l`, `longbench`, ...): `metrics.<name>` in metrics.json,
  the mean of `scores[<name>]` (0-1) in predictions.jsonl, times 100;
- reader-free diagnostics (`answer_in_context`, `evidence_recall`, and what survives: `entities_kept`,
  `dates_kept`, `numbers_kept`, `question_terms_kept`): top-level fields, the mean of
  the per-example fields (booleans count as 0/1) times 100;
- LongBench aggregates (`avg`, `avg_flat`, `avg_en`, a category such as `single_doc_qa`, a dataset
  such as `hotpotqa` under a suite): weighted means of per-example scores, each dataset weighing
  the same inside its category and each category the same in `avg` (tasks/longbench.py). Their
  weights need each example's dataset, which a record holds as `dataset` when the cell wrote it;
  without it the cell mean is still shown, only its interval is unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pcbench.core.records import SURVIVAL, ExampleRecord
from pcbench.tasks.longbench_protocol import CATEGORIES, CHINESE

DIAGNOSTICS = ("answer_in_context", "evidence_recall", *SURVIVAL)
AVERAGES = ("avg", "avg_flat", "avg_en")


@dataclass(frozen=True)
class Metric:
    name: str  # as the user wrote it
    column: str  # the cell mean in the table (0-100)
    kind: str  # "score" | "diagnostic" | "average" | "category" | "dataset"

    @property
    def label(self) -> str:
        """Axis and column label, with its unit."""
        return f"{self.name} (%)"


def available(table: pd.DataFrame) -> list[str]:
    """The metric names this table can show (a column with at least one value)."""
    def present(column: str) -> bool:
        return column in table and table[column].notna().any()

    names = [c[len("metrics."):] for c in table.columns if c.startswith("metrics.") and present(c)]
    names += [d for d in DIAGNOSTICS if present(d)]
    names += [a for a in AVERAGES if present(a)]
    names += [c.split(".", 1)[1] for c in table.columns if c.startswith(("categories.", "datasets.")) and present(c)]
    return names


def resolve(table: pd.DataFrame, name: str) -> Metric:
    """The metric `name` in this table; ValueError listing the ones found when it has no values."""
    candidates = [(f"metrics.{name}", "score")]
    if name in DIAGNOSTICS:
        candidates.append((name, "diagnostic"))
    if name in AVERAGES:
        candidates.append((name, "average"))
    candidates += [(f"categories.{name}", "category"), (f"datasets.{name}", "dataset")]
    for column, kind in candidates:
        if column in table and table[column].notna().any():
            return Metric(name, column, kind)
    found = available(table)
    raise ValueError(f"no metric {name!r} in these runs; found: {', '.join(found) or 'none'}")


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    return float(value)


def _score_key(records: list[ExampleRecord]) -> str | None:
    """The per-example score behind LongBench aggregates: the task's first (official) metric."""
    keys = {k for r in records for k in (r.get("scores") or {})}
    if "longbench" in keys:
        return "longbench"
    return next(iter(keys)) if len(keys) == 1 else None


@dataclass
class Values:
    """One cell's per-example values of a metric (0-100), with what its mean weighs.

    mean = sum over strata of stratum_weight * (mean of the stratum's values). A plain mean has
    one stratum; LongBench aggregates have one per dataset (weights from the category structure),
    and a bootstrap resamples within each stratum so every dataset keeps its size.
    """

    ids: np.ndarray
    values: np.ndarray
    strata: np.ndarray  # stratum index per example
    stratum_weights: np.ndarray  # weight per stratum, summing to 1

    @property
    def weights(self) -> np.ndarray:
        """Per-example weights: the stratum's weight shared by its examples present here."""
        counts = np.bincount(self.strata, minlength=len(self.stratum_weights))
        return self.stratum_weights[self.strata] / counts[self.strata]

    @property
    def mean(self) -> float:
        return float(np.sum(self.weights * self.values)) if len(self.values) else math.nan

    def aligned(self, ids: np.ndarray) -> Values:
        """The values of `ids` (all present here), in that order; weights follow the new counts."""
        where = {i: k for k, i in enumerate(self.ids)}
        take = np.array([where[i] for i in ids], dtype=int)
        present = np.unique(self.strata[take])
        weights = np.zeros_like(self.stratum_weights)
        weights[present] = self.stratum_weights[present] / self.stratum_weights[present].sum()
        return Values(self.ids[take], self.values[take], self.strata[take], weights)


def per_example(records: list[ExampleRecord], metric: Metric) -> Values | None:
    """The metric per example (0-100) with its weights; None when the records cannot give it."""
    ids = np.array([str(r.get("id")) for r in records], dtype=object)
    if metric.kind == "score":
        key = metric.column[len("metrics."):]
        values = np.array([_number((r.get("scores") or {}).get(key)) for r in records], dtype=float)
    elif metric.kind == "diagnostic":
        values = np.array([_number(r.get(metric.name)) for r in records], dtype=float)
    else:
        return _longbench(records, metric, ids)
    keep = ~np.isnan(values)
    n = int(keep.sum())
    if n == 0:
        return None
    return Values(ids[keep], 100 * values[keep], np.zeros(n, dtype=int), np.ones(1))


def _longbench(records: list[ExampleRecord], metric: Metric, ids: np.ndarray) -> Values | None:
    key = _score_key(records)
    datasets = [r.get("dataset") for r in records]
    if not records or key is None or any(d is None for d in datasets):
        return None
    values = np.array([_number((r.get("scores") or {}).get(key)) for r in records], dtype=float)
    keep = ~np.isnan(values)
    ds = np.array(datasets, dtype=object)[keep]
    ids, values = ids[keep], 100 * values[keep]
    counts = {d: int((ds == d).sum()) for d in set(ds)}
    target = metric.column.split(".", 1)[-1]
    if metric.kind == "dataset":
        members = {target: 1.0}
    elif metric.kind == "category":
        present = [d for d in CATEGORIES.get(target, ()) if d in counts]
        members = {d: 1 / len(present) for d in present}
    else:
        pool = {d for d in counts if metric.name != "avg_en" or d not in CHINESE}
        if metric.name == "avg_flat":
            members = {d: 1 / len(pool) for d in pool}
        else:  # mean over categories of the mean over their datasets
            cats = {c: [d for d in m if d in pool] for c, m in CATEGORIES.items()}
            cats = {c: m for c, m in cats.items() if m}
            members = {d: 1 / (len(cats) * len(m)) for m in cats.values() for d in m}
    if not members:
        return None
    mask = np.array([d in members for d in ds], dtype=bool)
    order = sorted(members)
    codes = {d: i for i, d in enumerate(order)}
    strata = np.array([codes[d] for d in ds[mask]], dtype=int)
    return Values(ids[mask], values[mask], strata, np.array([members[d] for d in order]))
