"""Uncertainty from the per-example records: bootstrap intervals and paired tests.

- Every metric mean of every cell gets a 95% percentile-bootstrap interval (2000 resamples of
  its examples, seeded, so a report is reproducible to the digit).
- A compressor is compared with the `none` and `random` baselines on the same examples (ids in
  both cells), at matched achieved ratio: the baseline's cell at the same task and reader whose
  kept ratio is nearest. The difference of means is tested with the paired sign-flip permutation
  test (Fisher 1935; Good, "Permutation, Parametric and Bootstrap Tests of Hypotheses", 2005, sec.
  3.6): exact (every sign pattern) up to 16 examples, else 4000 seeded random flips; for a 0/1
  metric it is McNemar's exact test (a two-sided binomial test on the discordant pairs). Its 95%
  interval inverts the same test (the shifts it does not reject), so an interval excludes zero
  exactly when p < 0.05. Where even the most extreme sign pattern has p > 0.05 (too few examples
  that differ), the interval is the whole range and the row says so.
- The comparisons a report shows for one metric are one family: each p also gets Holm's
  step-down adjustment (Holm 1979), which claims of "above" or "below" use.

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
N_PERM = 4000
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
    lo: float  # the shifts the paired test does not reject at 1 - level
    hi: float
    p: float  # two-sided, of no difference
    n: int
    test: str = ""  # which test gave p and the interval
    min_p: float = math.nan  # the smallest p this test can give here (above 0.05: it cannot reject)


EXACT_UP_TO = 16  # examples whose every sign pattern is enumerated (2^16 rows)


def _sign_patterns(n: int, n_perm: int, rng: np.random.Generator) -> tuple[np.ndarray, bool]:
    """Every sign pattern for n examples (exact), or n_perm seeded random ones."""
    if n <= EXACT_UP_TO:
        codes = np.arange(2 ** n)[:, None] >> np.arange(n)[None, :] & 1
        return 2.0 * codes - 1.0, True
    return rng.choice(np.array([-1.0, 1.0]), size=(n_perm, n)), False


def _flip_p(x: np.ndarray, signs: np.ndarray, exact: bool) -> float:
    """Two-sided sign-flip p of sum(x) against its sign-flipped copies."""
    observed = abs(float(x.sum()))
    # A tolerance so that flips giving the observed statistic up to rounding count as extreme.
    tolerance = 1e-9 * max(1.0, float(np.abs(x).sum()))
    extreme = 0
    block = max(1, _BLOCK // max(1, len(x)))
    for start in range(0, len(signs), block):
        extreme += int(np.sum(np.abs(signs[start:start + block] @ x) >= observed - tolerance))
    return extreme / len(signs) if exact else (extreme + 1) / (len(signs) + 1)


def mcnemar(d: np.ndarray) -> float | None:
    """McNemar's exact p for paired right/wrong scores with equal weights (every nonzero difference of
    one size: 0/1 scores, or 0/100 as the report scales them); else None."""
    if len(np.unique(np.abs(d[d != 0]))) > 1:
        return None
    from scipy.stats import binomtest

    up, down = int(np.sum(d > 0)), int(np.sum(d < 0))
    return float(binomtest(up, up + down, 0.5).pvalue) if up + down else 1.0


def paired(a: Values, b: Values, n_perm: int = N_PERM, seed: int = SEED, level: float = LEVEL) -> Paired:
    """a against b on the examples both hold: the paired sign-flip test and the interval that
    inverts it (see the module doc), so the two always agree."""
    shared = np.array(sorted(set(a.ids) & set(b.ids)), dtype=object)
    if len(shared) == 0:
        return Paired(math.nan, math.nan, math.nan, math.nan, 0)
    a, b = a.aligned(shared), b.aligned(shared)
    weights = a.weights  # same ids, same strata, same weights as b's
    d = a.values - b.values
    n = len(shared)
    signs, exact = _sign_patterns(n, n_perm, np.random.default_rng(seed))
    alpha = 1 - level
    equal_weights = bool(np.allclose(weights, weights[0]))
    exact_binary = mcnemar(d) if equal_weights else None

    def p_at(shift: float) -> float:
        if shift == 0.0 and exact_binary is not None:
            return exact_binary
        return _flip_p(weights * (d - shift), signs, exact)

    diff = float(np.sum(weights * d))
    p0 = p_at(0.0)
    # No shift outside the per-example differences' range can be the mean difference; and the
    # smallest p the test can give is that of every differing example on one side.
    spread = float(d.max() - d.min())
    below, above = float(d.min()), float(d.max())
    differing = int(np.sum(d != 0))
    min_p = min(1.0, 2 * 0.5 ** differing)
    if not exact and exact_binary is None:
        min_p = max(min_p, 1 / (len(signs) + 1))

    def bound(far: float) -> float:
        """The outermost shift between the estimate and `far` that the test does not reject. Zero is
        decided first, by p itself, so the interval excludes zero exactly when p < 1 - level."""
        inside, outside = diff, far
        if (far - diff) * (0.0 - diff) > 0 and diff != 0.0:  # zero lies on this side
            if p0 > alpha:
                inside = 0.0
            else:
                outside = 0.0
        if outside == inside or p_at(outside) > alpha:  # nothing to reject on this side
            return outside
        for _ in range(60):
            middle = (inside + outside) / 2
            if p_at(middle) > alpha:
                inside = middle
            else:
                outside = middle
            if abs(outside - inside) <= 1e-6 * max(1.0, spread):
                break
        return inside

    test = ("McNemar exact" if exact_binary is not None else
            "sign-flip exact" if exact else f"sign-flip, {len(signs)} random flips")
    return Paired(diff, bound(below), bound(above), p0, n, test, min_p)


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979), NaNs left out of the family and kept."""
    order = sorted((v, i) for i, v in enumerate(p) if not math.isnan(v))
    adjusted = [math.nan] * len(p)
    running, m = 0.0, len(order)
    for rank, (value, i) in enumerate(order):
        running = max(running, min(1.0, (m - rank) * value))
        adjusted[i] = running
    return adjusted


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
        columns: dict[str, list[Any]] = {k: [] for k in ("diff", "lo", "hi", "p", "n", "ratio", "path", "test",
                                                         "min_p")}
        for _, row in table.iterrows():
            match = None if row["role"] == BASELINES[baseline] else matched_baseline(table, row, baseline)
            a = per_example(records[row["path"]], metric)
            b = per_example(records[match["path"]], metric) if match is not None else None
            result = paired(a, b) if a is not None and b is not None else None
            for key in ("diff", "lo", "hi", "p", "min_p"):
                columns[key].append(getattr(result, key) if result else math.nan)
            columns["test"].append(result.test if result else None)
            columns["n"].append(result.n if result else 0)
            columns["ratio"].append(match["kept_ratio"] if match is not None else math.nan)
            columns["path"].append(match["path"] if match is not None else None)
        for key, values in columns.items():
            table[f"vs_{baseline}.{key}"] = values
    # Every comparison shown for this metric is one family (module doc).
    family = [(name, i) for name in baselines for i in range(len(table))]
    adjusted = holm([float(table[f"vs_{name}.p"].iloc[i]) for name, i in family])
    for name in baselines:
        table[f"vs_{name}.p_holm"] = math.nan
    for (name, i), value in zip(family, adjusted):
        table.iloc[i, table.columns.get_loc(f"vs_{name}.p_holm")] = value
    return table
