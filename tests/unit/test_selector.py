"""The shared budget rule: best units first, skipping any that overflow, original order out."""

from __future__ import annotations

import pytest

from pcbench.compressors.selector import above, fill, fit, greedy


def test_best_units_first_in_original_order() -> None:
    assert greedy([0.1, 0.9, 0.5, 0.7], [5, 5, 5, 5], 10) == [1, 3]


def test_a_unit_that_overflows_is_skipped_and_a_smaller_one_fits() -> None:
    # Limit 6: the best (4 tokens) fits, the second (4) would overflow, the third (2) fits.
    assert greedy([0.9, 0.8, 0.1], [4, 4, 2], 6) == [0, 2]


def test_ties_go_to_the_earlier_unit() -> None:
    assert greedy([1.0, 1.0, 1.0], [1, 1, 1], 2) == [0, 1]


def test_opening_a_group_costs_its_overhead() -> None:
    # Units 0, 1 in group 0 (title costs 3), unit 2 in group 1 (title costs 0). Limit 8:
    # unit 0 costs 2 + 3, unit 2 would cost 2 + 0, unit 1 costs 2 (its group is open).
    assert greedy([0.9, 0.5, 0.8], [2, 2, 2], 8, groups=[0, 0, 1], overhead=[3, 0]) == [0, 2]
    assert greedy([0.9, 0.5, 0.8], [2, 2, 2], 9, groups=[0, 0, 1], overhead=[3, 0]) == [0, 1, 2]


def test_fit_drops_the_lowest_scores_until_the_measure_fits() -> None:
    scores = [0.9, 0.1, 0.5, 0.3]
    assert fit([0, 1, 2, 3], scores, 2, measure=len) == ([0, 2], 2)
    assert fit([0, 1], scores, 0, measure=len) == ([], 0)


def test_fill_tops_up_on_measured_counts_in_few_calls() -> None:
    scores, tokens = [0.9, 0.8, 0.7, 0.6, 0.5], [2, 2, 2, 2, 2]
    calls: list[list[int]] = []

    def measure(kept: list[int]) -> int:  # each unit really costs 1 token, half the estimate
        calls.append(kept)
        return len(kept)

    kept, used = fill([0], 1, scores, tokens, 4, measure)
    # Two rounds fit one more unit each (estimated 2, measured 1); then 1 token is left, which no
    # unit fits by its estimate: estimates only ever err on the safe side.
    assert (kept, used) == ([0, 1, 2], 3) and len(calls) == 2
    # An addition that overflows on real counts is halved until it fits.
    kept, used = fill([0], 1, scores, [1, 1, 1, 1, 1], 3, lambda k: 2 * len(k) - 1)
    assert (kept, used) == ([0, 1], 3)


def test_threshold_keeps_everything_at_or_above_it() -> None:
    assert above([0.1, 0.5, 0.7, 0.49], 0.5) == [1, 2]


def test_mismatched_lengths_fail() -> None:
    with pytest.raises(ValueError):
        greedy([1.0], [1, 2], 3)
