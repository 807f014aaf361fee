"""A ScoredCompressor whose units are not one of the shared levels (passage, sentence, word).

LLMLingua-2 needs words with its force tokens split off, and the cross-encoder needs ~128-token
chunks that end at sentence ends. Both keep everything else of ScoredCompressor: score caching
apart from the budget, honest selection in reader tokens, rendering by offsets.

`compress_batch` repeats ScoredCompressor's with `self.units(example)` in place of
`split_units(example, self.level)`; a `units` hook in ScoredCompressor would make it one line.
"""

from __future__ import annotations

from compressors.base import Compressed, Env
from compressors.scored import ScoredCompressor
from compressors.units import Unit, sentences_of, split_units, view
from core.example import Example


class UnitsScored(ScoredCompressor):
    def units(self, example: Example, env: Env) -> list[Unit]:
        return split_units(example, self.level)

    def compress_batch(self, examples: list[Example], env: Env) -> list[Compressed]:
        units = [self.units(e, env) for e in examples]
        scorer = self.scorer_key()
        keys = [{"stage": "scores", "scorer": scorer, "question": e.question if self.query_aware else None,
                 "units": [view(e, u) for u in us], "example_id": e.id} for e, us in zip(examples, units)]

        def compute(missing: list[int]) -> list[list[float]]:
            todo = [i for i in missing if units[i]]
            scored = dict(zip(todo, self.score_batch([examples[i] for i in todo], [units[i] for i in todo], env)))
            return [[float(s) for s in scored.get(i, [])] for i in missing]

        scores = env.store.fetch_many(keys, compute)
        return [self.select(e, us, s, env) for e, us, s in zip(examples, units, scores)]


def sentence_chunks(example: Example, max_tokens: int, env: Env) -> list[Unit]:
    """Units of consecutive whole sentences of one passage, up to `max_tokens` reader tokens each
    (a longer sentence is a chunk of its own: chunks end at sentence ends, never inside one)."""
    out: list[Unit] = []
    sentences = split_units(example, "sentence")
    counts = env.count([u.text for u in sentences])
    current: list[Unit] = []
    used = 0
    for unit, n in zip(sentences, counts):
        if current and (unit.passage != current[0].passage or used + n > max_tokens):
            out.append(_merge(example, current))
            current, used = [], 0
        current.append(unit)
        used += n
    if current:
        out.append(_merge(example, current))
    return out


def _merge(example: Example, units: list[Unit]) -> Unit:
    text = example.passages[units[0].passage].text
    return Unit(units[0].passage, units[0].start, units[-1].end, text[units[0].start:units[-1].end])


__all__ = ["UnitsScored", "sentence_chunks", "sentences_of"]
