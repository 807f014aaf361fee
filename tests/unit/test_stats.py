"""Bootstrap intervals and paired tests: right on data whose answer is known."""

from __future__ import annotations

import math
from statistics import fmean

import numpy as np
import pandas as pd
import pytest

from pcbench.analysis.metric import Metric, Values, per_example, resolve
from pcbench.analysis.stats import interval, matched_baseline, paired
from pcbench.tasks.longbench import _averages


def plain(values: np.ndarray, ids: list[str] | None = None) -> Values:
    n = len(values)
    return Values(np.array(ids or [str(i) for i in range(n)], dtype=object), values.astype(float),
                  np.zeros(n, dtype=int), np.ones(1))


def test_interval_matches_the_normal_approximation_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    values = plain(rng.normal(50, 10, size=400))
    found = interval(values)
    half = 1.96 * values.values.std(ddof=1) / np.sqrt(400)
    assert found.mean == pytest.approx(values.values.mean())
    assert found.lo == pytest.approx(found.mean - half, abs=0.15 * half)
    assert found.hi == pytest.approx(found.mean + half, abs=0.15 * half)
    assert interval(values) == found  # seeded: the same report twice
    assert interval(values, seed=7) != found


def test_interval_of_binary_scores_and_of_one_example() -> None:
    values = plain(np.array([100.0] * 30 + [0.0] * 10))
    found = interval(values)
    assert found.mean == 75.0 and found.lo < 75.0 < found.hi and 0 <= found.lo and found.hi <= 100
    one = interval(plain(np.array([42.0])))
    assert (one.lo, one.hi, one.n) == (42.0, 42.0, 1)


def test_paired_detects_a_real_difference_and_not_a_null_one() -> None:
    rng = np.random.default_rng(2)
    base = rng.normal(50, 20, size=200)
    better = plain(base + 5 + rng.normal(0, 2, size=200))
    same = paired(plain(base), plain(base))
    assert (same.diff, same.lo, same.hi, same.p) == (0.0, 0.0, 0.0, 1.0)
    found = paired(better, plain(base))
    assert found.diff == pytest.approx(5, abs=0.5) and found.lo > 0 and found.p < 0.01
    # Unpaired, the 20-point spread between examples would hide the 5 points; paired it does not.
    assert found.hi - found.lo < 2
    noise = paired(plain(base + rng.normal(0, 2, size=200)), plain(base))
    assert noise.lo < 0 < noise.hi and noise.p > 0.05


def test_the_paired_test_is_fishers_on_darwins_zea_mays() -> None:
    """Darwin's 15 pairs of cross- and self-fertilised Zea mays (height differences in eighths of an
    inch; Fisher 1935, The Design of Experiments, sec. 21): Fisher's exact randomisation test gives
    1726 of the 2^15 sign patterns at least as extreme, p = 0.0527."""
    d = np.array([49, -67, 8, 16, 6, 23, 28, 41, 14, 29, 56, 24, 75, 60, -48], dtype=float)
    found = paired(plain(d), plain(np.zeros(15)))
    assert found.p == pytest.approx(1726 / 32768, abs=1e-12) and found.test == "sign-flip exact"
    assert found.diff == pytest.approx(20.9333, abs=1e-4)
    assert found.lo < 0 < found.hi  # p > 0.05: the interval holds zero


def test_a_binary_metric_uses_mcnemar_and_the_interval_agrees_with_p() -> None:
    """The demo's oracle vs none: 4 of 12 examples right only with the oracle. McNemar's exact p is
    2 / 2^4 = 0.125, so the interval must hold 0 (a percentile bootstrap put it at [+8.3, +58.3]), and
    four differing examples can never reach 0.05, which the result says."""
    found = paired(plain(np.array([1.0] * 4 + [0.0] * 8)), plain(np.zeros(12)))
    assert found.test == "McNemar exact" and found.p == pytest.approx(0.125)
    assert found.lo <= 0 <= found.hi and found.min_p == pytest.approx(0.125)
    strong = paired(plain(np.array([1.0] * 9 + [0.0] * 3)), plain(np.zeros(12)))
    assert strong.p == pytest.approx(2 / 2 ** 9) and strong.lo > 0
    # As the report scales scores (0/100), and with more examples than are enumerated: still McNemar's.
    # 10 examples right only compressed, 3 only in full, 27 alike: 2 x P(Bin(13, 1/2) >= 10) = 2 x 378 / 8192.
    a = np.array([100.0] * 10 + [0.0] * 3 + [100.0] * 20 + [0.0] * 7)
    b = np.array([0.0] * 10 + [100.0] * 3 + [100.0] * 20 + [0.0] * 7)
    many = paired(plain(a), plain(b))
    assert many.test == "McNemar exact" and many.p == pytest.approx(2 * 378 / 8192)


@pytest.mark.parametrize("seed", range(12))
def test_interval_and_p_never_disagree(seed: int) -> None:
    """Whatever the data, graded or 0/1, few examples or many: 0 is outside the interval exactly when p < 0.05."""
    rng = np.random.default_rng(seed)
    n = [6, 12, 15, 40, 200, 30][seed % 6]
    if seed % 2:
        a, b = (rng.random(n) < 0.6).astype(float), (rng.random(n) < 0.45).astype(float)
    else:
        b = rng.random(n)
        a = np.clip(b + rng.normal(0.08, 0.3, n), 0, 1)
    found = paired(plain(a), plain(b))
    assert (found.p < 0.05) == (not found.lo <= 0 <= found.hi), found
    assert found.lo <= found.diff <= found.hi


