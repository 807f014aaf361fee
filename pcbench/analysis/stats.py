"""Uncertainty from the per-example records: bootstrap intervals and paired tests.

- Every metric mean of every cell gets a 95% percentile-bootstrap interval (2000 resamples of
  its examples, seeded, so a report is reproducible to the digit).
- A compressor is compared with the `none` and `random` baselines on the same examples (ids in
  both cells), at matched achieved ratio: the baseline's cell at the same task and reader whose
  kept ratio is nearest. The difference of means gets a paired-bootstrap interval (both cells
  resampled with the same example indices) and a two-sided paired permutation p-value (random
  sign flips of the per-example differences, the exact null of "the two cells are exchangeable").

Means are linear in the examples (LongBench's AVG too: a weighted mean, tasks/longbench.py), so
every resample is a gather and a weighted sum over a (resamples x examples) index array, done in
blocks so memory stays bounded on long tasks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pcbench.analysis.metric import Metric, Values, per_example
from pcbench.core.records import ExampleRecord
from pcbench.core.results import read_numbers

N_BOOT = 2000
N_PERM = 2000
SEED = 0
LEVEL = 0.95
# The cells each method is tested against, by role (compressors/base.py), named as the report shows them.
BASELINES = {"none": "baseline", "random": "control"}
# Elements per block of a resampling array (8 bytes each): ~32 MB.
_BLOCK = 4_000_000


def read_records(path: str | Path) -> list[ExampleRecord]:
    """A cell's predictions.jsonl, without the compressed contexts (large, not needed for numbers)."""
    records, problem = read_numbers(Path(path))  # the parse collect's completeness check made
    if problem:  # collect leaves such cells out; a caller that did not is told which file and line
        raise ValueError(problem)
    return records


