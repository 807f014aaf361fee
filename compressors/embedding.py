"""Semantic relevance: similarity of each unit's sentence embedding to the question's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from compressors.scored import ScoredCompressor
from core.errors import PcbenchError
from core.example import Example

# One loaded model per (model, device) in this process: a multirun sweep builds a new compressor
# per cell, and reloading the model for each would dominate a cheap method's time.
_MODELS: dict[tuple[str, str | None, str], Any] = {}


@dataclass
class EmbeddingCompressor(ScoredCompressor):
    model: str = "minilm"  # "minilm" (packaged all-MiniLM-L6-v2), a hub id or a local path
    revision: str | None = None  # a hub commit or tag; part of the score cache key like every knob
    batch_size: int = 64
    device: str = "auto"  # auto picks cuda, then mps, then cpu
    normalize: bool = True  # True: cosine similarity; False: raw dot product (for dot-product models)

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise PcbenchError(f"compressor.batch_size={self.batch_size!r} is not allowed; allowed: an integer >= 1")
        if not self.model:
            raise PcbenchError("compressor.model is empty; allowed: minilm, a hub id or a local path")

    def encoder(self) -> Any:
        key = (self.model, self.revision, self.device)
        if key not in _MODELS:
            from sentence_transformers import SentenceTransformer  # slow import, only when used

            from core.local_models import resolve

            device = None if self.device == "auto" else self.device  # None: sentence-transformers picks
            _MODELS[key] = SentenceTransformer(resolve(self.model), device=device, revision=self.revision)
        return _MODELS[key]

    def score(self, question: str, units: list[str], example: Example) -> list[float]:
        model = self.encoder()
        vectors = model.encode([question, *units], batch_size=self.batch_size, convert_to_numpy=True,
                               normalize_embeddings=bool(self.normalize), show_progress_bar=False)
        vectors = np.asarray(vectors, dtype=np.float32)
        return [float(s) for s in vectors[1:] @ vectors[0]]

    def close(self) -> None:
        model = _MODELS.pop((self.model, self.revision, self.device), None)
        if model is not None and str(getattr(model, "device", "cpu")).startswith("cuda"):
            import torch

            del model
            torch.cuda.empty_cache()
