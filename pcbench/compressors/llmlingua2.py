"""LLMLingua-2 (Pan et al., Findings ACL 2024): an encoder classifies each token preserve/discard.

Step by step, and every difference from the reference: docs/methods/trained-pruners.md.
"""

from __future__ import annotations

import re
import string
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, ClassVar, Literal

import numpy as np

from pcbench.compressors.base import Compressed, Env
from pcbench.compressors.scored import ScoredCompressor
from pcbench.compressors.units import Unit, group, last_char_anchors
from pcbench.core.example import Example, Passage
from pcbench.core.knobs import Range
from pcbench.core.tokenizer import openai_tokenizer
from pcbench.models.encoders import (
    EDGE_SLACK,
    SPECIALS,
    Block,
    PassageTokens,
    Pruner,
    load_pruner,
    load_pruner_tokenizer,
    plan_blocks,
    score_blocks,
)
from pcbench.models.pool import ModelKnobs

FORCED = 2.0  # above every probability: force tokens and reserved digits are chosen first
_WORD = re.compile(r"\s*\S+")
_DIGIT = re.compile(r"\d")


@dataclass
class LLMLingua2(ScoredCompressor, ModelKnobs):
    """LLMLingua-2 (Pan et al., Findings ACL 2024): an encoder classifies each token preserve/discard.

    512-token chunks cut at "." and newline, a word's probability the mean of its subwords', words
    kept in order by llmlingua's per-chunk percentile rule (`selection=chunk`) or globally under the
    honest budget. Knobs: the budget, `selection`, `words`, `force_tokens`, `force_reserve_digit`,
    `drop_consecutive`, `question_aware`, the model block.
    """

    threshold: Annotated[float, Range(0, 1)] | None  # keep words whose probability reaches it
    level: Literal["word"]
    order: Literal["original"]
    max_length: Annotated[int, Range(32)]  # the window a chunk must fit (512 as published)
    chunk_end_tokens: list[str]  # chunks end after one of these
    force_tokens: list[str]
    force_reserve_digit: bool
    drop_consecutive: bool
    # The knob is the attribute the harness reads; field() so the base class's value is no default.
    question_aware: bool = field()  # type: ignore[misc]
    words: Literal["tokens", "whitespace"]  # tokens: the model's tokens make the words (the reference)
    selection: Literal["chunk", "global"]  # chunk: each chunk keeps its share (the reference); global: honest budget
    batch_size: Annotated[int, Range(1)]
    dtype: Literal["float32", "bfloat16", "float16"]

    # 2: per-chunk selection by default; each word's chunk is cached after the word scores.
    version: ClassVar[int] = 2

    # --- units: words, force tokens split off ---------------------------------------------------

    def units(self, example: Example, env: Env) -> list[Unit]:
        words = self._whitespace_words(example)
        if self.words == "whitespace":
            return words
        # As llmlingua 0.2.2 merges tokens into words: a new word starts at a token that starts one
        # ("▁" in SentencePiece vocabularies, anything but "##" in WordPiece ones), at a punctuation
        # token and at a force token; so "Paris," is two words and "U.S." three ("U", ".S", ".").
        tokenizer = env.models.get(self.model_spec(),
                                   load_pruner_tokenizer)
        out: list[Unit] = []
        for passage_index in sorted({u.passage for u in words}):
            text = example.passages[passage_index].text
            starts = self._word_starts(tokenizer, text)
            for unit in (u for u in words if u.passage == passage_index):
                # A word keeps the whitespace before it: cut only after its first visible character.
                cuts = [unit.start, *[c for c in starts if unit.start < c < unit.end and text[unit.start:c].strip()],
                        unit.end]
                out.extend(Unit(unit.passage, a, b, text[a:b]) for a, b in zip(cuts, cuts[1:]) if text[a:b].strip())
        return out

    def _word_starts(self, tokenizer: Any, text: str) -> list[int]:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
        wordpiece = any(t.startswith("##") for t in tokens)
        forced = set(self.force_tokens)
        starts = []
        for token, (start, end) in zip(tokens, enc["offset_mapping"]):
            if end <= start:
                continue
            if wordpiece:
                begins = not token.startswith("##") or token[2:] in forced
            else:
                begins = token.startswith("▁") or token in string.punctuation or token in forced
            if begins:
                starts.append(int(start))
        return sorted(set(starts))

    def _whitespace_words(self, example: Example) -> list[Unit]:
        marks = [t for t in self.force_tokens if t.strip()]
        newline = "\n" in self.force_tokens
        splitter = re.compile("|".join(re.escape(t) for t in sorted(marks, key=len, reverse=True))) if marks else None
        out: list[Unit] = []
        for index, passage in enumerate(example.passages):
            text = passage.text
            if not text.strip():
                continue
            for match in _WORD.finditer(text):
                start, end = match.span()
                lead = start + len(match.group()) - len(match.group().lstrip())
                if newline and "\n" in text[start:lead]:
                    cut = text.rindex("\n", start, lead) + 1  # the newline(s) as a unit of their own
                    out.append(Unit(index, start, cut, text[start:cut]))
                    start = cut
                pieces = [start]
                if splitter is not None:
                    for hit in splitter.finditer(text, start, end):
                        pieces += [hit.start(), hit.end()]
                pieces.append(end)
                bounds = sorted(set(pieces))
                for s, e in zip(bounds, bounds[1:]):
                    if text[s:e].strip():
                        out.append(Unit(index, s, e, text[s:e]))
        return out

    def _forced(self, unit: Unit) -> bool:
        body = unit.text.strip()
        if not body:
            return "\n" in self.force_tokens
        return body in self.force_tokens or (self.force_reserve_digit and bool(_DIGIT.search(body)))

    # --- scores -------------------------------------------------------------------------------

    def score_batch(self, examples: list[Example], units: list[list[Unit]], env: Env) -> list[list[float]]:
        pruner: Pruner = env.models.get(self.model_spec(), load_pruner)
        window = min(self.max_length, pruner.window)
        blocks = []
        for i, (example, us) in enumerate(zip(examples, units)):
            room = window - SPECIALS - EDGE_SLACK
            if self.question_aware:
                room -= pruner.count([example.question])[0]
            for j in sorted({u.passage for u in us}):
                text = example.passages[j].text
                for start, end in plan_blocks(self._segments(text), pruner.offsets(text), max(8, room)):
                    question = example.question if self.question_aware else None
                    blocks.append(Block((i, j), question, text[start:end], start))
        scored = score_blocks(pruner, blocks, self.batch_size, window, rank=False)
        empty = PassageTokens([], [], None)
        out = []
        for i, us in enumerate(units):
            scores = [0.0] * len(us)
            # Each word's chunk, numbered through the example, appended after the scores (cached with them).
            starts = sorted((b.owner[1], b.shift) for b in blocks if b.owner[0] == i)
            chunk = [float(bisect_right(starts, (u.passage, u.start)) - 1) for u in us]
            for j in sorted({u.passage for u in us}):
                members = [k for k, u in enumerate(us) if u.passage == j]
                passage = scored.get((i, j), empty)
                offsets, values = passage.offsets, passage.keep
                spans = [(us[k].start, us[k].end) for k in members]
                for k, probs, span in zip(members, group(last_char_anchors(offsets), values, spans), spans):
                    if self._forced(us[k]):
                        scores[k] = FORCED
                    elif probs:
                        scores[k] = sum(probs) / len(probs)  # word probability = mean of its subwords'
                    else:  # a subword crossing the unit's edge: it belongs to the neighbour by anchor
                        near = [v for (s, e), v in zip(offsets, values) if s < span[1] and e > span[0]]
                        scores[k] = sum(near) / len(near) if near else 0.0
            out.append(scores + chunk)
        return out

    def select(self, example: Example, units: list[Unit], scores: list[float], env: Env) -> Compressed:
        n = len(units)
        word_scores, chunks = scores[:n], scores[n:]
        if self.selection == "global" or self.threshold is not None or not units:
            result = super().select(example, units, word_scores, env)
            return Compressed(result.passages, {**result.extras, "selection": "global" if units else self.selection})
        # llmlingua 0.2.2's __compress, chunk by chunk: probabilities repeated once per GPT-3.5 token
        # of their word, cut at the int(100 * (1 - rate) + 1)-th percentile, words strictly above kept.
        cl100k = openai_tokenizer("cl100k")
        rate = self.rate
        if rate is None:
            assert self.target_tokens is not None
            rate = min(1.0, self.target_tokens / max(1, cl100k.count([example.context])[0]))
        counts = cl100k.count([u.text.strip() or u.text for u in units])
        probability = [min(s, 1.0) for s in word_scores]  # force tokens and reserved digits: 1, as there
        kept: list[int] = []
        for c in sorted(set(chunks)):
            members = [k for k in range(n) if chunks[k] == c]
            spread = [probability[k] for k in members for _ in range(max(1, counts[k]))]
            cut = float(np.percentile(spread, int(100 * (1 - float(rate)) + 1)))
            kept.extend(k for k in members if probability[k] > cut or (cut == 1.0 and probability[k] == 1.0))
        passages = self.render(example, units, kept, word_scores)
        return Compressed(passages, {"units": n, "kept_units": len(kept), "selection": "chunk",
                                     "chunks": len(set(chunks)), "rate_per_chunk": round(float(rate), 4)})

    def _segments(self, text: str) -> list[tuple[int, int]]:
        """The text cut after every chunk-end token: chunks end only there (unless one overflows)."""
        cuts = sorted({m.end() for t in self.chunk_end_tokens if t for m in re.finditer(re.escape(t), text)})
        bounds = [0, *[c for c in cuts if 0 < c < len(text)], len(text)]
        return [(s, e) for s, e in zip(bounds, bounds[1:]) if e > s]

    # --- rendering ----------------------------------------------------------------------------

    def render(self, example: Example, units: list[Unit], kept: list[int], scores: list[float],
               tail: Unit | None = None) -> tuple[Passage, ...]:
        """Kept words in order; a repeated force token dropped (drop_consecutive); a space put back
        between two words that were not adjacent and would otherwise run together."""
        chosen: list[int] = []
        patched = list(units)
        for k in sorted(kept):
            unit = units[k]
            previous = units[chosen[-1]] if chosen else None
            same = previous is not None and previous.passage == unit.passage
            if (self.drop_consecutive and previous is not None and same and self._forced(unit)
                    and unit.text.strip() and unit.text.strip() == previous.text.strip()):
                continue
            if (previous is not None and same and previous.end != unit.start and unit.text[:1].isalnum()
                    and not previous.text[-1:].isspace()):
                patched[k] = replace(unit, text=" " + unit.text)
            chosen.append(k)
        return super().render(example, patched, chosen, scores, tail)
