"""The shared budget rule: best units first, skipping any that overflow, original order out."""

from __future__ import annotations

import pytest

from compressors.base import Budget
from compressors.selector import select


def test_best_units_first_in_original_order() -> None:
    assert select([0.1, 0.9, 0.5, 0.7], [5, 5, 5, 5], Budget(rate=0.5)) == [1, 3]


def test_a_unit_that_overflows_is_skipped_and_a_smaller_one_fits() -> None:
    # Limit 6: the best (4 tokens) fits, the second (4) would overflow, the third (2) fits.
    assert select([0.9, 0.8, 0.1], [4, 4, 2], Budget(target_tokens=6)) == [0, 2]


def test_ties_go_to_the_earlier_unit() -> None:
    assert select([1.0, 1.0, 1.0], [1, 1, 1], Budget(target_tokens=2)) == [0, 1]


def test_threshold_keeps_everything_at_or_above_it() -> None:
    assert select([0.1, 0.5, 0.7, 0.49], [9, 9, 9, 9], Budget(threshold=0.5)) == [1, 2]


def test_rate_one_keeps_all_and_a_tiny_rate_keeps_none() -> None:
    assert select([0.3, 0.2], [3, 3], Budget(rate=1.0)) == [0, 1]
    assert select([0.3, 0.2], [3, 3], Budget(rate=0.1)) == []


def test_mismatched_lengths_fail() -> None:
    with pytest.raises(ValueError):
        select([1.0], [1, 2], Budget(rate=0.5))
