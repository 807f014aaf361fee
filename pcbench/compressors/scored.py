"""A compressor that scores units against the question and keeps the best under a budget.

A subclass writes one `score` (one example, text units) or `score_batch` (several examples at
once, units with offsets, so a model batches across examples). Shared here: splitting, caching
of scores (a sweep over rates scores once), selection under an honest budget (counted on the
rendered text in reader tokens: never over it) and rendering.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pcbench.compressors.base import Budget, Compressed, Compressor, Env
from pcbench.compressors.selector import above, best_first, fill, fit, greedy
from pcbench.compressors.units import Level, Unit, render, sentences_of, split_units, view
from pcbench.core.example import PASSAGE_SEPARATOR, Example, Passage, render_passages


@dataclass
class ScoredCompressor(Compressor, Budget):
    level: Level  # unit granularity
    order: Literal["original", "score"]  # kept units in reading order, or best passages first

    def units(self, example: Example, env: Env) -> list[Unit]:
        """The units to score; override for units of one's own (chunks, words with force tokens)."""
        return split_units(example, self.level)

    def score(self, question: str, units: list[str], example: Example) -> list[float]:
        """One number per unit, higher = more worth keeping; must not depend on the budget."""
        raise NotImplementedError(f"{type(self).__name__} implements neither score nor score_batch")

    def score_batch(self, examples: list[Example], units: list[list[Unit]], env: Env) -> list[list[float]]:
        """Scores for several examples at once; `env.models` lends models. Default: `score` each."""
        return [self.score(e.question, [view(e, u) for u in us], e) for e, us in zip(examples, units)]

    def scorer_key(self) -> dict[str, Any]:
        """What scores depend on: the key less the budget and the output order."""
        skip = {*Budget.fields(), "budget_tokenizer", "budget_scope", "order"}
        return {k: v for k, v in self.key().items() if k not in skip}

    def compress_batch(self, examples: list[Example], env: Env) -> list[Compressed]:
        units = [self.units(e, env) for e in examples]
        scorer = self.scorer_key()
        keys = [{"stage": "scores", "scorer": scorer, "question": e.question if self.question_aware else None,
                 "units": [view(e, u) for u in us], "example_id": e.id} for e, us in zip(examples, units)]

        def compute(missing: list[int]) -> list[list[float]]:
            todo = [i for i in missing if units[i]]  # nothing to score in an empty context
            scored = dict(zip(todo, self.score_batch([examples[i] for i in todo], [units[i] for i in todo], env)))
            return [[float(s) for s in scored.get(i, [])] for i in missing]

        scores = env.store.fetch_many(keys, compute)
        return [self.select(e, us, s, env) for e, us, s in zip(examples, units, scores)]

    def select(self, example: Example, units: list[Unit], scores: list[float], env: Env) -> Compressed:
        """Keep units under the budget, counted on the rendered text in reader tokens."""
        if not units:
            return Compressed((), {"units": 0, "kept_units": 0})
        if self.threshold is not None:
            kept = above(scores, float(self.threshold))
            return Compressed(self.render(example, units, kept, scores), {"units": len(units), "kept_units": len(kept)})
        limit = self.token_limit(env.count([example.context])[0], env.prompt_overhead(example))
        assert limit is not None

        def measure(candidate: list[int], tail: Unit | None = None) -> int:
            return env.tokenizer.count([render_passages(self.render(example, units, candidate, scores, tail))])[0]

        tokens, groups = env.count([u.text for u in units]), [u.passage for u in units]
        overhead = _overheads(example, env)
        kept = greedy(scores, tokens, limit, groups, overhead)
        kept, used = fit(kept, scores, limit, measure, tokens)
        kept, used = fill(kept, used, scores, tokens, limit, measure, groups, overhead)
        tail = None
        if self.level == "passage":
            tail = self._leading_sentences(example, units, kept, scores, limit, measure)
        extras = {"units": len(units), "kept_units": len(kept), "budget_tokens": limit,
                  "partial_passage": tail is not None}
        return Compressed(self.render(example, units, kept, scores, tail), extras)

    @staticmethod
    def _leading_sentences(example: Example, units: list[Unit], kept: list[int], scores: list[float], limit: int,
                           measure: Callable[[list[int], Unit | None], int]) -> Unit | None:
        """Whole passages rarely fill a budget: top it up with the leading sentences of the best
        passage that did not fit (cut at a sentence end, never mid-sentence)."""
        rest = [i for i in best_first(scores) if i not in kept]
        if not rest:
            return None
        passage = units[rest[0]].passage
        text = example.passages[passage].text
        ends = list(itertools.accumulate(len(sentence) for sentence in sentences_of(example.passages[passage])))

        def lead(k: int) -> Unit:
            return Unit(passage, 0, ends[k - 1], text[:ends[k - 1]])

        # The most leading sentences that fit, by bisection: fitting is monotone in their number.
        low, high = 0, len(ends)
        while low < high:
            middle = (low + high + 1) // 2
            if measure(kept, lead(middle)) <= limit:
                low = middle
            else:
                high = middle - 1
        return lead(low) if low else None

    def render(self, example: Example, units: list[Unit], kept: list[int], scores: list[float],
               tail: Unit | None = None) -> tuple[Passage, ...]:
        """Kept units as passages; `tail` (a partial passage) goes last, as the lowest-ranked."""
        if self.order == "score":
            # Passages go best-first (by their best kept unit); units keep reading order inside.
            best: dict[int, float] = {}
            for i in kept:
                best[units[i].passage] = max(best.get(units[i].passage, float("-inf")), scores[i])
            kept = sorted(kept, key=lambda i: (-best[units[i].passage], units[i].passage, i))
            chosen = [units[i] for i in kept] + ([tail] if tail else [])
        else:
            chosen = sorted([units[i] for i in kept] + ([tail] if tail else []), key=lambda u: (u.passage, u.start))
        return render(example, chosen)


def question_similarities(vectors: Any, units: list[list[Unit]]) -> list[list[float]]:
    """Unit scores from embeddings stacked per example as [question, its units...] (the layout the
    embedding scorers encode in one call): each unit's dot product with its example's question."""
    out, at = [], 0
    for us in units:
        question, block = vectors[at], vectors[at + 1: at + 1 + len(us)]
        out.append([float(s) for s in block @ question])
        at += 1 + len(us)
    return out


def _overheads(example: Example, env: Env) -> list[int]:
    """Reader tokens a passage adds around its kept units: its title line and the separator,
    counted apart (joined, the title's newline and the separator would merge into fewer tokens
    than the rendered text really spends)."""
    titles = env.count([f"{p.title}\n" if p.title else "" for p in example.passages])
    separator = env.count([PASSAGE_SEPARATOR])[0]
    return [t + separator for t in titles]