def test_holm_adjusts_a_family_step_down() -> None:
    """Holm (1979): sorted p times (m - rank), made monotone; NaNs stay out of the family."""
    from pcbench.analysis.stats import holm

    assert holm([0.01, 0.04, 0.03, math.nan, 0.005]) == pytest.approx([0.03, 0.06, 0.06, math.nan, 0.02],
                                                                          nan_ok=True)
    assert holm([0.5, 0.9]) == [1.0, 1.0] and holm([0.01, 0.2]) == [0.02, 0.2] and holm([]) == []


def test_paired_aligns_ids_and_uses_only_the_shared_ones() -> None:
    a = plain(np.array([10.0, 20.0, 30.0, 40.0]), ["a", "b", "c", "d"])
    b = plain(np.array([40.0, 5.0, 15.0]), ["d", "a", "b"])  # another order, "c" missing
    found = paired(a, b)
    assert found.n == 3
    assert found.diff == pytest.approx(fmean([10 - 5, 20 - 15, 40 - 40]))


def longbench_records(rng: np.random.Generator) -> list[dict[str, object]]:
    sizes = {"hotpotqa": 30, "2wikimqa": 10, "qasper": 20, "lcc": 5, "dureader": 8}
    return [{"id": f"{d}-{i}", "dataset": d, "scores": {"longbench": float(rng.random())}}
            for d, n in sizes.items() for i in range(n)]


def test_longbench_avg_is_the_published_weighting_and_has_an_interval() -> None:
    records = longbench_records(np.random.default_rng(3))
    per_dataset: dict[str, list[float]] = {}
    for r in records:
        per_dataset.setdefault(str(r["dataset"]), []).append(100 * r["scores"]["longbench"])  # type: ignore[index]
    expected = _averages({d: fmean(v) for d, v in per_dataset.items()})
    table = pd.DataFrame({"avg": [expected["avg"]], "categories.multi_doc_qa": [1.0], "datasets.lcc": [1.0],
                          "avg_flat": [expected["avg_flat"]]})
    for name, want in (("avg", expected["avg"]), ("avg_flat", expected["avg_flat"]),
                       ("multi_doc_qa", expected["categories"]["multi_doc_qa"]),
                       ("lcc", fmean(per_dataset["lcc"]))):
        values = per_example(records, resolve(table, name))  # type: ignore[arg-type]
        assert values is not None and values.mean == pytest.approx(want, abs=0.006)
        found = interval(values)
        assert found.lo < found.mean < found.hi
    # Without each example's dataset the mean stays in the table but has no interval.
    bare = [{k: v for k, v in r.items() if k != "dataset"} for r in records]
    assert per_example(bare, Metric("avg", "avg", "average")) is None  # type: ignore[arg-type]


def test_matched_baseline_is_the_nearest_ratio_at_the_same_task_and_reader() -> None:
    table = pd.DataFrame({
        "path": ["a", "r1", "r2", "r3", "n", "p", "rp"],
        "compressor": ["bm25", "random", "random", "random", "none", "bm25", "random"],
        "role": ["method", "control", "control", "control", "baseline", "method", "control"],
        "variant": ["bm25", "random", "random", "random", "none", "bm25 level=passage", "random level=passage"],
        "task_label": ["hotpotqa"] * 7,
        "reader_label": ["smollm2", "smollm2", "smollm2", "qwen", "smollm2", "smollm2", "smollm2"],
        "kept_ratio": [0.31, 0.1, 0.25, 0.3, 1.0, 0.3, 0.6],
    })
    row = table.iloc[0]
    assert matched_baseline(table, row, "random")["path"] == "r2"  # r3 is nearer but read by another reader
    assert matched_baseline(table, row, "none")["path"] == "n"
    assert matched_baseline(table[table["role"] != "control"], row, "random") is None
    # A control cut into the same units is preferred to a nearer one cut otherwise.
    assert matched_baseline(table, table.iloc[5], "random")["path"] == "rp"


def test_unknown_metric_lists_the_ones_found() -> None:
    table = pd.DataFrame({"metrics.f1": [1.0], "metrics.match": [None], "evidence_recall": [3.0], "avg": [2.0],
                          "categories.code": [4.0]})
    with pytest.raises(ValueError, match="found: f1, evidence_recall, avg, code"):
        resolve(table, "match")
    assert resolve(table, "code").column == "categories.code"


def test_an_interval_holds_the_rounded_mean_shown_beside_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every example at F1 2/3: metrics.json says 66.67 (rounded), the bootstrap gives [66.666...,
    66.666...]. The interval is widened to hold the mean, so error bars are never negative and the
    report draws."""
    from pcbench.analysis.plot import plot_tradeoff
    from pcbench.analysis.stats import add_intervals

    records = {"cell": [{"id": str(i), "scores": {"f1": 2 / 3}} for i in range(5)]}
    table = pd.DataFrame({"path": ["cell"], "metrics.f1": [66.67], "variant": ["bm25"], "role": ["method"],
                          "task_label": ["t"], "reader_label": ["r"], "kept_ratio": [0.5], "n_examples": [5]})
    metric = Metric("f1", "metrics.f1", "score")
    widened = add_intervals(table, records, [metric])
    assert widened["metrics.f1.lo"][0] <= 66.67 <= widened["metrics.f1.hi"][0]
    found = interval(plain(np.array([66.6666, 66.6666, 66.6666])))
    assert found.lo <= found.mean <= found.hi
    assert plot_tradeoff(widened, metric, tmp_path / "tradeoff").exists()
