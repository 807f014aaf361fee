"""Selective Context (Li et al., EMNLP 2023): drop the lexical units a small LM finds least informative.

Step by step, and every difference from the reference: docs/methods/token-pruning.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np

from pcbench.compressors.base import Budget, Compressed, Compressor, Env, SurprisalJob, fetch_surprisals
from pcbench.compressors.units import aggregate, first_char_anchors, fit_count
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example, Passage, passage_starts
from pcbench.core.knobs import Range
from pcbench.core.text import split_sentences
from pcbench.models.causal import CausalLM
from pcbench.models.pool import ModelKnobs
from pcbench.models.spacy_english import english

WORD = re.compile(r"\S+")


@dataclass
class SelectiveContext(Compressor, Budget, ModelKnobs):
    """Selective Context (Li et al., EMNLP 2023): drop the lexical units a small LM finds least informative.

    Each sentence is scored on its own by a causal LM (`scoring`); a unit (`level`: token, phrase or
    sentence) scores the mean self-information of its tokens (`unit_score`), and the least
    informative are dropped to the budget. Knobs: the budget or `reduce_ratio`, `level`, `scoring`,
    `unit_score`, the model block.
    """

    reduce_ratio: Annotated[float, Range(0, 1, high_open=True)] | None
    level: Literal["token", "phrase", "sentence"]
    batch_size: Annotated[int, Range(1)]
    scoring: Literal["sentence", "context"]  # sentence: each sentence alone (the package); context: one pass
    unit_score: Literal["mean", "sum"]  # mean of a unit's token self-information (the package), or the sum

    question_aware: ClassVar[bool] = False
    budget_knobs: ClassVar[tuple[str, ...]] = ("rate", "target_tokens", "threshold", "reduce_ratio")
    version: ClassVar[int] = 2  # 2: sentence-by-sentence scoring and mean unit scores by default

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
        return self.compress_batch([example], env)[0]

    def compress_batch(self, examples: list[Example], env: Env) -> list[Compressed]:
        """Self-information of all examples first, their sequences in shared forward passes, then
        each example's units and selection."""
        pieces = {i: self.pieces(e) for i, e in enumerate(examples) if e.context.strip()}
        scored: dict[int, dict[str, Any]] = {}
        if pieces:
            scorer = self.scorer(env)
            jobs = [self.info_job(scorer, examples[i].context, p) for i, p in pieces.items()]
            scored = dict(zip(pieces, fetch_surprisals(env.store, scorer, jobs, self.batch_size, bos=True)))
        return [self.select(e, env, pieces.get(i, []), scored.get(i)) for i, e in enumerate(examples)]

    def select(self, example: Example, env: Env, pieces: list[tuple[int, int, int]],
               scored: dict[str, Any] | None) -> Compressed:
        """Units from the scored stretches (`pieces`, and `scored`: their token anchors and
        self-information; None for an empty context), kept by the budget, the percentile rule or
        the threshold."""
        context = example.context
        reader_total = env.count([context])[0] if context else 0
        limit = None if self.reduce_ratio is not None else self.token_limit(reader_total, env.prompt_overhead(example))
        extras: dict[str, Any] = {"requested": {"rate": self.rate, "target_tokens": self.target_tokens,
                                                "threshold": self.threshold, "reduce_ratio": self.reduce_ratio},
                                  "original_reader_tokens": reader_total}
        if scored is None:
            return Compressed((), {**extras, "units": 0, "kept_units": 0, "achieved_reader_tokens": 0})
        level: str = self.level  # "word" when spaCy is missing for phrases
        units: list[tuple[int, int, int]] = []  # (passage, start, end) in context characters
        for index, start, end in pieces:
            text = context[start:end]
            if level == "sentence":
                cuts = [0] if self.scoring == "sentence" else _sentence_starts(example.passages[index].sentences, text)
            elif level == "phrase":
                cuts, ok = _phrase_starts(text, env)
                if not ok:
                    level = "word"
            else:
                cuts = sorted({a - start for a in scored["anchors"] if start <= a < end} | {0})
            bounds = cuts + [len(text)]
            units.extend((index, start + a, start + b) for a, b in zip(bounds, bounds[1:]) if text[a:b].strip())
        # A unit without a token of its own scores NaN: the package keeps it (NaN is never below the cut).
        scores = [s if math.isfinite(s) else math.nan for s in
                  aggregate(scored["anchors"], scored["info"], [(a, b) for _, a, b in units], self.unit_score)]
        texts = [context[a:b] for _, a, b in units]

        def render(kept: list[int]) -> tuple[Passage, ...]:
            groups: dict[int, list[str]] = {}
            end = -1
            for i in sorted(kept):
                pieces = groups.setdefault(units[i][0], [])
                # A gap where units were dropped (or between sentences): keep the words apart if no
                # space survived there.
                if pieces and units[i][1] > end and not pieces[-1][-1:].isspace() and not texts[i][:1].isspace():
                    pieces.append(" ")
                pieces.append(texts[i])
                end = units[i][2]
            return tuple(Passage("".join(g).strip(), example.passages[p].title, gold=example.passages[p].gold)
                         for p, g in groups.items())

        if self.reduce_ratio is not None:
            # The package's rule: units below the reduce_ratio-th percentile are removed (NaN ignored).
            cut = float(np.nanpercentile(scores, self.reduce_ratio * 100)) if scores else 0.0
            kept = [i for i, s in enumerate(scores) if not s < cut]
        elif self.threshold is not None:
            kept = [i for i, s in enumerate(scores) if s >= self.threshold]
        else:
            assert limit is not None
            rank = [s if not math.isnan(s) else -math.inf for s in scores]
            order = sorted(range(len(units)), key=lambda i: (-rank[i], i))
            kept = order[:fit_count(order, lambda idx: Compressed(render(idx)).text, env.count, limit)]
        passages = render(kept)
        achieved = env.count([Compressed(passages).text])[0]
        extras.update(level=level, units=len(units), kept_units=len(kept), target_reader_tokens=limit,
                      achieved_reader_tokens=achieved, achieved_rate=achieved / reader_total if reader_total else 0.0)
        if level == "word":
            extras["fallback"] = "spaCy or en_core_web_sm is not installed: phrases are whitespace words"
        return Compressed(passages, extras)

    def scorer(self, env: Env) -> CausalLM:
        return env.causal_lm(self.model_spec())

    def pieces(self, example: Example) -> list[tuple[int, int, int]]:
        """The stretches scored as one sequence, (passage, start, end) in context characters: each
        sentence (the package), or each passage within one pass over the whole context."""
        if self.scoring == "sentence":
            return [(index, start + a, start + b) for index, start in passage_starts(example.passages)
                    for a, b in reference_sentences(example.passages[index].text)]
        return [(index, start, start + len(example.passages[index].text))
                for index, start in passage_starts(example.passages)]

    def info_job(self, scorer: CausalLM, context: str, pieces: list[tuple[int, int, int]]) -> SurprisalJob:
        """Token anchors (context characters) and self-information of every scored stretch:
        the whole context in one sequence (`scoring=context`), or each sentence alone."""
        model = {"model": self.model, "revision": self.revision, "dtype": self.dtype}
        if self.scoring == "context":
            key: dict[str, Any] = {"stage": "lm_self_info", "scorer": model, "text": context}
            stretches = [(0, len(context))]
        else:
            key = {"stage": "lm_self_info_sentences", "scorer": model, "texts": [context[a:b] for _, a, b in pieces]}
            stretches = [(a, b) for _, a, b in pieces]
        tokenized = [scorer.tokenize(context[a:b]) for a, b in stretches]

        def reduce(infos: list[Any]) -> dict[str, Any]:
            anchors: list[int] = []
            values: list[float] = []
            for (start, end), tokens, info in zip(stretches, tokenized, infos):
                anchors.extend(start + a for a in first_char_anchors(tokens.offsets, context[start:end]))
                values.extend(float(x) for x in info)
            return {"anchors": anchors, "info": values}

        return key, [t.ids for t in tokenized], reduce


# The package's sentence splitter: a space after "." or "?", unless it follows "e.g."-like or "Mr."-like text.
SENTENCE_END = re.compile(r"(?<!\w\.\w.)(?<![A-Z][a-z]\.)(?<=\.|\?)\s")


def reference_sentences(text: str) -> list[tuple[int, int]]:
    """[start, end) of each sentence of `text` as the package splits it, each stripped of whitespace."""
    bounds, start = [], 0
    for match in SENTENCE_END.finditer(text):
        bounds.append((start, match.start()))
        start = match.end()
    bounds.append((start, len(text)))
    out = []
    for a, b in bounds:
        piece = text[a:b]
        if piece.strip():
            out.append((a + len(piece) - len(piece.lstrip()), a + len(piece.rstrip())))
    return out


def _sentence_starts(sentences: tuple[str, ...] | None, text: str) -> list[int]:
    pieces = list(sentences) if sentences is not None and "".join(sentences) == text else split_sentences(text)
    starts, pos = [], 0
    for piece in pieces:
        starts.append(pos)
        pos += len(piece)
    return starts or [0]


def _spacy() -> Any:
    """spaCy's English pipeline without the parts noun chunks do not need, or None."""
    return english(("ner", "lemmatizer"))


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
