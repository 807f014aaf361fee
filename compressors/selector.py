"""The shared rule that turns unit scores into a kept set under a budget."""

from __future__ import annotations

from collections.abc import Sequence

from compressors.base import Budget


def select(scores: Sequence[float], tokens: Sequence[int], budget: Budget) -> list[int]:
    """Indices of kept units, in original order.

    With a threshold: every unit scoring at least it. With a token limit: the best units first,
    skipping any that would overflow the limit (so smaller ones further down may still fit).
    Ties go to the earlier unit, so selection is deterministic.
    """
    if len(scores) != len(tokens):
        raise ValueError(f"{len(scores)} scores for {len(tokens)} units")
    if budget.threshold is not None:
        return [i for i, s in enumerate(scores) if s >= budget.threshold]
    limit = budget.token_limit(sum(tokens))
    assert limit is not None
    kept, used = [], 0
    for i in sorted(range(len(scores)), key=lambda i: (-scores[i], i)):
        if used + tokens[i] <= limit:
            kept.append(i)
            used += tokens[i]
    return sorted(kept)
