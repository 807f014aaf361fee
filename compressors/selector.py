"""The shared rule that turns unit scores into a kept set under a token budget.

Budgets are honest: a unit's cost is its tokens plus, for the first unit kept from a passage, the
tokens its passage adds when rendered (title line, separator), and the caller then checks the
rendered text itself (`fit`), so the kept context never exceeds the budget in reader tokens.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


def best_first(scores: Sequence[float]) -> list[int]:
    """Indices from the highest score down; ties go to the earlier unit, so selection is deterministic."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def greedy(scores: Sequence[float], tokens: Sequence[int], limit: int, groups: Sequence[int] | None = None,
           overhead: Sequence[int] | None = None) -> list[int]:
    """Indices of kept units in original order: best first, skipping any unit that would overflow
    `limit` (so smaller ones further down may still fit). A unit of group g costs overhead[g] more
    when it opens its group."""
    if len(scores) != len(tokens):
        raise ValueError(f"{len(scores)} scores for {len(tokens)} units")
    kept, used, opened = [], 0, set()
    for i in best_first(scores):
        extra = 0
        if groups is not None and overhead is not None and groups[i] not in opened:
            extra = overhead[groups[i]]
        if used + tokens[i] + extra <= limit:
            kept.append(i)
            used += tokens[i] + extra
            if groups is not None:
                opened.add(groups[i])
    return sorted(kept)


def fit(kept: list[int], scores: Sequence[float], limit: int, measure: Callable[[list[int]], int]) -> list[int]:
    """Drop the lowest-scoring kept units until `measure(kept)` (the rendered text's tokens) fits."""
    kept = list(kept)
    while kept and measure(kept) > limit:
        kept.remove(min(kept, key=lambda i: (scores[i], -i)))
    return kept


def above(scores: Sequence[float], threshold: float) -> list[int]:
    return [i for i, s in enumerate(scores) if s >= threshold]


def fill(kept: list[int], scores: Sequence[float], tokens: Sequence[int], limit: int,
         measure: Callable[[list[int]], int]) -> list[int]:
    """Add the best remaining units whose measured addition still fits: estimates leave slack
    (tokens merge across unit boundaries, separators), so the budget is topped up on real counts.
    Units whose own tokens already exceed what is left are not tried."""
    kept = sorted(kept)
    used = measure(kept) if kept else 0
    chosen = set(kept)
    for i in best_first(scores):
        if i in chosen or tokens[i] > limit - used:
            continue
        trial = sorted([*kept, i])
        n = measure(trial)
        if n <= limit:
            kept, used = trial, n
            chosen.add(i)
    return kept
