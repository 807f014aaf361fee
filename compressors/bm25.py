"""Lexical relevance: BM25 of each unit against the question, the units being the corpus."""

from __future__ import annotations

from dataclasses import dataclass

import bm25s

from compressors.scored import ScoredCompressor
from core.errors import PcbenchError
from core.example import Example

METHODS = ("lucene", "robertson", "atire", "bm25l", "bm25+")
STOPWORDS = ("en",)


@dataclass
class BM25Compressor(ScoredCompressor):
    k1: float = 1.5
    b: float = 0.75
    stopwords: str | None = "en"  # "en" or None (keep every word)
    method: str = "lucene"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in METHODS:
            raise PcbenchError(f"compressor.method={self.method!r} is not allowed; allowed: {', '.join(METHODS)}")
        if self.stopwords is not None and self.stopwords not in STOPWORDS:
            raise PcbenchError(f"compressor.stopwords={self.stopwords!r} is not allowed; allowed: en, null")
        if not float(self.k1) >= 0:
            raise PcbenchError(f"compressor.k1={self.k1} is not allowed; allowed: a number >= 0")
        if not 0 <= float(self.b) <= 1:
            raise PcbenchError(f"compressor.b={self.b} is not allowed; allowed: a number in [0, 1]")

    def score(self, question: str, units: list[str], example: Example) -> list[float]:
        stopwords = self.stopwords or []
        corpus = bm25s.tokenize(units, stopwords=stopwords, show_progress=False)
        query = bm25s.tokenize([question], stopwords=stopwords, show_progress=False, return_ids=False)[0]
        terms = [t for t in query if t in corpus.vocab]
        # bm25s fails on an empty vocabulary or an empty query; no shared word means no evidence.
        if not terms:
            return [0.0] * len(units)
        index = bm25s.BM25(k1=float(self.k1), b=float(self.b), method=self.method)
        index.index(corpus, show_progress=False)
        return [float(s) for s in index.get_scores(terms)]
