"""Extractive compression with a reranker: a cross-encoder scores each unit against the question.

Jha et al. (2024) found this the strongest extractive method on LongBench: rerank ~128-token
chunks that end at sentence ends (`level: chunk`, `chunk_tokens`, counted in reader tokens) and
keep the best under the budget. Sentences and whole passages work too. Any sentence-transformers
CrossEncoder id or folder (e.g. mixedbread-ai/mxbai-rerank-large-v1, BAAI/bge-reranker-v2-m3).
All (question, unit) pairs of a chunk of examples go to the model in one predict call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np

from pcbench.compressors.base import Env
from pcbench.compressors.scored import ScoredCompressor
from pcbench.compressors.units import Unit, sentence_chunks, split_units, view
from pcbench.core.errors import PcbenchError
from pcbench.core.example import Example
from pcbench.core.knobs import Range
from pcbench.models.encoders import load_cross_encoder
from pcbench.models.pool import ModelKnobs


@dataclass
class CrossEncoderCompressor(ScoredCompressor, ModelKnobs):
    """Extractive compression with a reranker (Jha et al. 2024's strongest extractive method).

    A sentence-transformers CrossEncoder scores every (question, unit) pair; units are ~128-token
    chunks ending at sentence ends (`level=chunk`, `chunk_tokens`), sentences or passages, kept by
    the shared selector. Knobs: the budget, `level`, `chunk_tokens`, the model block.
    """

    level: Literal["chunk", "sentence", "passage"]  # type: ignore[assignment]  # chunk: sentences up to chunk_tokens
    chunk_tokens: Annotated[int, Range(1)]  # reader tokens per chunk (level: chunk)
    max_length: Annotated[int, Range(8)] | None  # the model's own limit when null
    batch_size: Annotated[int, Range(1)]
    dtype: Literal["float32", "bfloat16", "float16"]

    def units(self, example: Example, env: Env) -> list[Unit]:
        if self.level == "chunk":
            return sentence_chunks(example, int(self.chunk_tokens), env.count)
        return split_units(example, self.level)

    def score_batch(self, examples: list[Example], units: list[list[Unit]], env: Env) -> list[list[float]]:
        model = env.models.get(self.model_spec(),
                               load_cross_encoder)
        if self.max_length is not None:
            model.max_length = int(self.max_length)
        pairs = [(e.question, view(e, u)) for e, us in zip(examples, units) for u in us]
        scores = np.asarray(model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False,
                                          convert_to_numpy=True), dtype=np.float64)
        if scores.ndim == 2:  # a classifier with several labels: the last one is "relevant"
            if scores.shape[1] > 2:
                raise PcbenchError(f"compressor.model={self.model!r} outputs {scores.shape[1]} labels per pair; "
                                   "a reranker gives one relevance score (or two: irrelevant, relevant)")
            scores = scores[:, -1]
        out, at = [], 0
        for us in units:
            out.append([float(s) for s in scores[at:at + len(us)]])
            at += len(us)
        return out
