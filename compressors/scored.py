"""A compressor that scores units against the question and keeps the best under a budget.

A subclass writes one `score` method; splitting, caching of scores (so a sweep over rates scores
once), selection and rendering are shared here.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

from compressors.base import Budget, Compressed, Compressor, Env
from compressors.selector import select
from compressors.units import LEVELS, Unit, render_units, split_units
from core.errors import PcbenchError
from core.example import Example

ORDERS = ("original", "score")


@dataclass
class ScoredCompressor(Compressor, Budget):
    level: str = "sentence"  # unit granularity: passage | sentence
    order: str = "original"  # kept units in original order, or best first (against lost-in-the-middle)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.level not in LEVELS:
            raise PcbenchError(f"compressor.level={self.level!r} is not allowed; allowed: {', '.join(LEVELS)}")
        if self.order not in ORDERS:
            raise PcbenchError(f"compressor.order={self.order!r} is not allowed; allowed: {', '.join(ORDERS)}")

    @abstractmethod
    def score(self, question: str, units: list[str], example: Example) -> list[float]:
        """One number per unit, higher = more worth keeping; must not depend on the budget."""

    def scorer_settings(self) -> dict[str, Any]:
        """The knobs that change scores (everything but the budget and the output order)."""
        skip = set(Budget.fields()) | {"order"}
        return {k: v for k, v in self.settings().items() if k not in skip}

    def compress(self, example: Example, env: Env) -> Compressed:
        units = split_units(example, self.level)
        if not units:
            return Compressed("", {"units": 0, "kept_units": 0})
        texts = [u.text for u in units]
        key = {"stage": "scores", "scorer": self.scorer_settings(), "question": example.question, "units": texts,
               "example_id": example.id}
        scores = env.store.fetch(key, lambda: [float(s) for s in self.score(example.question, texts, example)])
        # Counts are cached like scores: with cheap scorers, tokenizing dominates a sweep's later rates.
        kept = select(scores, env.count(texts), self)
        kept_units: list[Unit] = [units[i] for i in kept]
        if self.order == "score":
            kept_units = _by_score(units, kept, scores, self.level)
        return Compressed(render_units(example, kept_units, self.level),
                          {"units": len(units), "kept_units": len(kept)})


def _by_score(units: list[Unit], kept: list[int], scores: list[float], level: str) -> list[Unit]:
    if level == "passage":
        return [units[i] for i in sorted(kept, key=lambda i: (-scores[i], i))]
    # Sentences stay in reading order inside their passage; passages go best-first.
    best: dict[int, float] = {}
    for i in kept:
        best[units[i].passage] = max(best.get(units[i].passage, float("-inf")), scores[i])
    return [units[i] for i in sorted(kept, key=lambda i: (-best[units[i].passage], units[i].passage, i))]

