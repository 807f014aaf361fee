"""analysis/truth: flips against the full context and rate adherence, pinned on worked cases."""

from __future__ import annotations

import pandas as pd
import pytest

from pcbench.analysis.metric import Metric
from pcbench.analysis.truth import flips, rate_adherence

F1 = Metric("f1", "metrics.f1", "score")


def record(i: int, f1: float, original: int = 100, kept: int = 50) -> dict:
    return {"id": f"q{i}", "scores": {"f1": f1}, "original_tokens": original, "compressed_tokens": kept,
            "kept_ratio": kept / original, "kept_ratio_cl100k": kept / original, "char_ratio": kept / original}


def cells(rows: list[tuple[str, str, float | None]]) -> pd.DataFrame:
    return pd.DataFrame([{"path": path, "role": role, "task_label": "hotpotqa", "reader_label": "r",
                          "variant": path, "budget": "" if rate is None else f"rate={rate}",
                          "kept_ratio": rate or 1.0, "requested.rate": rate} for path, role, rate in rows])


def test_flips_count_what_compression_broke_and_fixed() -> None:
    """Ten examples: the full context gets q0-q5 right; the method keeps q0-q2, breaks q3-q5 and
    fixes q6. Graded scores count as right from 50 (of 100)."""
    full = [record(i, 1.0 if i < 6 else 0.0) for i in range(10)]
    method = [record(i, 0.6 if i < 3 else 0.4 if i < 6 else 1.0 if i == 6 else 0.0) for i in range(10)]
    table = cells([("none", "baseline", None), ("bm25", "method", 0.5)])
    found = flips(table, {"none": full, "bm25": method}, F1)
    assert len(found) == 1
    row = found.iloc[0]
    assert (row.right_to_wrong, row.wrong_to_right, row.both_right, row.both_wrong, row.n) == (3, 1, 3, 3, 10)
    assert row.negatives == ["q3", "q4", "q5"]
    assert row.p == pytest.approx(0.625)  # McNemar exact: two-sided binomial, 3 of 4 discordant
    # Only the examples both cells hold are paired.
    found = flips(table, {"none": full[:5], "bm25": method}, F1)
    assert found.iloc[0].n == 5 and found.iloc[0].right_to_wrong == 2


def test_rate_adherence_counts_examples_over_budget_by_length() -> None:
    """Rate 0.5: 100 -> 50 is on budget, 100 -> 60 over by 0.1, 10 -> 6 is within one token (not
    over), 400 -> 300 over by 0.25; the thirds of the lengths (10, 100, 100, 400) split them."""
    cell = [record(0, 1, 100, 50), record(1, 1, 100, 60), record(2, 1, 10, 6), record(3, 1, 400, 300)]
    table = cells([("none", "baseline", None), ("lingua", "method", 0.5)])
    found = rate_adherence(table, {"none": [record(i, 1, r["original_tokens"], r["original_tokens"])
                                            for i, r in enumerate(cell)], "lingua": cell})
    assert len(found) == 1  # the full context asked for no rate
    row = found.iloc[0]
    assert row.requested == 0.5 and row.achieved == pytest.approx((0.5 + 0.6 + 0.6 + 0.75) / 4)
    assert row.over_budget_share == pytest.approx(0.5)
    assert row.overshoot_mean == pytest.approx((0.1 + 0.25) / 2) and row.overshoot_max == pytest.approx(0.25)
    bins = [c for c in found.columns if c.startswith("tokens ")]
    assert bins == ["tokens 10-100", "tokens 100-400"]
    assert row[bins[0]] == pytest.approx(0.6) and row[bins[1]] == pytest.approx((0.5 + 0.6 + 0.75) / 3)


def test_what_survives_counts_the_original_facts_still_in_the_compressed_text() -> None:
    """Two of three entities, the date, one of two numbers and the question's words that the
    original holds ("Eiffel", "Tower", "built"; "when" is a function word, "architect" is absent)."""
    from pcbench.runners.diagnostics import facts, survival

    original = ("Gustave Eiffel built the Eiffel Tower in Paris. It was finished on 31 March 1889 and is 330 metres "
                "tall.")
    found = facts(original)
    if found["ner"] != ["yes"]:
        pytest.skip("spaCy's English model is not installed")
    assert {"Gustave Eiffel", "Paris"} <= set(found["entities"]) and found["numbers"] == ["1889", "31", "330"]
    compressed = "Gustave Eiffel built the Eiffel Tower in Paris. Finished 31 March 1889."
    kept = survival(found, "When was the Eiffel Tower built by its architect?", original, compressed)
    assert kept["entities_kept"] == 1.0 and kept["dates_kept"] == 1.0
    assert kept["numbers_kept"] == pytest.approx(2 / 3) and kept["question_terms_kept"] == 1.0
    lost = survival(found, "When was the Eiffel Tower built?", original, "It is tall.")
    assert lost["entities_kept"] == 0.0 and lost["numbers_kept"] == 0.0 and lost["question_terms_kept"] == 0.0
    nothing = survival(facts("no facts here"), "what?", "no facts here", "no facts")
    assert nothing["numbers_kept"] is None and nothing["question_terms_kept"] is None
