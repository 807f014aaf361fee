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


def fit(kept: list[int], scores: Sequence[float], limit: int, measure: Callable[[list[int]], int],
        tokens: Sequence[int] | None = None) -> tuple[list[int], int]:
    """Drop the lowest-scoring kept units until `measure(kept)` (the rendered text's tokens) fits;
    the kept units and their measured tokens. With `tokens` (estimates), each step drops as many of
    the lowest units as cover the measured excess, so a long kept list costs a few measurements."""
    kept = list(kept)
    used = measure(kept) if kept else 0
    while kept and used > limit:
        excess = used - limit
        for i in sorted(kept, key=lambda i: (scores[i], -i)):
            kept.remove(i)
            excess -= tokens[i] if tokens is not None else excess
            if excess <= 0 or not kept:
                break
        used = measure(kept) if kept else 0
    return kept, used


def above(scores: Sequence[float], threshold: float) -> list[int]:
    return [i for i, s in enumerate(scores) if s >= threshold]


def fill(kept: list[int], used: int, scores: Sequence[float], tokens: Sequence[int], limit: int,
         measure: Callable[[list[int]], int], groups: Sequence[int] | None = None,
         overhead: Sequence[int] | None = None, rounds: int = 4) -> tuple[list[int], int]:
    """Top the budget up on real counts: estimates leave slack (tokens merge across unit
    boundaries), so each round adds the best remaining units whose estimated cost fits what the
    measured text leaves, measures once, and halves the addition until it fits. A few tokenizer
    calls per example, however many units there are."""
    kept = sorted(kept)
    chosen = set(kept)
    for _ in range(rounds):
        opened = {groups[i] for i in kept} if groups is not None else set()
        batch, room = [], limit - used
        for i in best_first(scores):
            if i in chosen:
                continue
            opens = groups is not None and overhead is not None and groups[i] not in opened
            extra = overhead[groups[i]] if opens else 0  # type: ignore[index]
            if tokens[i] + extra <= room:
                batch.append(i)
                room -= tokens[i] + extra
                if groups is not None:
                    opened.add(groups[i])
        while batch:
            trial = sorted([*kept, *batch])
            n = measure(trial)
            if n <= limit:
                kept, used = trial, n
                chosen.update(batch)
                break
            batch = batch[: len(batch) // 2]
        else:
            break  # nothing more fits
    return kept, used
