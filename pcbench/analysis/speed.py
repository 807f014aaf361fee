"""What each cell's compression costs, per example, with 95% intervals from its records.

Per cell, from predictions.jsonl:
- compress ms per example: the mean of the records' `compress_seconds` (a cache hit keeps the
  seconds measured when it was computed, so a rerun shows the method's cost, not the cache's);
- compress tokens/s: original reader tokens over compression seconds (a ratio of sums, the
  throughput over the cell's examples);
- end-to-end seconds per example: compress + prefill + generate (reader cells only);
- speed-up: the matched `none` cell's mean end-to-end seconds over this cell's, on the examples
  both hold (`x`, above 1 = faster than reading the full context).
Intervals are percentile bootstraps over the examples (2000 resamples, seeded); the speed-up's
resamples the shared examples of both cells together. A compressor that batches across examples
records each example an even share of its chunk's seconds (one example's time is not observable
inside a batch), so its compression interval is narrow: it spans the chunks, not the examples.
Where a cell's compression reused cached budget-free work computed by an earlier cell (the later
cells of a rate sweep), its seconds are not the method's full cost: the `reused` column says so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from pcbench.analysis.plot import reused_cached_work, roles
from pcbench.analysis.stats import LEVEL, N_BOOT, SEED
from pcbench.core.records import ExampleRecord


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _columns(records: list[ExampleRecord]) -> dict[str, np.ndarray]:
    ids = np.array([str(r.get("id")) for r in records], dtype=object)
    compress = np.array([_number(r.get("compress_seconds")) for r in records])
    read = np.array([_number(r.get("prefill_seconds")) + _number(r.get("generate_seconds")) for r in records])
    tokens = np.array([_number(r.get("original_tokens")) for r in records])
    return {"ids": ids, "compress": compress, "total": np.nan_to_num(compress) + read, "tokens": tokens}


def _bounds(boot: np.ndarray) -> tuple[float, float]:
    boot = boot[np.isfinite(boot)]
    if not len(boot):
        return math.nan, math.nan
    alpha = (1 - LEVEL) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _ratio_of_sums(top: np.ndarray, bottom: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    keep = np.isfinite(top) & np.isfinite(bottom)
    top, bottom = top[keep], bottom[keep]
    if not len(top) or bottom.sum() <= 0:
        return math.nan, math.nan, math.nan
    draws = rng.integers(0, len(top), size=(N_BOOT, len(top)))
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = top[draws].sum(axis=1) / bottom[draws].sum(axis=1)
    return float(top.sum() / bottom.sum()), *_bounds(boot)


def _mean(values: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan, math.nan, math.nan
    boot = values[rng.integers(0, len(values), size=(N_BOOT, len(values)))].mean(axis=1)
    return float(values.mean()), *_bounds(boot)


def speed_table(table: pd.DataFrame, records: dict[str, list[ExampleRecord]]) -> pd.DataFrame:
    """One row per cell: compress ms/example, compress tokens/s, end-to-end s/example and the
    speed-up against the `none` cell of its task and reader, each with a 95% interval."""
    role = roles(table)
    reused = reused_cached_work(table)
    columns = {path: _columns(records[path]) for path in table["path"]}
    rows = []
    for index, row in table.iterrows():
        rng = np.random.default_rng(SEED)
        mine = columns[row["path"]]
        nan3 = (math.nan, math.nan, math.nan)
        # The full context and the gold evidence compress nothing: no cost to report.
        compresses = role.get(str(row["variant"]), "method") in ("method", "control")
        ms = _mean(1000 * mine["compress"], rng) if compresses else nan3
        throughput = _ratio_of_sums(mine["tokens"], mine["compress"], rng) if compresses else nan3
        total = _mean(mine["total"], rng)
        speedup = nan3
        base = table[(table["variant"].map(role) == "baseline") & (table["task_label"] == row["task_label"])
                     & (table["reader_label"] == row["reader_label"])]
        if not base.empty and role.get(str(row["variant"])) != "baseline" and np.isfinite(total[0]):
            full = columns[base.iloc[0]["path"]]
            where = {i: k for k, i in enumerate(full["ids"])}
            pairs = [(where[i], k) for k, i in enumerate(mine["ids"]) if i in where]
            a = np.array([full["total"][j] for j, _ in pairs])
            b = np.array([mine["total"][k] for _, k in pairs])
            speedup = _ratio_of_sums(a, b, rng)  # mean over mean on the shared examples
        rows.append({"path": row["path"], "task": row["task_label"], "reader": row["reader_label"],
                     "variant": row["variant"],
                     "budget": row["budget"], "kept_ratio": row["kept_ratio"], "n": len(mine["ids"]),
                     "compress_ms": ms[0], "compress_ms.lo": ms[1], "compress_ms.hi": ms[2],
                     "tokens_per_s": throughput[0], "tokens_per_s.lo": throughput[1],
                     "tokens_per_s.hi": throughput[2],
                     "total_s": total[0], "total_s.lo": total[1], "total_s.hi": total[2],
                     "speedup": speedup[0], "speedup.lo": speedup[1], "speedup.hi": speedup[2],
                     "reused": bool(reused.loc[index]) and compresses})
    out = pd.DataFrame(rows)
    return out.sort_values(["task", "reader", "variant", "kept_ratio"]).reset_index(drop=True) if rows else out


def _ci(value: float, lo: float, hi: float, digits: int, unit: str = "") -> str:
    if value is None or not np.isfinite(value):
        return "–"
    if not np.isfinite(lo):
        return f"{value:.{digits}f}{unit}"
    return f"{value:.{digits}f}{unit} [{lo:.{digits}f}, {hi:.{digits}f}]"


def speed_board(speed: pd.DataFrame) -> pd.DataFrame:
    """The speed table as it is printed: each figure with its interval."""
    if speed.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "task": speed["task"], "reader": speed["reader"], "variant": speed["variant"], "budget": speed["budget"],
        "kept ratio": speed["kept_ratio"].map(lambda v: f"{v:.3f}"),
        "compress ms/example [95% CI]": [_ci(r["compress_ms"], r["compress_ms.lo"], r["compress_ms.hi"], 1)
                                         for _, r in speed.iterrows()],
        "compress tokens/s": [_ci(r["tokens_per_s"], r["tokens_per_s.lo"], r["tokens_per_s.hi"], 0)
                              for _, r in speed.iterrows()],
        "end-to-end s/example": [_ci(r["total_s"], r["total_s.lo"], r["total_s.hi"], 2) for _, r in speed.iterrows()],
        "speed-up vs none": [_ci(r["speedup"], r["speedup.lo"], r["speedup.hi"], 2, "×") for _, r in speed.iterrows()],
        "cost": ["reused cached work" if r else "full" for r in speed["reused"]],
    })
