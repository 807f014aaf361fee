"""Semantic relevance: similarity of each unit's sentence embedding to the question's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np

from pcbench.compressors.base import Env
from pcbench.compressors.scored import ScoredCompressor, question_similarities
from pcbench.compressors.units import Unit, view
from pcbench.core.example import Example
from pcbench.core.knobs import Range
from pcbench.models.encoders import load_sentence_transformer
from pcbench.models.pool import ModelKnobs


@dataclass
class EmbeddingCompressor(ScoredCompressor, ModelKnobs):
    """Semantic relevance (Sentence-BERT, Reimers and Gurevych 2019): cosine similarity of each
    unit's embedding to the question's.

    Any sentence-transformers model (`model`; all-MiniLM-L6-v2 offline by default), batched across
    examples. Knobs: the budget, `level`, `order`, the model block.
    """

    batch_size: Annotated[int, Range(1)]
    normalize: bool  # True: cosine similarity; False: raw dot product (for dot-product models)

    def score_batch(self, examples: list[Example], units: list[list[Unit]], env: Env) -> list[list[float]]:
        # Questions and units of every example in one encode call: the model batches across examples.
        model = env.models.get(self.model_spec(),
                                    load_sentence_transformer)
        texts = [t for e, us in zip(examples, units) for t in (e.question, *(view(e, u) for u in us))]
        vectors = np.asarray(model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                          normalize_embeddings=self.normalize, show_progress_bar=False),
                             dtype=np.float32)
        return question_similarities(vectors, units)