def _resampled_means(values: np.ndarray, values_strata: np.ndarray, stratum_weights: np.ndarray,
                     n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(k, n_boot) weighted means of k aligned rows of `values` (k, n), resampled within strata."""
    k = values.shape[0]
    out = np.zeros((k, n_boot))
    for s, weight in enumerate(stratum_weights):
        if weight == 0:
            continue
        rows = values[:, values_strata == s]
        n = rows.shape[1]
        block = max(1, _BLOCK // max(1, n * k))
        for start in range(0, n_boot, block):
            stop = min(n_boot, start + block)
            draws = rng.integers(0, n, size=(stop - start, n))
            out[:, start:stop] += weight * rows[:, draws].mean(axis=-1)
    return out


@dataclass(frozen=True)
class Interval:
    mean: float
    lo: float
    hi: float
    n: int


def interval(values: Values, n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL) -> Interval:
    """Percentile bootstrap interval of the (weighted) mean."""
    n = len(values.values)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    rng = np.random.default_rng(seed)
    boot = _resampled_means(values.values[None, :], values.strata, values.stratum_weights, n_boot, rng)[0]
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    # The interval holds its own point estimate, whatever the quantiles' floating-point error.
    return Interval(values.mean, min(float(lo), values.mean), max(float(hi), values.mean), n)


@dataclass(frozen=True)
class Paired:
    diff: float  # mean(a) - mean(b) on the shared examples
    lo: float
    hi: float
    p: float
    n: int


def paired(a: Values, b: Values, n_boot: int = N_BOOT, n_perm: int = N_PERM, seed: int = SEED,
           level: float = LEVEL) -> Paired:
    """a against b on the examples both hold: bootstrap interval of the difference, permutation p."""
    shared = np.array(sorted(set(a.ids) & set(b.ids)), dtype=object)
    if len(shared) == 0:
        return Paired(math.nan, math.nan, math.nan, math.nan, 0)
    a, b = a.aligned(shared), b.aligned(shared)
    weights = a.weights  # same ids, same strata, same weights as b's
    rng = np.random.default_rng(seed)
    boot = _resampled_means(np.stack([a.values, b.values]), a.strata, a.stratum_weights, n_boot, rng)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boot[0] - boot[1], [alpha, 1 - alpha])
    weighted = weights * (a.values - b.values)
    observed = float(weighted.sum())
    n = len(shared)
    extreme = 0
    block = max(1, _BLOCK // n)
    for start in range(0, n_perm, block):
        signs = rng.choice(np.array([-1.0, 1.0]), size=(min(block, n_perm - start), n))
        # A tolerance so that flips giving the observed statistic up to rounding count as extreme.
        extreme += int(np.sum(np.abs(signs @ weighted) >= abs(observed) - 1e-9))
    return Paired(observed, float(lo), float(hi), (extreme + 1) / (n_perm + 1), n)


def add_intervals(table: pd.DataFrame, records: dict[str, list[ExampleRecord]],
                  metrics: list[Metric]) -> pd.DataFrame:
    """`<column>.lo` and `<column>.hi` for every metric given, per cell (NaN where the records
    cannot give the metric per example)."""
    table = table.copy()
    for metric in metrics:
        lo, hi = [], []
        shown = table[metric.column] if metric.column in table else pd.Series(math.nan, index=table.index)
        for path, mean in zip(table["path"], shown):
            values = per_example(records[path], metric)
            found = interval(values) if values is not None else None
            # metrics.json rounds its means (x100, 2 decimals): every score 2/3 gives 66.67 beside an
            # interval [66.666..., 66.666...]. The interval is widened to hold the mean shown with it.
            mean = float(mean) if mean is not None and not pd.isna(mean) else math.nan
            lo.append(min(found.lo, mean) if found and not math.isnan(mean) else found.lo if found else math.nan)
            hi.append(max(found.hi, mean) if found and not math.isnan(mean) else found.hi if found else math.nan)
        table[f"{metric.column}.lo"] = lo
        table[f"{metric.column}.hi"] = hi
    return table


def matched_baseline(table: pd.DataFrame, row: pd.Series, baseline: str) -> pd.Series | None:
    """The `baseline` cell at the row's task and reader whose achieved kept ratio is nearest (among
    those with the row's non-budget knobs, e.g. the same unit level, when any has them)."""
    same = table[(table["role"] == BASELINES[baseline]) & (table["task_label"] == row["task_label"])
                 & (table["reader_label"] == row["reader_label"]) & (table["path"] != row["path"])]
    if same.empty:
        return None
    # A control cut into the same units (random level=passage for bm25 level=passage) when there is one.
    knobs = str(row["variant"]).partition(" ")[2]
    alike = same[same["variant"].map(lambda v: str(v).partition(" ")[2]) == knobs]
    pool = alike if not alike.empty else same
    return pool.loc[(pool["kept_ratio"] - row["kept_ratio"]).abs().idxmin()]


def add_paired(table: pd.DataFrame, records: dict[str, list[ExampleRecord]], metric: Metric,
               baselines: tuple[str, ...] = tuple(BASELINES)) -> pd.DataFrame:
    """Per cell and baseline: `vs_<b>.diff/.lo/.hi/.p/.n` (metric points, shared examples) and
    `vs_<b>.ratio`, `vs_<b>.path` (the matched baseline cell)."""
    table = table.copy()
    table["paired_metric"] = metric.name
    for baseline in baselines:
        columns: dict[str, list[Any]] = {k: [] for k in ("diff", "lo", "hi", "p", "n", "ratio", "path")}
        for _, row in table.iterrows():
            match = None if row["role"] == BASELINES[baseline] else matched_baseline(table, row, baseline)
            a = per_example(records[row["path"]], metric)
            b = per_example(records[match["path"]], metric) if match is not None else None
            result = paired(a, b) if a is not None and b is not None else None
            for key in ("diff", "lo", "hi", "p"):
                columns[key].append(getattr(result, key) if result else math.nan)
            columns["n"].append(result.n if result else 0)
            columns["ratio"].append(match["kept_ratio"] if match is not None else math.nan)
            columns["path"].append(match["path"] if match is not None else None)
        for key, values in columns.items():
            table[f"vs_{baseline}.{key}"] = values
    return table
