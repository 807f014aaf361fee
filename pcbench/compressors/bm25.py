"""Lexical relevance: BM25 of each unit against the question, the units being the corpus."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import bm25s

from pcbench.compressors.scored import ScoredCompressor
from pcbench.core.example import Example
from pcbench.core.knobs import Range


@dataclass
class BM25Compressor(ScoredCompressor):
    """Lexical relevance (Robertson and Zaragoza 2009, via bm25s): BM25 of each unit against the question.

    The example's units are the corpus and the question the query; a question sharing no word with
    the context scores every unit 0. Knobs: the budget, `level`, `order`, `k1`, `b`, `stopwords`,
    `method` (lucene, robertson, atire, bm25l, bm25+).
    """

    k1: Annotated[float, Range(0)]
    b: Annotated[float, Range(0, 1)]
    stopwords: Literal["en"] | None  # None keeps every word
    method: Literal["lucene", "robertson", "atire", "bm25l", "bm25+"]

    def score(self, question: str, units: list[str], example: Example) -> list[float]:
        stopwords: str | list[str] = self.stopwords or []
        corpus = bm25s.tokenize(units, stopwords=stopwords, show_progress=False)
        query = bm25s.tokenize([question], stopwords=stopwords, show_progress=False, return_ids=False)[0]
        terms = [t for t in query if t in corpus.vocab]
        # bm25s fails on an empty vocabulary or an empty query; no shared word means no evidence.
        if not terms:
            return [0.0] * len(units)
        index = bm25s.BM25(k1=float(self.k1), b=float(self.b), method=self.method)
        index.index(corpus, show_progress=False)
        return [float(s) for s in index.get_scores(terms)]
